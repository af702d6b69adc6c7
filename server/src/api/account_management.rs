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

use http::StatusCode;
use matrix_api::account::account_management::{
    show_account_login_page, show_account_page, submit_account_deactivation, submit_account_login,
    submit_account_logout, submit_device_deletion, submit_password_change, submit_threepid_removal,
    AccountManagementApi,
};
use matrix_api::runtime::{Context, Html, MatrixError, RequestInfo};
use matrix_api::types::AccountManagementAction;
use serde::Serialize;

use super::oauth::ACCOUNT_BASE;
use super::oauth_pages::{CSRF_COOKIE, SESSION_COOKIE};
use super::pages::{cookie, csrf_matches, retry_after_secs};
use crate::ratelimit::{Action, Key};
use crate::service::{internal, Server};
use crate::store::{Device, LogoutDevices};
use crate::validation::stored_form;

/// The actions the page takes (`account_management_actions_supported`).
///
/// `org.matrix.cross_signing_reset` is not among them: this server keeps no
/// cross-signing keys and offers no `m.oauth` stage, so there is nothing the
/// page could approve or reset, and advertising it would send a client's
/// "reset your identity" to a dead end. A client that asks for it anyway gets
/// the profile page, as for any unknown action.
pub(super) fn supported_actions() -> Vec<AccountManagementAction> {
    vec![
        AccountManagementAction::OrgMatrixProfile,
        AccountManagementAction::OrgMatrixDevicesList,
        AccountManagementAction::OrgMatrixDeviceView,
        AccountManagementAction::OrgMatrixDeviceDelete,
        AccountManagementAction::OrgMatrixAccountDeactivate,
    ]
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
}

impl View {
    /// The view of `action` (the spec's names, and the MSC4191 names they
    /// replaced, which older clients send); a device action without a device
    /// shows the list, anything unknown the profile.
    fn of(action: Option<&str>, device_id: Option<&str>) -> View {
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
        "threepid_removed" => "The address was removed from your account.",
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

/// Why a form was not carried out before it was looked at.
enum Refused {
    /// The CSRF value does not match: the page saying so (`403`).
    Forged(Html),
    /// No browser session: to the login page, coming back to `next`.
    SignedOut(String),
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

    /// The profile: user ID, contact addresses, the password form (with
    /// `password_error` after a refused change).
    async fn profile_page(
        &self,
        user_id: &str,
        csrf: &str,
        notice: Option<&str>,
        password_error: Option<&str>,
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
        self.account_page_html(
            "pages/account_profile.html",
            "profile",
            user_id,
            csrf,
            notice,
            minijinja::context! {
                threepids,
                password_error,
                password_action => format!("{ACCOUNT_BASE}/account/password"),
                remove_action => format!("{ACCOUNT_BASE}/account/threepids/delete"),
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
        let body = match View::of(action, device_id) {
            View::Profile => self.profile_page(&user_id, &csrf, notice, None).await?,
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
                let template = match View::of(action, device_id) {
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
            Err(Refused::Forged(page)) => return Ok(Response::Forbidden(page)),
            Err(Refused::SignedOut(location)) => return Ok(Response::SeeOther { location }),
        };
        // The policy first: a weak new password costs no password check.
        if let Err(e) = self.check_password_policy(&b.new_password) {
            let page = self
                .profile_page(&user_id, &b.csrf, None, Some(&e.error))
                .await?;
            return Ok(Response::BadRequest(page));
        }
        match self
            .current_password(&ctx.request, &user_id, &b.current_password)
            .await?
        {
            Ok(true) => {}
            Ok(false) => {
                let page = self
                    .profile_page(
                        &user_id,
                        &b.csrf,
                        None,
                        Some("Your current password is not the one you entered."),
                    )
                    .await?;
                return Ok(Response::Unauthorized(page));
            }
            Err(page) => return Ok(Response::TooManyRequests(page)),
        }
        let hash = self.hasher.hash(&b.new_password).await?;
        // As `POST /account/password` does by default: every device is signed
        // out (this browser is none of them). Other browser sessions, which
        // the old password may have started, end; this one stays.
        self.store
            .change_password(&user_id, &hash, Some(LogoutDevices::All))
            .await
            .map_err(internal)?;
        self.sync_devices(&user_id).await;
        if let Some(session) = cookie(cookie_header, SESSION_COOKIE) {
            self.store
                .end_other_browser_sessions(&user_id, session)
                .await
                .map_err(internal)?;
        }
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
            Err(Refused::Forged(page)) => return Ok(Response::Forbidden(page)),
            Err(Refused::SignedOut(location)) => return Ok(Response::SeeOther { location }),
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
            Err(Refused::Forged(page)) => return Ok(Response::Forbidden(page)),
            Err(Refused::SignedOut(location)) => return Ok(Response::SeeOther { location }),
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
        tracing::info!(user_id, "contact address removed on the account page");
        Ok(Response::SeeOther {
            location: account_location(None, None, Some("threepid_removed")),
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
            Err(Refused::Forged(page)) => return Ok(Response::Forbidden(page)),
            Err(Refused::SignedOut(location)) => {
                return Ok(Response::SeeOther {
                    location,
                    set_cookie: None,
                })
            }
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
        assert_eq!(View::of(None, None), View::Profile);
        assert_eq!(View::of(Some("org.matrix.profile"), None), View::Profile);
        assert_eq!(View::of(Some("made.up"), Some("D")), View::Profile);
        assert_eq!(
            View::of(Some("org.matrix.cross_signing_reset"), None),
            View::Profile
        );
        assert_eq!(
            View::of(Some("org.matrix.devices_list"), None),
            View::Devices
        );
        assert_eq!(
            View::of(Some("org.matrix.device_view"), Some("D")),
            View::Device("D".into())
        );
        assert_eq!(
            View::of(Some("org.matrix.device_view"), Some("")),
            View::Devices
        );
        assert_eq!(
            View::of(Some("org.matrix.device_delete"), Some("D")),
            View::DeviceDelete("D".into())
        );
        assert_eq!(
            View::of(Some("org.matrix.account_deactivate"), None),
            View::Deactivate
        );
        // MSC4191's names, before the spec renamed them.
        assert_eq!(
            View::of(Some("org.matrix.sessions_list"), None),
            View::Devices
        );
        assert_eq!(
            View::of(Some("org.matrix.session_view"), Some("D")),
            View::Device("D".into())
        );
        assert_eq!(
            View::of(Some("org.matrix.session_end"), Some("D")),
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
