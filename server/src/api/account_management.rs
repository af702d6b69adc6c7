//! The account management pages of the OAuth 2.0 API
//! (api/account/account_management.yaml): the server metadata's
//! `account_management_uri`, where a person sees their profile (user ID,
//! contact addresses, password), their devices, and deactivates the account.
//! The page shows what its `action` asks for (an unknown one: the profile);
//! each change is a form posted to its own address and answered `303` back to
//! the page with a `done` status the page puts into words.
//!
//! The pages need the browser session of the OAuth login pages (`oauth_pages.rs`,
//! whose cookies and helpers they share). Without one the browser goes to this
//! module's own login page, which is not tied to an authorisation request: it
//! carries where to go afterwards (`next`), and only the account page itself,
//! rebuilt from its parameters, is ever a destination (see [`next_location`]).
//!
//! Every form carries the CSRF value of the pages' double submit. Changing the
//! password and deactivating need the current password, checked under the
//! `password_failures` limit as an interactive-auth password stage is.
//!
//! Adding an email address (when the server sends email) is the registration
//! page's email stage on a signed-in account: the address is sent the usual
//! validation link ([`Server::request_email_for_page`]), the validation
//! session is kept for this browser session and its user
//! (`account_pending_threepids`, under the SHA-256 of the session's cookie),
//! the link's page leads to the waiting page (`/account/threepids/confirm`),
//! and its button binds the confirmed address ([`Server::bind_validated`]) and
//! tells a delegating homeserver ([`Server::tell_homeserver`]).
//!
//! With a delegating Synapse the profile also shows and changes the display
//! name, which is Synapse's ([`Server::homeserver_display_name`]), and the
//! page takes `org.matrix.cross_signing_reset`:
//! Synapse sends a client that wants to replace the account's cross-signing
//! identity here, and after the current password the page tells Synapse to
//! accept the new keys ([`Server::allow_cross_signing_reset`]).

use http::StatusCode;
use matrix_api::account::account_management::{
    show_account_login_page, show_account_page, show_threepid_confirmation_page,
    submit_account_deactivation, submit_account_login, submit_account_logout,
    submit_cross_signing_reset, submit_device_deletion, submit_display_name_change,
    submit_password_change, submit_threepid_addition, submit_threepid_confirmation,
    submit_threepid_removal, AccountManagementApi,
};
use matrix_api::runtime::{Context, Html, MatrixError, RequestInfo};
use matrix_api::types::AccountManagementAction;
use serde::Serialize;

use super::oauth::ACCOUNT_BASE;
use super::oauth_pages::{CSRF_COOKIE, SESSION_COOKIE};
use super::oauth_registration::address_refusal;
use super::pages::{cookie, csrf_matches, retry_after_secs};
use crate::ratelimit::{Action, Key};
use crate::service::{internal, Server};
use crate::store::{now_ms, Device, HomeserverPart, LogoutDevices, PendingThreepid};
use crate::validation::{normalise_email, stored_form, Purpose};

/// The actions the page takes (`account_management_actions_supported`).
///
/// `org.matrix.cross_signing_reset` only when a homeserver delegates to this
/// server (`delegating`): cross-signing keys live on the homeserver, and the
/// page's approval is what a delegating Synapse asks for. On its own this
/// server keeps no such keys and offers no `m.oauth` stage, so advertising it
/// would send a client's "reset your identity" to a dead end; a client that
/// asks for it anyway gets the profile page, as for any unknown action.
pub(super) fn supported_actions(delegating: bool) -> Vec<AccountManagementAction> {
    let mut actions = vec![
        AccountManagementAction::OrgMatrixProfile,
        AccountManagementAction::OrgMatrixDevicesList,
        AccountManagementAction::OrgMatrixDeviceView,
        AccountManagementAction::OrgMatrixDeviceDelete,
        AccountManagementAction::OrgMatrixAccountDeactivate,
    ];
    if delegating {
        actions.push(AccountManagementAction::OrgMatrixCrossSigningReset);
    }
    actions
}

/// The account management page (`account_management_uri`, without the host).
pub(super) fn account_page() -> String {
    format!("{ACCOUNT_BASE}/account")
}

/// The account page for `action` and `device_id`, saying `done`.
fn account_location(action: Option<&str>, device_id: Option<&str>, done: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("action", action), ("device_id", device_id), ("done", done)] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    match query.finish() {
        q if q.is_empty() => account_page(),
        q => format!("{}?{q}", account_page()),
    }
}

/// The account login page, going on to `next` (an [`account_location`]).
fn login_location(next: Option<&str>, done: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("next", next), ("done", done)] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    match query.finish() {
        q if q.is_empty() => format!("{ACCOUNT_BASE}/account/login"),
        q => format!("{ACCOUNT_BASE}/account/login?{q}"),
    }
}

/// Where the login page sends the browser once signed in: `next` when its
/// path is exactly the account page's, rebuilt from its `action` and
/// `device_id` (nothing else of it is kept); otherwise the profile page. So
/// the destination is always this server's account page, never another path,
/// host or scheme (`https://elsewhere`, `//elsewhere`, `/\elsewhere` and
/// `/_account/v1/account/../x` all end at the profile): no open redirect.
pub(super) fn next_location(next: Option<&str>) -> String {
    let Some(next) = next else {
        return account_page();
    };
    let (path, query) = next.split_once('?').unwrap_or((next, ""));
    if path != account_page() {
        return account_page();
    }
    let (mut action, mut device_id) = (None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "action" => action = Some(value.into_owned()),
            "device_id" => device_id = Some(value.into_owned()),
            _ => {}
        }
    }
    account_location(action.as_deref(), device_id.as_deref(), None)
}

/// What the page shows.
#[derive(Clone, Debug, PartialEq)]
enum View {
    Profile,
    Devices,
    Device(String),
    DeviceDelete(String),
    Deactivate,
    CrossSigningReset,
}

impl View {
    /// The view of `action` (the spec's names, and the MSC4191 names they
    /// replaced, which older clients send); a device action without a device
    /// shows the list, anything unknown (and the cross-signing reset when no
    /// homeserver is `delegating`) the profile.
    fn of(action: Option<&str>, device_id: Option<&str>, delegating: bool) -> View {
        let device = device_id.filter(|d| !d.is_empty()).map(str::to_string);
        let action = action.map(|a| match a {
            "org.matrix.sessions_list" => AccountManagementAction::OrgMatrixDevicesList,
            "org.matrix.session_view" => AccountManagementAction::OrgMatrixDeviceView,
            "org.matrix.session_end" => AccountManagementAction::OrgMatrixDeviceDelete,
            stable => AccountManagementAction::from(stable),
        });
        match action {
            Some(AccountManagementAction::OrgMatrixDevicesList) => View::Devices,
            Some(AccountManagementAction::OrgMatrixDeviceView) => {
                device.map_or(View::Devices, View::Device)
            }
            Some(AccountManagementAction::OrgMatrixDeviceDelete) => {
                device.map_or(View::Devices, View::DeviceDelete)
            }
            Some(AccountManagementAction::OrgMatrixAccountDeactivate) => View::Deactivate,
            Some(AccountManagementAction::OrgMatrixCrossSigningReset) if delegating => {
                View::CrossSigningReset
            }
            _ => View::Profile,
        }
    }
}

fn devices_location(done: Option<&str>) -> String {
    account_location(
        Some(AccountManagementAction::OrgMatrixDevicesList.as_str()),
        None,
        done,
    )
}

/// The page of the address waiting to be confirmed (the validation link's
/// `next_link`, and where the form that adds an address goes).
fn confirm_location() -> String {
    format!("{ACCOUNT_BASE}/account/threepids/confirm")
}

/// The cross-signing reset page, saying `done`.
fn cross_signing_reset_location(done: Option<&str>) -> String {
    account_location(
        Some(AccountManagementAction::OrgMatrixCrossSigningReset.as_str()),
        None,
        done,
    )
}

/// The `done` status of an allowed cross-signing reset: the page then says
/// so instead of showing its form.
const RESET_ALLOWED: &str = "cross_signing_reset_allowed";

fn deactivate_location() -> String {
    account_location(
        Some(AccountManagementAction::OrgMatrixAccountDeactivate.as_str()),
        None,
        None,
    )
}

/// The words for a `done` status; unknown values say nothing (the query is
/// never shown as it is).
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "password_changed" => "Your password was changed. Every device was signed out.",
        "device_deleted" => "The device was signed out.",
        "threepid_added" => "The address was added to your account.",
        "threepid_removed" => "The address was removed from your account.",
        "display_name_changed" => "Your display name was saved.",
        "signed_out" => "You signed out of this page.",
        "deactivated" => "Your account was deactivated.",
        _ => return None,
    })
}

/// A device as the pages show it.
#[derive(Serialize)]
struct DeviceView {
    device_id: String,
    name: String,
    last_seen: String,
    ip: Option<String>,
    user_agent: Option<String>,
    url: String,
    delete_url: String,
}

impl DeviceView {
    fn of(d: Device) -> DeviceView {
        let id = Some(d.device_id.as_str());
        DeviceView {
            url: account_location(
                Some(AccountManagementAction::OrgMatrixDeviceView.as_str()),
                id,
                None,
            ),
            delete_url: account_location(
                Some(AccountManagementAction::OrgMatrixDeviceDelete.as_str()),
                id,
                None,
            ),
            name: d
                .display_name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "Unnamed device".into()),
            last_seen: d.last_seen_ms.map_or_else(|| "never".into(), utc),
            ip: d.last_seen_ip,
            user_agent: d.user_agent,
            device_id: d.device_id,
        }
    }
}

/// A contact address as the profile shows it.
#[derive(Serialize)]
struct ThreepidView {
    medium: String,
    address: String,
    kind: &'static str,
    shown: String,
}

/// `ms` since the epoch as `2025-01-31 14:05 UTC` (days to a civil date as
/// in Howard Hinnant's `civil_from_days`).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        day_secs / 3600,
        day_secs % 3600 / 60
    )
}

/// What the profile's forms show again after a refusal.
#[derive(Default)]
struct ProfileForms<'a> {
    /// The display name the form was given, and why it was not saved.
    display_name: Option<(&'a str, &'a str)>,
    /// Why the password was not changed.
    password_error: Option<&'a str>,
    /// The address the "add an email address" form was given.
    email: &'a str,
    /// Why that address was not taken.
    email_error: Option<&'a str>,
}

/// Why the "add an email address" form sent no link.
enum NotSent {
    /// The address is refused: the profile again, saying this.
    Refused(String),
    /// Too many messages to the address: the page saying when to retry.
    TooMany(Html),
    /// The message could not be sent: the page saying so.
    Unavailable(Html),
}

/// Why a form was not carried out before it was looked at.
enum Refused {
    /// The CSRF value does not match: the page saying so (`403`).
    Forged(Html),
    /// No browser session: to the login page, coming back to `next`.
    SignedOut(String),
}

/// Each form's answer to a [`Refused`]: its `403` page, or its `303` to the
/// login page.
macro_rules! refused_answers {
    ($($form:ident),* $(,)?) => {$(
        impl From<Refused> for $form::Response {
            fn from(refused: Refused) -> Self {
                match refused {
                    Refused::Forged(page) => Self::Forbidden(page),
                    Refused::SignedOut(location) => Self::SeeOther { location },
                }
            }
        }
    )*};
}

refused_answers!(
    submit_password_change,
    submit_device_deletion,
    submit_threepid_removal,
    submit_threepid_addition,
    submit_threepid_confirmation,
    submit_display_name_change,
    submit_cross_signing_reset,
);

impl From<Refused> for submit_account_deactivation::Response {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Forged(page) => Self::Forbidden(page),
            Refused::SignedOut(location) => Self::SeeOther {
                location,
                set_cookie: None,
            },
        }
    }
}

impl Server {
    /// A page of these pages' own, with what every one of them shows.
    fn account_page_html(
        &self,
        template: &str,
        section: &str,
        user_id: &str,
        csrf: &str,
        notice: Option<&str>,
        extra: minijinja::Value,
    ) -> Result<Html, MatrixError> {
        let common = minijinja::context! {
            server_name => self.config.server_name,
            static_url => format!("{ACCOUNT_BASE}/static"),
            section,
            user_id,
            csrf,
            notice,
            profile_url => account_page(),
            devices_url => devices_location(None),
            deactivate_url => deactivate_location(),
            logout_action => format!("{ACCOUNT_BASE}/account/logout"),
        };
        self.page(template, minijinja::context! { ..extra, ..common })
    }

    /// The page saying why something could not be done, with the way back.
    fn account_message(&self, title: &str, message: &str, back: &str) -> Result<Html, MatrixError> {
        self.page(
            "pages/account_message.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                title,
                message,
                back_url => back,
            },
        )
    }

    fn forged_form_page(&self) -> Result<Html, MatrixError> {
        self.account_message(
            "Cannot continue",
            "This form did not come from this server's account pages. Open the page again and retry.",
            &account_page(),
        )
    }

    /// The page saying a limit was reached, from the limiter's `429`.
    fn too_many_page(&self, e: &MatrixError) -> Result<Html, MatrixError> {
        let seconds = retry_after_secs(e);
        self.account_message(
            "Too many attempts",
            &format!("Too many attempts. Try again in {seconds} seconds."),
            &account_page(),
        )
    }

    /// The checks every form passes first: its CSRF value, then the browser
    /// session (whose user it acts for).
    async fn form_user(
        &self,
        cookie_header: Option<&str>,
        csrf: &str,
        back: &str,
    ) -> Result<Result<String, Refused>, MatrixError> {
        if !csrf_matches(cookie_header, CSRF_COOKIE, csrf) {
            return Ok(Err(Refused::Forged(self.forged_form_page()?)));
        }
        match self.browser_user(cookie_header).await? {
            Some(user_id) => Ok(Ok(user_id)),
            None => Ok(Err(Refused::SignedOut(login_location(Some(back), None)))),
        }
    }

    /// Checks the current password before a sensitive change: `Ok(true)`
    /// when it is right, `Ok(false)` when wrong (counted in
    /// `password_failures`, per account and address, like a failed
    /// interactive-auth password stage), `Err` with the page when a limit
    /// (that one, or `account_changes` per account) is reached.
    async fn current_password(
        &self,
        info: &RequestInfo,
        user_id: &str,
        password: &str,
    ) -> Result<Result<bool, Html>, MatrixError> {
        let Some(user) = self.store.user(user_id).await.map_err(internal)? else {
            return Ok(Ok(false));
        };
        if !self.limiter.exempt(user_id, user.is_admin) {
            if let Err(e) = self
                .limiter
                .check(Action::AccountChanges, &[Key::User(user_id.to_string())])
            {
                return Ok(Err(self.too_many_page(&e)?));
            }
        }
        let keys: Vec<Key> = std::iter::once(Key::User(user_id.to_string()))
            .chain(self.client_key(info))
            .collect();
        let verified = self
            .verify_password(
                Action::PasswordFailures,
                &keys,
                Some(password),
                user.password_hash.as_deref(),
            )
            .await;
        match verified {
            Ok(verified) => Ok(Ok(verified)),
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => Ok(Err(self.too_many_page(&e)?)),
            Err(e) => Err(e),
        }
    }

    /// The profile: user ID, contact addresses, the address this browser
    /// session waits to add, the forms (with what `forms` says after a
    /// refusal).
    async fn profile_page(
        &self,
        user_id: &str,
        csrf: &str,
        notice: Option<&str>,
        cookie_header: Option<&str>,
        forms: ProfileForms<'_>,
    ) -> Result<Html, MatrixError> {
        let threepids: Vec<ThreepidView> = self
            .store
            .threepids(user_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|t| ThreepidView {
                kind: if t.medium == "msisdn" {
                    "Phone"
                } else {
                    "Email"
                },
                shown: if t.medium == "msisdn" {
                    format!("+{}", t.address)
                } else {
                    t.address.clone()
                },
                medium: t.medium,
                address: t.address,
            })
            .collect();
        let pending = self.pending_address(cookie_header, user_id).await?;
        // The name as it is on Synapse, unless the form was just refused.
        let (display_name, display_name_error, display_name_unknown) = match forms.display_name {
            Some((name, error)) => (Some(name.to_string()), Some(error), false),
            None if self.synapse.is_some() => match self.homeserver_display_name(user_id).await {
                Ok(name) => (name, None, false),
                Err(_) => (None, None, true),
            },
            None => (None, None, false),
        };
        self.account_page_html(
            "pages/account_profile.html",
            "profile",
            user_id,
            csrf,
            notice,
            minijinja::context! {
                threepids,
                password_error => forms.password_error,
                password_action => format!("{ACCOUNT_BASE}/account/password"),
                remove_action => format!("{ACCOUNT_BASE}/account/threepids/delete"),
                email_offered => self.email_offered(),
                email => forms.email,
                email_error => forms.email_error,
                add_email_action => format!("{ACCOUNT_BASE}/account/threepids/add"),
                pending_address => pending.map(|p| p.address),
                confirm_url => confirm_location(),
                display_name_offered => self.synapse.is_some(),
                display_name => display_name.unwrap_or_default(),
                display_name_error,
                display_name_unknown,
                display_name_action => format!("{ACCOUNT_BASE}/account/display_name"),
            },
        )
    }

    fn deactivate_page(
        &self,
        user_id: &str,
        csrf: &str,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        self.account_page_html(
            "pages/account_deactivate.html",
            "deactivate",
            user_id,
            csrf,
            None,
            minijinja::context! {
                error,
                deactivate_action => format!("{ACCOUNT_BASE}/account/deactivate"),
            },
        )
    }

    /// The cross-signing reset page: its form, or (`allowed`) the word that
    /// the app may go ahead.
    fn cross_signing_reset_page(
        &self,
        user_id: &str,
        csrf: &str,
        allowed: bool,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        self.account_page_html(
            "pages/account_cross_signing_reset.html",
            "profile",
            user_id,
            csrf,
            None,
            minijinja::context! {
                allowed,
                error,
                reset_action => format!("{ACCOUNT_BASE}/account/cross_signing_reset"),
            },
        )
    }

    /// One device of the user's, if it is signed in.
    async fn own_device(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Option<DeviceView>, MatrixError> {
        let devices = self.store.devices(user_id).await.map_err(internal)?;
        Ok(devices
            .into_iter()
            .find(|d| d.device_id == device_id)
            .map(DeviceView::of))
    }

    /// The address the browser session of `cookie_header` waits to add to
    /// `user_id`'s account, if any.
    async fn pending_address(
        &self,
        cookie_header: Option<&str>,
        user_id: &str,
    ) -> Result<Option<PendingThreepid>, MatrixError> {
        let Some(session) = cookie(cookie_header, SESSION_COOKIE) else {
            return Ok(None);
        };
        self.store
            .pending_threepid(session, user_id)
            .await
            .map_err(internal)
    }

    /// The waiting page of `pending` (with whether it is confirmed); `None`:
    /// nothing waits in this browser session.
    fn threepid_confirm_page(
        &self,
        user_id: &str,
        csrf: &str,
        pending: Option<(&PendingThreepid, bool)>,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        self.account_page_html(
            "pages/account_threepid_confirm.html",
            "profile",
            user_id,
            csrf,
            None,
            minijinja::context! {
                address => pending.map(|(p, _)| p.address.clone()),
                confirmed => pending.is_some_and(|(_, confirmed)| confirmed),
                error,
                confirm_action => confirm_location(),
            },
        )
    }

    /// The "add an email address" form: the address checked and sent its
    /// link, and kept for the browser session `session` of `user_id`.
    async fn start_email_addition(
        &self,
        user_id: &str,
        session: &str,
        email: &str,
    ) -> Result<Result<(), NotSent>, MatrixError> {
        let refused = |message: &str| Ok(Err(NotSent::Refused(message.to_string())));
        if !self.email_offered() {
            return refused("This server does not send email, so it cannot confirm an address.");
        }
        let Ok(address) = normalise_email(email) else {
            return refused("That is not an email address.");
        };
        let owner = self
            .store
            .threepid_owner("email", &address)
            .await
            .map_err(internal)?;
        if owner.as_deref() == Some(user_id) {
            return refused(&format!("{address} is already on your account."));
        }
        // A suspended account may add addresses (the spec); a locked or
        // deactivated one has no browser session, so never gets here.
        let next_link = format!("{}{}", self.public_base(), confirm_location());
        let sid = match self
            .request_email_for_page(Purpose::AddThreepid, &address, &next_link)
            .await
        {
            Ok(sid) => sid,
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                let seconds = retry_after_secs(&e);
                let page = self.account_message(
                    "Too many messages",
                    &format!("Too many emails to this address. Try again in {seconds} seconds."),
                    &account_page(),
                )?;
                return Ok(Err(NotSent::TooMany(page)));
            }
            Err(e) if e.status.is_server_error() => {
                let page = self.account_message(
                    "Cannot send the message",
                    &format!("{} Try again later.", e.error),
                    &account_page(),
                )?;
                return Ok(Err(NotSent::Unavailable(page)));
            }
            Err(e) => return refused(&address_refusal(&e)),
        };
        let lifetime_secs = self.config.email.validation_token_lifetime_secs;
        let pending = PendingThreepid {
            address,
            threepid_sid: sid,
        };
        self.store
            .set_pending_threepid(
                session,
                user_id,
                &pending,
                now_ms() + (lifetime_secs * 1000) as i64,
            )
            .await
            .map_err(internal)?;
        tracing::info!(user_id, "an address to add waits for its confirmation");
        Ok(Ok(()))
    }

    /// The profile again after the "add an email address" form was refused,
    /// with `email` in the field and why.
    async fn email_refused(
        &self,
        user_id: &str,
        csrf: &str,
        cookie_header: Option<&str>,
        email: &str,
        message: &str,
    ) -> Result<Html, MatrixError> {
        let forms = ProfileForms {
            email,
            email_error: Some(message),
            ..Default::default()
        };
        self.profile_page(user_id, csrf, None, cookie_header, forms)
            .await
    }

    fn login_form(
        &self,
        csrf: &str,
        next: &str,
        username: &str,
        notice: Option<&str>,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        self.page(
            "pages/account_login.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                action => format!("{ACCOUNT_BASE}/account/login"),
                csrf,
                next,
                username,
                notice,
                error,
            },
        )
    }

    /// The `Set-Cookie` that clears the browser session's cookie.
    fn cleared_session_cookie(&self) -> String {
        self.cookie_header(SESSION_COOKIE, "", "Lax", Some(0))
    }
}

impl AccountManagementApi for Server {
    async fn show_account_page(
        &self,
        _ctx: Context<()>,
        request: show_account_page::Request,
    ) -> Result<show_account_page::Response, MatrixError> {
        let cookie_header = request.cookie.as_deref();
        let (action, device_id) = (request.action.as_deref(), request.device_id.as_deref());
        let Some(user_id) = self.browser_user(cookie_header).await? else {
            let here = account_location(action, device_id, None);
            return Ok(show_account_page::Response::SeeOther {
                location: login_location(Some(&here), None),
            });
        };
        let (csrf, set_cookie) = self.page_csrf(cookie_header);
        let notice = notice(request.done.as_deref());
        let delegating = self.synapse.is_some();
        let body = match View::of(action, device_id, delegating) {
            View::Profile => {
                self.profile_page(&user_id, &csrf, notice, cookie_header, Default::default())
                    .await?
            }
            View::Devices => {
                let devices: Vec<DeviceView> = self
                    .store
                    .devices(&user_id)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .map(DeviceView::of)
                    .collect();
                self.account_page_html(
                    "pages/account_devices.html",
                    "devices",
                    &user_id,
                    &csrf,
                    notice,
                    minijinja::context! { devices },
                )?
            }
            View::Device(id) | View::DeviceDelete(id) => {
                let template = match View::of(action, device_id, delegating) {
                    View::DeviceDelete(_) => "pages/account_device_delete.html",
                    _ => "pages/account_device.html",
                };
                let Some(device) = self.own_device(&user_id, &id).await? else {
                    let page = self.account_message(
                        "No such device",
                        "This device is not signed in to your account (any more).",
                        &devices_location(None),
                    )?;
                    return Ok(show_account_page::Response::NotFound(page));
                };
                self.account_page_html(
                    template,
                    "devices",
                    &user_id,
                    &csrf,
                    notice,
                    minijinja::context! {
                        device,
                        delete_action => format!("{ACCOUNT_BASE}/account/devices/delete"),
                    },
                )?
            }
            View::Deactivate => self.deactivate_page(&user_id, &csrf, None)?,
            View::CrossSigningReset => {
                let allowed = request.done.as_deref() == Some(RESET_ALLOWED);
                self.cross_signing_reset_page(&user_id, &csrf, allowed, None)?
            }
        };
        Ok(show_account_page::Response::Ok { body, set_cookie })
    }

    async fn show_account_login_page(
        &self,
        _ctx: Context<()>,
        request: show_account_login_page::Request,
    ) -> Result<show_account_login_page::Response, MatrixError> {
        let next = next_location(request.next.as_deref());
        if self
            .browser_user(request.cookie.as_deref())
            .await?
            .is_some()
        {
            return Ok(show_account_login_page::Response::SeeOther { location: next });
        }
        let (csrf, set_cookie) = self.page_csrf(request.cookie.as_deref());
        let body = self.login_form(&csrf, &next, "", notice(request.done.as_deref()), None)?;
        Ok(show_account_login_page::Response::Ok { body, set_cookie })
    }

    async fn submit_account_login(
        &self,
        ctx: Context<()>,
        request: submit_account_login::Request,
    ) -> Result<submit_account_login::Response, MatrixError> {
        use submit_account_login::Response;
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            return Ok(Response::Forbidden(self.forged_form_page()?));
        }
        if let Err(e) = self
            .limiter
            .check(Action::LoginAddress, &self.address_keys(&ctx.request))
        {
            return Ok(Response::TooManyRequests(self.too_many_page(&e)?));
        }
        let next = next_location(b.next.as_deref());
        let user_id = self.resolve_user(b.username.trim()).ok();
        let checked = match self.check_login_password(user_id, &b.password).await {
            Ok(user) => user,
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                return Ok(Response::TooManyRequests(self.too_many_page(&e)?));
            }
            Err(e) => return Err(e),
        };
        let error = match &checked {
            None => Some("Wrong username or password."),
            Some(u) if u.deactivated => Some("This account has been deactivated."),
            Some(u) if u.locked => Some("This account has been locked."),
            Some(_) => None,
        };
        if let Some(error) = error {
            let page = self.login_form(&b.csrf, &next, &b.username, None, Some(error))?;
            return Ok(match checked {
                None => Response::Unauthorized(page),
                Some(_) => Response::Forbidden(page),
            });
        }
        let user_id = checked.map(|u| u.user_id).unwrap_or_default();
        let set_cookie = self.start_browser_session(&user_id).await?;
        tracing::info!(user_id, "signed in to the account pages");
        Ok(Response::SeeOther {
            location: next,
            set_cookie,
        })
    }

    async fn submit_account_logout(
        &self,
        _ctx: Context<()>,
        request: submit_account_logout::Request,
    ) -> Result<submit_account_logout::Response, MatrixError> {
        use submit_account_logout::Response;
        let cookie_header = request.cookie.as_deref();
        if !csrf_matches(cookie_header, CSRF_COOKIE, &request.body.csrf) {
            return Ok(Response::Forbidden(self.forged_form_page()?));
        }
        if let Some(session) = cookie(cookie_header, SESSION_COOKIE) {
            self.store
                .end_browser_session(session)
                .await
                .map_err(internal)?;
        }
        Ok(Response::SeeOther {
            location: login_location(None, Some("signed_out")),
            set_cookie: self.cleared_session_cookie(),
        })
    }

    async fn submit_password_change(
        &self,
        ctx: Context<()>,
        request: submit_password_change::Request,
    ) -> Result<submit_password_change::Response, MatrixError> {
        use submit_password_change::Response;
        let b = &request.body;
        let cookie_header = request.cookie.as_deref();
        let user_id = match self
            .form_user(cookie_header, &b.csrf, &account_page())
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        // The policy first: a weak new password costs no password check.
        if let Err(e) = self.check_password_policy(&b.new_password) {
            let forms = ProfileForms {
                password_error: Some(&e.error),
                ..Default::default()
            };
            let page = self
                .profile_page(&user_id, &b.csrf, None, cookie_header, forms)
                .await?;
            return Ok(Response::BadRequest(page));
        }
        match self
            .current_password(&ctx.request, &user_id, &b.current_password)
            .await?
        {
            Ok(true) => {}
            Ok(false) => {
                let forms = ProfileForms {
                    password_error: Some("Your current password is not the one you entered."),
                    ..Default::default()
                };
                let page = self
                    .profile_page(&user_id, &b.csrf, None, cookie_header, forms)
                    .await?;
                return Ok(Response::Unauthorized(page));
            }
            Err(page) => return Ok(Response::TooManyRequests(page)),
        }
        let hash = self.hasher.hash(&b.new_password).await?;
        // As `POST /account/password` does by default: every device is signed
        // out (this browser is none of them). Other browser sessions, which
        // the old password may have started, end; this one stays.
        let this_browser = cookie(cookie_header, SESSION_COOKIE);
        self.change_password(&user_id, &hash, Some(LogoutDevices::All), this_browser)
            .await?;
        tracing::info!(user_id, "password changed on the account page");
        Ok(Response::SeeOther {
            location: account_location(None, None, Some("password_changed")),
        })
    }

    async fn submit_device_deletion(
        &self,
        _ctx: Context<()>,
        request: submit_device_deletion::Request,
    ) -> Result<submit_device_deletion::Response, MatrixError> {
        use submit_device_deletion::Response;
        let b = &request.body;
        let back = account_location(
            Some(AccountManagementAction::OrgMatrixDeviceDelete.as_str()),
            Some(&b.device_id),
            None,
        );
        let user_id = match self
            .form_user(request.cookie.as_deref(), &b.csrf, &back)
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        self.log_out(&user_id, LogoutDevices::One(b.device_id.clone()))
            .await?;
        tracing::info!(
            user_id,
            device_id = b.device_id,
            "device signed out on the account page"
        );
        Ok(Response::SeeOther {
            location: devices_location(Some("device_deleted")),
        })
    }

    async fn submit_threepid_removal(
        &self,
        _ctx: Context<()>,
        request: submit_threepid_removal::Request,
    ) -> Result<submit_threepid_removal::Response, MatrixError> {
        use submit_threepid_removal::Response;
        let b = &request.body;
        let user_id = match self
            .form_user(request.cookie.as_deref(), &b.csrf, &account_page())
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        // As on `POST /account/3pid/delete`: a suspended account may add
        // contact addresses but not remove them.
        let suspended = self
            .store
            .user(&user_id)
            .await
            .map_err(internal)?
            .is_some_and(|u| u.suspended);
        if suspended {
            let page = self.account_message(
                "Cannot remove the address",
                "Your account is suspended: addresses cannot be removed from it now.",
                &account_page(),
            )?;
            return Ok(Response::Forbidden(page));
        }
        let address = stored_form(&b.medium, &b.address);
        self.store
            .delete_threepid(&user_id, &b.medium, &address)
            .await
            .map_err(internal)?;
        self.tell_homeserver(&user_id, HomeserverPart::Emails).await;
        tracing::info!(user_id, "contact address removed on the account page");
        Ok(Response::SeeOther {
            location: account_location(None, None, Some("threepid_removed")),
        })
    }

    async fn submit_threepid_addition(
        &self,
        ctx: Context<()>,
        request: submit_threepid_addition::Request,
    ) -> Result<submit_threepid_addition::Response, MatrixError> {
        use submit_threepid_addition::Response;
        let b = &request.body;
        let cookie_header = request.cookie.as_deref();
        let user_id = match self
            .form_user(cookie_header, &b.csrf, &account_page())
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        // As `requestToken` is limited per client address (and, inside, per
        // address mailed).
        if let Err(e) = self.limiter.check(
            Action::RequestTokenAddress,
            &self.address_keys(&ctx.request),
        ) {
            return Ok(Response::TooManyRequests(self.too_many_page(&e)?));
        }
        // `form_user` found the user by this cookie.
        let session = cookie(cookie_header, SESSION_COOKIE).unwrap_or_default();
        let message = match self
            .start_email_addition(&user_id, session, &b.email)
            .await?
        {
            Ok(()) => {
                return Ok(Response::SeeOther {
                    location: confirm_location(),
                })
            }
            Err(NotSent::TooMany(page)) => return Ok(Response::TooManyRequests(page)),
            Err(NotSent::Unavailable(page)) => return Ok(Response::ServiceUnavailable(page)),
            Err(NotSent::Refused(message)) => message,
        };
        let page = self
            .email_refused(&user_id, &b.csrf, cookie_header, &b.email, &message)
            .await?;
        Ok(Response::BadRequest(page))
    }

    async fn show_threepid_confirmation_page(
        &self,
        _ctx: Context<()>,
        request: show_threepid_confirmation_page::Request,
    ) -> Result<show_threepid_confirmation_page::Response, MatrixError> {
        let cookie_header = request.cookie.as_deref();
        let (csrf, set_cookie) = self.page_csrf(cookie_header);
        let body = match self.browser_user(cookie_header).await? {
            // The link opened in another browser (or after signing out).
            None => self.account_message(
                "Continue where you started",
                "If you just confirmed an email address, go back to the window where you entered it and continue there.",
                &account_page(),
            )?,
            Some(user_id) => match self.pending_address(cookie_header, &user_id).await? {
                Some(pending) => {
                    let confirmed = self.address_confirmed(&pending.threepid_sid).await?;
                    self.threepid_confirm_page(&user_id, &csrf, Some((&pending, confirmed)), None)?
                }
                None => self.threepid_confirm_page(&user_id, &csrf, None, None)?,
            },
        };
        Ok(show_threepid_confirmation_page::Response::Ok { body, set_cookie })
    }

    async fn submit_threepid_confirmation(
        &self,
        _ctx: Context<()>,
        request: submit_threepid_confirmation::Request,
    ) -> Result<submit_threepid_confirmation::Response, MatrixError> {
        use submit_threepid_confirmation::Response;
        let b = &request.body;
        let cookie_header = request.cookie.as_deref();
        let user_id = match self
            .form_user(cookie_header, &b.csrf, &account_page())
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        let Some(pending) = self.pending_address(cookie_header, &user_id).await? else {
            let page = self.threepid_confirm_page(&user_id, &b.csrf, None, None)?;
            return Ok(Response::BadRequest(page));
        };
        if !self.address_confirmed(&pending.threepid_sid).await? {
            let message = format!(
                "{} is not confirmed yet: follow the link in the message we sent first.",
                pending.address
            );
            let page = self.threepid_confirm_page(
                &user_id,
                &b.csrf,
                Some((&pending, false)),
                Some(&message),
            )?;
            return Ok(Response::BadRequest(page));
        }
        // Taken once: of two racing posts, one binds the address.
        let session = cookie(cookie_header, SESSION_COOKIE).unwrap_or_default();
        if !self
            .store
            .drop_pending_threepid(session, &user_id)
            .await
            .map_err(internal)?
        {
            let page = self.threepid_confirm_page(&user_id, &b.csrf, None, None)?;
            return Ok(Response::BadRequest(page));
        }
        let bound = match self.check_validated_free(&pending.threepid_sid).await {
            Ok(()) => self.bind_validated(&user_id, &pending.threepid_sid).await,
            Err(e) => Err(e),
        };
        if let Err(e) = bound {
            if e.status != StatusCode::BAD_REQUEST {
                return Err(e);
            }
            tracing::info!(user_id, errcode = e.errcode, "address not added");
            let page = self.account_message(
                "Cannot add the address",
                &format!("{} was not added: {}", pending.address, address_refusal(&e)),
                &account_page(),
            )?;
            return Ok(Response::BadRequest(page));
        }
        self.tell_homeserver(&user_id, HomeserverPart::Emails).await;
        tracing::info!(user_id, "email address added on the account page");
        Ok(Response::SeeOther {
            location: account_location(None, None, Some("threepid_added")),
        })
    }

    async fn submit_account_deactivation(
        &self,
        ctx: Context<()>,
        request: submit_account_deactivation::Request,
    ) -> Result<submit_account_deactivation::Response, MatrixError> {
        use submit_account_deactivation::Response;
        let b = &request.body;
        let user_id = match self
            .form_user(request.cookie.as_deref(), &b.csrf, &deactivate_location())
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        match self
            .current_password(&ctx.request, &user_id, &b.password)
            .await?
        {
            Ok(true) => {}
            Ok(false) => {
                let page =
                    self.deactivate_page(&user_id, &b.csrf, Some("That is not your password."))?;
                return Ok(Response::Unauthorized(page));
            }
            Err(page) => return Ok(Response::TooManyRequests(page)),
        }
        // Devices, tokens, contact addresses and browser sessions go with it.
        if let Err(e) = self.deactivate(&user_id, false).await {
            if e.status != http::StatusCode::SERVICE_UNAVAILABLE {
                return Err(e);
            }
            let page = self.deactivate_page(&user_id, &b.csrf, Some(&e.error))?;
            return Ok(Response::ServiceUnavailable(page));
        }
        tracing::info!(user_id, "deactivated on the account page");
        Ok(Response::SeeOther {
            location: login_location(None, Some("deactivated")),
            set_cookie: Some(self.cleared_session_cookie()),
        })
    }

    async fn submit_display_name_change(
        &self,
        _ctx: Context<()>,
        request: submit_display_name_change::Request,
    ) -> Result<submit_display_name_change::Response, MatrixError> {
        use submit_display_name_change::Response;
        if self.synapse.is_none() {
            return Err(crate::homeserver::not_delegating());
        }
        let b = &request.body;
        let cookie_header = request.cookie.as_deref();
        let user_id = match self
            .form_user(cookie_header, &b.csrf, &account_page())
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        let name = b.display_name.trim();
        let refused = |error: &'static str| ProfileForms {
            display_name: Some((name, error)),
            ..Default::default()
        };
        // Synapse's limit.
        if name.chars().count() > 256 {
            let forms = refused("A display name has at most 256 characters.");
            let page = self
                .profile_page(&user_id, &b.csrf, None, cookie_header, forms)
                .await?;
            return Ok(Response::BadRequest(page));
        }
        let name = Some(name).filter(|n| !n.is_empty());
        if let Err(e) = self.set_homeserver_display_name(&user_id, name).await {
            if e.status != http::StatusCode::SERVICE_UNAVAILABLE {
                return Err(e);
            }
            let forms = refused(
                "The homeserver could not be reached; the name was not saved. Try again later.",
            );
            let page = self
                .profile_page(&user_id, &b.csrf, None, cookie_header, forms)
                .await?;
            return Ok(Response::ServiceUnavailable(page));
        }
        tracing::info!(user_id, "display name changed on the account page");
        Ok(Response::SeeOther {
            location: account_location(None, None, Some("display_name_changed")),
        })
    }

    async fn submit_cross_signing_reset(
        &self,
        ctx: Context<()>,
        request: submit_cross_signing_reset::Request,
    ) -> Result<submit_cross_signing_reset::Response, MatrixError> {
        use submit_cross_signing_reset::Response;
        if self.synapse.is_none() {
            return Err(crate::homeserver::not_delegating());
        }
        let b = &request.body;
        let user_id = match self
            .form_user(
                request.cookie.as_deref(),
                &b.csrf,
                &cross_signing_reset_location(None),
            )
            .await?
        {
            Ok(user_id) => user_id,
            Err(refused) => return Ok(refused.into()),
        };
        match self
            .current_password(&ctx.request, &user_id, &b.password)
            .await?
        {
            Ok(true) => {}
            Ok(false) => {
                let page = self.cross_signing_reset_page(
                    &user_id,
                    &b.csrf,
                    false,
                    Some("That is not your password."),
                )?;
                return Ok(Response::Unauthorized(page));
            }
            Err(page) => return Ok(Response::TooManyRequests(page)),
        }
        if let Err(e) = self.allow_cross_signing_reset(&user_id).await {
            if e.status != http::StatusCode::SERVICE_UNAVAILABLE {
                return Err(e);
            }
            let page = self.cross_signing_reset_page(&user_id, &b.csrf, false, Some(&e.error))?;
            return Ok(Response::ServiceUnavailable(page));
        }
        tracing::info!(user_id, "cross-signing reset allowed on the account page");
        Ok(Response::SeeOther {
            location: cross_signing_reset_location(Some(RESET_ALLOWED)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_account_page_rebuilt_or_the_profile() {
        let page = "/_account/v1/account";
        assert_eq!(next_location(None), page);
        assert_eq!(next_location(Some(page)), page);
        assert_eq!(
            next_location(Some(
                "/_account/v1/account?action=org.matrix.device_view&device_id=A%20B&x=1"
            )),
            "/_account/v1/account?action=org.matrix.device_view&device_id=A+B"
        );
        for outside in [
            "https://evil.example/_account/v1/account",
            "//evil.example/_account/v1/account",
            "/\\evil.example",
            "/_account/v1/account/../../elsewhere",
            "/_account/v1/accounts",
            "/_account/v1/account/login",
            "/_account/v1/account#x",
            "javascript:alert(1)",
            "http:/_account/v1/account",
            "",
        ] {
            assert_eq!(next_location(Some(outside)), page, "{outside}");
        }
        // Whatever the query holds, it is re-encoded as a value.
        let odd = next_location(Some(
            "/_account/v1/account?action=//evil.example&device_id=\r\n",
        ));
        assert_eq!(
            odd,
            "/_account/v1/account?action=%2F%2Fevil.example&device_id=%0D%0A"
        );
    }

    #[test]
    fn actions_choose_the_view() {
        assert_eq!(View::of(None, None, false), View::Profile);
        assert_eq!(
            View::of(Some("org.matrix.profile"), None, false),
            View::Profile
        );
        assert_eq!(View::of(Some("made.up"), Some("D"), false), View::Profile);
        assert_eq!(
            View::of(Some("org.matrix.cross_signing_reset"), None, false),
            View::Profile
        );
        assert_eq!(
            View::of(Some("org.matrix.cross_signing_reset"), None, true),
            View::CrossSigningReset
        );
        assert_eq!(
            View::of(Some("org.matrix.devices_list"), None, false),
            View::Devices
        );
        assert_eq!(
            View::of(Some("org.matrix.device_view"), Some("D"), false),
            View::Device("D".into())
        );
        assert_eq!(
            View::of(Some("org.matrix.device_view"), Some(""), false),
            View::Devices
        );
        assert_eq!(
            View::of(Some("org.matrix.device_delete"), Some("D"), false),
            View::DeviceDelete("D".into())
        );
        assert_eq!(
            View::of(Some("org.matrix.account_deactivate"), None, false),
            View::Deactivate
        );
        // MSC4191's names, before the spec renamed them.
        assert_eq!(
            View::of(Some("org.matrix.sessions_list"), None, false),
            View::Devices
        );
        assert_eq!(
            View::of(Some("org.matrix.session_view"), Some("D"), false),
            View::Device("D".into())
        );
        assert_eq!(
            View::of(Some("org.matrix.session_end"), Some("D"), false),
            View::DeviceDelete("D".into())
        );
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn only_known_statuses_are_put_into_words() {
        assert!(notice(Some("device_deleted")).is_some());
        assert_eq!(notice(Some("<script>")), None);
        assert_eq!(notice(None), None);
    }
}
