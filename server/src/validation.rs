//! Validating email addresses by this server, as the spec lets a homeserver do
//! instead of delegating to an identity server: `requestToken` starts a
//! session and mails a token and a link; the token comes back through the
//! `submit_url` (JSON, as the identity service's `submitToken`) or the page the
//! link opens; a validated session then proves the address to the
//! interactive-auth stage `m.login.email.identity` and to `/account/3pid/add`.

use std::time::Duration;

use http::StatusCode;
use matrix_api::runtime::MatrixError;
use matrix_api::types::{RequestEmailValidation, RequestMsisdnValidation, RequestTokenResponse};
use rand::Rng;

use crate::crypto;
use crate::email::Mail;
use crate::service::{internal, medium_not_supported, Server};
use crate::store::{NewValidation, StoreError, Submitted};

/// The path of this server's own validation endpoints (api/account/validation.yaml).
pub const BASE: &str = "/_account/v1";

/// One `requestToken` call, checked and normalised.
struct TokenRequest<'a> {
    purpose: Purpose,
    /// `email` or `msisdn`.
    medium: &'static str,
    /// The normalised address: a lower-cased email address, or E.164 digits.
    address: &'a str,
    client_secret: &'a str,
    send_attempt: i64,
    next_link: Option<&'a str>,
}

/// What a validation is for: the message says so, and the session remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `/register/email/requestToken`: the address must be free.
    Register,
    /// `/account/password/email/requestToken`: the address must have an account.
    PasswordReset,
    /// `/account/3pid/email/requestToken`: the address must be free.
    AddThreepid,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::PasswordReset => "password_reset",
            Purpose::AddThreepid => "add_threepid",
        }
    }
}

/// `client_secret` and `sid`: 1 to 255 characters of `[0-9a-zA-Z.=_-]`, as
/// the spec defines them; anything else is `M_INVALID_PARAM`.
pub fn check_secret_grammar(name: &str, value: &str) -> Result<(), MatrixError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._=-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(MatrixError::invalid_param(format!(
            "{name} must be 1 to 255 characters of [0-9a-zA-Z.=_-]"
        )))
    }
}

/// A phone number as this server stores and compares it: parsed for the
/// client's `country` (ISO 3166 alpha-2) with the `phonenumber` crate
/// (libphonenumber's data), checked to be a valid number, and written as E.164
/// digits without the `+` (the form the spec's `msisdn` uses).
pub fn normalise_phone(country: &str, number: &str) -> Result<String, MatrixError> {
    let country: phonenumber::country::Id = country
        .trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| MatrixError::invalid_param("Unknown country code"))?;
    let invalid = || MatrixError::invalid_param("Not a valid phone number");
    let parsed = phonenumber::parse(Some(country), number).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&parsed) {
        return Err(invalid());
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    Ok(e164.trim_start_matches('+').to_string())
}

/// An address as the `threepids` table holds it, from how a client wrote it
/// (an email address normalised, an msisdn without `+`); what does not parse
/// stays as given and so matches nothing.
pub fn stored_form(medium: &str, address: &str) -> String {
    match medium {
        "email" => normalise_email(address).unwrap_or_else(|_| address.to_string()),
        "msisdn" => address.trim().trim_start_matches('+').to_string(),
        _ => address.to_string(),
    }
}

/// An email address as this server stores and compares it: parsed by lettre
/// (RFC 5321 syntax), the local part case-folded and the domain lower-cased,
/// as Synapse canonicalises, so `Alice@Example.ORG` is one address.
pub fn normalise_email(input: &str) -> Result<String, MatrixError> {
    let address: lettre::Address = input
        .trim()
        .parse()
        .map_err(|_| MatrixError::invalid_param("Not a valid email address"))?;
    Ok(format!(
        "{}@{}",
        address.user().to_lowercase(),
        address.domain().to_ascii_lowercase()
    ))
}

/// No validated session has these credentials (`/account/3pid/add`).
pub fn no_validated_session() -> MatrixError {
    MatrixError::new(
        StatusCode::FORBIDDEN,
        "M_THREEPID_AUTH_FAILED",
        "No validated session with these credentials",
    )
}

/// The validation session a stage was passed with is gone (expired, or used).
pub fn session_expired() -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        "M_SESSION_EXPIRED",
        "The validation session expired; validate the address again",
    )
}

fn threepid_in_use() -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        "M_THREEPID_IN_USE",
        "This address is already in use",
    )
}

fn threepid_not_found() -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        "M_THREEPID_NOT_FOUND",
        "No account has this address",
    )
}

impl Server {
    /// The link a message carries: this server's validation page.
    pub fn public_base(&self) -> String {
        match &self.config.public_baseurl {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!(
                "http://{}",
                self.listening_on.get().copied().unwrap_or(self.config.bind)
            ),
        }
    }

    /// `next_link` must be http or https, and on an allowed domain when the
    /// configuration lists some.
    fn check_next_link(&self, link: &str) -> Result<(), MatrixError> {
        let bad = || MatrixError::invalid_param("next_link must be an http or https URL");
        let rest = link
            .strip_prefix("https://")
            .or_else(|| link.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() || link.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let domains = &self.config.email.next_link_domains;
        if !domains.is_empty() && !domains.iter().any(|d| d.eq_ignore_ascii_case(host)) {
            return Err(MatrixError::invalid_param(
                "next_link is not on a domain this server redirects to",
            ));
        }
        Ok(())
    }

    /// `requestToken` for an email address.
    pub async fn request_email_token(
        &self,
        purpose: Purpose,
        body: &RequestEmailValidation,
    ) -> Result<RequestTokenResponse, MatrixError> {
        if self.mailer.is_none() {
            return Err(medium_not_supported());
        }
        check_secret_grammar("client_secret", &body.client_secret)?;
        let address = normalise_email(&body.email)?;
        let request = TokenRequest {
            purpose,
            medium: "email",
            address: &address,
            client_secret: &body.client_secret,
            send_attempt: body.send_attempt,
            next_link: body.next_link.as_deref(),
        };
        self.request_token(request).await
    }

    /// `requestToken` for a phone number (`country` + `phone_number`).
    pub async fn request_msisdn_token(
        &self,
        purpose: Purpose,
        body: &RequestMsisdnValidation,
    ) -> Result<RequestTokenResponse, MatrixError> {
        if self.sms.is_none() {
            return Err(medium_not_supported());
        }
        check_secret_grammar("client_secret", &body.client_secret)?;
        let address = normalise_phone(&body.country, &body.phone_number)?;
        let request = TokenRequest {
            purpose,
            medium: "msisdn",
            address: &address,
            client_secret: &body.client_secret,
            send_attempt: body.send_attempt,
            next_link: body.next_link.as_deref(),
        };
        self.request_token(request).await
    }

    /// The email stage's fallback page asks for the address itself: a session
    /// with a client secret of the server's own (the page never shows it),
    /// whose link leads back to `next_link`, the page. Returns its `sid`.
    pub async fn request_email_for_page(
        &self,
        purpose: Purpose,
        email: &str,
        next_link: &str,
    ) -> Result<String, MatrixError> {
        if self.mailer.is_none() {
            return Err(medium_not_supported());
        }
        let address = normalise_email(email)?;
        let client_secret = crypto::new_token("page");
        let request = TokenRequest {
            purpose,
            medium: "email",
            address: &address,
            client_secret: &client_secret,
            send_attempt: 1,
            next_link: Some(next_link),
        };
        Ok(self.request_token(request).await?.sid)
    }

    /// Checks, then a session, then the message (only when the session is new
    /// or `send_attempt` grew). Answers only once the message was accepted
    /// for delivery.
    async fn request_token(
        &self,
        r: TokenRequest<'_>,
    ) -> Result<RequestTokenResponse, MatrixError> {
        if let Some(link) = r.next_link {
            self.check_next_link(link)?;
        }
        let email = &self.config.email;
        if r.medium == "email"
            && !email.allowed_addresses.is_empty()
            && !self
                .allowed_addresses
                .iter()
                .any(|re| re.is_match(r.address))
        {
            return Err(MatrixError::new(
                StatusCode::FORBIDDEN,
                "M_THREEPID_DENIED",
                "This server does not accept this address",
            ));
        }
        self.limit_threepid(&format!("{}:{}", r.medium, r.address))?;
        let owner = self
            .store
            .threepid_owner(r.medium, r.address)
            .await
            .map_err(internal)?;
        let refusal = match (r.purpose, owner) {
            (Purpose::Register | Purpose::AddThreepid, Some(_)) => Some(threepid_in_use()),
            (Purpose::PasswordReset, None) => Some(threepid_not_found()),
            _ => None,
        };
        if let Some(refusal) = refusal {
            if !email.inhibit_3pid_errors {
                return Err(refusal);
            }
            // As if a message went out: a fresh session ID after about the time
            // a delivery takes, and nothing sent.
            let delay = rand::thread_rng().gen_range(200..1200);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut answer = RequestTokenResponse::new(crypto::new_token("sid").replace('_', "."));
            answer.submit_url = Some(self.submit_url());
            return Ok(answer);
        }
        // Email: a code to type or a link to follow; SMS: six digits to type.
        let (token, lifetime_secs) = match r.medium {
            "email" => (crypto::new_id(), email.validation_token_lifetime_secs),
            _ => (
                format!("{:06}", rand::thread_rng().gen_range(0..1_000_000)),
                self.config.sms.validation_token_lifetime_secs,
            ),
        };
        let requested = self
            .store
            .request_validation(NewValidation {
                client_secret_hash: &crypto::token_hash(r.client_secret),
                medium: r.medium,
                address: r.address,
                purpose: r.purpose.as_str(),
                token_hash: &crypto::token_hash(&token),
                send_attempt: r.send_attempt,
                next_link: r.next_link,
                lifetime_ms: (lifetime_secs * 1000) as i64,
            })
            .await
            .map_err(internal)?;
        if requested.send {
            if let Err(why) = self
                .deliver(&r, &requested.sid, &token, lifetime_secs)
                .await
            {
                tracing::warn!(
                    sid = requested.sid,
                    medium = r.medium,
                    error = why,
                    "validation not sent"
                );
                self.store
                    .validation_not_sent(&requested.sid)
                    .await
                    .map_err(internal)?;
                return Err(MatrixError::unknown(format!(
                    "The validation message could not be sent: {why}"
                )));
            }
            tracing::info!(
                sid = requested.sid,
                medium = r.medium,
                purpose = r.purpose.as_str(),
                "validation sent"
            );
        }
        let mut answer = RequestTokenResponse::new(requested.sid);
        answer.submit_url = Some(self.submit_url());
        Ok(answer)
    }

    /// Sends a session's token: an email with the code and a link to the
    /// validation page, or a text message with the code.
    async fn deliver(
        &self,
        r: &TokenRequest<'_>,
        sid: &str,
        token: &str,
        lifetime_secs: u64,
    ) -> Result<(), String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("sid", sid)
            .append_pair("client_secret", r.client_secret)
            .append_pair("token", token)
            .finish();
        let link = format!("{}{BASE}/3pid/validate?{query}", self.public_base());
        let context = minijinja::context! {
            purpose => r.purpose.as_str(),
            server_name => self.config.server_name,
            link,
            token,
            address => r.address,
            lifetime_hours => lifetime_secs.div_ceil(3600),
            lifetime_minutes => lifetime_secs.div_ceil(60),
        };
        let render = |name: &str| {
            self.templates.render(name, &context).inspect_err(|e| {
                tracing::error!(error = e, "template failed");
            })
        };
        match (r.medium, &self.mailer, &self.sms) {
            ("email", Some(mailer), _) => {
                let mail = Mail {
                    to: r.address,
                    subject: render("email/validation_subject.txt")?.trim().to_string(),
                    text: render("email/validation.txt")?,
                    html: render("email/validation.html")?,
                };
                mailer.send(mail).await
            }
            ("msisdn", _, Some(sms)) => {
                let text = render("sms/validation.txt")?;
                sms.send(r.address, text.trim()).await
            }
            _ => Err("no delivery for this medium".into()),
        }
    }

    /// Before an account is made with the address a session proved: the
    /// session is still there and no account has the address.
    pub async fn check_validated_free(&self, sid: &str) -> Result<(), MatrixError> {
        let Some(v) = self
            .store
            .validated_threepid_by_sid(sid)
            .await
            .map_err(internal)?
        else {
            return Err(session_expired());
        };
        let owner = self
            .store
            .threepid_owner(&v.medium, &v.address)
            .await
            .map_err(internal)?;
        match owner {
            Some(_) => Err(threepid_in_use()),
            None => Ok(()),
        }
    }

    /// Binds the address a validated session proved to `user_id`, and ends the
    /// session so its credentials cannot be used again. `M_THREEPID_IN_USE`
    /// when another account took the address in the meantime.
    pub async fn bind_validated(&self, user_id: &str, sid: &str) -> Result<(), MatrixError> {
        let Some(v) = self
            .store
            .validated_threepid_by_sid(sid)
            .await
            .map_err(internal)?
        else {
            return Err(session_expired());
        };
        match self
            .store
            .add_threepid(user_id, &v.medium, &v.address)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(threepid_in_use()),
            Err(e) => return Err(internal(e)),
        }
        self.store.end_validation(sid).await.map_err(internal)?;
        tracing::info!(user_id, medium = v.medium, "address bound");
        Ok(())
    }

    /// `/account/3pid/add`: binds the address of a validated session of this
    /// client secret to the caller; `403 M_THREEPID_AUTH_FAILED` without one.
    pub async fn bind_own_validated(
        &self,
        user_id: &str,
        sid: &str,
        client_secret: &str,
    ) -> Result<(), MatrixError> {
        check_secret_grammar("sid", sid)?;
        check_secret_grammar("client_secret", client_secret)?;
        let validated = self
            .store
            .validated_threepid(sid, &crypto::token_hash(client_secret))
            .await
            .map_err(internal)?;
        if validated.is_none() {
            return Err(no_validated_session());
        }
        self.bind_validated(user_id, sid).await
    }

    /// Where clients submit tokens (the identity service's `submitToken`).
    pub fn submit_url(&self) -> String {
        format!("{}{BASE}/3pid/submit_token", self.public_base())
    }

    /// A token submitted through `submit_url` or the page's form.
    pub async fn submit_token(
        &self,
        sid: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<Option<String>, MatrixError> {
        let outcome = self
            .store
            .submit_validation(
                sid,
                &crypto::token_hash(client_secret),
                &crypto::token_hash(token.trim()),
                self.config.email.max_token_failures,
            )
            .await
            .map_err(internal)?;
        match outcome {
            Submitted::Validated { next_link } => Ok(next_link),
            Submitted::WrongToken => Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_TOKEN_INCORRECT",
                "The token is incorrect",
            )),
            Submitted::Dead => Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_SESSION_EXPIRED",
                "This validation session expired or had too many wrong tokens; ask for a new one",
            )),
            Submitted::Unknown => Err(MatrixError::invalid_param(
                "No validation session with this sid and client_secret",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_follow_the_spec_grammar() {
        for ok in ["a", "monkeys_are_GREAT", "a.b=c-d_e", &"x".repeat(255)] {
            assert!(check_secret_grammar("client_secret", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "ä", "a/b", &"x".repeat(256)] {
            let e = check_secret_grammar("client_secret", bad).unwrap_err();
            assert_eq!(e.errcode, "M_INVALID_PARAM", "{bad}");
        }
    }

    #[test]
    fn phone_numbers_are_parsed_for_their_country_and_written_as_e164() {
        assert_eq!(
            normalise_phone("GB", "07400 123456").unwrap(),
            "447400123456"
        );
        assert_eq!(
            normalise_phone("gb", "+44 7400 123456").unwrap(),
            "447400123456"
        );
        assert_eq!(
            normalise_phone("US", "(650) 253-0000").unwrap(),
            "16502530000"
        );
        for (country, number) in [
            ("GB", "123"),
            ("XX", "07700900123"),
            ("GB", "not a number"),
            ("", ""),
        ] {
            assert_eq!(
                normalise_phone(country, number).unwrap_err().errcode,
                "M_INVALID_PARAM",
                "{country} {number}"
            );
        }
    }

    #[test]
    fn email_addresses_are_parsed_and_normalised() {
        assert_eq!(
            normalise_email(" Alice@Example.ORG ").unwrap(),
            "alice@example.org"
        );
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "a b@example.org",
            "alice@@x",
        ] {
            assert_eq!(
                normalise_email(bad).unwrap_err().errcode,
                "M_INVALID_PARAM",
                "{bad}"
            );
        }
    }
}
