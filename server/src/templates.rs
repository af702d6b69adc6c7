//! The templates of emails and pages (minijinja). Each is built in from
//! `server/templates/` and can be replaced by a file of the same name in
//! `[email] templates_dir`, read and compiled at start-up, so a broken
//! override stops the server with its name rather than failing a request.
//! Templates ending in `.html` escape what they insert.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

const BUILT_IN: &[(&str, &str)] = &[
    (
        "sms/validation.txt",
        include_str!("../templates/sms/validation.txt"),
    ),
    (
        "email/validation_subject.txt",
        include_str!("../templates/email/validation_subject.txt"),
    ),
    (
        "email/validation.txt",
        include_str!("../templates/email/validation.txt"),
    ),
    (
        "email/validation.html",
        include_str!("../templates/email/validation.html"),
    ),
    (
        "pages/base.html",
        include_str!("../templates/pages/base.html"),
    ),
    (
        "pages/auth_fallback.html",
        include_str!("../templates/pages/auth_fallback.html"),
    ),
    (
        "pages/login.html",
        include_str!("../templates/pages/login.html"),
    ),
    (
        "pages/validate.html",
        include_str!("../templates/pages/validate.html"),
    ),
    (
        "pages/validated.html",
        include_str!("../templates/pages/validated.html"),
    ),
    (
        "pages/oauth_login.html",
        include_str!("../templates/pages/oauth_login.html"),
    ),
    (
        "pages/oauth_register.html",
        include_str!("../templates/pages/oauth_register.html"),
    ),
    (
        "pages/oauth_register_email.html",
        include_str!("../templates/pages/oauth_register_email.html"),
    ),
    (
        "pages/oauth_consent.html",
        include_str!("../templates/pages/oauth_consent.html"),
    ),
    (
        "pages/oauth_error.html",
        include_str!("../templates/pages/oauth_error.html"),
    ),
    (
        "pages/oauth_device.html",
        include_str!("../templates/pages/oauth_device.html"),
    ),
    (
        "pages/oauth_device_done.html",
        include_str!("../templates/pages/oauth_device_done.html"),
    ),
    (
        "pages/validation_error.html",
        include_str!("../templates/pages/validation_error.html"),
    ),
    (
        "pages/account_base.html",
        include_str!("../templates/pages/account_base.html"),
    ),
    (
        "pages/account_login.html",
        include_str!("../templates/pages/account_login.html"),
    ),
    (
        "pages/account_profile.html",
        include_str!("../templates/pages/account_profile.html"),
    ),
    (
        "pages/account_devices.html",
        include_str!("../templates/pages/account_devices.html"),
    ),
    (
        "pages/account_device.html",
        include_str!("../templates/pages/account_device.html"),
    ),
    (
        "pages/account_device_delete.html",
        include_str!("../templates/pages/account_device_delete.html"),
    ),
    (
        "pages/account_deactivate.html",
        include_str!("../templates/pages/account_deactivate.html"),
    ),
    (
        "pages/account_cross_signing_reset.html",
        include_str!("../templates/pages/account_cross_signing_reset.html"),
    ),
    (
        "pages/account_message.html",
        include_str!("../templates/pages/account_message.html"),
    ),
    (
        "pages/account_threepid_confirm.html",
        include_str!("../templates/pages/account_threepid_confirm.html"),
    ),
];

/// The files the pages load (`/_account/v1/static/{file}`): a content type
/// and the text. Built in; not templates, so nothing in them varies.
pub fn static_file(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "style.css" => (
            "text/css; charset=utf-8",
            include_str!("../templates/pages/style.css"),
        ),
        "auth_done.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../templates/pages/auth_done.js"),
        ),
        "login.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../templates/pages/login.js"),
        ),
        _ => return None,
    })
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, with the files of `dir` in their place.
    pub fn new(dir: Option<&Path>) -> Result<Templates, String> {
        let mut env = Environment::new();
        for (name, text) in BUILT_IN {
            let text = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                None => text.to_string(),
            };
            env.add_template_owned(*name, text)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| format!("template {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_render_and_escape_html() {
        let t = Templates::new(None).unwrap();
        let html = t
            .render(
                "pages/validation_error.html",
                minijinja::context! { message => "<script>x</script>", static_url => "/s" },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn a_file_in_the_directory_replaces_the_built_in_template() {
        let dir = std::env::temp_dir().join(format!("templates-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("email")).unwrap();
        std::fs::write(
            dir.join("email/validation_subject.txt"),
            "Hello {{ server_name }}",
        )
        .unwrap();
        let t = Templates::new(Some(&dir)).unwrap();
        let subject = t
            .render(
                "email/validation_subject.txt",
                minijinja::context! { server_name => "example.org" },
            )
            .unwrap();
        assert_eq!(subject, "Hello example.org");
        std::fs::write(dir.join("email/validation_subject.txt"), "{% if %}").unwrap();
        let err = Templates::new(Some(&dir)).err().unwrap();
        assert!(
            err.starts_with("template email/validation_subject.txt"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
