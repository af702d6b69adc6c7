//! Support for tests: the generated example round-trip tests, and [`Stub`], the
//! implementation of every route trait that tests of the router (or of anything
//! that takes an [`Api`](crate::Api)) script instead of writing one by hand.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::auth::{Authenticator, Credential, Metadata};
use crate::error::{ErrorEnvelope, MatrixError};

/// The status of the answer to an operation a test scripted nothing for.
pub const UNSCRIPTED: http::StatusCode = http::StatusCode::IM_A_TEAPOT;

/// One call that reached the stub: the operation, the caller and the typed
/// request, as `Debug` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub operation_id: &'static str,
    pub caller: String,
    pub request: String,
}

/// Implements every route trait of the generated crate (the impls are generated
/// beside each trait): records each call, and answers what the test scripted for
/// that operation with [`Stub::reply`] — a `Response` variant or an error — or else `418 M_TEST_CALLED` naming the operation.
/// Authentication is `A`'s.
pub struct Stub<A> {
    pub auth: A,
    calls: Mutex<Vec<Call>>,
    replies: Mutex<HashMap<&'static str, Box<dyn Any + Send>>>,
}

impl<A> Stub<A> {
    pub fn new(auth: A) -> Self {
        Stub {
            auth,
            calls: Mutex::default(),
            replies: Mutex::default(),
        }
    }

    /// Answers every later call of `op` with `result`; `R` is that operation's
    /// `Response` type, `E` its API file's error envelope.
    pub fn reply<R: Clone + Send + 'static, E: ErrorEnvelope>(
        &self,
        op: &Metadata,
        result: Result<R, E>,
    ) {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(op.operation_id, Box::new(result));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a call and gives the scripted answer (used by the generated impls).
    #[doc(hidden)]
    pub fn answer<
        I: std::fmt::Debug,
        Req: std::fmt::Debug,
        R: Clone + 'static,
        E: ErrorEnvelope,
    >(
        &self,
        op: &'static Metadata,
        caller: &I,
        request: &Req,
    ) -> Result<R, E> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Call {
                operation_id: op.operation_id,
                caller: format!("{caller:?}"),
                request: format!("{request:?}"),
            });
        match self
            .replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(op.operation_id)
        {
            Some(reply) => reply
                .downcast_ref::<Result<R, E>>()
                .unwrap_or_else(|| {
                    panic!(
                        "the reply scripted for {} is not its Response type",
                        op.operation_id
                    )
                })
                .clone(),
            None => Err(E::from(MatrixError::new(
                UNSCRIPTED,
                "M_TEST_CALLED",
                op.operation_id,
            ))),
        }
    }
}

impl<A: Authenticator> Authenticator for Stub<A> {
    type Identity = A::Identity;

    fn authenticate(
        &self,
        credential: Credential<'_>,
    ) -> impl Future<Output = Result<Self::Identity, MatrixError>> + Send {
        self.auth.authenticate(credential)
    }

    fn rate_limit(
        &self,
        request: &crate::request::RequestInfo,
        caller: Option<&Self::Identity>,
    ) -> Result<(), MatrixError> {
        self.auth.rate_limit(request, caller)
    }

    fn observe(
        &self,
        operation: Option<&'static Metadata>,
        status: http::StatusCode,
        elapsed: std::time::Duration,
    ) {
        self.auth.observe(operation, status, elapsed)
    }
}

/// Deserialises a spec example into `T`, serialises it back, and checks that nothing
/// was lost or changed: every key of the example is in the output with its value,
/// and the output parses back to an equal `T`. (The output may add keys the example
/// left out, such as fields with defaults.)
pub fn assert_roundtrip<T>(example: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let input: Value = serde_json::from_str(example).expect("example is JSON");
    let typed: T = serde_json::from_value(input.clone())
        .unwrap_or_else(|e| panic!("example does not deserialise: {e}\n{example}"));
    let output = serde_json::to_value(&typed).expect("serialises");
    if let Some(path) = first_difference(&input, &output, String::new()) {
        panic!("round trip changed `{path}`:\n in: {input}\nout: {output}");
    }
    let again: T = serde_json::from_value(output).expect("output deserialises");
    assert_eq!(typed, again, "output parses to a different value");
}

/// The first place where `input` is not contained in `output`.
fn first_difference(input: &Value, output: &Value, path: String) -> Option<String> {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            Some(w) => first_difference(v, w, format!("{path}/{k}")),
            None if v.is_null() => None,
            None => Some(format!("{path}/{k}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{path}/{i}"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        _ => Some(if path.is_empty() { "/".into() } else { path }),
    }
}
