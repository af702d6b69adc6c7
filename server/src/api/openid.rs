//! OpenID: tokens a user hands to a third party, which checks them at the
//! federation userinfo endpoint. They authenticate nothing else.

use matrix_api::client_server::openid::{request_open_id_token, ClientServerOpenidApi};
use matrix_api::runtime::{Context, MatrixError};
use matrix_api::server_server::openid::{exchange_open_id_token, ServerServerOpenidApi};
use matrix_api::types::OpenidToken;

use crate::crypto;
use crate::service::{internal, Caller, Server};
use crate::store::now_ms;

impl ClientServerOpenidApi for Server {
    async fn request_open_id_token(
        &self,
        ctx: Context<Caller>,
        request: request_open_id_token::Request,
    ) -> Result<request_open_id_token::Response, MatrixError> {
        if request.user_id != ctx.auth.user_id {
            return Err(MatrixError::forbidden(
                "You can only request OpenID tokens for yourself",
            ));
        }
        let token = crypto::new_token("moi");
        let lifetime = self.config.tokens.openid_lifetime_secs as i64;
        self.store
            .create_openid_token(
                &crypto::token_hash(&token),
                &ctx.auth.user_id,
                now_ms() + lifetime * 1000,
            )
            .await
            .map_err(internal)?;
        let server_name = self.config.server_name.clone();
        let body = OpenidToken::new(token, "Bearer".into(), server_name, lifetime);
        Ok(body.into())
    }
}

impl ServerServerOpenidApi for Server {
    async fn exchange_open_id_token(
        &self,
        _ctx: Context<()>,
        request: exchange_open_id_token::Request,
    ) -> Result<exchange_open_id_token::Response, MatrixError> {
        match self
            .store
            .openid_token_owner(&crypto::token_hash(&request.access_token))
            .await
            .map_err(internal)?
        {
            Some(sub) => Ok(exchange_open_id_token::OkBody::new(sub).into()),
            None => Err(MatrixError::unknown_token(false)),
        }
    }
}
