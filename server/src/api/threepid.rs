//! Third-party identifiers on the account: requestToken starts a validation
//! (`validation.rs`; a medium the server does not send answers
//! `M_THREEPID_MEDIUM_NOT_SUPPORTED`), adding binds a validated session of the
//! caller's client secret, deleting removes one, listing shows what the account
//! has. After an address is added or removed, a delegating homeserver is told
//! ([`Server::tell_homeserver`]).

use http::StatusCode;
use matrix_api::client_server::administrative_contact::{
    add_3pid, bind_3pid, delete_3pid_from_account, get_account_3pids, post_3pids,
    request_token_to_3pid_email, request_token_to_3pid_msisdn, unbind_3pid_from_account,
    AdministrativeContactApi,
};
use matrix_api::runtime::{Context, MatrixError};
use matrix_api::types;

use crate::service::{internal, Caller, Server};
use crate::store::HomeserverPart;
use crate::uia::{Uia, UiaSpec, PASSWORD};
use crate::validation::{stored_form, Purpose};

impl AdministrativeContactApi for Server {
    async fn get_account_3pids(
        &self,
        ctx: Context<Caller>,
        _request: get_account_3pids::Request,
    ) -> Result<get_account_3pids::Response, MatrixError> {
        let threepids = self
            .store
            .threepids(&ctx.auth.user_id)
            .await
            .map_err(internal)?;
        let threepids = threepids
            .into_iter()
            .map(|t| {
                get_account_3pids::ThirdPartyIdentifier::new(
                    types::Medium::from(t.medium.as_str()),
                    t.address,
                    t.validated_ms,
                    t.added_ms,
                )
            })
            .collect();
        let mut body = get_account_3pids::OkBody::new();
        body.threepids = Some(threepids);
        Ok(body.into())
    }

    /// Deprecated: binds an address validated with `three_pid_creds`. This
    /// server validates addresses itself, so the credentials are of a session
    /// it holds (the identity server named in them is not asked).
    async fn post_3pids(
        &self,
        ctx: Context<Caller>,
        request: post_3pids::Request,
    ) -> Result<post_3pids::Response, MatrixError> {
        let creds = &request.body.three_pid_creds;
        self.bind_own_validated(&ctx.auth.user_id, &creds.sid, &creds.client_secret)
            .await?;
        self.tell_homeserver(&ctx.auth.user_id, HomeserverPart::Emails)
            .await;
        Ok(post_3pids::Response::Ok(Default::default()))
    }

    async fn add_3pid(
        &self,
        ctx: Context<Caller>,
        request: add_3pid::Request,
    ) -> Result<add_3pid::Response, MatrixError> {
        let body = &request.body;
        // Interactive auth first: whether the 3PID session is validated and the
        // caller's is not something to tell an unauthenticated request.
        let spec = UiaSpec {
            operation: &add_3pid::METADATA,
            binding: &[&body.client_secret, &body.sid],
            user_id: Some(&ctx.auth.user_id),
            via_oauth: ctx.auth.via_oauth,
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
        self.bind_own_validated(&ctx.auth.user_id, &body.sid, &body.client_secret)
            .await?;
        self.tell_homeserver(&ctx.auth.user_id, HomeserverPart::Emails)
            .await;
        self.complete_uia(session, &ctx.auth.user_id).await?;
        Ok(add_3pid::Response::Ok(Default::default()))
    }

    async fn bind_3pid(
        &self,
        _ctx: Context<Caller>,
        _request: bind_3pid::Request,
    ) -> Result<bind_3pid::Response, MatrixError> {
        Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_SERVER_NOT_TRUSTED",
            "This server trusts no identity server",
        ))
    }

    async fn delete_3pid_from_account(
        &self,
        ctx: Context<Caller>,
        request: delete_3pid_from_account::Request,
    ) -> Result<delete_3pid_from_account::Response, MatrixError> {
        // The spec: a suspended user may add contact addresses, not remove them.
        if ctx.auth.suspended {
            return Err(MatrixError::new(
                StatusCode::FORBIDDEN,
                "M_USER_SUSPENDED",
                "You cannot remove contact addresses while suspended",
            ));
        }
        let b = &request.body;
        // Addresses are stored normalised; the client may write one otherwise.
        let address = stored_form(b.medium.as_str(), &b.address);
        self.store
            .delete_threepid(&ctx.auth.user_id, b.medium.as_str(), &address)
            .await
            .map_err(internal)?;
        self.tell_homeserver(&ctx.auth.user_id, HomeserverPart::Emails)
            .await;
        let unbind = types::IdServerUnbindResult::NoSupport;
        Ok(delete_3pid_from_account::OkBody::new(unbind).into())
    }

    async fn unbind_3pid_from_account(
        &self,
        _ctx: Context<Caller>,
        _request: unbind_3pid_from_account::Request,
    ) -> Result<unbind_3pid_from_account::Response, MatrixError> {
        let unbind = types::IdServerUnbindResult::NoSupport;
        Ok(unbind_3pid_from_account::OkBody::new(unbind).into())
    }

    async fn request_token_to_3pid_email(
        &self,
        _ctx: Context<()>,
        request: request_token_to_3pid_email::Request,
    ) -> Result<request_token_to_3pid_email::Response, MatrixError> {
        self.request_email_token(Purpose::AddThreepid, &request.body)
            .await
            .map(Into::into)
    }

    async fn request_token_to_3pid_msisdn(
        &self,
        _ctx: Context<()>,
        request: request_token_to_3pid_msisdn::Request,
    ) -> Result<request_token_to_3pid_msisdn::Response, MatrixError> {
        self.request_msisdn_token(Purpose::AddThreepid, &request.body)
            .await
            .map(Into::into)
    }
}
