//! Users, devices, access and refresh tokens, third-party identifiers.

use sqlx::Row;

use super::sql::{query, Conn};

use super::{flag, now_ms, Backend, Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub user_id: String,
    pub password_hash: Option<String>,
    pub is_guest: bool,
    pub is_admin: bool,
    pub deactivated: bool,
    pub locked: bool,
    pub suspended: bool,
    pub created_ms: i64,
}

/// Who an access token belongs to, with what the server checks on every request.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenOwner {
    pub user_id: String,
    pub device_id: String,
    pub expires_ms: Option<i64>,
    pub is_guest: bool,
    pub is_admin: bool,
    pub deactivated: bool,
    pub locked: bool,
    pub suspended: bool,
    pub last_seen_ms: Option<i64>,
    /// The refresh token issued with this access token replaced an older one that
    /// is still valid: the first use of this token retires it.
    pub retires_predecessor: bool,
    pub refresh_hash: Option<String>,
    /// The device belongs to an OAuth 2.0 client.
    pub via_oauth: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ms: Option<i64>,
    pub last_seen_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ThreePid {
    pub medium: String,
    pub address: String,
    pub validated_ms: i64,
    pub added_ms: i64,
}

/// A login: a device (created or reused) and the tokens to put on it.
pub struct NewSession<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub display_name: Option<&'a str>,
    pub access_hash: &'a str,
    pub expires_ms: Option<i64>,
    pub refresh_hash: Option<&'a str>,
    /// The absolute end of the session, if sessions have one.
    pub session_ends_ms: Option<i64>,
    /// The password hash a password login was checked against.
    pub checked_hash: Option<&'a str>,
    /// For a login through the OAuth 2.0 API: the client authorised and the
    /// scope granted, which the device keeps.
    pub oauth: Option<OAuthGrant<'a>>,
}

/// What an OAuth 2.0 login puts on its device.
#[derive(Clone, Copy, Debug)]
pub struct OAuthGrant<'a> {
    pub client_id: &'a str,
    pub scope: &'a str,
}

/// Which devices a revocation logs out.
#[derive(Clone, Debug)]
pub enum LogoutDevices {
    All,
    AllBut(String),
    One(String),
}

/// What a refresh did.
#[derive(Clone, Debug, PartialEq)]
pub enum Refreshed {
    /// A new pair was stored for this user's device.
    Rotated { user_id: String, device_id: String },
    /// No such refresh token (never issued, replaced unused, or its device was
    /// logged out).
    Unknown,
    /// A retired token came back after its successor was used: someone else
    /// holds a copy. The user's device is logged out.
    Replayed { user_id: String },
    /// The session reached its absolute end; the user's device is logged out.
    SessionOver { user_id: String },
    /// The account is locked; nothing changed.
    Locked,
}

/// The columns `user_from` reads (a macro, so the queries are built at compile
/// time with `concat!` rather than formatted on every call).
macro_rules! user_columns {
    () => {
        "user_id, password_hash, is_guest, is_admin, deactivated, locked, suspended, created_ms"
    };
}

fn user_from(row: &sqlx::any::AnyRow) -> std::result::Result<User, sqlx::Error> {
    Ok(User {
        user_id: row.try_get(0)?,
        password_hash: row.try_get(1)?,
        is_guest: row.try_get::<i64, _>(2)? != 0,
        is_admin: row.try_get::<i64, _>(3)? != 0,
        deactivated: row.try_get::<i64, _>(4)? != 0,
        locked: row.try_get::<i64, _>(5)? != 0,
        suspended: row.try_get::<i64, _>(6)? != 0,
        created_ms: row.try_get(7)?,
    })
}

impl Store {
    /// Creates a user; `Conflict` if the ID was ever taken (deactivated IDs stay
    /// taken). With a registration token, one use of it is consumed in the same
    /// transaction, and `Ok(false)` means the token ran out first.
    pub async fn create_user(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
        is_guest: bool,
        is_admin: bool,
        registration_token: Option<&str>,
    ) -> Result<bool> {
        let user_id = user_id.to_owned();
        let password_hash = password_hash.map(str::to_owned);
        let registration_token = registration_token.map(str::to_owned);
        self.write(move |c| {
            Box::pin(async move {
                if let Some(token) = registration_token {
                    let used = query(
                        "UPDATE registration_tokens SET completed = completed + 1 WHERE token = $1 \
                         AND (uses_allowed IS NULL OR completed < uses_allowed) AND (expiry_ms IS NULL OR expiry_ms > $2)",
                    )
                    .bind(token)
                    .bind(now_ms())
                    .execute(&mut *c)
                    .await?;
                    if used == 0 {
                        return Ok(false);
                    }
                }
                query("INSERT INTO users (user_id, password_hash, is_guest, is_admin, created_ms) VALUES ($1, $2, $3, $4, $5)")
                    .bind(user_id)
                    .bind(password_hash)
                    .bind(flag(is_guest))
                    .bind(flag(is_admin))
                    .bind(now_ms())
                    .execute(&mut *c)
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    /// Undoes [`create_user`](Self::create_user) for an account nobody has
    /// used yet, because its homeserver would not take it: the row and the
    /// addresses bound at registration go, the registration token gets its use
    /// back, and the ID is free again.
    pub async fn discard_user(
        &self,
        user_id: &str,
        registration_token: Option<&str>,
    ) -> Result<()> {
        let user_id = user_id.to_owned();
        let registration_token = registration_token.map(str::to_owned);
        self.write(move |c| {
            Box::pin(async move {
                for sql in [
                    "DELETE FROM threepids WHERE user_id = $1",
                    "DELETE FROM users WHERE user_id = $1",
                ] {
                    query(sql).bind(&user_id).execute(&mut *c).await?;
                }
                if let Some(token) = registration_token {
                    query("UPDATE registration_tokens SET completed = completed - 1 WHERE token = $1 AND completed > 0")
                        .bind(token)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            })
        })
        .await?;
        self.cache.clear();
        Ok(())
    }

    /// Whether the ID was ever taken (deactivated IDs stay taken): one index
    /// lookup, no row read (`/register/available`, advisory: `/register`
    /// checks again as it writes). On SQLite from a snapshot that holds every
    /// commit of this process and is at most `SNAPSHOT_AGE` (1 ms) behind
    /// another process's (`SqliteReads::exists_recent`).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool> {
        const SQL: &str = "SELECT 1 FROM users WHERE user_id = $1";
        let reads = self.reads.as_ref();
        let found = reads.and_then(|r| {
            r.exists_recent(SQL, user_id)
                .or_else(|| r.exists(SQL, user_id))
        });
        if let Some(found) = found {
            return Ok(found);
        }
        let row = sqlx::query(SQL)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn user(&self, user_id: &str) -> Result<Option<User>> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE user_id = $1");
        if let Some(found) = self.reads.as_ref().and_then(|r| r.user(SQL, user_id)) {
            return Ok(found);
        }
        let row = sqlx::query(SQL)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY user_id");
        let rows = sqlx::query(SQL).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(user_from)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Sets a new password hash and, with `logout`, revokes every device but
    /// `keep` — in one transaction, so a crash cannot leave the old devices logged
    /// in under the new password. `false`: no such active user.
    pub async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        logout: Option<LogoutDevices>,
    ) -> Result<bool> {
        let user_id = user_id.to_owned();
        let password_hash = password_hash.to_owned();
        let changed = self
            .write(move |c| {
                Box::pin(async move {
                    let r = query(
                        "UPDATE users SET password_hash = $1 WHERE user_id = $2 AND deactivated = 0",
                    )
                    .bind(password_hash)
                    .bind(&user_id)
                    .execute(&mut *c)
                    .await?;
                    if r != 1 {
                        return Ok(false);
                    }
                    // Whatever the old password could still start a login with goes
                    // too (a revocation of other devices does that itself).
                    match logout {
                        Some(which) => revoke_devices(c, &user_id, &which).await?,
                        None => forget_pending_logins(c, &user_id).await?,
                    }
                    Ok(true)
                })
            })
            .await?;
        self.cache.clear();
        Ok(changed)
    }

    pub async fn set_locked(&self, user_id: &str, locked: bool) -> Result<bool> {
        let changed = self
            .execute(
                query("UPDATE users SET locked = $1 WHERE user_id = $2 AND deactivated = 0")
                    .bind(flag(locked))
                    .bind(user_id.to_owned()),
            )
            .await?;
        self.cache.clear();
        Ok(changed == 1)
    }

    pub async fn set_suspended(&self, user_id: &str, suspended: bool) -> Result<bool> {
        let changed = self
            .execute(
                query("UPDATE users SET suspended = $1 WHERE user_id = $2 AND deactivated = 0")
                    .bind(flag(suspended))
                    .bind(user_id.to_owned()),
            )
            .await?;
        self.cache.clear();
        Ok(changed == 1)
    }

    /// Deactivates for good: the row stays (the ID is never reusable), every device,
    /// token, browser session and third-party identifier goes (so the addresses
    /// can be used again).
    /// The password hash stays, so that its owner can learn the account is
    /// deactivated (and nobody else can); `erase` forgets it with the rest of the
    /// user's personal data.
    pub async fn deactivate(&self, user_id: &str, erase: bool) -> Result<bool> {
        let user_id = user_id.to_owned();
        let done = self
            .write(move |c| {
                Box::pin(async move {
                    let r = query(
                        "UPDATE users SET deactivated = 1, locked = 0, suspended = 0 WHERE user_id = $1",
                    )
                    .bind(&user_id)
                    .execute(&mut *c)
                    .await?;
                    if r == 0 {
                        return Ok(false);
                    }
                    // Devices, tokens, login and OpenID tokens, completed registrations.
                    revoke_devices(c, &user_id, &LogoutDevices::All).await?;
                    for sql in [
                        "DELETE FROM threepids WHERE user_id = $1",
                        "DELETE FROM uia_sessions WHERE user_id = $1",
                        "DELETE FROM browser_sessions WHERE user_id = $1",
                    ] {
                        query(sql).bind(&user_id).execute(&mut *c).await?;
                    }
                    if erase {
                        query(
                            "UPDATE users SET displayname = NULL, password_hash = NULL WHERE user_id = $1",
                        )
                        .bind(&user_id)
                        .execute(&mut *c)
                        .await?;
                    }
                    Ok(true)
                })
            })
            .await?;
        self.cache.clear();
        Ok(done)
    }

    /// Logs a device in: creates it (or keeps it, with its display name), revokes the
    /// tokens it had, and stores the new ones. `false` (nothing stored): the
    /// account is deactivated, or its password is no longer the one checked — a
    /// login must not outlive the password change that raced it.
    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<bool> {
        let now = now_ms();
        // The user row first, shared (PostgreSQL): a password change holds it
        // exclusively, so the two cannot interleave; then the device, in the order
        // every other writer takes them.
        let read_user = match self.backend {
            Backend::Postgres => {
                "SELECT password_hash, deactivated FROM users WHERE user_id = $1 FOR SHARE"
            }
            Backend::Sqlite => "SELECT password_hash, deactivated FROM users WHERE user_id = $1",
        };
        let user_id = s.user_id.to_owned();
        let device_id = s.device_id.to_owned();
        let display_name = s.display_name.map(str::to_owned);
        let access_hash = s.access_hash.to_owned();
        let refresh_hash = s.refresh_hash.map(str::to_owned);
        let checked_hash = s.checked_hash.map(str::to_owned);
        let (expires_ms, session_ends_ms) = (s.expires_ms, s.session_ends_ms);
        let oauth_client = s.oauth.map(|g| g.client_id.to_owned());
        let oauth_scope = s.oauth.map(|g| g.scope.to_owned());
        let created = self
            .write(move |c| {
                Box::pin(async move {
                    let user: Option<(Option<String>, i64)> = query(read_user)
                        .bind(&user_id)
                        .fetch_optional(&mut *c)
                        .await?;
                    let current = match user {
                        Some((hash, 0)) => hash,
                        _ => return Ok(false),
                    };
                    if checked_hash.is_some_and(|checked| current != Some(checked)) {
                        return Ok(false);
                    }
                    // An existing device keeps its display name; the update locks
                    // its row, so this login serialises with a refresh or logout
                    // of that device. It now belongs to this login's client (none
                    // for a legacy login).
                    query(
                        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ms, oauth_client_id, oauth_scope) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = devices.display_name, \
                         oauth_client_id = excluded.oauth_client_id, oauth_scope = excluded.oauth_scope",
                    )
                    .bind(&user_id)
                    .bind(&device_id)
                    .bind(display_name)
                    .bind(now)
                    .bind(oauth_client)
                    .bind(oauth_scope)
                    .execute(&mut *c)
                    .await?;
                    revoke_device_tokens(c, &user_id, &device_id).await?;
                    if let Some(refresh) = &refresh_hash {
                        query("INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ms, session_ends_ms) VALUES ($1, $2, $3, $4, $5)")
                            .bind(refresh)
                            .bind(&user_id)
                            .bind(&device_id)
                            .bind(now)
                            .bind(session_ends_ms)
                            .execute(&mut *c)
                            .await?;
                    }
                    insert_access_token(
                        c,
                        access_hash,
                        &user_id,
                        &device_id,
                        expires_ms,
                        refresh_hash,
                        now,
                    )
                    .await?;
                    Ok(true)
                })
            })
            .await?;
        self.cache.clear();
        Ok(created)
    }

    /// The owner of an access token: one indexed join per authenticated request.
    pub async fn token_owner(&self, access_hash: &str) -> Result<Option<TokenOwner>> {
        if let Some(owner) = self.cache.token(access_hash) {
            return Ok(Some(owner));
        }
        let generation = self.cache.generation();
        let row = sqlx::query(
            "SELECT a.user_id, a.device_id, a.expires_ms, u.is_guest, u.is_admin, u.deactivated, u.locked, \
             u.suspended, d.last_seen_ms, r.predecessor_hash, a.refresh_hash, d.oauth_client_id \
             FROM access_tokens a JOIN users u ON u.user_id = a.user_id \
             LEFT JOIN devices d ON d.user_id = a.user_id AND d.device_id = a.device_id \
             LEFT JOIN refresh_tokens r ON r.token_hash = a.refresh_hash \
             WHERE a.token_hash = $1",
        )
        .bind(access_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner = TokenOwner {
            user_id: row.try_get(0)?,
            device_id: row.try_get(1)?,
            expires_ms: row.try_get(2)?,
            is_guest: row.try_get::<i64, _>(3)? != 0,
            is_admin: row.try_get::<i64, _>(4)? != 0,
            deactivated: row.try_get::<i64, _>(5)? != 0,
            locked: row.try_get::<i64, _>(6)? != 0,
            suspended: row.try_get::<i64, _>(7)? != 0,
            last_seen_ms: row.try_get(8)?,
            retires_predecessor: row.try_get::<Option<String>, _>(9)?.is_some(),
            refresh_hash: row.try_get(10)?,
            via_oauth: row.try_get::<Option<String>, _>(11)?.is_some(),
        };
        self.cache.put_token(generation, access_hash, &owner);
        Ok(Some(owner))
    }

    /// The first use of a refreshed pair retires the pair it replaced.
    pub async fn retire_predecessor(&self, refresh_hash: &str) -> Result<()> {
        let backend = self.backend;
        let refresh_hash = refresh_hash.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                if lock_token_device(c, backend, &refresh_hash)
                    .await?
                    .is_some()
                {
                    retire_predecessor(c, &refresh_hash).await?;
                }
                Ok(())
            })
        })
        .await?;
        self.cache.clear();
        Ok(())
    }

    /// Exchanges a refresh token for a new pair, in one transaction that holds the
    /// device's lock. The old pair stays valid until the new one is used, so a
    /// client that lost the response can retry; a retry replaces the unused pair
    /// from the earlier attempt, so however many refreshes of one token race, one
    /// successor at most stays live. New access tokens never outlive the session.
    pub async fn refresh(
        &self,
        old: &str,
        access_hash: &str,
        refresh_hash: &str,
        access_lifetime_ms: i64,
    ) -> Result<(Refreshed, Option<i64>)> {
        let now = now_ms();
        let backend = self.backend;
        let old = old.to_owned();
        let access_hash = access_hash.to_owned();
        let refresh_hash = refresh_hash.to_owned();
        let (outcome, expires_ms, wrote) = self
            .write(move |c| {
                Box::pin(async move {
                    let Some((user_id, device_id)) = lock_token_device(c, backend, &old).await?
                    else {
                        return Ok((Refreshed::Unknown, None, false));
                    };
                    // Read again under the lock: a racing refresh or logout may have
                    // changed it.
                    let row: Option<(Option<i64>, Option<i64>, i64, i64)> = query(
                        "SELECT r.retired_ms, r.session_ends_ms, u.locked, u.deactivated \
                         FROM refresh_tokens r JOIN users u ON u.user_id = r.user_id WHERE r.token_hash = $1",
                    )
                    .bind(&old)
                    .fetch_optional(&mut *c)
                    .await?;
                    let Some((retired, session_ends, locked, deactivated)) = row else {
                        return Ok((Refreshed::Unknown, None, false));
                    };
                    let outcome = if deactivated != 0 {
                        Some(Refreshed::Unknown)
                    } else if retired.is_some() {
                        Some(Refreshed::Replayed {
                            user_id: user_id.clone(),
                        })
                    } else if session_ends.is_some_and(|end| end <= now) {
                        Some(Refreshed::SessionOver {
                            user_id: user_id.clone(),
                        })
                    } else if locked != 0 {
                        return Ok((Refreshed::Locked, None, false));
                    } else {
                        None
                    };
                    if let Some(outcome) = outcome {
                        revoke_devices(c, &user_id, &LogoutDevices::One(device_id)).await?;
                        return Ok((outcome, None, true));
                    }
                    // Using this token is the first use of the pair it belongs to.
                    retire_predecessor(c, &old).await?;
                    // An earlier, unused answer to this refresh is replaced.
                    query("DELETE FROM access_tokens WHERE refresh_hash IN (SELECT token_hash FROM refresh_tokens WHERE predecessor_hash = $1)")
                        .bind(&old)
                        .execute(&mut *c)
                        .await?;
                    query("DELETE FROM refresh_tokens WHERE predecessor_hash = $1")
                        .bind(&old)
                        .execute(&mut *c)
                        .await?;
                    query("INSERT INTO refresh_tokens (token_hash, user_id, device_id, predecessor_hash, created_ms, session_ends_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(&refresh_hash)
                        .bind(&user_id)
                        .bind(&device_id)
                        .bind(&old)
                        .bind(now)
                        .bind(session_ends)
                        .execute(&mut *c)
                        .await?;
                    let expires_ms = session_ends.map_or(now + access_lifetime_ms, |end| {
                        end.min(now + access_lifetime_ms)
                    });
                    insert_access_token(
                        c,
                        access_hash,
                        &user_id,
                        &device_id,
                        Some(expires_ms),
                        Some(refresh_hash),
                        now,
                    )
                    .await?;
                    let rotated = Refreshed::Rotated { user_id, device_id };
                    Ok((rotated, Some(expires_ms), true))
                })
            })
            .await?;
        if wrote {
            self.cache.clear();
        }
        Ok((outcome, expires_ms))
    }

    /// Drops one token's cached owner (after its device's activity time changed).
    pub fn forget_cached_token(&self, access_hash: &str) {
        self.cache.forget_token(access_hash);
    }

    /// Records activity on a device (for `whois`); callers throttle it.
    pub async fn touch_device(
        &self,
        user_id: &str,
        device_id: &str,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<()> {
        self.execute(
            query("UPDATE devices SET last_seen_ms = $1, last_seen_ip = $2, user_agent = $3 WHERE user_id = $4 AND device_id = $5")
                .bind(now_ms())
                .bind(ip.map(str::to_owned))
                .bind(user_agent.map(str::to_owned))
                .bind(user_id.to_owned())
                .bind(device_id.to_owned()),
        )
        .await?;
        Ok(())
    }

    /// Logs devices out: deletes them and every token on them.
    pub async fn logout(&self, user_id: &str, which: LogoutDevices) -> Result<()> {
        let user_id = user_id.to_owned();
        self.write(move |c| Box::pin(async move { revoke_devices(c, &user_id, &which).await }))
            .await?;
        self.cache.clear();
        Ok(())
    }

    pub async fn devices(&self, user_id: &str) -> Result<Vec<Device>> {
        let rows = sqlx::query(
            "SELECT device_id, display_name, last_seen_ms, last_seen_ip, user_agent FROM devices WHERE user_id = $1 ORDER BY device_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Device {
                    device_id: r.try_get(0)?,
                    display_name: r.try_get(1)?,
                    last_seen_ms: r.try_get(2)?,
                    last_seen_ip: r.try_get(3)?,
                    user_agent: r.try_get(4)?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn threepids(&self, user_id: &str) -> Result<Vec<ThreePid>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT medium, address, validated_ms, added_ms FROM threepids WHERE user_id = $1 ORDER BY medium, address",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(medium, address, validated_ms, added_ms)| ThreePid {
                medium,
                address,
                validated_ms,
                added_ms,
            })
            .collect())
    }

    pub async fn delete_threepid(
        &self,
        user_id: &str,
        medium: &str,
        address: &str,
    ) -> Result<bool> {
        let deleted = self
            .execute(
                query("DELETE FROM threepids WHERE user_id = $1 AND medium = $2 AND address = $3")
                    .bind(user_id.to_owned())
                    .bind(medium.to_owned())
                    .bind(address.to_owned()),
            )
            .await?;
        Ok(deleted > 0)
    }
}

/// Stores an access token (with the refresh token it was issued with).
async fn insert_access_token(
    c: &mut dyn Conn,
    access_hash: String,
    user_id: &str,
    device_id: &str,
    expires_ms: Option<i64>,
    refresh_hash: Option<String>,
    now: i64,
) -> Result<()> {
    query(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ms, refresh_hash, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(access_hash)
    .bind(user_id)
    .bind(device_id)
    .bind(expires_ms)
    .bind(refresh_hash)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// Locks the device of a refresh token (see `lock_device`): its `(user,
/// device)`, or `None` when the token or the device is gone.
async fn lock_token_device(
    c: &mut dyn Conn,
    backend: Backend,
    refresh_hash: &str,
) -> Result<Option<(String, String)>> {
    let device: Option<(String, String)> =
        query("SELECT user_id, device_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(refresh_hash)
            .fetch_optional(&mut *c)
            .await?;
    let Some((user_id, device_id)) = device else {
        return Ok(None);
    };
    Ok(lock_device(c, backend, &user_id, &device_id)
        .await?
        .then_some((user_id, device_id)))
}

/// Locks a device's row until the transaction ends (PostgreSQL; SQLite's write
/// transactions are serialised already): every change to a device's tokens
/// takes this lock first, so a refresh cannot interleave with a logout of the
/// same device. `false`: the device is gone.
async fn lock_device(
    c: &mut dyn Conn,
    backend: Backend,
    user_id: &str,
    device_id: &str,
) -> Result<bool> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT device_id FROM devices WHERE user_id = $1 AND device_id = $2 FOR UPDATE"
        }
        Backend::Sqlite => "SELECT device_id FROM devices WHERE user_id = $1 AND device_id = $2",
    };
    let row: Option<(String,)> = query(sql)
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.is_some())
}

async fn revoke_device_tokens(c: &mut dyn Conn, user_id: &str, device_id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
        "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
    ] {
        query(sql)
            .bind(user_id)
            .bind(device_id)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Deletes devices, then every token on them. The device rows go first: that
/// takes their locks (see `Store::lock_device`), so a refresh holding one finishes
/// before its tokens are deleted, and one waiting for it finds the device gone.
pub(super) async fn revoke_devices(
    c: &mut dyn Conn,
    user_id: &str,
    which: &LogoutDevices,
) -> Result<()> {
    // Each case has its own statements: "every device" has no exclusion filter
    // that an odd device ID could slip through.
    let (statements, device): ([&str; 3], Option<&str>) = match which {
        LogoutDevices::All => (
            [
                "DELETE FROM devices WHERE user_id = $1",
                "DELETE FROM access_tokens WHERE user_id = $1",
                "DELETE FROM refresh_tokens WHERE user_id = $1",
            ],
            None,
        ),
        LogoutDevices::AllBut(keep) => (
            [
                "DELETE FROM devices WHERE user_id = $1 AND device_id <> $2",
                "DELETE FROM access_tokens WHERE user_id = $1 AND device_id <> $2",
                "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id <> $2",
            ],
            Some(keep.as_str()),
        ),
        LogoutDevices::One(device) => (
            [
                "DELETE FROM devices WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
            ],
            Some(device.as_str()),
        ),
    };
    for sql in statements {
        let mut q = query(sql).bind(user_id);
        if let Some(d) = device {
            q = q.bind(d);
        }
        q.execute(&mut *c).await?;
    }
    if !matches!(which, LogoutDevices::One(_)) {
        forget_pending_logins(c, user_id).await?;
    }
    Ok(())
}

/// Deletes what could log the user in on a new device without their password
/// (unused login tokens, and completed registrations, whose retry would log the
/// account in again: see `uia`) and what vouches for them elsewhere (OpenID
/// tokens): "log out everywhere" and a password change end these too.
async fn forget_pending_logins(c: &mut dyn Conn, user_id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM login_tokens WHERE user_id = $1",
        "DELETE FROM openid_tokens WHERE user_id = $1",
        "DELETE FROM uia_sessions WHERE result_user_id = $1 AND user_id IS NULL",
    ] {
        query(sql).bind(user_id).execute(&mut *c).await?;
    }
    Ok(())
}

/// The first use of a refreshed pair: the pair it replaced is retired — its
/// access token deleted, its refresh token kept (marked) so that a replay is
/// recognised.
async fn retire_predecessor(c: &mut dyn Conn, refresh_hash: &str) -> Result<()> {
    let pred: Option<(Option<String>,)> =
        query("SELECT predecessor_hash FROM refresh_tokens WHERE token_hash = $1")
            .bind(refresh_hash)
            .fetch_optional(&mut *c)
            .await?;
    if let Some((Some(pred),)) = pred {
        query("DELETE FROM access_tokens WHERE refresh_hash = $1")
            .bind(&pred)
            .execute(&mut *c)
            .await?;
        query("UPDATE refresh_tokens SET retired_ms = $1 WHERE token_hash = $2")
            .bind(now_ms())
            .bind(&pred)
            .execute(&mut *c)
            .await?;
        query("UPDATE refresh_tokens SET predecessor_hash = NULL WHERE token_hash = $1")
            .bind(refresh_hash)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch_store;

    #[tokio::test]
    async fn a_password_change_and_its_revocations_commit_together() {
        let (store, _dir) = scratch_store().await;
        store
            .create_user("@a:x", Some("old hash"), false, false, None)
            .await
            .unwrap();
        store
            .create_session(&NewSession {
                user_id: "@a:x",
                device_id: "OTHER",
                display_name: None,
                access_hash: "other-token",
                expires_ms: None,
                refresh_hash: None,
                session_ends_ms: None,
                checked_hash: None,
                oauth: None,
            })
            .await
            .unwrap();
        // The revocation fails half-way, as a crash would cut it short: nothing
        // of the change may remain, least of all the new password.
        sqlx::query(
            "CREATE TRIGGER injected BEFORE DELETE ON access_tokens \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let logout = Some(LogoutDevices::AllBut("MINE".into()));
        assert!(store
            .change_password("@a:x", "new hash", logout.clone())
            .await
            .is_err());
        let user = store.user("@a:x").await.unwrap().unwrap();
        assert_eq!(user.password_hash.as_deref(), Some("old hash"));
        assert!(store.token_owner("other-token").await.unwrap().is_some());

        sqlx::query("DROP TRIGGER injected")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(store
            .change_password("@a:x", "new hash", logout)
            .await
            .unwrap());
        let user = store.user("@a:x").await.unwrap().unwrap();
        assert_eq!(user.password_hash.as_deref(), Some("new hash"));
        assert!(store.token_owner("other-token").await.unwrap().is_none());
    }

    /// `user_exists` (a snapshot on the calling thread) sees a registration
    /// through the store at once, a row another writer commits within
    /// `SNAPSHOT_AGE`, and deactivated IDs stay taken.
    #[tokio::test]
    async fn user_exists_sees_this_process_at_once_and_others_within_a_millisecond() {
        let (store, _dir) = scratch_store().await;
        assert!(!store.user_exists("@a:x").await.unwrap());
        store
            .create_user("@a:x", Some("hash"), false, false, None)
            .await
            .unwrap();
        assert!(store.user_exists("@a:x").await.unwrap());
        // Another writer (another process, say) on the same file.
        let path = store.reads.as_ref().unwrap().path().to_string();
        let other = rusqlite::Connection::open(&path).unwrap();
        assert!(!store.user_exists("@b:x").await.unwrap());
        other
            .execute(
                "INSERT INTO users (user_id, created_ms, deactivated) VALUES ('@b:x', 0, 1)",
                [],
            )
            .unwrap();
        std::thread::sleep(super::super::sqlite_reads::SNAPSHOT_AGE * 2);
        assert!(store.user_exists("@b:x").await.unwrap());
        assert!(!store.user_exists("@c:x").await.unwrap());
    }
}
