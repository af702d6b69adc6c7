//! The caller's own account: password change, deactivation, whoami.

use http::StatusCode;
use matrix_api::client_server::account_deactivation::{deactivate_account, AccountDeactivationApi};
use matrix_api::client_server::password_management::{
    change_password, request_token_to_reset_password_email, request_token_to_reset_password_msisdn,
    PasswordManagementApi,
};
use matrix_api::client_server::whoami::{get_token_owner, WhoamiApi};
use matrix_api::runtime::{Context, MatrixError, RequestInfo};
use matrix_api::types;

use crate::service::{internal, known_user_id, Caller, Server};
use crate::store::LogoutDevices;
use crate::uia::{Uia, UiaSpec, EMAIL, MSISDN, PASSWORD};
use crate::validation::{session_expired, Purpose};

impl Server {
    /// `POST /account/password` without a token: the email stage proves an
    /// address, and the account it is bound to gets the new password.
    async fn reset_password(
        &self,
        request: &RequestInfo,
        body: &change_password::RequestBody,
    ) -> Result<change_password::Response, MatrixError> {
        self.check_password_policy(&body.new_password)?;
        let spec = UiaSpec {
            operation: &change_password::METADATA,
            binding: &[
                &body.new_password,
                if body.logout_devices { "1" } else { "0" },
            ],
            user_id: None,
            flows: [(self.mailer.is_some(), EMAIL), (self.sms.is_some(), MSISDN)]
                .into_iter()
                .filter(|(on, _)| *on)
                .map(|(_, stage)| vec![stage])
                .collect(),
            request,
            result_on_retry: false,
        };
        let session = match self
            .user_interactive_auth(&spec, body.auth.as_ref())
            .await?
        {
            Uia::Passed(s) => s,
            Uia::Challenge(c) => return Ok(c.into()),
        };
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
        let Some(user_id) = owner else {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_THREEPID_NOT_FOUND",
                "No account has this address",
            ));
        };
        let hash = self.hasher.hash(&body.new_password).await?;
        let logout = body.logout_devices.then_some(LogoutDevices::All);
        self.store
            .change_password(&user_id, &hash, logout)
            .await
            .map_err(internal)?;
        self.store
            .end_validation(&proved.sid)
            .await
            .map_err(internal)?;
        self.complete_uia(session, &user_id).await?;
        tracing::info!(user_id, "password reset by email");
        Ok(change_password::Response::Ok(Default::default()))
    }
}

impl PasswordManagementApi for Server {
    async fn change_password(
        &self,
        ctx: Context<Option<Caller>>,
        request: change_password::Request,
    ) -> Result<change_password::Response, MatrixError> {
        // Without a token the caller proves an email address instead: "forgot
        // password". That needs email delivery.
        let Some(caller) = ctx.auth else {
            if self.mailer.is_none() && self.sms.is_none() {
                return Err(MatrixError::missing_token());
            }
            return self.reset_password(&ctx.request, &request.body).await;
        };
        let body = &request.body;
        self.check_password_policy(&body.new_password)?;
        let spec = UiaSpec {
            operation: &change_password::METADATA,
            binding: &[
                &body.new_password,
                if body.logout_devices { "1" } else { "0" },
            ],
            user_id: Some(&caller.user_id),
            flows: vec![vec![PASSWORD]],
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
        let hash = self.hasher.hash(&body.new_password).await?;
        let logout = body
            .logout_devices
            .then_some(LogoutDevices::AllBut(&caller.device_id));
        self.store
            .change_password(&caller.user_id, &hash, logout)
            .await
            .map_err(internal)?;
        self.complete_uia(session, &caller.user_id).await?;
        tracing::info!(user_id = caller.user_id, "password changed");
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
        self.store
            .deactivate(&caller.user_id, body.erase)
            .await
            .map_err(internal)?;
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
