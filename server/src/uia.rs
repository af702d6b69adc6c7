//! User-interactive authentication (UIA), reusable by any endpoint.
//!
//! An endpoint states its flows, the request fields the session is bound to, and
//! (for a signed-in caller) whose credentials the stages must prove. The first
//! request gets a 401 with a new session; later requests complete stages in it.
//! Sessions live in the database (any process can continue one), expire, and work
//! only for the endpoint, user and body they were created for.
//!
//! The database holds a session under the SHA-256 of its ID, and its binding to
//! the request body as an HMAC keyed with the ID itself: the ID is a 256-bit
//! secret only the client has, so a dump of the database does not allow guessing
//! the password a pending registration or password change carries.
//!
//! A completed session stays until it expires, marked with the account it acted
//! for. The spec lets a server answer a retry of it "with a 401 response with
//! the completed stages, or the result of the API call": registration gives its
//! result (the account it made, logged in anew — until the account logs out
//! everywhere or changes its password); every other call answers the 401, so
//! nothing runs twice. A session that is unknown, expired, or was made for
//! another request is answered with a new challenge saying so, which a client
//! can continue.

use matrix_api::runtime::{MatrixError, Metadata, RequestInfo};
use matrix_api::types::{AuthData, AuthResponse, FlowInformation};
use serde_json::Value;

use crate::crypto;
use crate::ratelimit::{Action, Key};
use crate::service::{internal, Server};
use crate::store::{now_ms, UiaSession};

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";
pub const EMAIL: &str = "m.login.email.identity";
pub const MSISDN: &str = "m.login.msisdn";

pub struct UiaSpec<'a> {
    /// The operation the session is for (its generated `METADATA`).
    pub operation: &'a Metadata,
    /// Request fields that must stay the same for the whole session.
    pub binding: &'a [&'a str],
    /// The signed-in user whose password the stages check.
    pub user_id: Option<&'a str>,
    /// The caller's token came from the OAuth 2.0 API.
    pub via_oauth: bool,
    pub flows: Vec<Vec<&'static str>>,
    /// The request (its client address limits failed password stages).
    pub request: &'a RequestInfo,
    /// A retry of a completed session passes again, for the caller to answer
    /// with the result it had (registration); otherwise it is answered with
    /// the completed stages and nothing runs twice.
    pub result_on_retry: bool,
}

/// The outcome of one UIA step.
pub enum Uia {
    /// A flow is complete: proceed with the request.
    Passed(UiaSession),
    /// Answer 401 with this body.
    Challenge(AuthResponse),
}

impl Server {
    pub async fn user_interactive_auth(
        &self,
        spec: &UiaSpec<'_>,
        auth: Option<&AuthData>,
    ) -> Result<Uia, MatrixError> {
        // A challenge is a `401` the operation must document (METADATA.uia).
        if !spec.operation.uia {
            tracing::error!(
                operation = spec.operation.operation_id,
                "interactive auth on an operation without it"
            );
            return Err(MatrixError::unknown("Internal server error"));
        }
        // The spec: interactive auth is not compatible with the OAuth 2.0
        // API, and its endpoints cannot be used with its tokens. What they
        // do is on the account page, where the person signs in again.
        if spec.via_oauth {
            return Err(MatrixError::forbidden(format!(
                "This endpoint needs interactive authentication, which tokens of the OAuth 2.0 API cannot do: use the account page, {}/_account/v1/account",
                self.public_base()
            )));
        }
        // `"POST /_matrix/client/v3/register"`: what a session is bound to.
        let endpoint = format!("{} {}", spec.operation.method, spec.operation.path);
        let given = auth.and_then(|a| a.session.as_deref());
        let found = match given {
            Some(id) => self.store.uia_session(id).await.map_err(internal)?,
            None => None,
        };
        let mut session = match found {
            Some(s)
                if s.endpoint == endpoint
                    && s.user_id.as_deref() == spec.user_id
                    && crypto::secrets_equal(
                        &s.binding,
                        &crypto::bind_hash(s.session_id.as_bytes(), spec.binding),
                    ) =>
            {
                s
            }
            // No session yet: a new one, and a stage may already be done in it.
            None if given.is_none() => self.new_uia_session(spec, endpoint).await?,
            other => {
                // Nothing of the old session carries over: the client starts again.
                let fresh = self.new_uia_session(spec, endpoint).await?;
                let why = match other {
                    None => "Unknown or expired session: continue with the new one",
                    Some(_) => {
                        "That session was made for another request: continue with the new one"
                    }
                };
                return Ok(self.challenge(spec, &fresh, Some(("M_UNKNOWN", why.into()))));
            }
        };
        // Completed: registration gives its result again (the caller sees
        // `result_user_id`); anything else lists the completed stages, runs nothing.
        if session.result_user_id.is_some() && !spec.result_on_retry {
            return Ok(self.challenge(spec, &session, None));
        }
        if let Some(stage) = auth.and_then(|a| a.type_.as_deref()) {
            let auth = auth.expect("a stage comes with auth data");
            if !spec.flows.iter().any(|f| f.contains(&stage)) {
                return Ok(self.challenge(
                    spec,
                    &session,
                    Some((
                        "M_UNRECOGNIZED",
                        format!("Stage {stage} is not offered here"),
                    )),
                ));
            }
            if let Err(failure) = self.run_stage(spec, &mut session, stage, auth).await? {
                return Ok(self.challenge(spec, &session, Some(failure)));
            }
            if !session.completed.iter().any(|c| c == stage) {
                session.completed.push(stage.to_string());
            }
            self.store
                .update_uia_session(&session)
                .await
                .map_err(internal)?;
        }
        let done = spec
            .flows
            .iter()
            .any(|f| f.iter().all(|s| session.completed.iter().any(|c| c == s)));
        Ok(if done {
            Uia::Passed(session)
        } else {
            self.challenge(spec, &session, None)
        })
    }

    /// The fallback page's form (`/auth/{type}/fallback/web`): runs one stage
    /// in an existing session, out of band. `Ok(Err(message))` is a failed
    /// stage. The stage counts for the session's flows when the client repeats
    /// its request with the session ID.
    pub async fn fallback_stage(
        &self,
        session: &mut UiaSession,
        stage: &str,
        auth: &AuthData,
        request: &RequestInfo,
        operation: &Metadata,
    ) -> Result<Result<(), String>, MatrixError> {
        let user_id = session.user_id.clone();
        let spec = UiaSpec {
            operation,
            binding: &[],
            user_id: user_id.as_deref(),
            // The fallback pages are a browser's, not an OAuth client's.
            via_oauth: false,
            flows: Vec::new(),
            request,
            result_on_retry: false,
        };
        if let Err((_, message)) = self.run_stage(&spec, session, stage, auth).await? {
            return Ok(Err(message));
        }
        if !session.completed.iter().any(|c| c == stage) {
            session.completed.push(stage.to_string());
        }
        self.store
            .update_uia_session(session)
            .await
            .map_err(internal)?;
        Ok(Ok(()))
    }

    /// Records `stage` as completed in `session` (the email fallback page,
    /// once the address it had mailed is validated).
    pub async fn complete_stage(
        &self,
        session: &mut UiaSession,
        stage: &str,
    ) -> Result<(), MatrixError> {
        if !session.completed.iter().any(|c| c == stage) {
            session.completed.push(stage.to_string());
        }
        self.store
            .update_uia_session(session)
            .await
            .map_err(internal)
    }

    /// Marks a session completed: the call it authorised acted for `user_id`.
    pub async fn complete_uia(
        &self,
        mut session: UiaSession,
        user_id: &str,
    ) -> Result<(), MatrixError> {
        session.result_user_id = Some(user_id.to_string());
        self.store
            .update_uia_session(&session)
            .await
            .map_err(internal)
    }

    /// A new session for this request; its ID goes to the client only.
    async fn new_uia_session(
        &self,
        spec: &UiaSpec<'_>,
        endpoint: String,
    ) -> Result<UiaSession, MatrixError> {
        let id = crypto::new_token("uia");
        let s = UiaSession {
            binding: crypto::bind_hash(id.as_bytes(), spec.binding),
            session_id: id,
            endpoint,
            user_id: spec.user_id.map(str::to_string),
            completed: Vec::new(),
            registration_token: None,
            threepid_sid: None,
            result_user_id: None,
            expires_ms: now_ms() + (self.config.tokens.uia_session_lifetime_secs * 1000) as i64,
        };
        self.store.create_uia_session(&s).await.map_err(internal)?;
        Ok(s)
    }

    /// Checks one stage: `Ok(Err(..))` is a failed stage (answered in the 401 body),
    /// `Err` a request error.
    async fn run_stage(
        &self,
        spec: &UiaSpec<'_>,
        session: &mut UiaSession,
        stage: &str,
        auth: &AuthData,
    ) -> Result<Result<(), (&'static str, String)>, MatrixError> {
        let field = |k: &str| auth.extra.get(k).and_then(Value::as_str);
        match stage {
            DUMMY => Ok(Ok(())),
            PASSWORD => {
                let Some(expected) = spec.user_id else {
                    return Ok(Err((
                        "M_FORBIDDEN",
                        "No account to check a password for".into(),
                    )));
                };
                // `identifier: {type: m.id.user, user}` or the legacy `user`.
                let named = auth
                    .extra
                    .get("identifier")
                    .filter(|i| i.get("type").and_then(Value::as_str) == Some("m.id.user"))
                    .and_then(|i| i.get("user"))
                    .and_then(Value::as_str)
                    .or_else(|| field("user"));
                if let Some(name) = named {
                    if self.resolve_user(name).ok().as_deref() != Some(expected) {
                        return Ok(Err((
                            "M_FORBIDDEN",
                            "Those are not the caller's credentials".into(),
                        )));
                    }
                }
                // Failed password stages are limited like failed logins: per
                // account and per client address.
                let keys: Vec<Key> = std::iter::once(Key::User(expected.to_string()))
                    .chain(self.client_key(spec.request))
                    .collect();
                let stored = self
                    .store
                    .user(expected)
                    .await
                    .map_err(internal)?
                    .and_then(|u| u.password_hash);
                let ok = self
                    .verify_password(
                        Action::PasswordFailures,
                        &keys,
                        field("password"),
                        stored.as_deref(),
                    )
                    .await?;
                Ok(if ok {
                    Ok(())
                } else {
                    Err(("M_FORBIDDEN", "Invalid password".into()))
                })
            }
            REGISTRATION_TOKEN => {
                let Some(token) = field("token") else {
                    return Err(MatrixError::missing_param("Missing `token`"));
                };
                let usable = self
                    .store
                    .registration_token(token)
                    .await
                    .map_err(internal)?
                    .is_some_and(|t| t.usable(now_ms()));
                if !usable {
                    return Ok(Err(("M_FORBIDDEN", "Invalid registration token".into())));
                }
                session.registration_token = Some(token.to_string());
                Ok(Ok(()))
            }
            EMAIL | MSISDN => {
                // `threepid_creds` (or the older `threepidCreds`) of a session
                // this server validated, for the stage's medium.
                let medium = if stage == EMAIL { "email" } else { "msisdn" };
                let creds = auth
                    .extra
                    .get("threepid_creds")
                    .or_else(|| auth.extra.get("threepidCreds"));
                let part = |k: &str| creds.and_then(|c| c.get(k)).and_then(Value::as_str);
                let (Some(sid), Some(secret)) = (part("sid"), part("client_secret")) else {
                    return Err(MatrixError::missing_param(
                        "Missing `threepid_creds` with `sid` and `client_secret`",
                    ));
                };
                let validated = self
                    .store
                    .validated_threepid(sid, &crypto::token_hash(secret))
                    .await
                    .map_err(internal)?
                    .filter(|v| v.medium == medium);
                if validated.is_none() {
                    return Ok(Err((
                        "M_UNAUTHORIZED",
                        "This address is not validated yet: follow the link or enter the code sent to it"
                            .into(),
                    )));
                }
                session.threepid_sid = Some(sid.to_string());
                Ok(Ok(()))
            }
            other => Ok(Err((
                "M_UNRECOGNIZED",
                format!("Stage {other} is not supported"),
            ))),
        }
    }

    fn challenge(
        &self,
        spec: &UiaSpec<'_>,
        session: &UiaSession,
        failure: Option<(&str, String)>,
    ) -> Uia {
        let (errcode, error) = match failure {
            Some((c, e)) => (Some(c.to_string()), Some(e)),
            None => (None, None),
        };
        let flows = spec.flows.iter().map(|f| {
            let stages = f.iter().map(|s| s.to_string()).collect();
            FlowInformation::new(stages)
        });
        let mut challenge = AuthResponse::new(flows.collect());
        challenge.params = Some(Default::default());
        challenge.session = Some(session.session_id.clone());
        challenge.completed = Some(session.completed.clone());
        challenge.errcode = errcode;
        challenge.error = error;
        Uia::Challenge(challenge)
    }
}
