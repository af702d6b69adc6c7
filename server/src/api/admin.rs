//! Server administration over the API: whois, lock, suspend. Only callers flagged
//! as server admins (see the `user create --admin` command) may use it.

use matrix_api::client_server::admin::{
    get_admin_lock_user, get_admin_suspend_user, get_who_is, set_admin_lock_user,
    set_admin_suspend_user, AdminApi,
};
use matrix_api::runtime::{Context, MatrixError, UserId};

use crate::service::{internal, Caller, Server};
use crate::store::User;

impl Server {
    /// The account an admin request is about, or why it cannot proceed (the
    /// spec's 400 not local, 403 not allowed, 404 unknown).
    async fn admin_target(
        &self,
        caller: &Caller,
        user_id: &UserId,
        changing: bool,
    ) -> Result<User, MatrixError> {
        if !caller.is_admin {
            return Err(MatrixError::forbidden(
                "Only server administrators may do this",
            ));
        }
        // The router parsed the ID (its grammar); whose server it names is ours to check.
        if user_id.server_name() != self.server_name.as_str() {
            return Err(MatrixError::invalid_param("Not a user of this server"));
        }
        if changing && user_id.as_str() == caller.user_id {
            return Err(MatrixError::forbidden(
                "Administrators cannot change their own account this way",
            ));
        }
        match self.store.user(user_id.as_str()).await.map_err(internal)? {
            Some(u) if !u.deactivated => {
                if changing && u.is_admin {
                    return Err(MatrixError::forbidden(
                        "Administrators cannot lock or suspend other administrators",
                    ));
                }
                Ok(u)
            }
            _ => Err(MatrixError::not_found("No such user")),
        }
    }
}

impl AdminApi for Server {
    async fn get_who_is(
        &self,
        ctx: Context<Caller>,
        request: get_who_is::Request,
    ) -> Result<get_who_is::Response, MatrixError> {
        if !ctx.auth.is_admin && request.user_id != ctx.auth.user_id.as_str() {
            return Err(MatrixError::forbidden(
                "Only server administrators may look up other users",
            ));
        }
        if self
            .store
            .user(request.user_id.as_str())
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(MatrixError::not_found("No such user"));
        }
        let devices = self
            .store
            .devices(request.user_id.as_str())
            .await
            .map_err(internal)?;
        let devices = devices
            .into_iter()
            .map(|d| {
                let mut connection = get_who_is::ConnectionInfo::new();
                connection.ip = d.last_seen_ip;
                connection.last_seen = d.last_seen_ms;
                connection.user_agent = d.user_agent;
                let mut session = get_who_is::SessionInfo::new();
                session.connections = Some(vec![connection]);
                let mut device = get_who_is::DeviceInfo::new();
                device.sessions = Some(vec![session]);
                (d.device_id, device)
            })
            .collect();
        let mut body = get_who_is::OkBody::new();
        body.user_id = Some(request.user_id);
        body.devices = Some(devices);
        Ok(body.into())
    }

    async fn get_admin_suspend_user(
        &self,
        ctx: Context<Caller>,
        request: get_admin_suspend_user::Request,
    ) -> Result<get_admin_suspend_user::Response, MatrixError> {
        let u = self
            .admin_target(&ctx.auth, &request.user_id, false)
            .await?;
        Ok(get_admin_suspend_user::OkBody::new(u.suspended).into())
    }

    async fn set_admin_suspend_user(
        &self,
        ctx: Context<Caller>,
        request: set_admin_suspend_user::Request,
    ) -> Result<set_admin_suspend_user::Response, MatrixError> {
        let u = self.admin_target(&ctx.auth, &request.user_id, true).await?;
        let suspended = request.body.suspended;
        self.store
            .set_suspended(&u.user_id, suspended)
            .await
            .map_err(internal)?;
        tracing::info!(
            admin = ctx.auth.user_id,
            user_id = u.user_id,
            suspended,
            "suspension changed"
        );
        Ok(set_admin_suspend_user::OkBody::new(suspended).into())
    }

    async fn get_admin_lock_user(
        &self,
        ctx: Context<Caller>,
        request: get_admin_lock_user::Request,
    ) -> Result<get_admin_lock_user::Response, MatrixError> {
        let u = self
            .admin_target(&ctx.auth, &request.user_id, false)
            .await?;
        Ok(get_admin_lock_user::OkBody::new(u.locked).into())
    }

    async fn set_admin_lock_user(
        &self,
        ctx: Context<Caller>,
        request: set_admin_lock_user::Request,
    ) -> Result<set_admin_lock_user::Response, MatrixError> {
        let u = self.admin_target(&ctx.auth, &request.user_id, true).await?;
        let locked = request.body.locked;
        self.set_locked(&u.user_id, locked).await?;
        tracing::info!(
            admin = ctx.auth.user_id,
            user_id = u.user_id,
            locked,
            "lock changed"
        );
        Ok(set_admin_lock_user::OkBody::new(locked).into())
    }
}
