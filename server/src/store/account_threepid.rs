//! Email addresses the account page is adding, waiting for their validation
//! link (`migrations/0007_account_pending_threepids.sql`): one per browser
//! session, stored under the SHA-256 of the session's cookie and with its
//! user, so only that browser, signed in as that user, finds it.

use super::sql::query;
use super::{now_ms, Result, Store};
use crate::crypto::token_hash;

/// An address waiting to be confirmed before it is added to an account.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingThreepid {
    /// The normalised address the link was sent to.
    pub address: String,
    /// The validation session that proves the address once confirmed.
    pub threepid_sid: String,
}

impl Store {
    /// Keeps `p` for the browser session `cookie` of `user_id` until
    /// `expires_ms`, replacing what that session waited for before.
    pub async fn set_pending_threepid(
        &self,
        cookie: &str,
        user_id: &str,
        p: &PendingThreepid,
        expires_ms: i64,
    ) -> Result<()> {
        let (session_hash, user_id) = (token_hash(cookie), user_id.to_owned());
        let (address, sid) = (p.address.clone(), p.threepid_sid.clone());
        self.write(move |c| {
            Box::pin(async move {
                query("DELETE FROM account_pending_threepids WHERE session_hash = $1")
                    .bind(session_hash.clone())
                    .execute(&mut *c)
                    .await?;
                query(
                    "INSERT INTO account_pending_threepids (session_hash, user_id, address, \
                     threepid_sid, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(session_hash)
                .bind(user_id)
                .bind(address)
                .bind(sid)
                .bind(now_ms())
                .bind(expires_ms)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// What the browser session `cookie` of `user_id` waits for, if it is live.
    pub async fn pending_threepid(
        &self,
        cookie: &str,
        user_id: &str,
    ) -> Result<Option<PendingThreepid>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT address, threepid_sid FROM account_pending_threepids \
             WHERE session_hash = $1 AND user_id = $2 AND expires_ms > $3",
        )
        .bind(token_hash(cookie))
        .bind(user_id)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(address, threepid_sid)| PendingThreepid {
            address,
            threepid_sid,
        }))
    }

    /// Ends what the browser session `cookie` of `user_id` waits for: `true`
    /// for the caller that removed it (of two racing, one), so it is finished
    /// once.
    pub async fn drop_pending_threepid(&self, cookie: &str, user_id: &str) -> Result<bool> {
        let changed = self
            .execute(
                query("DELETE FROM account_pending_threepids WHERE session_hash = $1 AND user_id = $2")
                    .bind(token_hash(cookie))
                    .bind(user_id.to_owned()),
            )
            .await?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch_store;

    fn pending(address: &str) -> PendingThreepid {
        PendingThreepid {
            address: address.into(),
            threepid_sid: format!("sid-{address}"),
        }
    }

    #[tokio::test]
    async fn a_pending_address_belongs_to_its_browser_session_and_user_and_is_taken_once() {
        let (store, _dir) = scratch_store().await;
        let later = now_ms() + 60_000;
        store
            .set_pending_threepid("abs_1", "@a:x", &pending("a@example.org"), later)
            .await
            .unwrap();
        assert_eq!(
            store.pending_threepid("abs_1", "@a:x").await.unwrap(),
            Some(pending("a@example.org"))
        );
        // Another browser session, another user: nothing.
        assert_eq!(store.pending_threepid("abs_2", "@a:x").await.unwrap(), None);
        assert_eq!(store.pending_threepid("abs_1", "@b:x").await.unwrap(), None);
        assert!(!store.drop_pending_threepid("abs_1", "@b:x").await.unwrap());
        // A new address replaces the last.
        store
            .set_pending_threepid("abs_1", "@a:x", &pending("b@example.org"), later)
            .await
            .unwrap();
        assert_eq!(
            store.pending_threepid("abs_1", "@a:x").await.unwrap(),
            Some(pending("b@example.org"))
        );
        assert!(store.drop_pending_threepid("abs_1", "@a:x").await.unwrap());
        assert!(!store.drop_pending_threepid("abs_1", "@a:x").await.unwrap());
        assert_eq!(store.pending_threepid("abs_1", "@a:x").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_expired_pending_address_is_gone_and_purged() {
        let (store, _dir) = scratch_store().await;
        store
            .set_pending_threepid("abs_old", "@a:x", &pending("a@example.org"), now_ms() - 1)
            .await
            .unwrap();
        assert_eq!(
            store.pending_threepid("abs_old", "@a:x").await.unwrap(),
            None
        );
        assert!(store.purge_expired().await.unwrap() >= 1);
        assert!(!store
            .drop_pending_threepid("abs_old", "@a:x")
            .await
            .unwrap());
    }
}
