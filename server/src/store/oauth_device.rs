//! The state of the OAuth 2.0 device authorisation grant (RFC 8628): see
//! `migrations/0005_oauth_device.sql`. The device code and the pages' ID are
//! stored as their SHA-256; the user code normalised (see
//! `api::oauth_device::normalize_user_code`).
//!
//! Every change of state is one conditional `UPDATE`, so of two racing
//! answers one wins, and of two racing polls of an allowed authorisation
//! exactly one gets the tokens.

use super::sql::query;
use super::{now_ms, Result, Store};
use crate::crypto::token_hash;

/// A device authorisation, as the device authorisation endpoint checked it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceGrant {
    pub client_id: String,
    pub scope: String,
    pub device_id: String,
    /// Who allowed it, once someone did.
    pub user_id: Option<String>,
    pub denied: bool,
    /// The tokens were issued.
    pub exchanged: bool,
    /// The last poll while it was pending.
    pub last_poll_ms: Option<i64>,
    pub expires_ms: i64,
}

/// What a poll of the token endpoint found.
#[derive(Debug, PartialEq)]
pub enum DevicePoll {
    /// No device authorisation of that device code (or it was purged).
    Unknown,
    /// The device code is another client's.
    WrongClient,
    /// The tokens were issued already (to this poll's twin, if they raced).
    Exchanged,
    Expired,
    Denied,
    /// Nobody has answered yet; the poll is recorded.
    Pending,
    /// Nobody has answered yet, and this poll came sooner than the interval
    /// after the last one (it is recorded too: polling faster does not help).
    TooSoon,
    /// Allowed, and now exchanged: the caller issues the tokens.
    Taken(DeviceGrant),
}

type DeviceGrantRow = (
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    i64,
);

/// The query of one device authorisation's columns (as [`DeviceGrantRow`])
/// with the given condition.
macro_rules! select_device_grant {
    ($condition:literal) => {
        concat!(
            "SELECT client_id, scope, device_id, user_id, denied, exchanged, last_poll_ms, ",
            "expires_ms FROM oauth_device_grants WHERE ",
            $condition
        )
    };
}

fn device_grant_from(row: DeviceGrantRow) -> DeviceGrant {
    let (client_id, scope, device_id, user_id, denied, exchanged, last_poll_ms, expires_ms) = row;
    DeviceGrant {
        client_id,
        scope,
        device_id,
        user_id,
        denied: denied != 0,
        exchanged: exchanged != 0,
        last_poll_ms,
        expires_ms,
    }
}

/// The condition of a pending authorisation: unanswered and live (its
/// expiry compared with the parameter that follows).
macro_rules! pending {
    () => {
        "user_id IS NULL AND denied = 0 AND expires_ms > "
    };
}

impl Store {
    /// Stores a device authorisation under the SHA-256 of `device_code` and
    /// the normalised `user_code`; `Conflict` when the user code is taken (the
    /// caller draws another).
    pub async fn create_device_grant(
        &self,
        device_code: &str,
        user_code: &str,
        g: &DeviceGrant,
    ) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO oauth_device_grants (device_code_hash, user_code, client_id, scope, \
                 device_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token_hash(device_code))
            .bind(user_code.to_owned())
            .bind(g.client_id.clone())
            .bind(g.scope.clone())
            .bind(g.device_id.clone())
            .bind(now_ms())
            .bind(g.expires_ms),
        )
        .await?;
        Ok(())
    }

    /// A device authorisation by its device code, in whatever state.
    pub async fn device_grant(&self, device_code: &str) -> Result<Option<DeviceGrant>> {
        let row: Option<DeviceGrantRow> =
            sqlx::query_as(select_device_grant!("device_code_hash = $1"))
                .bind(token_hash(device_code))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(device_grant_from))
    }

    /// The verification page found `user_code` (normalised): the pending
    /// authorisation it names is known to the pages as `session` from now on
    /// (replacing the ID of an earlier entry of the same code). `false` when
    /// no pending authorisation has that user code.
    pub async fn enter_user_code(&self, user_code: &str, session: &str) -> Result<bool> {
        let changed = self
            .execute(
                query(concat!(
                    "UPDATE oauth_device_grants SET session_hash = $1 WHERE user_code = $2 AND ",
                    pending!(),
                    "$3"
                ))
                .bind(token_hash(session))
                .bind(user_code.to_owned())
                .bind(now_ms()),
            )
            .await?;
        Ok(changed == 1)
    }

    /// The pending authorisation the pages know as `session`.
    pub async fn pending_device_grant(&self, session: &str) -> Result<Option<DeviceGrant>> {
        let row: Option<DeviceGrantRow> = sqlx::query_as(concat!(
            select_device_grant!("session_hash = $1 AND "),
            pending!(),
            "$2"
        ))
        .bind(token_hash(session))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(device_grant_from))
    }

    /// Answers the pending authorisation `session`: `Some(user_id)` allowed
    /// it, `None` denied it. `false` when it is no longer pending (answered
    /// already, in another tab or a race; expired).
    pub async fn answer_device_grant(
        &self,
        session: &str,
        allowed_by: Option<&str>,
    ) -> Result<bool> {
        let statement = match allowed_by {
            Some(user_id) => query(concat!(
                "UPDATE oauth_device_grants SET user_id = $1 WHERE session_hash = $2 AND ",
                pending!(),
                "$3"
            ))
            .bind(user_id.to_owned()),
            None => query(concat!(
                "UPDATE oauth_device_grants SET denied = 1 WHERE session_hash = $1 AND ",
                pending!(),
                "$2"
            )),
        };
        let changed = self
            .execute(statement.bind(token_hash(session)).bind(now_ms()))
            .await?;
        Ok(changed == 1)
    }

    /// A poll of the token endpoint by `client_id` with `device_code`. A
    /// pending authorisation polled sooner than `min_gap_ms` after its last
    /// poll is [`DevicePoll::TooSoon`]; an allowed one is exchanged by a
    /// conditional update, so of two racing polls exactly one is `Taken`.
    pub async fn poll_device_grant(
        &self,
        device_code: &str,
        client_id: &str,
        min_gap_ms: i64,
    ) -> Result<DevicePoll> {
        let Some(grant) = self.device_grant(device_code).await? else {
            return Ok(DevicePoll::Unknown);
        };
        let hash = token_hash(device_code);
        let now = now_ms();
        if grant.client_id != client_id {
            return Ok(DevicePoll::WrongClient);
        }
        if grant.exchanged {
            return Ok(DevicePoll::Exchanged);
        }
        if grant.expires_ms <= now {
            return Ok(DevicePoll::Expired);
        }
        if grant.denied {
            return Ok(DevicePoll::Denied);
        }
        if grant.user_id.is_some() {
            let taken = self
                .execute(
                    query(
                        "UPDATE oauth_device_grants SET exchanged = 1 WHERE device_code_hash = $1 \
                         AND exchanged = 0 AND denied = 0 AND user_id IS NOT NULL AND expires_ms > $2",
                    )
                    .bind(hash)
                    .bind(now),
                )
                .await?;
            return Ok(match taken {
                1 => DevicePoll::Taken(DeviceGrant {
                    exchanged: true,
                    ..grant
                }),
                _ => DevicePoll::Exchanged,
            });
        }
        let in_time = self
            .execute(
                query(
                    "UPDATE oauth_device_grants SET last_poll_ms = $1 WHERE device_code_hash = $2 \
                     AND (last_poll_ms IS NULL OR last_poll_ms <= $3)",
                )
                .bind(now)
                .bind(hash.clone())
                .bind(now - min_gap_ms),
            )
            .await?;
        if in_time == 1 {
            return Ok(DevicePoll::Pending);
        }
        self.execute(
            query("UPDATE oauth_device_grants SET last_poll_ms = $1 WHERE device_code_hash = $2")
                .bind(now)
                .bind(hash),
        )
        .await?;
        Ok(DevicePoll::TooSoon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{scratch_store, StoreError};

    fn grant(expires_ms: i64) -> DeviceGrant {
        DeviceGrant {
            client_id: "client".into(),
            scope: "urn:matrix:client:api:* urn:matrix:client:device:TV".into(),
            device_id: "TV".into(),
            user_id: None,
            denied: false,
            exchanged: false,
            last_poll_ms: None,
            expires_ms,
        }
    }

    #[tokio::test]
    async fn an_allowed_grant_is_exchanged_once_and_polls_are_paced() {
        let (store, _dir) = scratch_store().await;
        let later = now_ms() + 60_000;
        store
            .create_device_grant("dc", "BCDFGHJK", &grant(later))
            .await
            .unwrap();
        let poll = |client: &'static str, gap: i64| {
            let store = store.clone();
            async move { store.poll_device_grant("dc", client, gap).await.unwrap() }
        };
        assert_eq!(poll("client", 60_000).await, DevicePoll::Pending);
        // Sooner than the gap: slow down; and that poll counts as the last.
        assert_eq!(poll("client", 60_000).await, DevicePoll::TooSoon);
        assert_eq!(poll("client", 0).await, DevicePoll::Pending);
        assert_eq!(poll("other", 0).await, DevicePoll::WrongClient);
        assert_eq!(
            store.poll_device_grant("nope", "client", 0).await.unwrap(),
            DevicePoll::Unknown
        );

        // The pages: an unknown code is refused; the known one gets an ID.
        assert!(!store.enter_user_code("BCDFGHJL", "s0").await.unwrap());
        assert!(store.enter_user_code("BCDFGHJK", "s1").await.unwrap());
        // A second entry of the code replaces the first one's ID.
        assert!(store.enter_user_code("BCDFGHJK", "s2").await.unwrap());
        assert!(store.pending_device_grant("s1").await.unwrap().is_none());
        let pending = store.pending_device_grant("s2").await.unwrap().unwrap();
        assert_eq!(pending.device_id, "TV");
        assert!(store.answer_device_grant("s2", Some("@a:x")).await.unwrap());
        // Answered: neither pending, nor answerable, nor enterable again.
        assert!(store.pending_device_grant("s2").await.unwrap().is_none());
        assert!(!store.answer_device_grant("s2", None).await.unwrap());
        assert!(!store.enter_user_code("BCDFGHJK", "s3").await.unwrap());

        // Allowed: polls are no longer paced; two racing polls, one gets it.
        let (a, b) = tokio::join!(poll("client", 60_000), poll("client", 60_000));
        let taken: Vec<&DevicePoll> = [&a, &b]
            .into_iter()
            .filter(|p| matches!(p, DevicePoll::Taken(_)))
            .collect();
        assert_eq!(taken.len(), 1, "{a:?} {b:?}");
        let DevicePoll::Taken(g) = taken[0] else {
            unreachable!()
        };
        assert_eq!(g.user_id.as_deref(), Some("@a:x"));
        assert!(matches!(a, DevicePoll::Exchanged) || matches!(b, DevicePoll::Exchanged));
        assert_eq!(poll("client", 0).await, DevicePoll::Exchanged);
    }

    #[tokio::test]
    async fn a_denied_grant_is_denied_and_an_expired_one_expired() {
        let (store, _dir) = scratch_store().await;
        store
            .create_device_grant("dc", "BCDFGHJK", &grant(now_ms() + 60_000))
            .await
            .unwrap();
        // A user code is unique among stored authorisations.
        let taken = store
            .create_device_grant("dc2", "BCDFGHJK", &grant(now_ms() + 60_000))
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{taken:?}");
        assert!(store.enter_user_code("BCDFGHJK", "s").await.unwrap());
        assert!(store.answer_device_grant("s", None).await.unwrap());
        assert!(!store.answer_device_grant("s", Some("@a:x")).await.unwrap());
        let poll = store.poll_device_grant("dc", "client", 0).await.unwrap();
        assert_eq!(poll, DevicePoll::Denied);

        store
            .create_device_grant("old", "CDFGHJKL", &grant(now_ms() - 1))
            .await
            .unwrap();
        assert!(!store.enter_user_code("CDFGHJKL", "s4").await.unwrap());
        let poll = store.poll_device_grant("old", "client", 0).await.unwrap();
        assert_eq!(poll, DevicePoll::Expired);
        // Purged an hour after expiry; then unknown.
        store
            .create_device_grant("older", "DFGHJKLM", &grant(now_ms() - 3_700_000))
            .await
            .unwrap();
        assert!(store.purge_expired().await.unwrap() >= 1);
        let poll = store.poll_device_grant("older", "client", 0).await.unwrap();
        assert_eq!(poll, DevicePoll::Unknown);
        let poll = store.poll_device_grant("old", "client", 0).await.unwrap();
        assert_eq!(poll, DevicePoll::Expired);
    }
}
