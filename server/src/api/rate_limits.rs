//! Which rate-limit bucket each operation takes from. The generated router
//! calls [`Authenticator::rate_limit`](matrix_api::runtime::Authenticator) for
//! exactly the operations the API description marks rate-limited (those that
//! document a `429`), so this server answers `429` nowhere else; the table
//! names a bucket for each of them, or none for cheap reads. Limits that need
//! the request body or the outcome (per account on login, per 3PID on
//! `requestToken`, failed passwords) stay in the handlers of those operations.

use matrix_api::account::account_management::{
    submit_account_deactivation, submit_account_login, submit_cross_signing_reset,
    submit_password_change, submit_threepid_addition,
};
use matrix_api::account::oauth::{
    authorize, register_client, request_device_authorization, request_token, revoke_token,
};
use matrix_api::account::oauth_device::submit_device_code;
use matrix_api::account::oauth_pages::{submit_login, submit_registration};
use matrix_api::account::validation::{confirm_validation, submit_validation_token};
use matrix_api::client_server::auth_fallback::submit_auth_fallback;
use matrix_api::client_server::{
    account_deactivation::deactivate_account,
    administrative_contact::{
        add_3pid, bind_3pid, request_token_to_3pid_email, request_token_to_3pid_msisdn,
    },
    capabilities::get_capabilities,
    login::{get_login_flows, login},
    login_token::generate_login_token,
    openid::request_open_id_token,
    password_management::{
        change_password, request_token_to_reset_password_email,
        request_token_to_reset_password_msisdn,
    },
    refresh::refresh,
    registration::{
        check_username_availability, register, request_token_to_register_email,
        request_token_to_register_msisdn,
    },
    registration_tokens::registration_token_validity,
    whoami::get_token_owner,
};
use matrix_api::runtime::{MatrixError, Metadata, RequestInfo};

use crate::ratelimit::Action;
use crate::service::{Caller, Server};

/// Whose bucket an operation's requests take from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    /// The client's address.
    Address,
    /// The signed-in caller (the address when there is none); admins and
    /// exempt users pass.
    Caller,
}

/// Every rate-limited operation and its bucket (`None`: the spec allows a
/// limit, this server sets none, as Synapse does for these cheap reads).
static BUCKETS: &[(&Metadata, Option<(Action, By)>)] = &[
    (
        &register::METADATA,
        Some((Action::Registration, By::Address)),
    ),
    (
        &check_username_availability::METADATA,
        Some((Action::Availability, By::Address)),
    ),
    (
        &registration_token_validity::METADATA,
        Some((Action::Availability, By::Address)),
    ),
    (&login::METADATA, Some((Action::LoginAddress, By::Address))),
    (&refresh::METADATA, Some((Action::Refresh, By::Address))),
    (
        &generate_login_token::METADATA,
        Some((Action::AccountChanges, By::Caller)),
    ),
    (
        &change_password::METADATA,
        Some((Action::AccountChanges, By::Caller)),
    ),
    (
        &deactivate_account::METADATA,
        Some((Action::AccountChanges, By::Caller)),
    ),
    (
        &add_3pid::METADATA,
        Some((Action::AccountChanges, By::Caller)),
    ),
    (
        &bind_3pid::METADATA,
        Some((Action::AccountChanges, By::Caller)),
    ),
    (
        &request_open_id_token::METADATA,
        Some((Action::Openid, By::Caller)),
    ),
    (
        &request_token_to_register_email::METADATA,
        Some((Action::RequestTokenAddress, By::Address)),
    ),
    (
        &request_token_to_register_msisdn::METADATA,
        Some((Action::RequestTokenAddress, By::Address)),
    ),
    (
        &request_token_to_reset_password_email::METADATA,
        Some((Action::RequestTokenAddress, By::Address)),
    ),
    (
        &request_token_to_reset_password_msisdn::METADATA,
        Some((Action::RequestTokenAddress, By::Address)),
    ),
    (
        &request_token_to_3pid_email::METADATA,
        Some((Action::RequestTokenAddress, By::Address)),
    ),
    (
        &request_token_to_3pid_msisdn::METADATA,
        Some((Action::RequestTokenAddress, By::Address)),
    ),
    (
        &submit_validation_token::METADATA,
        Some((Action::SubmitToken, By::Address)),
    ),
    (
        &confirm_validation::METADATA,
        Some((Action::SubmitToken, By::Address)),
    ),
    (
        &submit_auth_fallback::METADATA,
        Some((Action::SubmitToken, By::Address)),
    ),
    (
        &register_client::METADATA,
        Some((Action::OAuthClients, By::Address)),
    ),
    // A device login starts with a registration too: the same bucket
    // bounds how fast one address starts logins, whatever their grant.
    (
        &request_device_authorization::METADATA,
        Some((Action::OAuthClients, By::Address)),
    ),
    (
        &request_token::METADATA,
        Some((Action::Refresh, By::Address)),
    ),
    // Cheap, and each is followed by a limited step.
    (&authorize::METADATA, None),
    (&revoke_token::METADATA, None),
    // The pages limit themselves, to answer with a page rather than JSON.
    (&submit_login::METADATA, None),
    (&submit_registration::METADATA, None),
    (&submit_account_login::METADATA, None),
    (&submit_password_change::METADATA, None),
    (&submit_threepid_addition::METADATA, None),
    (&submit_account_deactivation::METADATA, None),
    (&submit_cross_signing_reset::METADATA, None),
    (&submit_device_code::METADATA, None),
    (&get_capabilities::METADATA, None),
    (&get_login_flows::METADATA, None),
    (&get_token_owner::METADATA, None),
];

fn bucket(operation: &Metadata) -> Option<(Action, By)> {
    BUCKETS
        .iter()
        .find(|(op, _)| std::ptr::eq(*op, operation))
        .and_then(|(_, bucket)| *bucket)
}

impl Server {
    /// The router's rate-limit hook (see the module docs).
    pub fn rate_limit_operation(
        &self,
        request: &RequestInfo,
        caller: Option<&Caller>,
    ) -> Result<(), MatrixError> {
        match (bucket(request.operation), caller) {
            (None, _) => Ok(()),
            (Some((action, By::Caller)), Some(caller)) => self.limit_caller(action, caller),
            (Some((action, _)), _) => self.limit_address(action, request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and the API description agree: an entry for every operation
    /// marked rate-limited, and none for another (the router would never ask).
    #[test]
    fn every_rate_limited_operation_has_an_entry_and_no_other_does() {
        // (An operation with a legacy `r0` path has two routes.)
        let mut marked: Vec<&str> = matrix_api::router::ROUTES
            .iter()
            .filter(|r| r.metadata.rate_limited)
            .map(|r| r.metadata.operation_id)
            .collect();
        let mut listed: Vec<&str> = BUCKETS.iter().map(|(op, _)| op.operation_id).collect();
        for op in BUCKETS.iter().map(|(op, _)| op) {
            assert!(op.rate_limited, "{} is not rate-limited", op.operation_id);
        }
        marked.sort();
        marked.dedup();
        listed.sort();
        assert_eq!(listed, marked);
    }
}
