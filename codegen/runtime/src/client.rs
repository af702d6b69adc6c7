//! The HTTP client (feature `client`): sends any operation's typed request
//! ([`ClientRequest`]) over HTTP/1.1 with hyper and parses the typed answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::client_request::{ClientError, ClientRequest};

/// A client of one server: its base URL (`http://host:port`, plain HTTP), the
/// access token sent to operations that take one, and a timeout per call
/// (30 seconds unless set). Cheap to clone; clones share connections.
#[derive(Clone, Debug)]
pub struct Client {
    base_url: String,
    access_token: Option<String>,
    timeout: Duration,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(base_url: impl Into<String>) -> Self {
        Client {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            access_token: None,
            timeout: Duration::from_secs(30),
            http: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .build(HttpConnector::new()),
        }
    }

    pub fn with_access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    pub fn set_access_token(&mut self, token: Option<String>) {
        self.access_token = token;
    }

    pub fn access_token(&self) -> Option<&str> {
        self.access_token.as_deref()
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `request` and parses the answer (see [`ClientRequest::parse`]).
    pub async fn send<R: ClientRequest>(
        &self,
        request: &R,
    ) -> Result<R::Response, ClientError<R::Error>> {
        let req = request.to_http(&self.base_url, self.access_token.as_deref())?;
        let response = tokio::time::timeout(self.timeout, self.exchange(req))
            .await
            .map_err(|_| ClientError::Timeout)??;
        R::parse(response)
    }

    /// One request and its whole answer, as bytes.
    async fn exchange<E>(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, ClientError<E>> {
        let response = self
            .http
            .request(req.map(Full::new))
            .await
            .map_err(|e| ClientError::Transport(Box::new(e)))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Transport(Box::new(e)))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
}
