//! The caller's own account: password change, deactivation, whoami.

use http::StatusCode;
use matrix_api::client_server::account_deactivation::{deactivate_account, AccountDeactivationApi};
use matrix_api::client_server::password_management::{
    change_password, request_token_to_reset_password_email, request_token_to_reset_password_msisdn,
    PasswordManagementApi,
};
use matrix_api::client_server::whoami::{get_token_owner, WhoamiApi};
use matrix_api::runtime::{Context, MatrixError};
use matrix_api::types;

use crate::service::{internal, known_user_id, Caller, Server};
use crate::store::{LogoutDevices, UiaSession};
use crate::uia::{Uia, UiaSpec, EMAIL, MSISDN, PASSWORD};
use crate::validation::{session_expired, Purpose};

impl Server {
    /// "Forgot password": the account whose address the session's email or
    /// phone stage proved, and that validation session's ID (ended once used).
    async fn password_reset_owner(
        &self,
        session: &UiaSession,
    ) -> Result<(String, String), MatrixError> {
        let proved = match &session.threepid_sid {
            Some(sid) => self
                .store
                .validated_threepid_by_sid(sid)
                .await
                .map_err(internal)?,
            None => None,
        };
        let Some(proved) = proved else {
            return Err(session_expired());
        };
        let owner = self
            .store
            .threepid_owner(&proved.medium, &proved.address)
            .await
            .map_err(internal)?;
        match owner {
            Some(user_id) => Ok((user_id, proved.sid)),
            None => Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_THREEPID_NOT_FOUND",
                "No account has this address",
            )),
        }
    }
}

impl PasswordManagementApi for Server {
    /// With an access token, the caller proves their password; without one
    /// ("forgot password"), an email or phone stage proves an address and the
    /// account it is bound to gets the new password. That needs delivery.
    async fn change_password(
        &self,
        ctx: Context<Option<Caller>>,
        request: change_password::Request,
    ) -> Result<change_password::Response, MatrixError> {
        let caller = ctx.auth.as_ref();
        if caller.is_none() && self.mailer.is_none() && self.sms.is_none() {
            return Err(MatrixError::missing_token());
        }
        let body = &request.body;
        self.check_password_policy(&body.new_password)?;
        let flows = match caller {
            Some(_) => vec![vec![PASSWORD]],
            None => [(self.mailer.is_some(), EMAIL), (self.sms.is_some(), MSISDN)]
                .into_iter()
                .filter(|(on, _)| *on)
                .map(|(_, stage)| vec![stage])
                .collect(),
        };
        let spec = UiaSpec {
            operation: &change_password::METADATA,
            binding: &[
                &body.new_password,
                if body.logout_devices { "1" } else { "0" },
            ],
            user_id: caller.map(|c| c.user_id.as_str()),
            via_oauth: caller.is_some_and(|c| c.via_oauth),
            flows,
            request: &ctx.request,
            result_on_retry: false,
        };
        let session = match self
            .user_interactive_auth(&spec, body.auth.as_ref())
            .await?
        {
            Uia::Passed(s) => s,
            Uia::Challenge(c) => return Ok(c.into()),
        };
        let (user_id, logout, validation) = match caller {
            Some(c) => (
                c.user_id.clone(),
                body.logout_devices
                    .then_some(LogoutDevices::AllBut(c.device_id.clone())),
                None,
            ),
            None => {
                let (user_id, sid) = self.password_reset_owner(&session).await?;
                (
                    user_id,
                    body.logout_devices.then_some(LogoutDevices::All),
                    Some(sid),
                )
            }
        };
        let hash = self.hasher.hash(&body.new_password).await?;
        // Every browser session of the pages ends, whatever `logout_devices`
        // says of the devices.
        self.change_password(&user_id, &hash, logout, None).await?;
        if let Some(sid) = validation {
            self.store.end_validation(&sid).await.map_err(internal)?;
        }
        self.complete_uia(session, &user_id).await?;
        tracing::info!(user_id, reset = caller.is_none(), "password changed");
        Ok(change_password::Response::Ok(Default::default()))
    }

    async fn request_token_to_reset_password_email(
        &self,
        _ctx: Context<()>,
        request: request_token_to_reset_password_email::Request,
    ) -> Result<request_token_to_reset_password_email::Response, MatrixError> {
        self.request_email_token(Purpose::PasswordReset, &request.body)
            .await
            .map(Into::into)
    }

    async fn request_token_to_reset_password_msisdn(
        &self,
        _ctx: Context<()>,
        request: request_token_to_reset_password_msisdn::Request,
    ) -> Result<request_token_to_reset_password_msisdn::Response, MatrixError> {
        self.request_msisdn_token(Purpose::PasswordReset, &request.body)
            .await
            .map(Into::into)
    }
}

impl AccountDeactivationApi for Server {
    async fn deactivate_account(
        &self,
        ctx: Context<Option<Caller>>,
        request: deactivate_account::Request,
    ) -> Result<deactivate_account::Response, MatrixError> {
        let Some(caller) = ctx.auth else {
            return Err(MatrixError::missing_token());
        };
        let body = &request.body;
        let spec = UiaSpec {
            operation: &deactivate_account::METADATA,
            binding: &[if body.erase { "erase" } else { "keep" }],
            user_id: Some(&caller.user_id),
            via_oauth: caller.via_oauth,
            flows: vec![vec![PASSWORD]],
            request: &ctx.request,
            result_on_retry: false,
        };
        if let Uia::Challenge(c) = self
            .user_interactive_auth(&spec, body.auth.as_ref())
            .await?
        {
            return Ok(c.into());
        }
        // The deactivation deletes the session with the rest of the user's state.
        self.deactivate(&caller.user_id, body.erase).await?;
        tracing::info!(user_id = caller.user_id, erase = body.erase, "deactivated");
        // The account's 3PIDs went with it. This server never binds them at an
        // identity server, so there was nothing to unbind there: success.
        let unbind = types::IdServerUnbindResult::Success;
        Ok(deactivate_account::OkBody::new(unbind).into())
    }
}

impl WhoamiApi for Server {
    async fn get_token_owner(
        &self,
        ctx: Context<Caller>,
        _request: get_token_owner::Request,
    ) -> Result<get_token_owner::Response, MatrixError> {
        let mut body = get_token_owner::OkBody::new(known_user_id(&ctx.auth.user_id)?);
        body.device_id = Some(ctx.auth.device_id);
        body.is_guest = Some(ctx.auth.is_guest);
        Ok(body.into())
    }
}
