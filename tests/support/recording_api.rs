//! A test double for the router tests: implements every route trait by recording
//! the typed request it received (as `Debug` text) and answering what the test
//! scripted for that operation with [`RecordingApi::reply`] (a success variant, a
//! documented error variant or a `MatrixError`), or else a `418 M_TEST_CALLED`
//! error naming the operation. Tokens are accepted when they start with `valid-`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use matrix_api::runtime::{Authenticator, Context, Credential, MatrixError};

/// The status of the answer to an operation the test scripted nothing for.
pub const UNSCRIPTED: http::StatusCode = http::StatusCode::IM_A_TEAPOT;

#[derive(Default)]
pub struct RecordingApi {
    /// `(operation, caller, request)` for every call that reached the implementation.
    pub calls: Mutex<Vec<(String, String, String)>>,
    /// Operation → its scripted `Result<Response, MatrixError>`, answered to every call.
    replies: Mutex<HashMap<String, Box<dyn Any + Send>>>,
}

impl RecordingApi {
    /// Answers every later call of `op` (the trait method's name) with `result`.
    /// `R` is that operation's `Response` type.
    pub fn reply<R: Clone + Send + 'static>(&self, op: &str, result: Result<R, MatrixError>) {
        self.replies
            .lock()
            .unwrap()
            .insert(op.to_string(), Box::new(result));
    }

    fn record<A: std::fmt::Debug, R: std::fmt::Debug>(
        &self,
        op: &str,
        ctx: &Context<A>,
        request: &R,
    ) {
        self.calls.lock().unwrap().push((
            op.to_string(),
            format!("{:?}", ctx.auth),
            format!("{request:?}"),
        ));
    }

    /// The scripted answer for `op`, or `418 M_TEST_CALLED` with the operation's name.
    fn answer<R: Clone + 'static>(&self, op: &str) -> Result<R, MatrixError> {
        match self.replies.lock().unwrap().get(op) {
            Some(reply) => reply
                .downcast_ref::<Result<R, MatrixError>>()
                .unwrap_or_else(|| panic!("the reply scripted for {op} has the wrong type"))
                .clone(),
            None => Err(MatrixError::new(UNSCRIPTED, "M_TEST_CALLED", op)),
        }
    }

    pub fn last_call(&self) -> Option<(String, String, String)> {
        self.calls.lock().unwrap().last().cloned()
    }
}

impl Authenticator for RecordingApi {
    type Identity = String;

    async fn authenticate(&self, credential: Credential<'_>) -> Result<String, MatrixError> {
        match credential.token.strip_prefix("valid-") {
            Some(user) => Ok(format!("{}:{user}", credential.scheme)),
            None => Err(MatrixError::unknown_token(false)),
        }
    }
}

impl matrix_api::client_server::account_deactivation::AccountDeactivationApi for RecordingApi {
    async fn deactivate_account(
        &self,
        ctx: Context<Option<String>>,
        request: matrix_api::client_server::account_deactivation::deactivate_account::Request,
    ) -> Result<
        matrix_api::client_server::account_deactivation::deactivate_account::Response,
        MatrixError,
    > {
        self.record("deactivate_account", &ctx, &request);
        self.answer("deactivate_account")
    }
}

impl matrix_api::client_server::admin::AdminApi for RecordingApi {
    async fn get_who_is(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::admin::get_who_is::Request,
    ) -> Result<matrix_api::client_server::admin::get_who_is::Response, MatrixError> {
        self.record("get_who_is", &ctx, &request);
        self.answer("get_who_is")
    }

    async fn get_admin_suspend_user(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::admin::get_admin_suspend_user::Request,
    ) -> Result<matrix_api::client_server::admin::get_admin_suspend_user::Response, MatrixError>
    {
        self.record("get_admin_suspend_user", &ctx, &request);
        self.answer("get_admin_suspend_user")
    }

    async fn set_admin_suspend_user(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::admin::set_admin_suspend_user::Request,
    ) -> Result<matrix_api::client_server::admin::set_admin_suspend_user::Response, MatrixError>
    {
        self.record("set_admin_suspend_user", &ctx, &request);
        self.answer("set_admin_suspend_user")
    }

    async fn get_admin_lock_user(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::admin::get_admin_lock_user::Request,
    ) -> Result<matrix_api::client_server::admin::get_admin_lock_user::Response, MatrixError> {
        self.record("get_admin_lock_user", &ctx, &request);
        self.answer("get_admin_lock_user")
    }

    async fn set_admin_lock_user(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::admin::set_admin_lock_user::Request,
    ) -> Result<matrix_api::client_server::admin::set_admin_lock_user::Response, MatrixError> {
        self.record("set_admin_lock_user", &ctx, &request);
        self.answer("set_admin_lock_user")
    }
}

impl matrix_api::client_server::administrative_contact::AdministrativeContactApi for RecordingApi {
    async fn get_account_3pids(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::administrative_contact::get_account_3pids::Request,
    ) -> Result<
        matrix_api::client_server::administrative_contact::get_account_3pids::Response,
        MatrixError,
    > {
        self.record("get_account_3pids", &ctx, &request);
        self.answer("get_account_3pids")
    }

    async fn post_3pids(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::administrative_contact::post_3pids::Request,
    ) -> Result<matrix_api::client_server::administrative_contact::post_3pids::Response, MatrixError>
    {
        self.record("post_3pids", &ctx, &request);
        self.answer("post_3pids")
    }

    async fn add_3pid(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::administrative_contact::add_3pid::Request,
    ) -> Result<matrix_api::client_server::administrative_contact::add_3pid::Response, MatrixError>
    {
        self.record("add_3pid", &ctx, &request);
        self.answer("add_3pid")
    }

    async fn bind_3pid(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::administrative_contact::bind_3pid::Request,
    ) -> Result<matrix_api::client_server::administrative_contact::bind_3pid::Response, MatrixError>
    {
        self.record("bind_3pid", &ctx, &request);
        self.answer("bind_3pid")
    }

    async fn delete_3pid_from_account(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::administrative_contact::delete_3pid_from_account::Request,
    ) -> Result<
        matrix_api::client_server::administrative_contact::delete_3pid_from_account::Response,
        MatrixError,
    > {
        self.record("delete_3pid_from_account", &ctx, &request);
        self.answer("delete_3pid_from_account")
    }

    async fn unbind_3pid_from_account(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::administrative_contact::unbind_3pid_from_account::Request,
    ) -> Result<
        matrix_api::client_server::administrative_contact::unbind_3pid_from_account::Response,
        MatrixError,
    > {
        self.record("unbind_3pid_from_account", &ctx, &request);
        self.answer("unbind_3pid_from_account")
    }

    async fn request_token_to_3pid_email(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::administrative_contact::request_token_to_3pid_email::Request,
    ) -> Result<
        matrix_api::client_server::administrative_contact::request_token_to_3pid_email::Response,
        MatrixError,
    > {
        self.record("request_token_to_3pid_email", &ctx, &request);
        self.answer("request_token_to_3pid_email")
    }

    async fn request_token_to_3pid_msisdn(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::administrative_contact::request_token_to_3pid_msisdn::Request,
    ) -> Result<
        matrix_api::client_server::administrative_contact::request_token_to_3pid_msisdn::Response,
        MatrixError,
    > {
        self.record("request_token_to_3pid_msisdn", &ctx, &request);
        self.answer("request_token_to_3pid_msisdn")
    }
}

impl matrix_api::client_server::capabilities::CapabilitiesApi for RecordingApi {
    async fn get_capabilities(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::capabilities::get_capabilities::Request,
    ) -> Result<matrix_api::client_server::capabilities::get_capabilities::Response, MatrixError>
    {
        self.record("get_capabilities", &ctx, &request);
        self.answer("get_capabilities")
    }
}

impl matrix_api::client_server::login::LoginApi for RecordingApi {
    async fn get_login_flows(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::login::get_login_flows::Request,
    ) -> Result<matrix_api::client_server::login::get_login_flows::Response, MatrixError> {
        self.record("get_login_flows", &ctx, &request);
        self.answer("get_login_flows")
    }

    async fn login(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::login::login::Request,
    ) -> Result<matrix_api::client_server::login::login::Response, MatrixError> {
        self.record("login", &ctx, &request);
        self.answer("login")
    }
}

impl matrix_api::client_server::login_token::LoginTokenApi for RecordingApi {
    async fn generate_login_token(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::login_token::generate_login_token::Request,
    ) -> Result<matrix_api::client_server::login_token::generate_login_token::Response, MatrixError>
    {
        self.record("generate_login_token", &ctx, &request);
        self.answer("generate_login_token")
    }
}

impl matrix_api::client_server::logout::LogoutApi for RecordingApi {
    async fn logout(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::logout::logout::Request,
    ) -> Result<matrix_api::client_server::logout::logout::Response, MatrixError> {
        self.record("logout", &ctx, &request);
        self.answer("logout")
    }

    async fn logout_all(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::logout::logout_all::Request,
    ) -> Result<matrix_api::client_server::logout::logout_all::Response, MatrixError> {
        self.record("logout_all", &ctx, &request);
        self.answer("logout_all")
    }
}

impl matrix_api::client_server::openid::ClientServerOpenidApi for RecordingApi {
    async fn request_open_id_token(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::openid::request_open_id_token::Request,
    ) -> Result<matrix_api::client_server::openid::request_open_id_token::Response, MatrixError>
    {
        self.record("request_open_id_token", &ctx, &request);
        self.answer("request_open_id_token")
    }
}

impl matrix_api::client_server::password_management::PasswordManagementApi for RecordingApi {
    async fn change_password(
        &self,
        ctx: Context<Option<String>>,
        request: matrix_api::client_server::password_management::change_password::Request,
    ) -> Result<
        matrix_api::client_server::password_management::change_password::Response,
        MatrixError,
    > {
        self.record("change_password", &ctx, &request);
        self.answer("change_password")
    }

    async fn request_token_to_reset_password_email(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::password_management::request_token_to_reset_password_email::Request,
    ) -> Result<matrix_api::client_server::password_management::request_token_to_reset_password_email::Response, MatrixError>{
        self.record("request_token_to_reset_password_email", &ctx, &request);
        self.answer("request_token_to_reset_password_email")
    }

    async fn request_token_to_reset_password_msisdn(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::password_management::request_token_to_reset_password_msisdn::Request,
    ) -> Result<matrix_api::client_server::password_management::request_token_to_reset_password_msisdn::Response, MatrixError>{
        self.record("request_token_to_reset_password_msisdn", &ctx, &request);
        self.answer("request_token_to_reset_password_msisdn")
    }
}

impl matrix_api::client_server::refresh::RefreshApi for RecordingApi {
    async fn refresh(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::refresh::refresh::Request,
    ) -> Result<matrix_api::client_server::refresh::refresh::Response, MatrixError> {
        self.record("refresh", &ctx, &request);
        self.answer("refresh")
    }
}

impl matrix_api::client_server::registration::RegistrationApi for RecordingApi {
    async fn register(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::registration::register::Request,
    ) -> Result<matrix_api::client_server::registration::register::Response, MatrixError> {
        self.record("register", &ctx, &request);
        self.answer("register")
    }

    async fn request_token_to_register_email(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::registration::request_token_to_register_email::Request,
    ) -> Result<
        matrix_api::client_server::registration::request_token_to_register_email::Response,
        MatrixError,
    > {
        self.record("request_token_to_register_email", &ctx, &request);
        self.answer("request_token_to_register_email")
    }

    async fn request_token_to_register_msisdn(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::registration::request_token_to_register_msisdn::Request,
    ) -> Result<
        matrix_api::client_server::registration::request_token_to_register_msisdn::Response,
        MatrixError,
    > {
        self.record("request_token_to_register_msisdn", &ctx, &request);
        self.answer("request_token_to_register_msisdn")
    }

    async fn check_username_availability(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::registration::check_username_availability::Request,
    ) -> Result<
        matrix_api::client_server::registration::check_username_availability::Response,
        MatrixError,
    > {
        self.record("check_username_availability", &ctx, &request);
        self.answer("check_username_availability")
    }
}

impl matrix_api::client_server::registration_tokens::RegistrationTokensApi for RecordingApi {
    async fn registration_token_validity(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::registration_tokens::registration_token_validity::Request,
    ) -> Result<
        matrix_api::client_server::registration_tokens::registration_token_validity::Response,
        MatrixError,
    > {
        self.record("registration_token_validity", &ctx, &request);
        self.answer("registration_token_validity")
    }
}

impl matrix_api::client_server::versions::VersionsApi for RecordingApi {
    async fn get_versions(
        &self,
        ctx: Context<Option<String>>,
        request: matrix_api::client_server::versions::get_versions::Request,
    ) -> Result<matrix_api::client_server::versions::get_versions::Response, MatrixError> {
        self.record("get_versions", &ctx, &request);
        self.answer("get_versions")
    }
}

impl matrix_api::client_server::wellknown::WellknownApi for RecordingApi {
    async fn get_wellknown(
        &self,
        ctx: Context<()>,
        request: matrix_api::client_server::wellknown::get_wellknown::Request,
    ) -> Result<matrix_api::client_server::wellknown::get_wellknown::Response, MatrixError> {
        self.record("get_wellknown", &ctx, &request);
        self.answer("get_wellknown")
    }
}

impl matrix_api::client_server::whoami::WhoamiApi for RecordingApi {
    async fn get_token_owner(
        &self,
        ctx: Context<String>,
        request: matrix_api::client_server::whoami::get_token_owner::Request,
    ) -> Result<matrix_api::client_server::whoami::get_token_owner::Response, MatrixError> {
        self.record("get_token_owner", &ctx, &request);
        self.answer("get_token_owner")
    }
}

impl matrix_api::server_server::openid::ServerServerOpenidApi for RecordingApi {
    async fn exchange_open_id_token(
        &self,
        ctx: Context<()>,
        request: matrix_api::server_server::openid::exchange_open_id_token::Request,
    ) -> Result<matrix_api::server_server::openid::exchange_open_id_token::Response, MatrixError>
    {
        self.record("exchange_open_id_token", &ctx, &request);
        self.answer("exchange_open_id_token")
    }
}
