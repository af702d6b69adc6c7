//! The router: one hyper service for every operation of every API file. It owns
//! CORS, body limits, path matching (with percent-decoding), authentication,
//! rate limits and error envelopes; generated code supplies the route table
//! (with each operation's legacy `r0` path where it has one) and one dispatch
//! arm per operation.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tracing::Instrument;

use crate::auth::{find_credential, Authenticator, Context, Metadata, Security};
use crate::error::{ErrorEnvelope, MatrixError};
use crate::request::{FromRequest, Incoming, RemoteAddr, RequestInfo};
use crate::response::{self, HttpResponse, IntoResponse};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A path segment in the route table.
#[derive(Clone, Copy, Debug)]
pub enum Seg {
    Lit(&'static str),
    Param,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    pub base: &'static str,
    pub segments: &'static [Seg],
    /// The operation's generated `METADATA`.
    pub metadata: &'static Metadata,
    /// Index of the operation for [`Dispatch::call`].
    pub op: usize,
}

/// Generated glue between the route table and the route traits.
pub trait Dispatch: Send + Sync + 'static {
    fn routes(&self) -> &'static [Route];
    fn call(&self, op: usize, req: Incoming) -> BoxFuture<HttpResponse>;

    /// Each answered request (see [`Authenticator::observe`], which generated
    /// dispatchers forward to); by default nothing.
    fn observe(&self, operation: Option<&'static Metadata>, status: StatusCode, elapsed: Duration) {
        let _ = (operation, status, elapsed);
    }
}

#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Larger bodies get `413 M_TOO_LARGE` without being read.
    pub max_body_bytes: usize,
    /// Operations (by `operationId`) the server does not offer: the router
    /// answers them as it answers unknown paths, `404 M_UNRECOGNIZED` (the
    /// spec's answer for an API a server has switched off, such as the legacy
    /// login API on a server that uses the OAuth 2.0 API only).
    pub switched_off: Vec<&'static str>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_body_bytes: 1 << 20,
            switched_off: Vec::new(),
        }
    }
}

/// The hyper service. Cloning is cheap (two `Arc`s).
pub struct Router<D> {
    dispatch: Arc<D>,
    config: Arc<RouterConfig>,
}

impl<D> Clone for Router<D> {
    fn clone(&self) -> Self {
        Router {
            dispatch: self.dispatch.clone(),
            config: self.config.clone(),
        }
    }
}

impl<D: Dispatch> Router<D> {
    pub fn new(dispatch: D, config: RouterConfig) -> Self {
        Router {
            dispatch: Arc::new(dispatch),
            config: Arc::new(config),
        }
    }

    pub fn routes(&self) -> &'static [Route] {
        self.dispatch.routes()
    }

    /// Answers one request; never fails and never panics on input.
    ///
    /// Each request runs in a `tracing` span `request` (at `DEBUG`, as
    /// tower-http's: enable it with e.g. `RUST_LOG=matrix_api_runtime=debug`)
    /// whose fields are the operation ID, the method and the route template —
    /// never the path itself, which holds user IDs and tokens — and, once
    /// answered, the status and the latency in milliseconds; a `DEBUG` event
    /// "answered" closes it. A request no operation matched (`404`, `405`, a
    /// CORS preflight) gets the span without operation and route. Then
    /// [`Dispatch::observe`] (the implementation's
    /// [`Authenticator::observe`](crate::Authenticator::observe)) sees the
    /// operation, status and latency.
    pub async fn handle<B>(&self, req: Request<B>) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = Instant::now();
        let (operation, span, mut resp) = if req.method() == Method::OPTIONS {
            let span = request_span(req.method(), None);
            (None, span, response::empty(StatusCode::NO_CONTENT))
        } else {
            let path = req.uri().path().to_owned();
            let unread = |e: MatrixError, req: &Request<B>| {
                closing_if_body_unread(e.into_response(), req.body())
            };
            match self.match_route(req.method(), &path) {
                Ok((route, raw_params)) => {
                    let span = request_span(req.method(), Some(route));
                    let resp = match decode_params(raw_params) {
                        Ok(params) => {
                            self.serve(route.op, route.metadata, path, params, req)
                                .instrument(span.clone())
                                .await
                        }
                        Err(e) => unread(e, &req),
                    };
                    (Some(route.metadata), span, resp)
                }
                Err(e) => (None, request_span(req.method(), None), unread(e, &req)),
            }
        };
        add_cors(&mut resp);
        let elapsed = start.elapsed();
        if !span.is_disabled() {
            span.record("status", resp.status().as_u16());
            span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
            tracing::debug!(parent: &span, "answered");
        }
        self.dispatch.observe(operation, resp.status(), elapsed);
        resp
    }

    /// A request matched to an operation: read the body, then the operation's
    /// authentication, rate limit, parsing and handler.
    async fn serve<B>(
        &self,
        op: usize,
        operation: &'static Metadata,
        path: String,
        path_params: Vec<String>,
        req: Request<B>,
    ) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let remote_addr = req.extensions().get::<RemoteAddr>().map(|r| r.0);
        let (parts, body) = req.into_parts();
        let declared_len = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_len.is_some_and(|n| n > self.config.max_body_bytes as u64) {
            return too_large(operation, self.config.max_body_bytes);
        }
        let body = match Limited::new(body, self.config.max_body_bytes)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large(operation, self.config.max_body_bytes)
            }
            Err(e) => {
                let e = MatrixError::bad_json(format!("could not read the request body: {e}"));
                return (operation.render_error)(e);
            }
        };
        let incoming = Incoming {
            info: RequestInfo {
                method: parts.method,
                path,
                headers: parts.headers,
                remote_addr,
                operation,
            },
            path_params,
            query,
            body,
        };
        self.dispatch.call(op, incoming).await
    }

    /// The route for a method and path, with the raw path parameters:
    /// `404 M_UNRECOGNIZED` for an unknown path, `405 M_UNRECOGNIZED` for a
    /// known path with another method.
    fn match_route<'p>(
        &self,
        method: &Method,
        path: &'p str,
    ) -> Result<(&'static Route, Vec<&'p str>), MatrixError> {
        let mut path_matched = false;
        for route in self.dispatch.routes() {
            let Some(rest) = path.strip_prefix(route.base) else {
                continue;
            };
            let Some(params) = match_segments(route.segments, rest) else {
                continue;
            };
            if self
                .config
                .switched_off
                .contains(&route.metadata.operation_id)
            {
                continue;
            }
            if route.method != *method {
                path_matched = true;
                continue;
            }
            return Ok((route, params));
        }
        if path_matched {
            Err(MatrixError::unrecognized(
                StatusCode::METHOD_NOT_ALLOWED,
                "Unrecognized request: method not allowed",
            ))
        } else {
            Err(MatrixError::unrecognized(
                StatusCode::NOT_FOUND,
                "Unrecognized request",
            ))
        }
    }
}

/// Path parameters, percent-decoded: `400 M_INVALID_PARAM` when one is not UTF-8.
fn decode_params(raw: Vec<&str>) -> Result<Vec<String>, MatrixError> {
    raw.into_iter()
        .map(|raw| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| MatrixError::invalid_param("path parameter is not UTF-8"))
        })
        .collect()
}

/// The span of one request (see [`Router::handle`]). Disabled — nothing but a
/// cached check — unless a subscriber wants `DEBUG` from this crate.
fn request_span(method: &Method, route: Option<&'static Route>) -> tracing::Span {
    let operation = route.map(|r| r.metadata);
    tracing::debug_span!(
        "request",
        operation = operation.map(|m| m.operation_id),
        method = method.as_str(),
        route = route.map(template),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The path template a route serves: the operation's path, or its legacy
/// `r0` path for the legacy route.
fn template(route: &'static Route) -> &'static str {
    let m = route.metadata;
    match m.legacy_path {
        Some(legacy) if !m.path.starts_with(route.base) => legacy,
        _ => m.path,
    }
}

/// Matches `rest` (the path below the base, starting with `/`) against a route's
/// segments, returning the raw parameter segments.
fn match_segments<'p>(segments: &[Seg], rest: &'p str) -> Option<Vec<&'p str>> {
    let rest = rest.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let mut params = Vec::new();
    for seg in segments {
        let part = parts.next()?;
        match seg {
            Seg::Lit(lit) if *lit == part => {}
            Seg::Lit(_) => return None,
            Seg::Param => params.push(part),
        }
    }
    parts.next().is_none().then_some(params)
}

/// `413`, with `Connection: close`: the rest of the body is never read, so the
/// connection cannot carry another request and the client must not reuse it.
fn too_large(operation: &Metadata, limit: usize) -> HttpResponse {
    let e = MatrixError::too_large(format!("request body larger than {limit} bytes"));
    let mut resp = (operation.render_error)(e);
    response::set_header(&mut resp, "connection", "close");
    resp
}

/// An answer given before the request's body was read (an unknown or
/// switched-off endpoint, a bad path): the unread rest of a body would be
/// taken for the next request, so hyper closes the connection after the
/// answer; `Connection: close` tells the client, so it does not send its next
/// request on it (and meet a broken pipe).
fn closing_if_body_unread<B: Body>(mut resp: HttpResponse, body: &B) -> HttpResponse {
    if !body.is_end_stream() {
        response::set_header(&mut resp, "connection", "close");
    }
    resp
}

fn add_cors(resp: &mut HttpResponse) {
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
}

impl<D, B> hyper::service::Service<Request<B>> for Router<D>
where
    D: Dispatch,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<HttpResponse, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let router = self.clone();
        Box::pin(async move { Ok(router.handle(req).await) })
    }
}

fn respond<R: IntoResponse, E: ErrorEnvelope>(result: Result<R, E>) -> HttpResponse {
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Calls a public operation: rate limit, parse, then call.
pub async fn handle_public<A, Req, Res, E, F, Fut>(api: &A, req: Incoming, f: F) -> HttpResponse
where
    A: Authenticator,
    Req: FromRequest,
    Res: IntoResponse,
    F: FnOnce(Context<()>, Req) -> Fut,
    E: ErrorEnvelope,
    Fut: Future<Output = Result<Res, E>>,
{
    if let Err(e) = rate_limit(api, &req, None) {
        return E::from(e).into_response();
    }
    parse_and_call((), req, f).await
}

/// Calls an operation that allows anonymous callers: a credential, if present,
/// must still be valid.
pub async fn handle_optional<A, Req, Res, E, F, Fut>(
    api: &A,
    security: &Security,
    req: Incoming,
    f: F,
) -> HttpResponse
where
    A: Authenticator,
    Req: FromRequest,
    Res: IntoResponse,
    F: FnOnce(Context<Option<A::Identity>>, Req) -> Fut,
    E: ErrorEnvelope,
    Fut: Future<Output = Result<Res, E>>,
{
    let auth = authenticate(api, security, &req)
        .await
        .and_then(|auth| rate_limit(api, &req, auth.as_ref()).map(|()| auth));
    match auth {
        Ok(auth) => parse_and_call(auth, req, f).await,
        Err(e) => E::from(e).into_response(),
    }
}

/// Calls an operation that needs a credential: `401 M_MISSING_TOKEN` without one.
pub async fn handle_required<A, Req, Res, E, F, Fut>(
    api: &A,
    security: &Security,
    req: Incoming,
    f: F,
) -> HttpResponse
where
    A: Authenticator,
    Req: FromRequest,
    Res: IntoResponse,
    F: FnOnce(Context<A::Identity>, Req) -> Fut,
    E: ErrorEnvelope,
    Fut: Future<Output = Result<Res, E>>,
{
    let auth = match authenticate(api, security, &req).await {
        Ok(Some(auth)) => rate_limit(api, &req, Some(&auth)).map(|()| auth),
        Ok(None) => Err(MatrixError::missing_token()),
        Err(e) => Err(e),
    };
    match auth {
        Ok(auth) => parse_and_call(auth, req, f).await,
        Err(e) => E::from(e).into_response(),
    }
}

/// The implementation's rate limit, for the operations the spec marks.
fn rate_limit<A: Authenticator>(
    api: &A,
    req: &Incoming,
    caller: Option<&A::Identity>,
) -> Result<(), MatrixError> {
    if req.info.operation.rate_limited {
        api.rate_limit(&req.info, caller)
    } else {
        Ok(())
    }
}

/// The caller, if the request carries a credential; an invalid one is an error.
async fn authenticate<A: Authenticator>(
    api: &A,
    security: &Security,
    req: &Incoming,
) -> Result<Option<A::Identity>, MatrixError> {
    match find_credential(req, security) {
        None => Ok(None),
        Some((scheme, token)) => api
            .authenticate(credential(scheme, token, req))
            .await
            .map(Some),
    }
}

/// Authentication passed: parse the typed request, call the operation, answer.
async fn parse_and_call<I, Req, Res, E, F, Fut>(auth: I, req: Incoming, f: F) -> HttpResponse
where
    Req: FromRequest,
    Res: IntoResponse,
    F: FnOnce(Context<I>, Req) -> Fut,
    E: ErrorEnvelope,
    Fut: Future<Output = Result<Res, E>>,
{
    match Req::from_request(&req) {
        Ok(typed) => respond(
            f(
                Context {
                    auth,
                    request: req.info,
                },
                typed,
            )
            .await,
        ),
        Err(e) => E::from(e).into_response(),
    }
}

fn credential<'a>(
    scheme: &'static str,
    token: &'a str,
    req: &'a Incoming,
) -> crate::auth::Credential<'a> {
    crate::auth::Credential {
        scheme,
        token,
        request: &req.info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Metadata;
    use crate::oauth_error::OAuthError;

    static TOKEN: Metadata = Metadata::for_tests(Method::POST, "/oauth2/token")
        .named("requestToken")
        .rendering(crate::error::render_error::<OAuthError>);

    static ROUTES: &[Route] = &[Route {
        method: Method::POST,
        base: "/oauth2",
        segments: &[Seg::Lit("token")],
        metadata: &TOKEN,
        op: 0,
    }];

    struct OneRoute;

    impl Dispatch for OneRoute {
        fn routes(&self) -> &'static [Route] {
            ROUTES
        }
        fn call(&self, _op: usize, _req: Incoming) -> BoxFuture<HttpResponse> {
            Box::pin(async { response::empty(StatusCode::NO_CONTENT) })
        }
    }

    /// The router's own failures on an operation of an OAuth file are in
    /// OAuth's envelope, as the handler's would be.
    #[test]
    fn a_body_too_large_for_an_oauth_operation_is_an_oauth_error() {
        let router = Router::new(
            OneRoute,
            RouterConfig {
                max_body_bytes: 4,
                ..RouterConfig::default()
            },
        );
        let req = Request::post("/oauth2/token")
            .body(http_body_util::Full::new(Bytes::from_static(
                b"grant_type=x",
            )))
            .unwrap();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(router.handle(req));
        let std::task::Poll::Ready(resp) = fut.as_mut().poll(&mut cx) else {
            panic!("the answer needs no I/O");
        };
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["connection"], "close");
        let mut body = std::pin::pin!(resp.into_body());
        let std::task::Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) else {
            panic!("a full body");
        };
        let json: serde_json::Value = serde_json::from_slice(&frame.into_data().unwrap()).unwrap();
        assert_eq!(json["error"], "invalid_request");
        assert!(json.get("errcode").is_none());
    }

    /// A switched-off operation is answered as an unknown endpoint, and
    /// its handler never runs.
    #[test]
    fn a_switched_off_operation_is_unrecognized() {
        let answer = |switched_off: Vec<&'static str>| {
            let router = Router::new(
                OneRoute,
                RouterConfig {
                    switched_off,
                    ..RouterConfig::default()
                },
            );
            let req = Request::post("/oauth2/token")
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut fut = std::pin::pin!(router.handle(req));
            let std::task::Poll::Ready(resp) = fut.as_mut().poll(&mut cx) else {
                panic!("the answer needs no I/O");
            };
            resp.status()
        };
        assert_eq!(answer(vec![]), StatusCode::NO_CONTENT);
        assert_eq!(answer(vec!["otherOperation"]), StatusCode::NO_CONTENT);
        assert_eq!(answer(vec![TOKEN.operation_id]), StatusCode::NOT_FOUND);
    }

    /// An endpoint answered without reading the body closes the connection
    /// when there is a body; a bodiless request keeps it.
    #[test]
    fn an_unknown_endpoint_with_a_body_closes_the_connection() {
        let answer = |body: &'static [u8]| {
            let router = Router::new(OneRoute, RouterConfig::default());
            let req = Request::post("/nowhere")
                .body(http_body_util::Full::new(Bytes::from_static(body)))
                .unwrap();
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut fut = std::pin::pin!(router.handle(req));
            let std::task::Poll::Ready(resp) = fut.as_mut().poll(&mut cx) else {
                panic!("the answer needs no I/O");
            };
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
            resp.headers().get("connection").cloned()
        };
        assert_eq!(answer(b"{\"a\": 1}").unwrap(), "close");
        assert_eq!(answer(b""), None);
    }

    static WHOIS: Metadata = Metadata::for_tests(Method::GET, "/_matrix/client/v3/whois/{userId}")
        .named("getWhoIs")
        .legacy("/_matrix/client/r0/whois/{userId}");

    static OBSERVED_ROUTES: &[Route] = &[
        Route {
            method: Method::GET,
            base: "/_matrix/client/v3",
            segments: &[Seg::Lit("whois"), Seg::Param],
            metadata: &WHOIS,
            op: 0,
        },
        Route {
            method: Method::GET,
            base: "/_matrix/client/r0",
            segments: &[Seg::Lit("whois"), Seg::Param],
            metadata: &WHOIS,
            op: 0,
        },
    ];

    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<&'static str>, u16)>>>;

    /// Answers `200`, and records what the router reports of each request.
    #[derive(Default)]
    struct Observed(Seen);

    impl Dispatch for Observed {
        fn routes(&self) -> &'static [Route] {
            OBSERVED_ROUTES
        }
        fn call(&self, _op: usize, _req: Incoming) -> BoxFuture<HttpResponse> {
            Box::pin(async { response::empty(StatusCode::OK) })
        }
        fn observe(&self, operation: Option<&'static Metadata>, status: StatusCode, _: Duration) {
            let id = operation.map(|m| m.operation_id);
            self.0.lock().unwrap().push((id, status.as_u16()));
        }
    }

    /// Answers a request whose handling needs no I/O.
    fn answer<D: Dispatch>(router: &Router<D>, method: Method, path: &str) -> HttpResponse {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut fut = std::pin::pin!(router.handle(req));
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(resp) => resp,
            std::task::Poll::Pending => panic!("the answer needs no I/O"),
        }
    }

    #[test]
    fn every_answer_is_observed_with_its_operation_or_none() {
        let seen = Seen::default();
        let router = Router::new(Observed(seen.clone()), RouterConfig::default());
        answer(&router, Method::GET, "/_matrix/client/v3/whois/%40a%3Ab");
        answer(&router, Method::GET, "/_matrix/client/r0/whois/@a:b");
        answer(&router, Method::GET, "/_matrix/client/v3/whois/%FF");
        answer(&router, Method::POST, "/_matrix/client/v3/whois/@a:b");
        answer(&router, Method::GET, "/_matrix/client/v3/nowhere");
        answer(&router, Method::OPTIONS, "/_matrix/client/v3/whois/@a:b");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (Some("getWhoIs"), 200),
                (Some("getWhoIs"), 200),
                (Some("getWhoIs"), 400),
                (None, 405),
                (None, 404),
                (None, 204),
            ]
        );
    }

    /// The spans the router opens, as `name field=value ...` lines.
    #[derive(Default)]
    struct Spans(std::sync::Mutex<Vec<String>>);

    struct Fields<'a>(&'a mut String);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={:?}", field.name(), value));
        }
    }

    impl tracing::Subscriber for Spans {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            let mut spans = self.0.lock().unwrap();
            let mut line = span.metadata().name().to_string();
            span.record(&mut Fields(&mut line));
            spans.push(line);
            tracing::span::Id::from_u64(spans.len() as u64)
        }
        fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
            let mut spans = self.0.lock().unwrap();
            let line = &mut spans[span.into_u64() as usize - 1];
            values.record(&mut Fields(line));
        }
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn each_request_has_a_span_naming_its_operation_and_route_but_not_its_path() {
        let spans = std::sync::Arc::new(Spans::default());
        let router = Router::new(Observed::default(), RouterConfig::default());
        tracing::subscriber::with_default(spans.clone(), || {
            answer(
                &router,
                Method::GET,
                "/_matrix/client/v3/whois/%40secret%3Ab",
            );
            answer(&router, Method::GET, "/_matrix/client/r0/whois/@secret:b");
            answer(&router, Method::GET, "/_matrix/client/v3/secret");
        });
        let spans = spans.0.lock().unwrap();
        assert_eq!(spans.len(), 3, "{spans:?}");
        assert!(
            spans[0].starts_with(
                "request operation=\"getWhoIs\" method=\"GET\" \
                 route=\"/_matrix/client/v3/whois/{userId}\" status=200 latency_ms="
            ),
            "{spans:?}"
        );
        assert!(
            spans[1].contains(" route=\"/_matrix/client/r0/whois/{userId}\" status=200 "),
            "{spans:?}"
        );
        assert!(
            spans[2].starts_with("request method=\"GET\" status=404 latency_ms="),
            "{spans:?}"
        );
        assert!(spans.iter().all(|s| !s.contains("secret")), "{spans:?}");
    }
}
