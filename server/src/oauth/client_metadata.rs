//! Client metadata for OAuth 2.0 dynamic client registration (RFC 7591) as
//! the Matrix spec (v1.19, "Client registration") profiles it: [`validate`]
//! turns a registration request into the [`ClientMetadata`] the server keeps,
//! [`ClientMetadata::to_json`] writes the registration response (and the form
//! stored in the database, read back with [`ClientMetadata::from_json`]), and
//! [`ClientMetadata::redirect_uri_matches`] checks an authorisation request's
//! `redirect_uri` against the registered ones.
//!
//! The redirect URI is how a client proves who it is, so its rules are strict
//! (spec "Redirect URI validation", RFC 8252 section 7): every URI in the
//! metadata must sit on the `client_uri`'s host or a subdomain of it, so the
//! host the user is shown at consent is the one that receives the code.
//!
//! URIs are kept exactly as the client sent them: OAuth compares redirect
//! URIs as strings, so normalising them would accept requests the client
//! never registered. Validation parses them (WHATWG rules, as browsers do)
//! and additionally inspects the raw text where parsing would hide something
//! (an explicit default port, an empty user name, a missing `//`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use url::{Host, Url};

/// RFC 7591 error code: a redirect URI is missing or breaks the rules.
pub const INVALID_REDIRECT_URI: &str = "invalid_redirect_uri";
/// RFC 7591 error code: any other metadata value is invalid.
pub const INVALID_CLIENT_METADATA: &str = "invalid_client_metadata";

/// Longest URI accepted, in bytes; longer ones are not plausible metadata.
const MAX_URI_LEN: usize = 2048;
/// Longest client name accepted, in bytes.
const MAX_NAME_LEN: usize = 1024;
/// Most redirect URIs one registration may carry.
const MAX_REDIRECT_URIS: usize = 64;
/// Most localized values one registration may carry.
const MAX_LOCALIZED: usize = 256;

/// The human-readable fields that may carry `#<language-tag>` variants
/// (spec "Metadata localization"; its prose spells one `policy-uri`, the
/// schema and RFC 7591 `policy_uri`, which is what clients send).
const LOCALIZABLE: [&str; 4] = ["client_name", "logo_uri", "tos_uri", "policy_uri"];

/// The loopback hosts a native client may use with `http` (spec, RFC 8252
/// section 7.3), as they must be written: other spellings of the same
/// address (`127.1`, `[0:0::1]`) are refused rather than normalised.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Why a registration was refused: `error` is the RFC 7591 error code
/// ([`INVALID_REDIRECT_URI`] or [`INVALID_CLIENT_METADATA`]) and
/// `description` names the field and the rule it breaks. Descriptions quote
/// request text only once it is known to be URI characters, so they stay
/// within the characters OAuth allows in `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError {
    pub error: &'static str,
    pub description: String,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl std::error::Error for MetadataError {}

fn metadata_error(description: impl Into<String>) -> MetadataError {
    MetadataError {
        error: INVALID_CLIENT_METADATA,
        description: description.into(),
    }
}

fn redirect_error(description: impl Into<String>) -> MetadataError {
    MetadataError {
        error: INVALID_REDIRECT_URI,
        description: description.into(),
    }
}

/// The kind of client, which decides the redirect URIs it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationType {
    /// Runs in a browser: `https` redirect URIs only. The default (RFC 7591
    /// via OpenID Connect Dynamic Client Registration, and the spec).
    Web,
    /// Installed on a device: private-use schemes, `http` loopback or
    /// claimed `https` redirect URIs.
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }
}

/// A grant type this server supports; others in a registration are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    /// RFC 8628's device authorisation grant.
    DeviceCode,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    fn parse(s: &str) -> Option<GrantType> {
        [
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::DeviceCode,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// The registered metadata of a client, validated. `token_endpoint_auth_method`
/// is not kept: it is always `none` (see [`validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    pub application_type: ApplicationType,
    /// As sent, deduplicated. Empty only when the client cannot use the
    /// authorisation code grant.
    pub redirect_uris: Vec<String>,
    /// An `https` URL without user or password; the base for all other URIs.
    pub client_uri: String,
    pub client_name: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    /// Localized variants keyed as sent (`client_name#fr`, `tos_uri#en-GB`),
    /// each validated like its base field.
    pub localized: BTreeMap<String, String>,
    /// The supported grant types requested, deduplicated, never empty.
    pub grant_types: Vec<GrantType>,
    /// The supported response types requested: only ever `code`.
    pub response_types: Vec<String>,
}

/// Validates a dynamic client registration request body (RFC 7591 section 2,
/// with the Matrix spec's rules) and returns the metadata to register.
///
/// Fields this server does not use (`contacts`, `jwks`, `software_id`, ...)
/// are ignored, as are unsupported grant and response types (the schema says
/// the server MUST ignore values it does not understand). A known field of
/// the wrong JSON type is `invalid_client_metadata`; `null` counts as absent,
/// since some client libraries serialise an unset option that way.
///
/// `token_endpoint_auth_method`: RFC 7591 defaults it to
/// `client_secret_basic`, but this server issues no client secrets — Matrix
/// clients are public clients, and the spec only requires `none`. So an
/// absent method means `none`, `none` is accepted, and any method needing a
/// secret or key is refused rather than silently downgraded: a client that
/// asked to authenticate must not believe it does.
pub fn validate(body: &Value) -> Result<ClientMetadata, MetadataError> {
    let Some(obj) = body.as_object() else {
        return Err(metadata_error(
            "the registration request must be a JSON object",
        ));
    };

    let application_type = match string_field(obj, "application_type")? {
        None | Some("web") => ApplicationType::Web,
        Some("native") => ApplicationType::Native,
        Some(other) => {
            return Err(metadata_error(format!(
                "application_type must be web or native, not {}",
                quote_text(other)
            )))
        }
    };

    match string_field(obj, "token_endpoint_auth_method")? {
        None | Some("none") => {}
        Some(other) => {
            return Err(metadata_error(format!(
                "token_endpoint_auth_method {} is not supported: this server registers public \
                 clients only, so it must be none (or absent)",
                quote_text(other)
            )))
        }
    }

    let Some(client_uri) = string_field(obj, "client_uri")? else {
        return Err(metadata_error(
            "client_uri is required: it tells the user who the client is, and all other URIs \
             must be on its host",
        ));
    };
    let base = https_url("client_uri", client_uri, INVALID_CLIENT_METADATA)?;
    let Some(base_host) = base.host() else {
        // https URLs always have a host; this only keeps the code panic-free.
        return Err(metadata_error("client_uri must have a host"));
    };

    let client_name = match string_field(obj, "client_name")? {
        Some(name) => Some(check_name("client_name", name)?.to_owned()),
        None => None,
    };
    let uri_field = |field: &str| -> Result<Option<String>, MetadataError> {
        match string_field(obj, field)? {
            Some(raw) => {
                check_metadata_uri(field, raw, &base_host)?;
                Ok(Some(raw.to_owned()))
            }
            None => Ok(None),
        }
    };
    let logo_uri = uri_field("logo_uri")?;
    let tos_uri = uri_field("tos_uri")?;
    let policy_uri = uri_field("policy_uri")?;

    let mut localized = BTreeMap::new();
    for (key, value) in obj {
        let Some((field, tag)) = key.split_once('#') else {
            continue;
        };
        if !LOCALIZABLE.contains(&field) || value.is_null() {
            // RFC 7591 localizes only human-readable values; others are
            // ignored, and null is absent as everywhere else.
            continue;
        }
        if !language_tag_is_plausible(tag) {
            return Err(metadata_error(format!(
                "{field} has a localized variant whose language tag {} is not a BCP 47 tag \
                 (like fr or en-GB)",
                quote_text(tag)
            )));
        }
        let value = match value {
            Value::String(s) => s.as_str(),
            _ => return Err(metadata_error(format!("{field}#{tag} must be a string"))),
        };
        let name = format!("{field}#{tag}");
        if field == "client_name" {
            check_name(&name, value)?;
        } else {
            check_metadata_uri(&name, value, &base_host)?;
        }
        localized.insert(key.clone(), value.to_owned());
        if localized.len() > MAX_LOCALIZED {
            return Err(metadata_error(format!(
                "at most {MAX_LOCALIZED} localized values are allowed"
            )));
        }
    }

    let grant_types: Vec<GrantType> = match string_array(obj, "grant_types")? {
        // RFC 7591 section 2: absent means authorization_code.
        None => vec![GrantType::AuthorizationCode],
        Some(values) => {
            let mut kept = Vec::new();
            for g in values.into_iter().filter_map(GrantType::parse) {
                if !kept.contains(&g) {
                    kept.push(g);
                }
            }
            kept
        }
    };
    if !grant_types.contains(&GrantType::AuthorizationCode)
        && !grant_types.contains(&GrantType::DeviceCode)
    {
        return Err(metadata_error(format!(
            "grant_types must include {} or {}: with neither the client could never obtain \
             a token (unsupported grant types are ignored)",
            GrantType::AuthorizationCode.as_str(),
            GrantType::DeviceCode.as_str()
        )));
    }
    let uses_code_grant = grant_types.contains(&GrantType::AuthorizationCode);

    let response_types: Vec<String> = match string_array(obj, "response_types")? {
        // RFC 7591 section 2: absent means code.
        None => vec!["code".to_owned()],
        Some(values) => {
            if values.contains(&"code") {
                vec!["code".to_owned()]
            } else {
                Vec::new()
            }
        }
    };
    if uses_code_grant && response_types.is_empty() {
        return Err(metadata_error(
            "response_types must include code when grant_types includes authorization_code \
             (RFC 7591 section 2.1)",
        ));
    }

    let mut redirect_uris: Vec<String> = Vec::new();
    for raw in string_array(obj, "redirect_uris")?.unwrap_or_default() {
        check_redirect_uri(application_type, raw, &base_host)?;
        if !redirect_uris.iter().any(|r| r == raw) {
            redirect_uris.push(raw.to_owned());
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(redirect_error(format!(
                "at most {MAX_REDIRECT_URIS} redirect_uris are allowed"
            )));
        }
    }
    if uses_code_grant && redirect_uris.is_empty() {
        return Err(redirect_error(
            "redirect_uris must list at least one URI to use the authorization_code grant",
        ));
    }

    Ok(ClientMetadata {
        application_type,
        redirect_uris,
        client_uri: client_uri.to_owned(),
        client_name,
        logo_uri,
        tos_uri,
        policy_uri,
        localized,
        grant_types,
        response_types,
    })
}

impl ClientMetadata {
    /// The registration response (RFC 7591 section 3.2.1): `client_id` and
    /// every registered value, localized ones included. [`validate`] ignores
    /// `client_id`, so this is also the form to store: see
    /// [`ClientMetadata::from_json`].
    pub fn to_json(&self, client_id: &str) -> Value {
        let mut m = Map::new();
        m.insert("client_id".into(), client_id.into());
        m.insert("client_uri".into(), self.client_uri.as_str().into());
        for (key, value) in [
            ("client_name", &self.client_name),
            ("logo_uri", &self.logo_uri),
            ("tos_uri", &self.tos_uri),
            ("policy_uri", &self.policy_uri),
        ] {
            if let Some(value) = value {
                m.insert(key.into(), value.as_str().into());
            }
        }
        for (key, value) in &self.localized {
            m.insert(key.clone(), value.as_str().into());
        }
        m.insert("redirect_uris".into(), self.redirect_uris.clone().into());
        m.insert(
            "grant_types".into(),
            self.grant_types
                .iter()
                .map(|g| Value::from(g.as_str()))
                .collect(),
        );
        m.insert("response_types".into(), self.response_types.clone().into());
        m.insert("token_endpoint_auth_method".into(), "none".into());
        m.insert(
            "application_type".into(),
            self.application_type.as_str().into(),
        );
        Value::Object(m)
    }

    /// Reads back metadata stored as [`ClientMetadata::to_json`] wrote it
    /// (its `client_id` is ignored). It goes through [`validate`] again, so
    /// what comes out always satisfies the current rules; a registration
    /// that no longer does reads as `None`, and the client has to register
    /// again — which the spec has clients do at every login anyway.
    pub fn from_json(value: &Value) -> Option<ClientMetadata> {
        validate(value).ok()
    }

    /// Whether the client registered `grant`.
    pub fn has_grant_type(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `requested` (an authorisation request's `redirect_uri`) is one
    /// of the registered redirect URIs: equal as strings (RFC 6749 section
    /// 3.1.2.3, RFC 9700), with one exception: a native client's loopback
    /// `http` URI is registered without a port and matches with any port
    /// (RFC 8252 section 7.3), everything else still equal.
    pub fn redirect_uri_matches(&self, requested: &str) -> bool {
        self.redirect_uris.iter().any(|registered| {
            registered == requested
                || (self.application_type == ApplicationType::Native
                    && loopback_matches(registered, requested))
        })
    }

    /// The client's name for a user who prefers `lang` (a BCP 47 tag), see
    /// [`ClientMetadata::localized_value`].
    pub fn display_name(&self, lang: Option<&str>) -> Option<&str> {
        self.localized_value("client_name", lang)
    }

    /// `field` (`client_name`, `logo_uri`, `tos_uri` or `policy_uri`) in the
    /// language `lang`: the variant whose tag equals `lang` (ignoring ASCII
    /// case), else the one for `lang` with subtags dropped from the end
    /// (`fr-CA` falls back to `fr`), else the unlocalized value.
    pub fn localized_value(&self, field: &str, lang: Option<&str>) -> Option<&str> {
        let mut lang = lang.filter(|l| !l.is_empty());
        while let Some(tag) = lang {
            let found = self.localized.iter().find(|(key, _)| {
                key.split_once('#')
                    .is_some_and(|(f, t)| f == field && t.eq_ignore_ascii_case(tag))
            });
            if let Some((_, value)) = found {
                return Some(value);
            }
            lang = tag.rsplit_once('-').map(|(shorter, _)| shorter);
        }
        match field {
            "client_name" => self.client_name.as_deref(),
            "logo_uri" => self.logo_uri.as_deref(),
            "tos_uri" => self.tos_uri.as_deref(),
            "policy_uri" => self.policy_uri.as_deref(),
            _ => None,
        }
    }
}

/// `obj[field]` as a string; absent and `null` are `None`.
fn string_field<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, MetadataError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(metadata_error(format!("{field} must be a string"))),
    }
}

/// `obj[field]` as an array of strings; absent and `null` are `None`.
fn string_array<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<&'a str>>, MetadataError> {
    let items = match obj.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(metadata_error(format!(
                "{field} must be an array of strings"
            )))
        }
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| metadata_error(format!("{field} must be an array of strings")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A client name is shown at consent: it must be non-blank, of reasonable
/// size, and free of control characters and of the bidirectional overrides
/// that could make it display as something else.
fn check_name<'a>(field: &str, name: &'a str) -> Result<&'a str, MetadataError> {
    if name.trim().is_empty() {
        return Err(metadata_error(format!("{field} must not be blank")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(metadata_error(format!(
            "{field} is longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(metadata_error(format!(
            "{field} must not contain control or bidirectional override characters"
        )));
    }
    Ok(name)
}

/// Loose BCP 47 shape: subtags of 1 to 8 ASCII letters or digits joined by
/// `-`, the first being a language (2 to 8 letters) or the `x`/`i` of
/// private-use and grandfathered tags. Registries are not consulted.
fn language_tag_is_plausible(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let first_ok = subtags.next().is_some_and(|first| {
        ((2..=8).contains(&first.len()) && first.bytes().all(|b| b.is_ascii_alphabetic()))
            || first.eq_ignore_ascii_case("x")
            || first.eq_ignore_ascii_case("i")
    });
    first_ok
        && tag.len() <= 64
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// RFC 3986 allows only these characters in a URI (`%` introducing
/// percent-encoding). Refusing everything else up front — spaces, quotes,
/// backslashes (which WHATWG parsing turns into `/`), controls, non-ASCII —
/// leaves no room for the server and a client's URI parser to disagree, and
/// makes the text safe to quote in an error description.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

/// Length and character checks common to every URI field.
fn check_uri_text(field: &str, raw: &str, code: &'static str) -> Result<(), MetadataError> {
    let fail = |description: String| MetadataError {
        error: code,
        description,
    };
    if raw.is_empty() {
        return Err(fail(format!("{field} must not be empty")));
    }
    if raw.len() > MAX_URI_LEN {
        return Err(fail(format!("{field} is longer than {MAX_URI_LEN} bytes")));
    }
    if let Some(c) = raw.chars().find(|&c| !is_uri_char(c)) {
        return Err(fail(format!(
            "{field} contains U+{:04X}, which a URI cannot contain (RFC 3986): \
             percent-encode it, and write internationalized host names in punycode",
            u32::from(c)
        )));
    }
    Ok(())
}

/// The raw authority of `raw` if it is `<scheme>://<authority>...`: the text
/// between `//` and the next `/`, `?` or `#`.
fn raw_authority(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Parses an `https` URL with an authority and without user or password.
fn https_url(field: &str, raw: &str, code: &'static str) -> Result<Url, MetadataError> {
    let fail = |description: String| MetadataError {
        error: code,
        description,
    };
    check_uri_text(field, raw, code)?;
    let url = Url::parse(raw).map_err(|e| {
        fail(format!(
            "{field} {} is not a valid URL: {e}",
            quote_uri(raw)
        ))
    })?;
    if url.scheme() != "https" {
        return Err(fail(format!(
            "{field} {} must use the https scheme",
            quote_uri(raw)
        )));
    }
    // WHATWG parsing reads `https:example.com` as `https://example.com/`;
    // a URI without `//` has no authority, whatever a browser makes of it.
    let Some(authority) = raw_authority(raw) else {
        return Err(fail(format!(
            "{field} {} must be an absolute URL of the form https://host/...",
            quote_uri(raw)
        )));
    };
    // `@` also catches an empty user name (`https://@host/`), which parsing drops.
    if authority.contains('@') || !url.username().is_empty() || url.password().is_some() {
        return Err(fail(format!(
            "{field} {} must not contain a user or password",
            quote_uri(raw)
        )));
    }
    Ok(url)
}

/// Whether `host` is `base` or, for domain names, a subdomain of it. An IP
/// address has no subdomains: it must be the same address.
fn host_within(host: &Host<&str>, base: &Host<&str>) -> bool {
    match (host, base) {
        (Host::Domain(h), Host::Domain(b)) => {
            h == b
                || h.strip_suffix(b)
                    .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        }
        _ => host == base,
    }
}

/// `logo_uri`, `tos_uri`, `policy_uri` and their localized variants: https,
/// no user or password, on the client URI's host or a subdomain of it.
fn check_metadata_uri(field: &str, raw: &str, base: &Host<&str>) -> Result<(), MetadataError> {
    let url = https_url(field, raw, INVALID_CLIENT_METADATA)?;
    let on_base = url.host().is_some_and(|h| host_within(&h, base));
    if !on_base {
        return Err(metadata_error(format!(
            "{field} {} must be on the host of client_uri ({base}) or a subdomain of it",
            quote_uri(raw)
        )));
    }
    Ok(())
}

/// A redirect URI under the spec's rules for the application type.
fn check_redirect_uri(
    app: ApplicationType,
    raw: &str,
    base: &Host<&str>,
) -> Result<(), MetadataError> {
    check_uri_text("a redirect URI", raw, INVALID_REDIRECT_URI)?;
    if raw.contains('#') {
        return Err(redirect_error(format!(
            "the redirect URI {} must not have a fragment",
            quote_uri(raw)
        )));
    }
    let url = Url::parse(raw).map_err(|e| {
        redirect_error(format!(
            "the redirect URI {} is not a valid URI: {e}",
            quote_uri(raw)
        ))
    })?;
    match (url.scheme(), app) {
        // Web clients, and native clients' claimed https URIs.
        ("https", _) => {
            let url = https_url("the redirect URI", raw, INVALID_REDIRECT_URI)?;
            if !url.host().is_some_and(|h| host_within(&h, base)) {
                return Err(redirect_error(format!(
                    "the redirect URI {} must be on the host of client_uri ({base}) or a \
                     subdomain of it",
                    quote_uri(raw)
                )));
            }
            Ok(())
        }
        (_, ApplicationType::Web) => Err(redirect_error(format!(
            "the redirect URI {} must use https: web clients may not use other schemes",
            quote_uri(raw)
        ))),
        ("http", ApplicationType::Native) => check_loopback(raw),
        (scheme, ApplicationType::Native) => check_private_use(raw, scheme, base),
    }
}

/// A native client's `http` redirect URI: loopback host, no port.
fn check_loopback(raw: &str) -> Result<(), MetadataError> {
    let not_loopback = || {
        redirect_error(format!(
            "the http redirect URI {} must be on the loopback interface: its host must be \
             localhost, 127.0.0.1 or [::1]",
            quote_uri(raw)
        ))
    };
    let Some((host, port)) = raw_authority(raw).map(split_host_port) else {
        return Err(not_loopback());
    };
    if host.contains('@') {
        return Err(redirect_error(format!(
            "the redirect URI {} must not contain a user or password",
            quote_uri(raw)
        )));
    }
    if !LOOPBACK_HOSTS.iter().any(|l| l.eq_ignore_ascii_case(host)) {
        return Err(not_loopback());
    }
    if port.is_some() {
        return Err(redirect_error(format!(
            "the loopback redirect URI {} must not have a port: register it without one, \
             and any port will be accepted when authorising (RFC 8252 section 7.3)",
            quote_uri(raw)
        )));
    }
    Ok(())
}

/// A native client's private-use scheme redirect URI (RFC 8252 section 7.1):
/// the scheme is the client URI's host in reverse-DNS notation, optionally
/// followed by more labels, and there is no authority.
fn check_private_use(raw: &str, scheme: &str, base: &Host<&str>) -> Result<(), MetadataError> {
    let Host::Domain(domain) = base else {
        return Err(redirect_error(format!(
            "the redirect URI {} uses a private-use scheme, which must be the client_uri host \
             in reverse-DNS notation, but that host ({base}) is an IP address",
            quote_uri(raw)
        )));
    };
    let reversed: Vec<&str> = domain.trim_end_matches('.').split('.').rev().collect();
    let reversed = reversed.join(".");
    let matches_host = scheme == reversed
        || scheme
            .strip_prefix(reversed.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'));
    if !matches_host {
        return Err(redirect_error(format!(
            "the redirect URI {} has the scheme {scheme}, but a private-use scheme must be the \
             client_uri host in reverse-DNS notation, {reversed}, or extend it with more labels, \
             like {reversed}.app",
            quote_uri(raw)
        )));
    }
    // RFC 8252 section 7.1 wants a domain-based scheme, which has a period;
    // without one a single-label client_uri host (`https://javascript/`)
    // would turn `javascript:` or `data:` into a "private-use" scheme.
    if !scheme.contains('.') {
        return Err(redirect_error(format!(
            "the redirect URI {} must use a private-use scheme containing a period, like \
             com.example.app (RFC 8252 section 7.1)",
            quote_uri(raw)
        )));
    }
    let after_scheme = raw.split_once(':').map_or("", |(_, rest)| rest);
    if after_scheme.starts_with("//") {
        return Err(redirect_error(format!(
            "the redirect URI {} must not have an authority: write {scheme}:/path, with a \
             single slash or none after the scheme",
            quote_uri(raw)
        )));
    }
    Ok(())
}

/// Splits a raw authority into host and port (`None` when there is no `:`,
/// `Some("")` for a bare `:`); IPv6 literals keep their brackets.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |i| i + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    (
        host,
        rest.strip_prefix(':')
            .or(Some(rest).filter(|r| !r.is_empty())),
    )
}

/// `http://` (any case) and what follows: authority, then the rest.
fn split_http(uri: &str) -> Option<(&str, &str)> {
    let head = uri.get(..7)?;
    if !head.eq_ignore_ascii_case("http://") {
        return None;
    }
    let after = &uri[7..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some(after.split_at(end))
}

/// RFC 8252 section 7.3: a registered port-less loopback URI matches a
/// request that adds a port (1 to 65535, plain decimal); host, path and query
/// must still be equal.
fn loopback_matches(registered: &str, requested: &str) -> bool {
    let Some((reg_authority, reg_rest)) = split_http(registered) else {
        return false;
    };
    let (reg_host, reg_port) = split_host_port(reg_authority);
    if reg_port.is_some()
        || !LOOPBACK_HOSTS
            .iter()
            .any(|l| l.eq_ignore_ascii_case(reg_host))
    {
        return false;
    }
    let Some((req_authority, req_rest)) = split_http(requested) else {
        return false;
    };
    let (req_host, req_port) = split_host_port(req_authority);
    req_host.eq_ignore_ascii_case(reg_host)
        && req_rest == reg_rest
        && req_port.is_none_or(port_is_valid)
}

fn port_is_valid(port: &str) -> bool {
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u32>().is_ok_and(|p| p <= 65535)
}

/// A URI (already checked to be URI characters) backticked for a
/// description, shortened if long.
fn quote_uri(raw: &str) -> String {
    const MAX: usize = 100;
    match raw.get(..MAX) {
        Some(head) if raw.len() > MAX => format!("`{head}...`"),
        _ => format!("`{raw}`"),
    }
}

/// Arbitrary request text for a description: quoted only if it is short
/// and made of characters OAuth allows in `error_description`.
fn quote_text(s: &str) -> String {
    if s.len() <= 100
        && s.chars()
            .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\')
    {
        format!("`{s}`")
    } else {
        "(not shown)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_description(e: &MetadataError) {
        // error_description: %x20-21 / %x23-5B / %x5D-7E (RFC 6749 section 5.2).
        assert!(
            e.description
                .chars()
                .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'),
            "{:?}",
            e.description
        );
    }

    fn ok(body: Value) -> ClientMetadata {
        validate(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn err(body: Value) -> MetadataError {
        match validate(&body) {
            Ok(m) => panic!("{body} was accepted as {m:?}"),
            Err(e) => {
                check_description(&e);
                e
            }
        }
    }

    fn web(redirect: &str) -> Value {
        json!({ "client_uri": "https://example.com/", "redirect_uris": [redirect] })
    }

    fn native(redirect: &str) -> Value {
        json!({
            "client_uri": "https://example.com/",
            "application_type": "native",
            "redirect_uris": [redirect],
        })
    }

    // Spec, "Redirect URI validation", web clients.
    #[test]
    fn the_specs_web_examples() {
        for valid in [
            "https://example.com/callback",
            "https://app.example.com/callback",
            "https://example.com:5173/?query=value",
        ] {
            assert_eq!(ok(web(valid)).redirect_uris, [valid]);
        }
        for (invalid, reason) in [
            (
                "https://example.com/callback#fragment",
                "must not have a fragment",
            ),
            ("http://example.com/callback", "must use https"),
            ("http://localhost/", "must use https"),
        ] {
            let e = err(web(invalid));
            assert_eq!(e.error, INVALID_REDIRECT_URI, "{invalid}");
            assert!(
                e.description.contains(reason),
                "{invalid}: {}",
                e.description
            );
        }
    }

    // Spec, "Redirect URI validation", native clients.
    #[test]
    fn the_specs_native_examples() {
        for valid in [
            "com.example.app:/callback",
            "com.example:/",
            "com.example:callback",
            "http://localhost/callback",
            "http://127.0.0.1/callback",
            "http://[::1]/callback",
        ] {
            assert_eq!(ok(native(valid)).redirect_uris, [valid]);
        }
        for (invalid, reason) in [
            ("example:/callback", "reverse-DNS notation, com.example,"),
            ("com.example.app://callback", "must not have an authority"),
            (
                "https://localhost/callback",
                "on the host of client_uri (example.com)",
            ),
            ("http://localhost:1234/callback", "must not have a port"),
        ] {
            let e = err(native(invalid));
            assert_eq!(e.error, INVALID_REDIRECT_URI, "{invalid}");
            assert!(
                e.description.contains(reason),
                "{invalid}: {}",
                e.description
            );
        }
    }

    // The schema's client_uri example: app.com is not example.com.
    #[test]
    fn the_schemas_client_uri_examples() {
        ok(web("https://example.com/callback"));
        ok(web("https://app.example.com/callback"));
        err(web("https://app.com/callback"));
    }

    // Spec, "Dynamic client registration flow": the request from the example
    // registers; unsupported grant types are dropped from the response.
    #[test]
    fn the_specs_registration_example() {
        let body = json!({
            "client_name": "My App",
            "client_name#fr": "Mon application",
            "client_uri": "https://example.com/",
            "logo_uri": "https://example.com/logo.png",
            "tos_uri": "https://example.com/tos.html",
            "tos_uri#fr": "https://example.com/fr/tos.html",
            "policy_uri": "https://example.com/policy.html",
            "policy_uri#fr": "https://example.com/fr/policy.html",
            "redirect_uris": ["https://app.example.com/callback"],
            "token_endpoint_auth_method": "none",
            "response_types": ["code"],
            "grant_types": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ],
            "application_type": "web"
        });
        let m = ok(body);
        assert_eq!(
            m.to_json("s6BhdRkqt3"),
            json!({
                "client_id": "s6BhdRkqt3",
                "client_name": "My App",
                "client_name#fr": "Mon application",
                "client_uri": "https://example.com/",
                "logo_uri": "https://example.com/logo.png",
                "tos_uri": "https://example.com/tos.html",
                "tos_uri#fr": "https://example.com/fr/tos.html",
                "policy_uri": "https://example.com/policy.html",
                "policy_uri#fr": "https://example.com/fr/policy.html",
                "redirect_uris": ["https://app.example.com/callback"],
                "token_endpoint_auth_method": "none",
                "response_types": ["code"],
                "grant_types": ["authorization_code", "refresh_token"],
                "application_type": "web"
            })
        );
    }

    #[test]
    fn defaults_follow_rfc_7591() {
        let m = ok(web("https://example.com/cb"));
        assert_eq!(m.application_type, ApplicationType::Web);
        assert_eq!(m.grant_types, [GrantType::AuthorizationCode]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.client_name, None);
        assert!(m.localized.is_empty());
        assert_eq!(m.to_json("c")["token_endpoint_auth_method"], "none");
    }

    #[test]
    fn the_registration_round_trips_through_storage() {
        let body = json!({
            "client_uri": "https://example.com/",
            "client_name": "Élément",
            "client_name#de-CH": "Element CH",
            "logo_uri#fr": "https://cdn.example.com/logo-fr.png",
            "application_type": "native",
            "redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", "refresh_token",
                            "urn:ietf:params:oauth:grant-type:device_code"],
        });
        let m = ok(body);
        let stored = m.to_json("client-1");
        let text = serde_json::to_string(&stored).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ClientMetadata::from_json(&back), Some(m.clone()));
        // A device-only client without redirect URIs round-trips as well.
        let device = ok(json!({
            "client_uri": "https://tv.example/",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        }));
        assert_eq!(
            ClientMetadata::from_json(&device.to_json("d")),
            Some(device)
        );
        assert_eq!(ClientMetadata::from_json(&json!("nope")), None);
    }

    #[test]
    fn client_uri_is_required_https_and_without_userinfo() {
        let e = err(json!({ "redirect_uris": ["https://example.com/cb"] }));
        assert_eq!(e.error, INVALID_CLIENT_METADATA);
        assert!(e.description.contains("client_uri is required"));
        for bad in [
            "http://example.com/",
            "https://user@example.com/",
            "https://user:pw@example.com/",
            "https://@example.com/",
            "https:example.com",
            "https:/example.com/",
            "example.com",
            "https://",
            "",
            "https://exa mple.com/",
            "ftp://example.com/",
            "javascript:alert(1)",
        ] {
            let e = err(json!({ "client_uri": bad, "redirect_uris": ["https://example.com/cb"] }));
            assert_eq!(e.error, INVALID_CLIENT_METADATA, "{bad}");
            assert!(
                e.description.contains("client_uri"),
                "{bad}: {}",
                e.description
            );
        }
        // Path, query and port are free.
        ok(json!({
            "client_uri": "https://example.com:8443/about?x=1",
            "redirect_uris": ["https://example.com/cb"],
        }));
    }

    #[test]
    fn metadata_uris_must_be_https_on_the_client_host() {
        for field in ["logo_uri", "tos_uri", "policy_uri", "tos_uri#fr"] {
            let good = |uri: &str| {
                let mut body = web("https://example.com/cb");
                body[field] = uri.into();
                body
            };
            ok(good("https://example.com/x"));
            ok(good("https://static.example.com:444/x?y#z"));
            for bad in [
                "http://example.com/x",
                "https://evil.com/x",
                "https://example.com.evil.com/x",
                "https://notexample.com/x",
                "https://u:p@example.com/x",
                "data:image/png;base64,AAAA",
            ] {
                let e = err(good(bad));
                assert_eq!(e.error, INVALID_CLIENT_METADATA, "{field} {bad}");
                assert!(e.description.contains(field), "{field}: {}", e.description);
            }
        }
    }

    #[test]
    fn subdomains_are_label_boundaries() {
        assert!(host_within(
            &Host::Domain("a.b.example.com"),
            &Host::Domain("example.com")
        ));
        assert!(!host_within(
            &Host::Domain("badexample.com"),
            &Host::Domain("example.com")
        ));
        assert!(!host_within(
            &Host::Domain(".example.com"),
            &Host::Domain("example.com")
        ));
        assert!(!host_within(
            &Host::Domain("example.com"),
            &Host::Domain("app.example.com")
        ));
    }

    #[test]
    fn ip_client_uris_allow_only_the_same_address() {
        let body = |client: &str, redirect: &str| json!({ "client_uri": client, "redirect_uris": [redirect] });
        ok(body("https://192.0.2.1/", "https://192.0.2.1:8443/cb"));
        err(body("https://192.0.2.1/", "https://192.0.2.2/cb"));
        ok(body("https://[2001:db8::1]/", "https://[2001:db8::1]/cb"));
        err(body("https://[2001:db8::1]/", "https://[2001:db8::2]/cb"));
        // No reverse-DNS of an address: no private-use scheme.
        let e = err(json!({
            "client_uri": "https://192.0.2.1/",
            "application_type": "native",
            "redirect_uris": ["1.2.0.192:/cb"],
        }));
        assert_eq!(e.error, INVALID_REDIRECT_URI);
    }

    #[test]
    fn web_redirect_uris() {
        ok(web("https://EXAMPLE.com/cb")); // hosts compare case-insensitively
        ok(web("https://example.com/cb?a=b&c=d"));
        ok(web("https://example.com"));
        for bad in [
            "https://example.com/cb#",
            "https://user@example.com/cb",
            "https://@example.com/cb",
            "https:example.com/cb",
            "https://evil.com/cb",
            "https://example.com.evil.com/cb",
            "https://evil.com\\@example.com/cb",
            "https://evil.com/.example.com",
            "com.example.app:/cb",
            "http://127.0.0.1/cb",
            "javascript:alert(1)//example.com",
            "data:text/html,<script>",
            "",
        ] {
            assert_eq!(err(web(bad)).error, INVALID_REDIRECT_URI, "{bad}");
        }
    }

    #[test]
    fn native_private_use_schemes() {
        ok(native("com.example.app.sub:/cb?x=1"));
        ok(native("COM.EXAMPLE.APP:/cb")); // schemes are case-insensitive
        ok(native("com.example.app:"));
        for bad in [
            "com.examplex:/cb", // not a label boundary
            "com:/cb",          // only part of the reversed host
            "org.example:/cb",  // another host
            "com.example.:/cb", // empty label
            "com.example.app:///cb",
            "com.example.app://user@host/cb",
            "com.example.app:/cb#frag",
            "http://example.com/cb",
            "ws://localhost/",
        ] {
            assert_eq!(err(native(bad)).error, INVALID_REDIRECT_URI, "{bad}");
        }
        // A client_uri with a trailing dot reverses without an empty label.
        ok(json!({
            "client_uri": "https://example.com./",
            "application_type": "native",
            "redirect_uris": ["com.example:/cb"],
        }));
    }

    #[test]
    fn single_label_hosts_cannot_smuggle_dangerous_schemes() {
        for (host, uri) in [
            ("javascript", "javascript:alert(1)"),
            ("data", "data:text/html,x"),
            ("file", "file:/etc/passwd"),
        ] {
            let e = err(json!({
                "client_uri": format!("https://{host}/"),
                "application_type": "native",
                "redirect_uris": [uri],
            }));
            assert_eq!(e.error, INVALID_REDIRECT_URI, "{uri}");
        }
    }

    #[test]
    fn native_loopback_redirect_uris() {
        ok(native("http://LOCALHOST/cb"));
        ok(native("http://localhost"));
        ok(native("http://127.0.0.1/cb?x=y"));
        for bad in [
            "http://localhost:80/cb", // a default port is still a port
            "http://localhost:/cb",
            "http://[::1]:8080/cb",
            "http://127.0.0.1:0/cb",
            "http://127.1/cb",
            "http://[0:0::1]/cb",
            "http://2130706433/cb",
            "http://localhost.example.com/cb",
            "http://user@localhost/cb",
            "http://localhost@evil.com/cb",
            "http://0.0.0.0/cb",
            "http://192.168.1.1/cb",
            "http:localhost/cb",
            "http://localhost/cb#x",
        ] {
            assert_eq!(err(native(bad)).error, INVALID_REDIRECT_URI, "{bad}");
        }
    }

    #[test]
    fn native_clients_may_claim_https_like_web_clients() {
        ok(native("https://app.example.com/oauth"));
        assert_eq!(
            err(native("https://other.org/oauth")).error,
            INVALID_REDIRECT_URI
        );
    }

    #[test]
    fn redirect_uris_are_required_for_the_code_grant_only() {
        let e = err(json!({ "client_uri": "https://example.com/" }));
        assert_eq!(e.error, INVALID_REDIRECT_URI);
        assert!(e.description.contains("redirect_uris"));
        err(json!({ "client_uri": "https://example.com/", "redirect_uris": [] }));
        let m = ok(json!({
            "client_uri": "https://example.com/",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
        }));
        assert!(m.redirect_uris.is_empty());
        assert!(m.has_grant_type(GrantType::DeviceCode));
        assert!(!m.has_grant_type(GrantType::AuthorizationCode));
        // Those that are given are still checked.
        err(json!({
            "client_uri": "https://example.com/",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
            "redirect_uris": ["http://evil.com/"],
        }));
    }

    #[test]
    fn redirect_uris_are_kept_as_sent_and_deduplicated() {
        let m = ok(json!({
            "client_uri": "https://example.com/",
            "redirect_uris": ["https://example.com/b", "https://EXAMPLE.com:443/a",
                              "https://example.com/b"],
        }));
        assert_eq!(
            m.redirect_uris,
            ["https://example.com/b", "https://EXAMPLE.com:443/a"]
        );
        let many: Vec<String> = (0..65)
            .map(|i| format!("https://example.com/{i}"))
            .collect();
        err(json!({ "client_uri": "https://example.com/", "redirect_uris": many }));
    }

    #[test]
    fn grant_and_response_types() {
        let m = ok(json!({
            "client_uri": "https://example.com/",
            "redirect_uris": ["https://example.com/cb"],
            "grant_types": ["implicit", "refresh_token", "authorization_code", "refresh_token"],
            "response_types": ["token", "code id_token", "code"],
        }));
        assert_eq!(
            m.grant_types,
            [GrantType::RefreshToken, GrantType::AuthorizationCode]
        );
        assert_eq!(m.response_types, ["code"]);
        // authorization_code needs code.
        let e = err(json!({
            "client_uri": "https://example.com/",
            "redirect_uris": ["https://example.com/cb"],
            "response_types": ["token"],
        }));
        assert!(e.description.contains("response_types"));
        // No usable grant at all.
        for grants in [
            json!([]),
            json!(["client_credentials"]),
            json!(["refresh_token"]),
        ] {
            let e = err(json!({
                "client_uri": "https://example.com/",
                "redirect_uris": ["https://example.com/cb"],
                "grant_types": grants,
            }));
            assert_eq!(e.error, INVALID_CLIENT_METADATA);
            assert!(e.description.contains("grant_types"));
        }
        // A device-only client needs no response type.
        let m = ok(json!({
            "client_uri": "https://example.com/",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": [],
        }));
        assert!(m.response_types.is_empty());
    }

    #[test]
    fn token_endpoint_auth_method_must_be_none() {
        let mut body = web("https://example.com/cb");
        body["token_endpoint_auth_method"] = "none".into();
        ok(body.clone());
        for method in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "",
        ] {
            body["token_endpoint_auth_method"] = method.into();
            let e = err(body.clone());
            assert_eq!(e.error, INVALID_CLIENT_METADATA);
            assert!(e.description.contains("token_endpoint_auth_method"));
        }
    }

    #[test]
    fn application_type_values() {
        let mut body = web("https://example.com/cb");
        body["application_type"] = "native".into();
        assert_eq!(ok(body.clone()).application_type, ApplicationType::Native);
        body["application_type"] = Value::Null;
        assert_eq!(ok(body.clone()).application_type, ApplicationType::Web);
        for bad in ["Web", "browser", ""] {
            body["application_type"] = bad.into();
            assert!(err(body.clone()).description.contains("application_type"));
        }
    }

    #[test]
    fn wrong_json_types_are_invalid_metadata() {
        assert_eq!(err(json!([])).error, INVALID_CLIENT_METADATA);
        assert_eq!(err(json!("x")).error, INVALID_CLIENT_METADATA);
        assert_eq!(err(Value::Null).error, INVALID_CLIENT_METADATA);
        for (field, value) in [
            ("client_uri", json!(1)),
            ("client_name", json!(["x"])),
            ("logo_uri", json!({})),
            ("tos_uri", json!(true)),
            ("policy_uri", json!(1.5)),
            ("application_type", json!(1)),
            ("token_endpoint_auth_method", json!(false)),
            ("grant_types", json!("authorization_code")),
            ("grant_types", json!([1])),
            ("response_types", json!("code")),
            ("redirect_uris", json!("https://example.com/cb")),
            ("redirect_uris", json!([null])),
            ("client_name#fr", json!(3)),
        ] {
            let mut body = web("https://example.com/cb");
            body[field] = value;
            let e = err(body);
            assert_eq!(e.error, INVALID_CLIENT_METADATA, "{field}");
            assert!(e.description.contains(field), "{field}: {}", e.description);
        }
        // Ignored fields may be anything; null is absent.
        let mut body = web("https://example.com/cb");
        body["contacts"] = json!(42);
        body["jwks"] = json!("x");
        body["client_name"] = Value::Null;
        assert_eq!(ok(body).client_name, None);
    }

    #[test]
    fn localized_values() {
        let mut body = web("https://example.com/cb");
        body["client_name"] = "Digital mailbox".into();
        body["client_name#en-US"] = "Digital mailbox".into();
        body["client_name#en-GB"] = "Digital postbox".into();
        body["client_name#fr"] = "Boîte aux lettres numérique".into();
        body["tos_uri"] = "https://example.com/tos.html".into();
        body["tos_uri#fr"] = "https://example.com/fr/tos.html".into();
        body["redirect_uris#fr"] = json!(42); // not localizable: ignored
        body["contacts#fr"] = "x".into();
        let m = ok(body.clone());
        assert_eq!(m.localized.len(), 4);
        assert_eq!(m.display_name(None), Some("Digital mailbox"));
        assert_eq!(m.display_name(Some("en-GB")), Some("Digital postbox"));
        assert_eq!(m.display_name(Some("EN-gb")), Some("Digital postbox"));
        assert_eq!(
            m.display_name(Some("fr-CA")),
            Some("Boîte aux lettres numérique")
        );
        assert_eq!(m.display_name(Some("de")), Some("Digital mailbox"));
        assert_eq!(m.display_name(Some("")), Some("Digital mailbox"));
        assert_eq!(
            m.localized_value("tos_uri", Some("fr")),
            Some("https://example.com/fr/tos.html")
        );
        assert_eq!(m.localized_value("policy_uri", Some("fr")), None);
        assert_eq!(m.localized_value("nonsense", Some("fr")), None);

        for (key, value) in [
            ("client_name#", json!("x")),
            ("client_name#f", json!("x")),
            ("client_name#123", json!("x")),
            ("client_name#en_GB", json!("x")),
            ("client_name#en-toolongsubtag", json!("x")),
            ("client_name#fr", json!("")),
            ("client_name#fr", json!("a\u{202e}b")),
            ("tos_uri#fr", json!("https://evil.com/tos")),
            ("logo_uri#fr", json!("http://example.com/logo.png")),
        ] {
            let mut body = web("https://example.com/cb");
            body[key] = value;
            let e = err(body);
            assert_eq!(e.error, INVALID_CLIENT_METADATA, "{key}");
            assert!(
                e.description.contains(key.split('#').next().unwrap()),
                "{key}: {}",
                e.description
            );
        }
        // Private-use and extension tags have the right shape.
        let mut body = web("https://example.com/cb");
        body["client_name#x-klingon"] = "x".into();
        body["client_name#zh-Hant-TW"] = "x".into();
        body["client_name#es-419"] = "x".into();
        ok(body);
    }

    #[test]
    fn client_names_are_checked() {
        for bad in ["", "   ", "a\nb", "a\u{0}b", "\u{2066}x", &"x".repeat(1025)] {
            let mut body = web("https://example.com/cb");
            body["client_name"] = bad.into();
            assert!(err(body).description.contains("client_name"), "{bad:?}");
        }
        let mut body = web("https://example.com/cb");
        body["client_name"] = "Element — 元素 🚀".into();
        assert_eq!(ok(body).display_name(Some("fr")), Some("Element — 元素 🚀"));
    }

    #[test]
    fn redirect_uri_matching_is_exact_for_web_clients() {
        let m = ok(json!({
            "client_uri": "https://example.com/",
            "redirect_uris": ["https://example.com/cb?x=1", "https://app.example.com/"],
        }));
        assert!(m.redirect_uri_matches("https://example.com/cb?x=1"));
        assert!(m.redirect_uri_matches("https://app.example.com/"));
        for no in [
            "https://example.com/cb",
            "https://example.com/cb?x=1&y=2",
            "https://example.com/cb?x=1#",
            "https://EXAMPLE.com/cb?x=1",
            "https://example.com:443/cb?x=1",
            "https://app.example.com",
            "https://app.example.com/other",
            "",
        ] {
            assert!(!m.redirect_uri_matches(no), "{no}");
        }
    }

    #[test]
    fn loopback_redirect_uris_match_with_any_port() {
        let m = ok(json!({
            "client_uri": "https://example.com/",
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1/cb", "http://[::1]/cb?a=b",
                              "http://localhost", "com.example.app:/cb"],
        }));
        for yes in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/cb",
            "http://127.0.0.1:51234/cb",
            "http://127.0.0.1:65535/cb",
            "http://[::1]:8080/cb?a=b",
            "http://localhost:3000",
            "http://LOCALHOST:3000",
            "HTTP://127.0.0.1:80/cb",
            "com.example.app:/cb",
        ] {
            assert!(m.redirect_uri_matches(yes), "{yes}");
        }
        for no in [
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:080/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:+80/cb",
            "http://127.0.0.1:1234/cb/",
            "http://127.0.0.1:1234/CB",
            "http://127.0.0.1:1234/cb#x",
            "http://127.0.0.1:1234/cb?x",
            "http://localhost:1234/cb", // host as registered, not any loopback
            "http://[::1]:8080/cb",
            "http://localhost:3000/",
            "http://localhost:3000@evil.com",
            "http://localhost:3000\\@evil.com",
            "http://localhost.evil.com:3000",
            "https://127.0.0.1:1234/cb",
            "com.example.app:/cb?x",
            "com.example.app://cb",
            "http://127.0.0.1:12\t34/cb",
        ] {
            assert!(!m.redirect_uri_matches(no), "{no}");
        }
        // Web clients have no loopback URIs and no port leniency.
        let w = ok(web("https://example.com/cb"));
        assert!(!w.redirect_uri_matches("https://example.com:8443/cb"));
    }

    #[test]
    fn hostile_inputs_never_panic_and_errors_stay_small() {
        let huge = "a".repeat(1 << 20);
        let huge_uri = format!("https://example.com/{huge}");
        for body in [
            web(&huge_uri),
            json!({ "client_uri": huge_uri, "redirect_uris": ["https://example.com/"] }),
            json!({ "client_uri": "https://example.com/", "client_name": huge,
                    "redirect_uris": ["https://example.com/"] }),
            json!({ "client_uri": "https://example.com/", "application_type": huge,
                    "redirect_uris": ["https://example.com/"] }),
            json!({ "client_uri": "https://example.com/", format!("client_name#{huge}"): "x",
                    "redirect_uris": ["https://example.com/"] }),
            web("https://bücher.example/cb"),
            web("https://example.com/\u{202e}"),
            web("https://[::1/cb"),
            web("https://[::1]:99999/cb"),
            web("https://example.com:-1/"),
            web("javascript:alert(document.domain)"),
            web("\u{0}"),
            native("http://[::1"),
            native("http://["),
            native(":"),
            native(":/cb"),
            native("com.example.app:"),
            json!({ "client_uri": "https://xn--bcher-kva.example/",
                    "application_type": "native",
                    "redirect_uris": ["example.xn--bcher-kva:/cb",
                                      "https://app.xn--bcher-kva.example/cb"] }),
            json!({ "client_uri": "https://bücher.example/",
                    "redirect_uris": ["https://bücher.example/cb"] }),
            json!({ "client_uri": "https://[::1]/", "application_type": "native",
                    "redirect_uris": ["http://[::1]/"] }),
        ] {
            if let Err(e) = validate(&body) {
                check_description(&e);
                assert!(e.description.len() < 400, "{}", e.description);
            }
        }
        // Punycode client and redirect URIs are fine; raw IDNs are not URIs.
        ok(json!({ "client_uri": "https://xn--bcher-kva.example/",
                   "application_type": "native",
                   "redirect_uris": ["example.xn--bcher-kva:/cb",
                                     "https://app.xn--bcher-kva.example/cb"] }));
        err(web("https://bücher.example/cb"));

        let m = ok(native("http://localhost/"));
        for requested in [
            huge.as_str(),
            "",
            "http://",
            "http://[",
            "http://localhost:",
            "é",
            "http://lé",
        ] {
            assert!(!m.redirect_uri_matches(requested), "{requested:?}");
        }
        assert_eq!(m.display_name(Some(&huge)), None);
    }
}
