//! Synapse delegation: this server as the authentication service of an
//! unmodified Synapse (`[homeserver] kind = "synapse"`).
//!
//! Synapse asks this server about every access token (`api/delegation.rs`);
//! this module is the other direction: it keeps Synapse's users and devices in
//! step with this server's through Synapse's `/_synapse/mas/*` API
//! (api/synapse/mas.yaml, whose generated client side does the HTTP).
//!
//! What must hold, and how:
//! - A name is checked with Synapse before an account takes it, and the user
//!   exists on Synapse before the registration is answered: a registration
//!   Synapse cannot take is undone here and answered `503`
//!   ([`Server::provision_user`]).
//! - A device exists on Synapse before any of its tokens is handed out (Synapse
//!   refuses tokens of devices it does not know): [`Server::upsert_device`],
//!   called on every login.
//! - Devices removed here are removed there at once (Synapse caches an
//!   introspection for two minutes, but checks the device on every request),
//!   email addresses added or removed here are sent there, and so are locks:
//!   [`Server::tell_homeserver`] sends that part of the user's state whole,
//!   as it is now. None of these waits on Synapse (the tokens are already
//!   dead here; introspection already refuses a locked account), so a
//!   Synapse that is down delays only its copy: the miss is noted in the
//!   database and [`Server::retry_homeserver_updates`] sends the part again
//!   until Synapse takes it, across restarts.
//! - Deactivation happens on Synapse first ([`Server::delete_homeserver_user`]):
//!   if Synapse refuses, nothing changed and the person can try again.
//! - The profile is Synapse's (clients change it there): the account page
//!   reads and sets the display name there ([`Server::homeserver_display_name`],
//!   [`Server::set_homeserver_display_name`]), keeping no copy here.
//! - A client may replace the account's cross-signing identity on Synapse only
//!   after the person confirmed it on the account page
//!   ([`Server::allow_cross_signing_reset`]): Synapse cannot ask for
//!   interactive auth itself when it delegates.
//!
//! Every call is tried three times (Synapse restarting, a connection reset)
//! within `[homeserver] timeout_secs` each; the operations are idempotent.

use std::time::Duration;

use http::StatusCode;
use matrix_api::runtime::{Client, ClientError, ClientRequest, MatrixError, UserId};
use matrix_api::synapse::mas::{
    allow_cross_signing_reset, delete_user, is_localpart_available, provision_user, query_user,
    set_displayname, sync_devices, unset_displayname, upsert_device,
};

use crate::config::{Homeserver, HomeserverKind};
use crate::service::{internal, Server};
use crate::store::{now_ms, HomeserverPart};

/// How many times a call to Synapse is made before giving up.
const ATTEMPTS: u32 = 3;

/// The client of a delegating Synapse's `/_synapse/mas/*` API.
pub struct Synapse {
    client: Client,
}

impl Synapse {
    /// `None` unless `[homeserver] kind = "synapse"`; an error for a secret
    /// file that cannot be read or is empty.
    pub fn from_config(config: &Homeserver) -> Result<Option<Synapse>, String> {
        if config.kind == HomeserverKind::None {
            return Ok(None);
        }
        let Some(path) = &config.secret_path else {
            return Err("homeserver.secret_path is not set".into());
        };
        let secret = std::fs::read_to_string(path)
            .map_err(|e| format!("homeserver.secret_path: {}: {e}", path.display()))?;
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(format!(
                "homeserver.secret_path: {}: the file is empty",
                path.display()
            ));
        }
        let client = Client::new(config.url.as_str())
            .with_access_token(secret)
            .with_timeout(Duration::from_secs(config.timeout_secs));
        Ok(Some(Synapse { client }))
    }

    /// The shared secret, which Synapse presents when it introspects.
    pub fn secret(&self) -> &str {
        self.client.access_token().unwrap_or_default()
    }

    /// Sends `request`, again after a pause when Synapse did not answer or
    /// answered with a server error.
    async fn send<R>(&self, request: &R) -> Result<R::Response, ClientError<MatrixError>>
    where
        R: ClientRequest<Error = MatrixError>,
    {
        let mut pause = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let result = self.client.send(request).await;
            let again = result.as_ref().is_err_and(transient);
            if !again || attempt == ATTEMPTS {
                return result;
            }
            tracing::debug!(
                operation = R::metadata().operation_id,
                attempt,
                "Synapse did not answer; trying again"
            );
            tokio::time::sleep(pause).await;
            pause *= 4;
            attempt += 1;
        }
    }

    /// [`Synapse::send`] for a call whose answer is only whether it was done:
    /// a failure as the `503` the client is told.
    async fn call<R>(&self, request: &R) -> Result<(), MatrixError>
    where
        R: ClientRequest<Error = MatrixError>,
    {
        self.send(request)
            .await
            .map(drop)
            .map_err(|e| unavailable(R::metadata().operation_id, &e))
    }
}

/// Whether a failed call may work later: Synapse did not answer, or
/// answered with a server error. (A `4xx` will not change by itself.)
fn transient(result: &ClientError<MatrixError>) -> bool {
    match result {
        ClientError::Transport(_) | ClientError::Timeout => true,
        ClientError::Api(e) => e.status.is_server_error(),
        ClientError::UnexpectedStatus { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// Why Synapse did not take an update: worth sending again later, or not.
enum Missed {
    Later(String),
    Never(String),
}

/// What the client is told when Synapse could not be reached or refused:
/// nothing was changed, and trying later may work.
fn unavailable<E: std::fmt::Debug>(operation: &str, e: &ClientError<E>) -> MatrixError {
    tracing::error!(operation, error = ?e, "the homeserver (Synapse) did not do what was asked");
    MatrixError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "M_UNKNOWN",
        "The homeserver could not be reached; nothing was changed. Try again later.",
    )
}

/// The answer to what only a delegating homeserver makes sense of (the
/// cross-signing reset, the display name), when none delegates.
pub fn not_delegating() -> MatrixError {
    MatrixError::unrecognized(
        StatusCode::NOT_FOUND,
        "No homeserver delegates to this server, and this server keeps no profiles or cross-signing keys",
    )
}

/// The localpart of a stored user ID: what Synapse names users by.
pub fn localpart(user_id: &str) -> Result<String, MatrixError> {
    UserId::parse(user_id)
        .map(|id| id.localpart().to_string())
        .map_err(|e| MatrixError::unknown(format!("stored user ID `{user_id}`: {e}")))
}

impl Server {
    /// A `provision_user` body carrying the account's email addresses as
    /// they are now (`set_emails`, or `unset_emails` when there are none).
    async fn user_with_emails(
        &self,
        user_id: &str,
    ) -> Result<provision_user::RequestBody, MatrixError> {
        let emails: Vec<String> = self
            .store
            .threepids(user_id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|t| t.medium == "email")
            .map(|t| t.address)
            .collect();
        let mut body = provision_user::RequestBody::new(localpart(user_id)?);
        if emails.is_empty() {
            body.unset_emails = Some(true);
        } else {
            body.set_emails = Some(emails);
        }
        Ok(body)
    }

    /// Whether Synapse lets an account take `localpart` (application services
    /// reserve namespaces there; it may have users of its own). Synapse's
    /// refusal (`M_USER_IN_USE`, `M_EXCLUSIVE`, `M_INVALID_USERNAME`) is passed
    /// on as it is.
    pub async fn check_homeserver_localpart(&self, user_id: &str) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Ok(());
        };
        let request = is_localpart_available::Request::new(localpart(user_id)?);
        match synapse.send(&request).await {
            Ok(_) => Ok(()),
            Err(ClientError::Api(e)) if e.status == StatusCode::BAD_REQUEST => Err(e),
            Err(e) => Err(unavailable("is_localpart_available", &e)),
        }
    }

    /// Creates a new account's user on Synapse, with the `display_name` the
    /// person chose (`None`: Synapse's default, the localpart). When Synapse
    /// cannot, the account is removed again here (it has no devices yet) and
    /// the client is told to try later: there is never an account here that
    /// Synapse does not know.
    ///
    /// The other way round can happen: when Synapse created the user but
    /// every one of the attempts' answers was lost, the account is removed
    /// here while Synapse keeps a user without credentials, and the name
    /// stays taken there. Asking Synapse (`query_user`) before removing
    /// would help only if that call got through where three did not.
    pub async fn provision_user(
        &self,
        user_id: &str,
        registration_token: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Ok(());
        };
        let mut body = self.user_with_emails(user_id).await?;
        body.set_displayname = display_name.map(str::to_string);
        match synapse.send(&provision_user::Request::new(body)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let error = unavailable("provision_user", &e);
                if let Err(e) = self.store.discard_user(user_id, registration_token).await {
                    tracing::error!(user_id, error = %e, "could not undo a registration Synapse refused");
                }
                Err(error)
            }
        }
    }

    /// Tells Synapse `part` of the user's state as it is now, after it
    /// changed here: the devices after some were logged out, the email
    /// addresses after one was added or removed, the lock after it was set or
    /// lifted. Nothing here waits on it: the change stands whatever Synapse
    /// says (logged-out tokens are already dead, and introspection already
    /// refuses a locked account's), so a failure is noted in the database
    /// (`homeserver_outbox`) and [`Server::retry_homeserver_updates`] sends
    /// the state again later, as it is then.
    pub async fn tell_homeserver(&self, user_id: &str, part: HomeserverPart) {
        let Some(synapse) = &self.synapse else {
            return;
        };
        match self.send_part(synapse, user_id, part).await {
            Ok(()) => {}
            Err(Missed::Later(error)) => {
                let retry_ms = self.config.homeserver.retry_secs as i64 * 1000;
                tracing::warn!(
                    user_id,
                    ?part,
                    error,
                    "Synapse is behind; noted, to be sent again"
                );
                if let Err(e) = self
                    .store
                    .note_homeserver_behind(user_id, part, now_ms() + retry_ms)
                    .await
                {
                    tracing::error!(user_id, ?part, error = %e, "Synapse is behind, and the note to send it again could not be written");
                }
            }
            Err(Missed::Never(error)) => {
                tracing::error!(user_id, ?part, error, "Synapse refused an update")
            }
        }
    }

    /// Sends `part` of the user's state as it is now.
    async fn send_part(
        &self,
        synapse: &Synapse,
        user_id: &str,
        part: HomeserverPart,
    ) -> Result<(), Missed> {
        let local = |e: &dyn std::fmt::Display| Missed::Later(format!("reading the state: {e}"));
        let localpart = localpart(user_id).map_err(|e| Missed::Never(e.error))?;
        let sent = match part {
            HomeserverPart::Devices => {
                let devices = self.store.devices(user_id).await.map_err(|e| local(&e))?;
                let devices = devices.into_iter().map(|d| d.device_id).collect();
                let body = sync_devices::RequestBody::new(localpart, devices);
                synapse
                    .send(&sync_devices::Request::new(body))
                    .await
                    .map(drop)
            }
            HomeserverPart::Emails => {
                let body = self
                    .user_with_emails(user_id)
                    .await
                    .map_err(|e| local(&e.error))?;
                synapse
                    .send(&provision_user::Request::new(body))
                    .await
                    .map(drop)
            }
            HomeserverPart::Lock => {
                let user = self.store.user(user_id).await.map_err(|e| local(&e))?;
                let Some(user) = user else {
                    return Err(Missed::Never("no such user here".into()));
                };
                let mut body = provision_user::RequestBody::new(localpart);
                body.locked = Some(user.locked);
                synapse
                    .send(&provision_user::Request::new(body))
                    .await
                    .map(drop)
            }
        };
        sent.map_err(|e| match transient(&e) {
            true => Missed::Later(format!("{e:?}")),
            false => Missed::Never(format!("{e:?}")),
        })
    }

    /// Sends Synapse, for as long as the server runs, what it missed
    /// ([`Server::tell_homeserver`]'s notes, from this process or another,
    /// from before a restart too): every `retry_secs` the notes that are due,
    /// each part as it is now. A retry that fails is tried again twice as
    /// late as the last (at most an hour later), and ends the round: the
    /// others would wait on an unreachable Synapse too. One Synapse refuses
    /// for good (a `4xx`: it does not know the user) is dropped with an error
    /// logged.
    pub async fn retry_homeserver_updates(self: std::sync::Arc<Self>) {
        let Some(synapse) = &self.synapse else {
            return;
        };
        let every = Duration::from_secs(self.config.homeserver.retry_secs);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let due = match self.store.homeserver_behind_due(now_ms(), 100).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read what Synapse missed");
                    continue;
                }
            };
            for behind in due {
                let result = self.send_part(synapse, &behind.user_id, behind.part).await;
                let (user_id, part) = (&behind.user_id, behind.part);
                // Synapse down: the rest of the round would only wait on it too.
                let stop = matches!(result, Err(Missed::Later(_)));
                let written = match result {
                    Ok(()) => {
                        tracing::info!(user_id, ?part, "Synapse caught up");
                        self.store.homeserver_caught_up(&behind).await
                    }
                    Err(Missed::Never(error)) => {
                        tracing::error!(
                            user_id,
                            ?part,
                            error,
                            "Synapse refused an update; not sent again"
                        );
                        self.store.homeserver_caught_up(&behind).await
                    }
                    Err(Missed::Later(error)) => {
                        let delay = every.saturating_mul(
                            2u32.saturating_pow(behind.attempts.clamp(0, 16) as u32 + 1),
                        );
                        let delay = delay.min(Duration::from_secs(3600));
                        tracing::warn!(user_id, ?part, error, retry_in = ?delay, "Synapse is still behind");
                        self.store
                            .homeserver_still_behind(&behind, now_ms() + delay.as_millis() as i64)
                            .await
                    }
                };
                if let Err(e) = written {
                    tracing::warn!(user_id, ?part, error = %e, "could not update the note of what Synapse missed");
                }
                if stop {
                    break;
                }
            }
        }
    }

    /// Creates the device on Synapse (or renames it) before any of its tokens
    /// is handed out.
    pub async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Ok(());
        };
        let mut body = upsert_device::RequestBody::new(localpart(user_id)?, device_id.to_string());
        body.display_name = display_name.map(str::to_string);
        synapse.call(&upsert_device::Request::new(body)).await
    }

    /// Deactivates the user on Synapse, before the account is deactivated
    /// here: if Synapse refuses, nothing has changed.
    pub async fn delete_homeserver_user(
        &self,
        user_id: &str,
        erase: bool,
    ) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Ok(());
        };
        let body = delete_user::RequestBody::new(localpart(user_id)?, erase);
        synapse.call(&delete_user::Request::new(body)).await
    }

    /// Lets the user's clients replace their cross-signing master key on
    /// Synapse without interactive auth for the next 10 minutes (Synapse's
    /// period), once the person has confirmed it on the account page.
    pub async fn allow_cross_signing_reset(&self, user_id: &str) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Err(not_delegating());
        };
        let body = allow_cross_signing_reset::RequestBody::new(localpart(user_id)?);
        synapse
            .call(&allow_cross_signing_reset::Request::new(body))
            .await
    }

    /// The display name Synapse shows for the user (`None`: none). Asked once,
    /// not retried: the profile page waits on it, and without it the page
    /// still works (it says the name could not be read).
    pub async fn homeserver_display_name(
        &self,
        user_id: &str,
    ) -> Result<Option<String>, MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Err(not_delegating());
        };
        let request = query_user::Request::new(localpart(user_id)?);
        match synapse.client.send(&request).await {
            Ok(query_user::Response::Ok(user)) => Ok(user.display_name),
            Err(e) => Err(unavailable("query_user", &e)),
        }
    }

    /// Sets the user's display name on Synapse (`None`: removes it), which
    /// tells the rooms the user is in.
    pub async fn set_homeserver_display_name(
        &self,
        user_id: &str,
        name: Option<&str>,
    ) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Err(not_delegating());
        };
        let localpart = localpart(user_id)?;
        match name {
            Some(name) => {
                let body = set_displayname::RequestBody::new(localpart, name.to_string());
                synapse.call(&set_displayname::Request::new(body)).await
            }
            None => {
                let body = unset_displayname::RequestBody::new(localpart);
                synapse.call(&unset_displayname::Request::new(body)).await
            }
        }
    }
}
