//! The address that sends the browser back to the client at the end of an
//! authorisation request: the registered redirect URI with the answer's
//! parameters (`code` or `error`, `state`, `iss`) in its query or its
//! fragment, as the request's `response_mode` asked.

/// Where the answer's parameters go (RFC 6749 `query`, OAuth 2.0 Multiple
/// Response Type Encoding Practices `fragment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
}

impl ResponseMode {
    /// `query` when absent (RFC 6749's default for `response_type=code`);
    /// `None` for a mode this server does not offer.
    pub fn parse(mode: Option<&str>) -> Option<ResponseMode> {
        match mode {
            None | Some("query") => Some(ResponseMode::Query),
            Some("fragment") => Some(ResponseMode::Fragment),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Query => "query",
            ResponseMode::Fragment => "fragment",
        }
    }
}

/// `redirect_uri` with `params` added. Registered redirect URIs have no
/// fragment; a query they have is kept, the parameters appended to it
/// (RFC 6749 §3.1.2: the query component must be retained).
pub fn callback_url(redirect_uri: &str, mode: ResponseMode, params: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    match mode {
        ResponseMode::Fragment => format!("{redirect_uri}#{encoded}"),
        ResponseMode::Query => match redirect_uri.split_once('?') {
            Some((_, "")) => format!("{redirect_uri}{encoded}"),
            Some(_) => format!("{redirect_uri}&{encoded}"),
            None => format!("{redirect_uri}?{encoded}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_to_the_query_or_the_fragment_and_keep_the_registered_query() {
        let p = [("code", "a b"), ("state", "x&y")];
        assert_eq!(
            callback_url("https://app.example/cb", ResponseMode::Query, &p),
            "https://app.example/cb?code=a+b&state=x%26y"
        );
        assert_eq!(
            callback_url("https://app.example/cb?app=1", ResponseMode::Query, &p),
            "https://app.example/cb?app=1&code=a+b&state=x%26y"
        );
        assert_eq!(
            callback_url("https://app.example/cb?", ResponseMode::Query, &p),
            "https://app.example/cb?code=a+b&state=x%26y"
        );
        assert_eq!(
            callback_url("com.example.app:/cb", ResponseMode::Fragment, &p),
            "com.example.app:/cb#code=a+b&state=x%26y"
        );
    }

    #[test]
    fn query_is_the_default_mode_and_others_are_refused() {
        assert_eq!(ResponseMode::parse(None), Some(ResponseMode::Query));
        assert_eq!(
            ResponseMode::parse(Some("fragment")),
            Some(ResponseMode::Fragment)
        );
        assert_eq!(ResponseMode::parse(Some("form_post")), None);
    }
}
