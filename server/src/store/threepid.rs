//! Validation sessions for email addresses and phone numbers, and the
//! addresses bound to accounts. See `migrations/0003_threepid_validation.sql`.

use sqlx::Row;

use super::sql::query;
use super::{now_ms, Result, Store};
use crate::crypto;

/// What a `requestToken` call asks for, already checked and normalised.
pub struct NewValidation<'a> {
    pub client_secret_hash: &'a str,
    pub medium: &'a str,
    pub address: &'a str,
    pub purpose: &'a str,
    /// The SHA-256 of the token to send (the caller makes the token).
    pub token_hash: &'a str,
    pub send_attempt: i64,
    pub next_link: Option<&'a str>,
    pub lifetime_ms: i64,
}

/// The outcome of a `requestToken` call: the session, and whether its token
/// (the new one) must be sent (a new session, or a larger `send_attempt`).
pub struct Requested {
    pub sid: String,
    pub send: bool,
}

/// A session as the validation page and the stages see it.
#[derive(Clone, Debug)]
pub struct ValidationSession {
    pub sid: String,
    pub medium: String,
    pub address: String,
    pub purpose: String,
    pub validated: bool,
}

/// The outcome of submitting a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Right token (or already validated with it): the session's `next_link`.
    Validated { next_link: Option<String> },
    /// Wrong token; the session lives on.
    WrongToken,
    /// Expired, or killed by too many wrong tokens.
    Dead,
    /// No session with this ID and client secret.
    Unknown,
}

/// A session from `SELECT sid, medium, address, purpose, validated_ms`.
fn session_from_row(r: &sqlx::any::AnyRow) -> ValidationSession {
    ValidationSession {
        sid: r.get(0),
        medium: r.get(1),
        address: r.get(2),
        purpose: r.get(3),
        validated: r.get::<Option<i64>, _>(4).is_some(),
    }
}

impl Store {
    /// Starts a validation session, or finds the one this client secret already
    /// has for the address: the same `send_attempt` (or a smaller one) sends
    /// nothing again, a larger one sends a new token.
    pub async fn request_validation(&self, new: NewValidation<'_>) -> Result<Requested> {
        let now = now_ms();
        let client_secret_hash = new.client_secret_hash.to_owned();
        let medium = new.medium.to_owned();
        let address = new.address.to_owned();
        let purpose = new.purpose.to_owned();
        let token_hash = new.token_hash.to_owned();
        let next_link = new.next_link.map(str::to_owned);
        let (send_attempt, expires_ms) = (new.send_attempt, now + new.lifetime_ms);
        self.write(move |c| {
            Box::pin(async move {
                query("DELETE FROM threepid_sessions WHERE expires_ms <= $1")
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                let existing: Option<(String, i64)> = query(
                    "SELECT sid, send_attempt FROM threepid_sessions
                     WHERE client_secret_hash = $1 AND medium = $2 AND address = $3",
                )
                .bind(&client_secret_hash)
                .bind(&medium)
                .bind(&address)
                .fetch_optional(&mut *c)
                .await?;
                Ok(match existing {
                    Some((sid, attempt)) if send_attempt <= attempt => Requested { sid, send: false },
                    Some((sid, _)) => {
                        query(
                            "UPDATE threepid_sessions SET token_hash = $1, send_attempt = $2,
                             next_link = $3, purpose = $4, failures = 0, expires_ms = $5 WHERE sid = $6",
                        )
                        .bind(token_hash)
                        .bind(send_attempt)
                        .bind(next_link)
                        .bind(purpose)
                        .bind(expires_ms)
                        .bind(&sid)
                        .execute(&mut *c)
                        .await?;
                        Requested { sid, send: true }
                    }
                    None => {
                        let sid = crypto::new_token("sid").replace('_', ".");
                        query(
                            "INSERT INTO threepid_sessions (sid, client_secret_hash, medium, address,
                             purpose, token_hash, send_attempt, next_link, created_ms, expires_ms)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(&sid)
                        .bind(client_secret_hash)
                        .bind(medium)
                        .bind(address)
                        .bind(purpose)
                        .bind(token_hash)
                        .bind(send_attempt)
                        .bind(next_link)
                        .bind(now)
                        .bind(expires_ms)
                        .execute(&mut *c)
                        .await?;
                        Requested { sid, send: true }
                    }
                })
            })
        })
        .await
    }

    /// The message of a session could not be delivered: any retry sends again.
    pub async fn validation_not_sent(&self, sid: &str) -> Result<()> {
        self.execute(
            query("UPDATE threepid_sessions SET send_attempt = -1 WHERE sid = $1")
                .bind(sid.to_owned()),
        )
        .await?;
        Ok(())
    }

    /// A live session of this client secret (for the validation page).
    pub async fn validation_session(
        &self,
        sid: &str,
        client_secret_hash: &str,
        max_failures: u32,
    ) -> Result<Option<ValidationSession>> {
        let row = sqlx::query(
            "SELECT sid, medium, address, purpose, validated_ms FROM threepid_sessions
             WHERE sid = $1 AND client_secret_hash = $2 AND expires_ms > $3 AND failures <= $4",
        )
        .bind(sid)
        .bind(client_secret_hash)
        .bind(now_ms())
        .bind(i64::from(max_failures))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_from_row))
    }

    /// Checks a submitted token. A wrong one counts; the one that exceeds
    /// `max_failures` kills the session.
    pub async fn submit_validation(
        &self,
        sid: &str,
        client_secret_hash: &str,
        token_hash: &str,
        max_failures: u32,
    ) -> Result<Submitted> {
        let now = now_ms();
        let sid = sid.to_owned();
        let client_secret_hash = client_secret_hash.to_owned();
        let token_hash = token_hash.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let row: Option<(String, String, i64, i64, Option<String>)> = query(
                    "SELECT client_secret_hash, token_hash, failures, expires_ms, next_link
                     FROM threepid_sessions WHERE sid = $1",
                )
                .bind(&sid)
                .fetch_optional(&mut *c)
                .await?;
                let Some((secret, stored_token, failures, expires_ms, next_link)) = row else {
                    return Ok(Submitted::Unknown);
                };
                if !crypto::secrets_equal(&secret, &client_secret_hash) {
                    return Ok(Submitted::Unknown);
                }
                if expires_ms <= now || failures > i64::from(max_failures) {
                    return Ok(Submitted::Dead);
                }
                Ok(if crypto::secrets_equal(&stored_token, &token_hash) {
                    query(
                        "UPDATE threepid_sessions SET validated_ms = COALESCE(validated_ms, $1) WHERE sid = $2",
                    )
                    .bind(now)
                    .bind(&sid)
                    .execute(&mut *c)
                    .await?;
                    Submitted::Validated { next_link }
                } else {
                    query("UPDATE threepid_sessions SET failures = failures + 1 WHERE sid = $1")
                        .bind(&sid)
                        .execute(&mut *c)
                        .await?;
                    if failures + 1 > i64::from(max_failures) {
                        Submitted::Dead
                    } else {
                        Submitted::WrongToken
                    }
                })
            })
        })
        .await
    }

    /// The address of a validated, live session of this client secret.
    pub async fn validated_threepid(
        &self,
        sid: &str,
        client_secret_hash: &str,
    ) -> Result<Option<ValidationSession>> {
        let found = self
            .validation_session(sid, client_secret_hash, u32::MAX)
            .await?;
        Ok(found.filter(|s| s.validated))
    }

    /// The validated, live session an interactive-auth stage was passed with.
    pub async fn validated_threepid_by_sid(&self, sid: &str) -> Result<Option<ValidationSession>> {
        let row = sqlx::query(
            "SELECT sid, medium, address, purpose, validated_ms FROM threepid_sessions
             WHERE sid = $1 AND expires_ms > $2 AND validated_ms IS NOT NULL",
        )
        .bind(sid)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_from_row))
    }

    /// Ends a session once what it validated was used (an address bound, a
    /// password reset): its credentials cannot be replayed.
    pub async fn end_validation(&self, sid: &str) -> Result<()> {
        self.execute(query("DELETE FROM threepid_sessions WHERE sid = $1").bind(sid.to_owned()))
            .await?;
        Ok(())
    }

    /// The account an address is bound to.
    pub async fn threepid_owner(&self, medium: &str, address: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM threepids WHERE medium = $1 AND address = $2")
                .bind(medium)
                .bind(address)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Binds an address to an account; `Conflict` when another account has it.
    pub async fn add_threepid(&self, user_id: &str, medium: &str, address: &str) -> Result<()> {
        let now = now_ms();
        self.execute(
            query(
                "INSERT INTO threepids (medium, address, user_id, validated_ms, added_ms)
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(medium.to_owned())
            .bind(address.to_owned())
            .bind(user_id.to_owned())
            .bind(now),
        )
        .await?;
        Ok(())
    }
}
