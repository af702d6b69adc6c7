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
//!   introspection for two minutes, but checks the device on every request):
//!   [`Server::sync_devices`] sends the whole list, so a call that failed is
//!   repaired by the next one. The tokens are already dead here, so a Synapse
//!   that is down delays only the cleanup, not the logout.
//! - Email addresses added or removed here are sent to Synapse afterwards
//!   ([`Server::homeserver_emails_changed`], the whole list, logged when it
//!   fails), as a new user's are when it is provisioned.
//! - Deactivation happens on Synapse first ([`Server::delete_homeserver_user`]):
//!   if Synapse refuses, nothing changed and the person can try again.
//!
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
    allow_cross_signing_reset, delete_user, is_localpart_available, provision_user, sync_devices,
    upsert_device,
};

use crate::config::{Homeserver, HomeserverKind};
use crate::service::{internal, Server};

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
            let transient = match &result {
                Err(ClientError::Transport(_) | ClientError::Timeout) => true,
                Err(ClientError::Api(e)) => e.status.is_server_error(),
                Err(ClientError::UnexpectedStatus { status, .. }) => status.is_server_error(),
                _ => false,
            };
            if !transient || attempt == ATTEMPTS {
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
/// cross-signing reset), when none delegates.
pub fn not_delegating() -> MatrixError {
    MatrixError::unrecognized(
        StatusCode::NOT_FOUND,
        "No homeserver delegates to this server: there is no cross-signing identity to reset",
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

    /// Creates a new account's user on Synapse. When Synapse cannot, the
    /// account is removed again here (it has no devices yet) and the client
    /// is told to try later: there is never an account here that Synapse
    /// does not know.
    pub async fn provision_user(
        &self,
        user_id: &str,
        registration_token: Option<&str>,
    ) -> Result<(), MatrixError> {
        let Some(synapse) = &self.synapse else {
            return Ok(());
        };
        let body = self.user_with_emails(user_id).await?;
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

    /// Tells a delegating homeserver the account's email addresses changed.
    ///
    /// Sends Synapse the account's addresses as they are now (`provision_user`
    /// with `set_emails`, or `unset_emails` when none are left), so a lost
    /// call is repaired by the next change. A failure is logged, not
    /// returned: the address was added or removed here either way, and this
    /// server, not Synapse, is what logins and password resets ask.
    pub async fn homeserver_emails_changed(&self, user_id: &str) {
        let Some(synapse) = &self.synapse else {
            return;
        };
        let body = match self.user_with_emails(user_id).await {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(
                    user_id,
                    error = e.error,
                    "could not list email addresses for Synapse"
                );
                return;
            }
        };
        if let Err(e) = synapse.send(&provision_user::Request::new(body)).await {
            tracing::error!(user_id, error = ?e, "Synapse's email addresses are behind: provision_user failed; the next change of this user's addresses repairs it");
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
        synapse
            .send(&upsert_device::Request::new(body))
            .await
            .map(drop)
            .map_err(|e| unavailable("upsert_device", &e))
    }

    /// Tells Synapse which devices the user has now, after some were logged
    /// out. A failure is logged, not returned: the tokens are already dead
    /// here (introspection says so within Synapse's cache time), and the next
    /// sync of the user brings Synapse's list back in step.
    pub async fn sync_devices(&self, user_id: &str) {
        let Some(synapse) = &self.synapse else {
            return;
        };
        let devices = match self.store.devices(user_id).await {
            Ok(devices) => devices.into_iter().map(|d| d.device_id).collect(),
            Err(e) => {
                tracing::error!(user_id, error = %e, "could not list devices for Synapse");
                return;
            }
        };
        let Ok(localpart) = localpart(user_id) else {
            return;
        };
        let request =
            sync_devices::Request::new(sync_devices::RequestBody::new(localpart, devices));
        if let Err(e) = synapse.send(&request).await {
            tracing::error!(user_id, error = ?e, "Synapse's devices are behind: sync_devices failed; the next logout of this user repairs it");
        }
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
        synapse
            .send(&delete_user::Request::new(body))
            .await
            .map(drop)
            .map_err(|e| unavailable("delete_user", &e))
    }

    /// Tells Synapse the account was locked or unlocked. Informational for
    /// Synapse (introspection already refuses a locked account's tokens), so
    /// a failure is logged, not returned.
    pub async fn tell_homeserver_locked(&self, user_id: &str, locked: bool) {
        let Some(synapse) = &self.synapse else {
            return;
        };
        let Ok(localpart) = localpart(user_id) else {
            return;
        };
        let mut body = provision_user::RequestBody::new(localpart);
        body.locked = Some(locked);
        if let Err(e) = synapse.send(&provision_user::Request::new(body)).await {
            tracing::error!(user_id, locked, error = ?e, "could not tell Synapse of the lock");
        }
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
            .send(&allow_cross_signing_reset::Request::new(body))
            .await
            .map(drop)
            .map_err(|e| unavailable("allow_cross_signing_reset", &e))
    }
}
