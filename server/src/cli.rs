//! Administration from the command line, on the configured database.

use clap::Subcommand;

use crate::crypto;
use crate::service::Server;
use crate::store::{now_ms, HomeserverPart, LogoutDevices, StoreError};
use crate::validation::{normalise_email, normalise_phone};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the password when it is generated.
    Create {
        /// Localpart or full user ID.
        user: String,
        /// The password (a random one is generated and printed when absent).
        #[arg(long)]
        password: Option<String>,
        /// Make the user a server administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Set a new password (generated and printed when absent); logs out every device.
    ResetPassword {
        user: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Deactivate for good; `--erase` also forgets the user's personal data.
    Deactivate {
        user: String,
        #[arg(long)]
        erase: bool,
    },
    Lock {
        user: String,
    },
    Unlock {
        user: String,
    },
    Suspend {
        user: String,
    },
    Unsuspend {
        user: String,
    },
    /// List users with their flags.
    List,
    /// List a user's email addresses and phone numbers.
    Threepids {
        user: String,
    },
    /// Bind an email address to a user without validating it.
    AddEmail {
        user: String,
        address: String,
    },
    /// Unbind an email address from a user.
    RemoveEmail {
        user: String,
        address: String,
    },
    /// Bind a phone number (country code such as GB, and the number as
    /// written there) to a user without validating it.
    AddPhone {
        user: String,
        country: String,
        number: String,
    },
    /// Unbind a phone number from a user.
    RemovePhone {
        user: String,
        country: String,
        number: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a registration token (random unless given) and print it.
    Create {
        #[arg(long)]
        token: Option<String>,
        /// How many registrations it allows (unlimited when absent).
        #[arg(long)]
        uses: Option<u32>,
        /// Expiry, in days from now (never when absent).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    List,
    Revoke {
        token: String,
    },
}

/// The given password, or a generated one, checked against the policy and hashed:
/// `(password, hash, generated)`.
async fn new_password(
    server: &Server,
    given: Option<String>,
) -> Result<(String, String, bool), String> {
    let (password, generated) = match given {
        Some(p) => (p, false),
        None => (crypto::new_token("pw")[3..27].to_string(), true),
    };
    server
        .check_password_policy(&password)
        .map_err(|e| e.error)?;
    let hash = server
        .hasher
        .hash(&password)
        .await
        .map_err(|e| format!("password hashing: {e:?}"))?;
    Ok((password, hash, generated))
}

fn store_err(e: StoreError) -> String {
    format!("database: {e}")
}

enum Flag {
    Locked,
    Suspended,
}

async fn set_flag(server: &Server, user: &str, flag: Flag, on: bool) -> Result<(), String> {
    let user_id = server
        .resolve_user(user)
        .map_err(|e| format!("{user}: {}", e.error))?;
    let changed = match flag {
        Flag::Locked => server
            .set_locked(&user_id, on)
            .await
            .map_err(|e| format!("{user_id}: {}", e.error))?,
        Flag::Suspended => server
            .store
            .set_suspended(&user_id, on)
            .await
            .map_err(store_err)?,
    };
    if !changed {
        return Err(format!("{user_id}: no such active user"));
    }
    let what = match (flag, on) {
        (Flag::Locked, true) => "locked",
        (Flag::Locked, false) => "unlocked",
        (Flag::Suspended, true) => "suspended",
        (Flag::Suspended, false) => "unsuspended",
    };
    println!("{what} {user_id}");
    Ok(())
}

/// Binds a normalised address without validation; says who has it when
/// another account does.
async fn add_threepid(
    server: &Server,
    user: &str,
    medium: &str,
    address: &str,
) -> Result<(), String> {
    let user_id = existing_user(server, user).await?;
    match server.store.add_threepid(&user_id, medium, address).await {
        Ok(()) => {
            if medium == "email" {
                server
                    .tell_homeserver(&user_id, HomeserverPart::Emails)
                    .await;
            }
            println!("added {address} to {user_id}");
            Ok(())
        }
        Err(StoreError::Conflict) => {
            let owner = server
                .store
                .threepid_owner(medium, address)
                .await
                .map_err(store_err)?
                .unwrap_or_default();
            Err(format!("{address}: already bound to {owner}"))
        }
        Err(e) => Err(store_err(e)),
    }
}

async fn remove_threepid(
    server: &Server,
    user: &str,
    medium: &str,
    address: &str,
) -> Result<(), String> {
    let user_id = existing_user(server, user).await?;
    let removed = server
        .store
        .delete_threepid(&user_id, medium, address)
        .await
        .map_err(store_err)?;
    if !removed {
        return Err(format!("{address}: not an address of {user_id}"));
    }
    if medium == "email" {
        server
            .tell_homeserver(&user_id, HomeserverPart::Emails)
            .await;
    }
    println!("removed {address} from {user_id}");
    Ok(())
}

/// The user a command names, when the account exists.
async fn existing_user(server: &Server, user: &str) -> Result<String, String> {
    let user_id = server
        .resolve_user(user)
        .map_err(|e| format!("{user}: {}", e.error))?;
    match server.store.user(&user_id).await.map_err(store_err)? {
        Some(_) => Ok(user_id),
        None => Err(format!("{user_id}: no such user")),
    }
}

pub async fn user(server: &Server, cmd: UserCommand) -> Result<(), String> {
    let resolve = |u: &str| {
        server
            .resolve_user(u)
            .map_err(|e| format!("{u}: {}", e.error))
    };
    let existing = |user_id: String| async move {
        match server.store.user(&user_id).await.map_err(store_err)? {
            Some(u) => Ok(u),
            None => Err(format!("{user_id}: no such user")),
        }
    };
    match cmd {
        UserCommand::Create {
            user,
            password,
            admin,
        } => {
            let user_id = resolve(&user)?;
            let (password, hash, generated) = new_password(server, password).await?;
            match server
                .store
                .create_user(&user_id, Some(&hash), false, admin, None)
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict) => return Err(format!("{user_id}: already exists")),
                Err(e) => return Err(store_err(e)),
            }
            server
                .provision_user(&user_id, None, None)
                .await
                .map_err(|e| format!("{user_id}: {}", e.error))?;
            println!("created {user_id}{}", if admin { " (admin)" } else { "" });
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::ResetPassword { user, password } => {
            let u = existing(resolve(&user)?).await?;
            let (password, hash, generated) = new_password(server, password).await?;
            if !server
                .change_password(&u.user_id, &hash, Some(LogoutDevices::All), None)
                .await
                .map_err(|e| format!("{}: {}", u.user_id, e.error))?
            {
                return Err(format!("{}: deactivated", u.user_id));
            }
            println!(
                "password reset for {}; all devices and account-page sign-ins logged out",
                u.user_id
            );
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::Deactivate { user, erase } => {
            let u = existing(resolve(&user)?).await?;
            server
                .deactivate(&u.user_id, erase)
                .await
                .map_err(|e| format!("{}: {}", u.user_id, e.error))?;
            println!(
                "deactivated {}{}",
                u.user_id,
                if erase { " and erased" } else { "" }
            );
        }
        UserCommand::Lock { user } => set_flag(server, &user, Flag::Locked, true).await?,
        UserCommand::Unlock { user } => set_flag(server, &user, Flag::Locked, false).await?,
        UserCommand::Suspend { user } => set_flag(server, &user, Flag::Suspended, true).await?,
        UserCommand::Unsuspend { user } => set_flag(server, &user, Flag::Suspended, false).await?,
        UserCommand::Threepids { user } => {
            let u = existing(resolve(&user)?).await?;
            for t in server
                .store
                .threepids(&u.user_id)
                .await
                .map_err(store_err)?
            {
                println!("{}\t{}", t.medium, t.address);
            }
        }
        UserCommand::AddEmail { user, address } => {
            let address =
                normalise_email(&address).map_err(|e| format!("{address}: {}", e.error))?;
            add_threepid(server, &user, "email", &address).await?;
        }
        UserCommand::RemoveEmail { user, address } => {
            let address =
                normalise_email(&address).map_err(|e| format!("{address}: {}", e.error))?;
            remove_threepid(server, &user, "email", &address).await?;
        }
        UserCommand::AddPhone {
            user,
            country,
            number,
        } => {
            let number =
                normalise_phone(&country, &number).map_err(|e| format!("{number}: {}", e.error))?;
            add_threepid(server, &user, "msisdn", &number).await?;
        }
        UserCommand::RemovePhone {
            user,
            country,
            number,
        } => {
            let number =
                normalise_phone(&country, &number).map_err(|e| format!("{number}: {}", e.error))?;
            remove_threepid(server, &user, "msisdn", &number).await?;
        }
        UserCommand::List => {
            for u in server.store.users().await.map_err(store_err)? {
                let mut flags = Vec::new();
                for (on, name) in [
                    (u.is_admin, "admin"),
                    (u.is_guest, "guest"),
                    (u.deactivated, "deactivated"),
                    (u.locked, "locked"),
                    (u.suspended, "suspended"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                println!("{}\t{}", u.user_id, flags.join(","));
            }
        }
    }
    Ok(())
}

pub async fn token(server: &Server, cmd: TokenCommand) -> Result<(), String> {
    match cmd {
        TokenCommand::Create {
            token,
            uses,
            expires_in_days,
        } => {
            let token = token.unwrap_or_else(|| {
                crypto::new_id().to_lowercase() + &crypto::new_id().to_lowercase()
            });
            if token.is_empty()
                || token.len() > 64
                || !token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
            {
                return Err("token: 1 to 64 characters of A-Z a-z 0-9 . _ ~ -".into());
            }
            let expiry = expires_in_days.map(|d| now_ms() + i64::from(d) * 86_400_000);
            match server
                .store
                .create_registration_token(&token, uses.map(i64::from), expiry)
                .await
            {
                Ok(()) => println!("{token}"),
                Err(StoreError::Conflict) => return Err(format!("token {token}: already exists")),
                Err(e) => return Err(store_err(e)),
            }
        }
        TokenCommand::List => {
            for t in server
                .store
                .registration_tokens()
                .await
                .map_err(store_err)?
            {
                let uses = t
                    .uses_allowed
                    .map_or("unlimited".to_string(), |n| n.to_string());
                let state = if t.usable(now_ms()) {
                    "valid"
                } else {
                    "used up or expired"
                };
                println!("{}\tused {} of {uses}\t{state}", t.token, t.completed);
            }
        }
        TokenCommand::Revoke { token } => {
            if !server
                .store
                .delete_registration_token(&token)
                .await
                .map_err(store_err)?
            {
                return Err(format!("token {token}: no such token"));
            }
            println!("revoked {token}");
        }
    }
    Ok(())
}
