//! Registrations of the OAuth 2.0 registration page that wait for their email
//! address to be confirmed. The browser holds a random value in a cookie; the
//! row is stored under its SHA-256, with the SHA-256 of the authorisation
//! request (or device authorisation) it belongs to, and the password only as
//! its argon2id hash.

use super::sql::query;
use super::{now_ms, Result, Store};
use crate::crypto::token_hash;

/// A registration that passed the form's checks and waits for its address.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingRegistration {
    pub user_id: String,
    /// The argon2id hash of the chosen password (never the password).
    pub password_hash: String,
    pub registration_token: Option<String>,
    /// The normalised address the link was sent to.
    pub address: String,
    /// The validation session that proves the address once confirmed.
    pub threepid_sid: String,
    /// The display name the form asked for, for the homeserver.
    pub display_name: Option<String>,
}

impl Store {
    /// Keeps a registration under the SHA-256 of `id` (the browser's cookie)
    /// for the pending request `session` until `expires_ms`.
    pub async fn create_pending_registration(
        &self,
        id: &str,
        session: &str,
        p: &PendingRegistration,
        expires_ms: i64,
    ) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO oauth_pending_registrations (id_hash, session_hash, user_id, \
                 password_hash, registration_token, address, threepid_sid, display_name, \
                 created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(token_hash(id))
            .bind(token_hash(session))
            .bind(p.user_id.clone())
            .bind(p.password_hash.clone())
            .bind(p.registration_token.clone())
            .bind(p.address.clone())
            .bind(p.threepid_sid.clone())
            .bind(p.display_name.clone())
            .bind(now_ms())
            .bind(expires_ms),
        )
        .await?;
        Ok(())
    }

    /// The live registration of the cookie `id` for the request `session`.
    pub async fn pending_registration(
        &self,
        id: &str,
        session: &str,
    ) -> Result<Option<PendingRegistration>> {
        type Row = (
            String,
            String,
            Option<String>,
            String,
            String,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT user_id, password_hash, registration_token, address, threepid_sid, \
             display_name \
             FROM oauth_pending_registrations \
             WHERE id_hash = $1 AND session_hash = $2 AND expires_ms > $3",
        )
        .bind(token_hash(id))
        .bind(token_hash(session))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(user_id, password_hash, registration_token, address, threepid_sid, display_name)| {
                PendingRegistration {
                    user_id,
                    password_hash,
                    registration_token,
                    address,
                    threepid_sid,
                    display_name,
                }
            },
        ))
    }

    /// Ends the registration of the cookie `id`: `true` for the caller that
    /// removed it (of two racing, one), so it is finished once.
    pub async fn drop_pending_registration(&self, id: &str) -> Result<bool> {
        let changed = self
            .execute(
                query("DELETE FROM oauth_pending_registrations WHERE id_hash = $1")
                    .bind(token_hash(id)),
            )
            .await?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch_store;

    fn pending() -> PendingRegistration {
        PendingRegistration {
            user_id: "@a:x".into(),
            password_hash: "$argon2id$v=19$...".into(),
            registration_token: Some("tok".into()),
            address: "a@example.org".into(),
            threepid_sid: "sid".into(),
            display_name: Some("Ada".into()),
        }
    }

    #[tokio::test]
    async fn a_pending_registration_is_found_by_its_cookie_and_request_and_taken_once() {
        let (store, _dir) = scratch_store().await;
        store
            .create_pending_registration("opr_1", "oar_1", &pending(), now_ms() + 60_000)
            .await
            .unwrap();
        assert_eq!(
            store.pending_registration("opr_1", "oar_1").await.unwrap(),
            Some(pending())
        );
        // Another request, another cookie: nothing.
        assert_eq!(
            store.pending_registration("opr_1", "oar_2").await.unwrap(),
            None
        );
        assert_eq!(
            store.pending_registration("opr_2", "oar_1").await.unwrap(),
            None
        );
        assert!(store.drop_pending_registration("opr_1").await.unwrap());
        assert!(!store.drop_pending_registration("opr_1").await.unwrap());
        assert_eq!(
            store.pending_registration("opr_1", "oar_1").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn an_expired_pending_registration_is_gone_and_purged() {
        let (store, _dir) = scratch_store().await;
        store
            .create_pending_registration("opr_old", "oar_1", &pending(), now_ms() - 1)
            .await
            .unwrap();
        assert_eq!(
            store
                .pending_registration("opr_old", "oar_1")
                .await
                .unwrap(),
            None
        );
        assert!(store.purge_expired().await.unwrap() >= 1);
        assert!(!store.drop_pending_registration("opr_old").await.unwrap());
    }
}
