//! Short-lived authentication state: interactive-auth sessions, registration
//! tokens, OpenID tokens and login tokens.

use super::sql::query;
use super::{now_ms, Result, Store};
use crate::crypto::token_hash;

/// An interactive-auth session. The database knows it by the SHA-256 of its ID.
#[derive(Clone, Debug, PartialEq)]
pub struct UiaSession {
    pub session_id: String,
    pub endpoint: String,
    pub binding: String,
    pub user_id: Option<String>,
    pub completed: Vec<String>,
    pub registration_token: Option<String>,
    /// The validation session the email stage was passed with.
    pub threepid_sid: Option<String>,
    /// The account a completed registration created.
    pub result_user_id: Option<String>,
    pub expires_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RegistrationToken {
    pub token: String,
    pub uses_allowed: Option<i64>,
    pub completed: i64,
    pub expiry_ms: Option<i64>,
}

impl RegistrationToken {
    pub fn usable(&self, now: i64) -> bool {
        self.uses_allowed.is_none_or(|n| self.completed < n)
            && self.expiry_ms.is_none_or(|e| e > now)
    }
}

impl Store {
    pub async fn create_uia_session(&self, s: &UiaSession) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO uia_sessions (session_id, endpoint, binding, user_id, completed, registration_token, expires_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token_hash(&s.session_id))
            .bind(s.endpoint.clone())
            .bind(s.binding.clone())
            .bind(s.user_id.clone())
            .bind(serde_json::to_string(&s.completed).unwrap_or_else(|_| "[]".into()))
            .bind(s.registration_token.clone())
            .bind(s.expires_ms),
        )
        .await?;
        Ok(())
    }

    /// A live session (expired ones read as absent).
    pub async fn uia_session(&self, session_id: &str) -> Result<Option<UiaSession>> {
        type Row = (
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT endpoint, binding, user_id, completed, registration_token, result_user_id, expires_ms, threepid_sid \
             FROM uia_sessions WHERE session_id = $1 AND expires_ms > $2",
        )
        .bind(token_hash(session_id))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(
                endpoint,
                binding,
                user_id,
                completed,
                registration_token,
                result_user_id,
                expires_ms,
                threepid_sid,
            )| {
                UiaSession {
                    session_id: session_id.to_string(),
                    endpoint,
                    binding,
                    user_id,
                    completed: serde_json::from_str(&completed).unwrap_or_default(),
                    registration_token,
                    threepid_sid,
                    result_user_id,
                    expires_ms,
                }
            },
        ))
    }

    pub async fn update_uia_session(&self, s: &UiaSession) -> Result<()> {
        self.execute(
            query(
                "UPDATE uia_sessions SET completed = $1, registration_token = $2, result_user_id = $3, threepid_sid = $5 WHERE session_id = $4",
            )
            .bind(serde_json::to_string(&s.completed).unwrap_or_else(|_| "[]".into()))
            .bind(s.registration_token.clone())
            .bind(s.result_user_id.clone())
            .bind(token_hash(&s.session_id))
            .bind(s.threepid_sid.clone()),
        )
        .await?;
        Ok(())
    }

    /// Drops expired sessions and tokens (run periodically).
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = now_ms();
        let mut n = 0;
        // A retired refresh token is kept a day, to recognise a replay of it.
        let retired_before = now - 24 * 3600 * 1000;
        // An expired device authorisation is kept an hour, so that a device
        // still polling is told `expired_token` rather than `invalid_grant`.
        let device_expired_before = now - 3600 * 1000;
        for (sql, before) in [
            ("DELETE FROM uia_sessions WHERE expires_ms <= $1", now),
            ("DELETE FROM openid_tokens WHERE expires_ms <= $1", now),
            ("DELETE FROM login_tokens WHERE expires_ms <= $1", now),
            (
                "DELETE FROM oauth_authorizations WHERE expires_ms <= $1",
                now,
            ),
            ("DELETE FROM browser_sessions WHERE expires_ms <= $1", now),
            (
                "DELETE FROM oauth_pending_registrations WHERE expires_ms <= $1",
                now,
            ),
            (
                "DELETE FROM account_pending_threepids WHERE expires_ms <= $1",
                now,
            ),
            (
                "DELETE FROM oauth_device_grants WHERE expires_ms <= $1",
                device_expired_before,
            ),
            (
                "DELETE FROM refresh_tokens WHERE retired_ms <= $1",
                retired_before,
            ),
        ] {
            n += self.execute(query(sql).bind(before)).await?;
        }
        Ok(n)
    }

    pub async fn create_registration_token(
        &self,
        token: &str,
        uses_allowed: Option<i64>,
        expiry_ms: Option<i64>,
    ) -> Result<()> {
        self.execute(
            query("INSERT INTO registration_tokens (token, uses_allowed, expiry_ms, created_ms) VALUES ($1, $2, $3, $4)")
                .bind(token.to_owned())
                .bind(uses_allowed)
                .bind(expiry_ms)
                .bind(now_ms()),
        )
        .await?;
        Ok(())
    }

    pub async fn registration_token(&self, token: &str) -> Result<Option<RegistrationToken>> {
        let row: Option<(String, Option<i64>, i64, Option<i64>)> =
            sqlx::query_as("SELECT token, uses_allowed, completed, expiry_ms FROM registration_tokens WHERE token = $1")
                .bind(token)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(
            |(token, uses_allowed, completed, expiry_ms)| RegistrationToken {
                token,
                uses_allowed,
                completed,
                expiry_ms,
            },
        ))
    }

    pub async fn registration_tokens(&self) -> Result<Vec<RegistrationToken>> {
        let rows: Vec<(String, Option<i64>, i64, Option<i64>)> =
            sqlx::query_as("SELECT token, uses_allowed, completed, expiry_ms FROM registration_tokens ORDER BY token")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(
                |(token, uses_allowed, completed, expiry_ms)| RegistrationToken {
                    token,
                    uses_allowed,
                    completed,
                    expiry_ms,
                },
            )
            .collect())
    }

    pub async fn delete_registration_token(&self, token: &str) -> Result<bool> {
        let deleted = self
            .execute(
                query("DELETE FROM registration_tokens WHERE token = $1").bind(token.to_owned()),
            )
            .await?;
        Ok(deleted > 0)
    }

    pub async fn create_openid_token(
        &self,
        hash: &str,
        user_id: &str,
        expires_ms: i64,
    ) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO openid_tokens (token_hash, user_id, expires_ms) VALUES ($1, $2, $3)",
            )
            .bind(hash.to_owned())
            .bind(user_id.to_owned())
            .bind(expires_ms),
        )
        .await?;
        Ok(())
    }

    /// The user an unexpired OpenID token belongs to.
    pub async fn openid_token_owner(&self, hash: &str) -> Result<Option<String>> {
        let now = now_ms();
        if let Some(user_id) = self.cache.openid(hash, now) {
            return Ok(Some(user_id));
        }
        let generation = self.cache.generation();
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT user_id, expires_ms FROM openid_tokens WHERE token_hash = $1 AND expires_ms > $2")
                .bind(hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(user_id, expires_ms)| {
            self.cache
                .put_openid(generation, hash, &user_id, expires_ms);
            user_id
        }))
    }

    pub async fn create_login_token(
        &self,
        hash: &str,
        user_id: &str,
        expires_ms: i64,
    ) -> Result<()> {
        self.execute(
            query("INSERT INTO login_tokens (token_hash, user_id, expires_ms) VALUES ($1, $2, $3)")
                .bind(hash.to_owned())
                .bind(user_id.to_owned())
                .bind(expires_ms),
        )
        .await?;
        Ok(())
    }

    /// Uses up a login token: it works once, before it expires.
    pub async fn take_login_token(&self, hash: &str) -> Result<Option<String>> {
        let hash = hash.to_owned();
        let now = now_ms();
        let row: Option<(String,)> = self
            .write(move |c| {
                Box::pin(
                    query(
                        "DELETE FROM login_tokens WHERE token_hash = $1 AND expires_ms > $2 RETURNING user_id",
                    )
                    .bind(hash)
                    .bind(now)
                    .fetch_optional(c),
                )
            })
            .await?;
        Ok(row.map(|r| r.0))
    }
}
