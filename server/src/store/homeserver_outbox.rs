//! What a delegating homeserver has yet to be told
//! (`migrations/0008_homeserver_outbox.sql`): which part of which user's
//! state Synapse missed, so `homeserver.rs` can send it again, across
//! restarts, until Synapse takes it.

use super::sql::query;
use super::{Result, Store, StoreError};

/// A part of a user's state Synapse keeps a copy of, sent whole each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HomeserverPart {
    /// The device list (`sync_devices`).
    Devices,
    /// The email addresses (`provision_user`'s `set_emails`).
    Emails,
    /// Whether the account is locked (`provision_user`'s `locked`).
    Lock,
}

impl HomeserverPart {
    fn as_str(self) -> &'static str {
        match self {
            HomeserverPart::Devices => "devices",
            HomeserverPart::Emails => "emails",
            HomeserverPart::Lock => "lock",
        }
    }

    fn parse(s: &str) -> Result<HomeserverPart> {
        Ok(match s {
            "devices" => HomeserverPart::Devices,
            "emails" => HomeserverPart::Emails,
            "lock" => HomeserverPart::Lock,
            other => return Err(StoreError::Row(format!("homeserver_outbox.what `{other}`"))),
        })
    }
}

/// A part Synapse is behind on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    pub user_id: String,
    pub part: HomeserverPart,
    /// Which failure this is the note of (a newer one replaces it).
    pub version: i64,
    /// How many retries have failed.
    pub attempts: i64,
}

impl Store {
    /// Notes that Synapse missed `part` of `user_id`: to be sent again at
    /// `next_ms`. A note already there is renewed (a newer version, the
    /// retry count kept).
    pub async fn note_homeserver_behind(
        &self,
        user_id: &str,
        part: HomeserverPart,
        next_ms: i64,
    ) -> Result<()> {
        self.execute(
            query(
                "INSERT INTO homeserver_outbox (user_id, what, version, attempts, next_ms) \
                 VALUES ($1, $2, 1, 0, $3) ON CONFLICT (user_id, what) DO UPDATE SET \
                 version = homeserver_outbox.version + 1, next_ms = excluded.next_ms",
            )
            .bind(user_id.to_owned())
            .bind(part.as_str())
            .bind(next_ms),
        )
        .await
        .map(drop)
    }

    /// Up to `limit` notes due at `now_ms`, the longest-waiting first.
    pub async fn homeserver_behind_due(&self, now_ms: i64, limit: i64) -> Result<Vec<Behind>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT user_id, what, version, attempts FROM homeserver_outbox \
             WHERE next_ms <= $1 ORDER BY next_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(user_id, what, version, attempts)| {
                Ok(Behind {
                    user_id,
                    part: HomeserverPart::parse(&what)?,
                    version,
                    attempts,
                })
            })
            .collect()
    }

    /// Synapse took what `b` noted: the note goes, unless a newer failure
    /// replaced it meanwhile.
    pub async fn homeserver_caught_up(&self, b: &Behind) -> Result<()> {
        self.execute(
            query(
                "DELETE FROM homeserver_outbox WHERE user_id = $1 AND what = $2 AND version = $3",
            )
            .bind(b.user_id.clone())
            .bind(b.part.as_str())
            .bind(b.version),
        )
        .await
        .map(drop)
    }

    /// The retry of `b` failed too: try again at `next_ms`.
    pub async fn homeserver_still_behind(&self, b: &Behind, next_ms: i64) -> Result<()> {
        self.execute(
            query(
                "UPDATE homeserver_outbox SET attempts = attempts + 1, next_ms = $4 \
                 WHERE user_id = $1 AND what = $2 AND version = $3",
            )
            .bind(b.user_id.clone())
            .bind(b.part.as_str())
            .bind(b.version)
            .bind(next_ms),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch_store;

    #[tokio::test]
    async fn notes_come_due_and_a_newer_failure_outlives_an_older_retry() {
        let (store, _dir) = scratch_store().await;
        let alice = "@alice:test.local";
        store
            .note_homeserver_behind(alice, HomeserverPart::Devices, 100)
            .await
            .unwrap();
        store
            .note_homeserver_behind(alice, HomeserverPart::Emails, 300)
            .await
            .unwrap();
        assert!(store
            .homeserver_behind_due(99, 10)
            .await
            .unwrap()
            .is_empty());
        let due = store.homeserver_behind_due(100, 10).await.unwrap();
        assert_eq!(
            due,
            [Behind {
                user_id: alice.into(),
                part: HomeserverPart::Devices,
                version: 1,
                attempts: 0,
            }]
        );

        // The retry fails: later, counted.
        store.homeserver_still_behind(&due[0], 200).await.unwrap();
        assert!(store
            .homeserver_behind_due(199, 10)
            .await
            .unwrap()
            .is_empty());
        let due = store.homeserver_behind_due(200, 10).await.unwrap();
        assert_eq!((due[0].version, due[0].attempts), (1, 1));

        // While it runs again, the devices change and that call fails too:
        // the retry that read version 1 must not remove version 2's note.
        store
            .note_homeserver_behind(alice, HomeserverPart::Devices, 250)
            .await
            .unwrap();
        store.homeserver_caught_up(&due[0]).await.unwrap();
        let due = store.homeserver_behind_due(300, 10).await.unwrap();
        let parts: Vec<_> = due
            .iter()
            .map(|b| (b.part, b.version, b.attempts))
            .collect();
        assert_eq!(
            parts,
            [
                (HomeserverPart::Devices, 2, 1),
                (HomeserverPart::Emails, 1, 0)
            ]
        );
        for b in &due {
            store.homeserver_caught_up(b).await.unwrap();
        }
        assert!(store
            .homeserver_behind_due(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty());
    }
}
