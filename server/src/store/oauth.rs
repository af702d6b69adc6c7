//! The OAuth 2.0 API's state: registered clients, authorisation requests and
//! their codes, and the browser sessions of this server's pages. Codes and
//! the IDs the pages carry are stored as their SHA-256 only.

use super::sql::query;
use super::users::revoke_devices;
use super::{now_ms, LogoutDevices, Result, Store};
use crate::crypto::token_hash;

/// An authorisation request of the code grant, as `/authorize` checked it.
#[derive(Clone, Debug, PartialEq)]
pub struct Authorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub device_id: String,
    pub state: Option<String>,
    pub response_mode: String,
    pub code_challenge: String,
    pub prompt: Option<String>,
    /// Who consented, once someone did.
    pub user_id: Option<String>,
    pub expires_ms: i64,
}

/// What presenting a code at the token endpoint found.
#[derive(Debug)]
pub enum CodeExchange<E> {
    /// No live code of that value.
    Unknown,
    /// The checks refused it; it stays unused.
    Refused(E),
    /// Exchanged now: the caller issues the tokens.
    Taken(Authorization),
    /// Exchanged before: someone holds a copy of the code.
    Reused(Authorization),
}

/// The device an access or refresh token belongs to, and its OAuth 2.0 client
/// (`None` for a legacy login).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenDevice {
    pub user_id: String,
    pub device_id: String,
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

type AuthorizationRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

/// The query of one authorisation request's columns (as [`AuthorizationRow`])
/// with the given condition.
macro_rules! select_authorization {
    ($condition:literal) => {
        concat!(
            "SELECT client_id, redirect_uri, scope, device_id, state, response_mode, code_challenge, ",
            "prompt, user_id, expires_ms, exchanged_ms FROM oauth_authorizations WHERE ",
            $condition
        )
    };
}

fn authorization_from(row: AuthorizationRow) -> (Authorization, bool) {
    let (
        client_id,
        redirect_uri,
        scope,
        device_id,
        state,
        response_mode,
        code_challenge,
        prompt,
        user_id,
        expires_ms,
        exchanged_ms,
    ) = row;
    let authorization = Authorization {
        client_id,
        redirect_uri,
        scope,
        device_id,
        state,
        response_mode,
        code_challenge,
        prompt,
        user_id,
        expires_ms,
    };
    (authorization, exchanged_ms.is_some())
}

impl Store {
    /// Registers a client with its validated metadata (JSON).
    pub async fn create_oauth_client(&self, client_id: &str, metadata: &str) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO oauth_clients (client_id, metadata, created_ms) VALUES ($1, $2, $3)",
            )
            .bind(client_id.to_owned())
            .bind(metadata.to_owned())
            .bind(now_ms()),
        )
        .await?;
        Ok(())
    }

    /// A registered client's metadata (JSON).
    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT metadata FROM oauth_clients WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(m,)| m))
    }

    /// Stores an authorisation request under the SHA-256 of `id`.
    pub async fn create_authorization(&self, id: &str, a: &Authorization) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO oauth_authorizations (id_hash, client_id, redirect_uri, scope, device_id, state, \
                 response_mode, code_challenge, prompt, created_ms, expires_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(token_hash(id))
            .bind(a.client_id.clone())
            .bind(a.redirect_uri.clone())
            .bind(a.scope.clone())
            .bind(a.device_id.clone())
            .bind(a.state.clone())
            .bind(a.response_mode.clone())
            .bind(a.code_challenge.clone())
            .bind(a.prompt.clone())
            .bind(now_ms())
            .bind(a.expires_ms),
        )
        .await?;
        Ok(())
    }

    /// A live authorisation request nobody has answered yet.
    pub async fn pending_authorization(&self, id: &str) -> Result<Option<Authorization>> {
        let row: Option<AuthorizationRow> = sqlx::query_as(select_authorization!(
            "id_hash = $1 AND expires_ms > $2 AND code_hash IS NULL"
        ))
        .bind(token_hash(id))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| authorization_from(r).0))
    }

    /// Answers a pending request: `user_id` consented, and `code` (stored as
    /// its SHA-256) may be exchanged until `code_expires_ms`. `false` when the
    /// request is gone or was answered already (a second consent, a race).
    pub async fn grant_authorization(
        &self,
        id: &str,
        user_id: &str,
        code: &str,
        code_expires_ms: i64,
    ) -> Result<bool> {
        let changed = self
            .execute(
                query(
                    "UPDATE oauth_authorizations SET user_id = $1, code_hash = $2, expires_ms = $3 \
                     WHERE id_hash = $4 AND code_hash IS NULL AND expires_ms > $5",
                )
                .bind(user_id.to_owned())
                .bind(token_hash(code))
                .bind(code_expires_ms)
                .bind(token_hash(id))
                .bind(now_ms()),
            )
            .await?;
        Ok(changed == 1)
    }

    /// Ends a pending request that was denied; `false` if it was not pending.
    pub async fn drop_authorization(&self, id: &str) -> Result<bool> {
        let changed = self
            .execute(
                query("DELETE FROM oauth_authorizations WHERE id_hash = $1 AND code_hash IS NULL")
                    .bind(token_hash(id)),
            )
            .await?;
        Ok(changed == 1)
    }

    /// Presents a code: `check` (client, redirect URI, PKCE) decides on the
    /// live request it belongs to, and an accepted code is then marked
    /// exchanged by a conditional update, so that of two racing exchanges
    /// exactly one is `Taken`.
    pub async fn exchange_code<E>(
        &self,
        code: &str,
        check: impl FnOnce(&Authorization) -> std::result::Result<(), E>,
    ) -> Result<CodeExchange<E>> {
        let code_hash = token_hash(code);
        let now = now_ms();
        let row: Option<AuthorizationRow> =
            sqlx::query_as(select_authorization!("code_hash = $1 AND expires_ms > $2"))
                .bind(&code_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        let Some((authorization, exchanged)) = row.map(authorization_from) else {
            return Ok(CodeExchange::Unknown);
        };
        if exchanged {
            return Ok(CodeExchange::Reused(authorization));
        }
        if let Err(e) = check(&authorization) {
            return Ok(CodeExchange::Refused(e));
        }
        let taken = self
            .execute(
                query(
                    "UPDATE oauth_authorizations SET exchanged_ms = $1 \
                     WHERE code_hash = $2 AND exchanged_ms IS NULL",
                )
                .bind(now)
                .bind(code_hash),
            )
            .await?;
        Ok(match taken {
            1 => CodeExchange::Taken(authorization),
            _ => CodeExchange::Reused(authorization),
        })
    }

    /// The device a token (access or refresh, by its SHA-256) belongs to.
    pub async fn token_device(&self, token_hash: &str) -> Result<Option<TokenDevice>> {
        for sql in [
            "SELECT t.user_id, t.device_id, d.oauth_client_id, d.oauth_scope FROM access_tokens t \
             JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id WHERE t.token_hash = $1",
            "SELECT t.user_id, t.device_id, d.oauth_client_id, d.oauth_scope FROM refresh_tokens t \
             JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id WHERE t.token_hash = $1",
        ] {
            let row: Option<(String, String, Option<String>, Option<String>)> =
                sqlx::query_as(sql)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some((user_id, device_id, client_id, scope)) = row {
                return Ok(Some(TokenDevice {
                    user_id,
                    device_id,
                    client_id,
                    scope,
                }));
            }
        }
        Ok(None)
    }

    /// Logs a device out if it belongs to `client_id`; whether it did.
    pub async fn logout_client_device(
        &self,
        user_id: &str,
        device_id: &str,
        client_id: &str,
    ) -> Result<bool> {
        let (user_id, device_id, client_id) = (
            user_id.to_owned(),
            device_id.to_owned(),
            client_id.to_owned(),
        );
        let revoked = self
            .write(move |c| {
                Box::pin(async move {
                    let owner: Option<(Option<String>,)> = query(
                        "SELECT oauth_client_id FROM devices WHERE user_id = $1 AND device_id = $2",
                    )
                    .bind(&user_id)
                    .bind(&device_id)
                    .fetch_optional(&mut *c)
                    .await?;
                    if owner.and_then(|(o,)| o).as_deref() != Some(client_id.as_str()) {
                        return Ok(false);
                    }
                    revoke_devices(c, &user_id, &LogoutDevices::One(device_id)).await?;
                    Ok(true)
                })
            })
            .await?;
        if revoked {
            self.cache.clear();
        }
        Ok(revoked)
    }

    /// Starts a browser session for `user_id` under the SHA-256 of `cookie`.
    pub async fn create_browser_session(
        &self,
        cookie: &str,
        user_id: &str,
        expires_ms: i64,
    ) -> Result<()> {
        self.execute(
            query("INSERT INTO browser_sessions (session_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
                .bind(token_hash(cookie))
                .bind(user_id.to_owned())
                .bind(now_ms())
                .bind(expires_ms),
        )
        .await?;
        Ok(())
    }

    /// Ends the browser session of `cookie` (signing out of the pages).
    pub async fn end_browser_session(&self, cookie: &str) -> Result<()> {
        self.execute(
            query("DELETE FROM browser_sessions WHERE session_hash = $1").bind(token_hash(cookie)),
        )
        .await?;
        Ok(())
    }

    /// Ends every browser session of `user_id` but the one of the cookie
    /// `keep`, if any (after a password change: sessions started with the old
    /// password).
    pub async fn end_browser_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<()> {
        let statement = match keep {
            None => {
                query("DELETE FROM browser_sessions WHERE user_id = $1").bind(user_id.to_owned())
            }
            Some(keep) => {
                query("DELETE FROM browser_sessions WHERE user_id = $1 AND session_hash <> $2")
                    .bind(user_id.to_owned())
                    .bind(token_hash(keep))
            }
        };
        self.execute(statement).await?;
        Ok(())
    }

    /// The user of a live browser session, unless the account has since been
    /// deactivated or locked.
    pub async fn browser_session_user(&self, cookie: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT s.user_id FROM browser_sessions s JOIN users u ON u.user_id = s.user_id \
             WHERE s.session_hash = $1 AND s.expires_ms > $2 AND u.deactivated = 0 AND u.locked = 0",
        )
        .bind(token_hash(cookie))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(u,)| u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch_store;

    fn request(expires_ms: i64) -> Authorization {
        Authorization {
            client_id: "client".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            scope: "urn:matrix:client:api:* urn:matrix:client:device:D".into(),
            device_id: "D".into(),
            state: Some("s".into()),
            response_mode: "query".into(),
            code_challenge: "c".into(),
            prompt: None,
            user_id: None,
            expires_ms,
        }
    }

    #[tokio::test]
    async fn a_code_is_exchanged_once_and_only_after_its_checks_pass() {
        let (store, _dir) = scratch_store().await;
        let later = now_ms() + 60_000;
        store
            .create_authorization("id", &request(later))
            .await
            .unwrap();
        assert!(store.pending_authorization("id").await.unwrap().is_some());
        assert!(store
            .grant_authorization("id", "@a:x", "code", later)
            .await
            .unwrap());
        // Answered: neither pending nor grantable again.
        assert!(store.pending_authorization("id").await.unwrap().is_none());
        assert!(!store
            .grant_authorization("id", "@a:x", "other", later)
            .await
            .unwrap());
        let refused = store
            .exchange_code("code", |_| Err("wrong verifier"))
            .await
            .unwrap();
        assert!(matches!(refused, CodeExchange::Refused("wrong verifier")));
        let taken = store
            .exchange_code("code", |_| Ok::<_, ()>(()))
            .await
            .unwrap();
        let CodeExchange::Taken(a) = taken else {
            panic!("{taken:?}")
        };
        assert_eq!(a.user_id.as_deref(), Some("@a:x"));
        let again = store
            .exchange_code("code", |_| Ok::<_, ()>(()))
            .await
            .unwrap();
        assert!(matches!(again, CodeExchange::Reused(_)), "{again:?}");
        let unknown = store
            .exchange_code("nope", |_| Ok::<_, ()>(()))
            .await
            .unwrap();
        assert!(matches!(unknown, CodeExchange::Unknown));
    }

    #[tokio::test]
    async fn expired_requests_and_codes_are_gone() {
        let (store, _dir) = scratch_store().await;
        store
            .create_authorization("old", &request(now_ms() - 1))
            .await
            .unwrap();
        assert!(store.pending_authorization("old").await.unwrap().is_none());
        assert!(!store
            .grant_authorization("old", "@a:x", "code", now_ms() + 60_000)
            .await
            .unwrap());
        store
            .create_authorization("id", &request(now_ms() + 60_000))
            .await
            .unwrap();
        assert!(store
            .grant_authorization("id", "@a:x", "code", now_ms() - 1)
            .await
            .unwrap());
        let late = store
            .exchange_code("code", |_| Ok::<_, ()>(()))
            .await
            .unwrap();
        assert!(matches!(late, CodeExchange::Unknown));
    }
}
