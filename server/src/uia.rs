//! User-interactive authentication (UIA), reusable by any endpoint.
//!
//! An endpoint states its flows, the request fields the session is bound to, and
//! (for a signed-in caller) whose credentials the stages must prove. The first
//! request gets a 401 with a new session; later requests complete stages in it.
//! Sessions live in the database (any process can continue one), expire, and work
//! only for the endpoint and body they were created for.

use http::StatusCode;
use matrix_api::runtime::{MatrixError, Metadata};
use matrix_api::types::{AuthData, AuthResponse, FlowInformation};
use serde_json::Value;

use crate::crypto;
use crate::service::{internal, Server};
use crate::store::{now_ms, UiaSession};

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

pub struct UiaSpec<'a> {
    /// The operation the session is for (its generated `METADATA`).
    pub operation: &'a Metadata,
    /// Request fields that must stay the same for the whole session.
    pub binding: &'a [&'a str],
    /// The signed-in user whose password the stages check.
    pub user_id: Option<&'a str>,
    pub flows: Vec<Vec<&'static str>>,
}

/// The outcome of one UIA step.
pub enum Uia {
    /// A flow is complete: proceed with the request.
    Passed(UiaSession),
    /// Answer 401 with this body.
    Challenge(AuthResponse),
}

impl Server {
    pub async fn user_interactive_auth(
        &self,
        spec: &UiaSpec<'_>,
        auth: Option<&AuthData>,
    ) -> Result<Uia, MatrixError> {
        // `"POST /_matrix/client/v3/register"`: what a session is bound to.
        let endpoint = format!("{} {}", spec.operation.method, spec.operation.path);
        let binding = crypto::bind_hash(&self.uia_key, spec.binding);
        let session_id = auth.and_then(|a| a.session.as_deref());
        let mut session = match session_id {
            Some(id) => {
                let s = self
                    .store
                    .uia_session(id)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| {
                        MatrixError::new(
                            StatusCode::BAD_REQUEST,
                            "M_UNKNOWN",
                            "Unknown or expired session",
                        )
                    })?;
                let same_user = s.user_id.as_deref() == spec.user_id;
                if s.endpoint != endpoint || !same_user {
                    return Err(MatrixError::forbidden(
                        "This session belongs to another request",
                    ));
                }
                if !crypto::secrets_equal(&s.binding, &binding) {
                    return Err(MatrixError::forbidden(
                        "The request changed during the authentication session",
                    ));
                }
                s
            }
            None => {
                let s = UiaSession {
                    session_id: crypto::new_token("uia"),
                    endpoint,
                    binding,
                    user_id: spec.user_id.map(str::to_string),
                    completed: Vec::new(),
                    registration_token: None,
                    expires_ms: now_ms()
                        + (self.config.tokens.uia_session_lifetime_secs * 1000) as i64,
                };
                self.store.create_uia_session(&s).await.map_err(internal)?;
                s
            }
        };
        if let Some(stage) = auth.and_then(|a| a.type_.as_deref()) {
            let auth = auth.expect("a stage comes with auth data");
            if !spec.flows.iter().any(|f| f.contains(&stage)) {
                return Ok(self.challenge(
                    spec,
                    &session,
                    Some((
                        "M_UNRECOGNIZED",
                        format!("Stage {stage} is not offered here"),
                    )),
                ));
            }
            if let Err(failure) = self.run_stage(spec, &mut session, stage, auth).await? {
                return Ok(self.challenge(spec, &session, Some(failure)));
            }
            if !session.completed.iter().any(|c| c == stage) {
                session.completed.push(stage.to_string());
            }
            self.store
                .update_uia_session(&session)
                .await
                .map_err(internal)?;
        }
        let done = spec
            .flows
            .iter()
            .any(|f| f.iter().all(|s| session.completed.iter().any(|c| c == s)));
        Ok(if done {
            Uia::Passed(session)
        } else {
            self.challenge(spec, &session, None)
        })
    }

    /// Checks one stage: `Ok(Err(..))` is a failed stage (answered in the 401 body),
    /// `Err` a request error.
    async fn run_stage(
        &self,
        spec: &UiaSpec<'_>,
        session: &mut UiaSession,
        stage: &str,
        auth: &AuthData,
    ) -> Result<Result<(), (&'static str, String)>, MatrixError> {
        let field = |k: &str| auth.extra.get(k).and_then(Value::as_str);
        match stage {
            DUMMY => Ok(Ok(())),
            PASSWORD => {
                let Some(expected) = spec.user_id else {
                    return Ok(Err((
                        "M_FORBIDDEN",
                        "No account to check a password for".into(),
                    )));
                };
                // `identifier: {type: m.id.user, user}` or the legacy `user`.
                let named = auth
                    .extra
                    .get("identifier")
                    .filter(|i| i.get("type").and_then(Value::as_str) == Some("m.id.user"))
                    .and_then(|i| i.get("user"))
                    .and_then(Value::as_str)
                    .or_else(|| field("user"));
                if let Some(name) = named {
                    if self.resolve_user(name).ok().as_deref() != Some(expected) {
                        return Ok(Err((
                            "M_FORBIDDEN",
                            "Those are not the caller's credentials".into(),
                        )));
                    }
                }
                let stored = self
                    .store
                    .user(expected)
                    .await
                    .map_err(internal)?
                    .and_then(|u| u.password_hash);
                let ok = match (field("password"), stored) {
                    (Some(p), Some(h)) => self.hasher.verify(p, &h).await,
                    _ => false,
                };
                Ok(if ok {
                    Ok(())
                } else {
                    Err(("M_FORBIDDEN", "Invalid password".into()))
                })
            }
            REGISTRATION_TOKEN => {
                let Some(token) = field("token") else {
                    return Err(MatrixError::missing_param("Missing `token`"));
                };
                let usable = self
                    .store
                    .registration_token(token)
                    .await
                    .map_err(internal)?
                    .is_some_and(|t| t.usable(now_ms()));
                if !usable {
                    return Ok(Err(("M_FORBIDDEN", "Invalid registration token".into())));
                }
                session.registration_token = Some(token.to_string());
                Ok(Ok(()))
            }
            other => Ok(Err((
                "M_UNRECOGNIZED",
                format!("Stage {other} is not supported"),
            ))),
        }
    }

    fn challenge(
        &self,
        spec: &UiaSpec<'_>,
        session: &UiaSession,
        failure: Option<(&str, String)>,
    ) -> Uia {
        let (errcode, error) = match failure {
            Some((c, e)) => (Some(c.to_string()), Some(e)),
            None => (None, None),
        };
        Uia::Challenge(AuthResponse {
            flows: spec
                .flows
                .iter()
                .map(|f| FlowInformation {
                    stages: f.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            params: Some(Default::default()),
            session: Some(session.session_id.clone()),
            completed: Some(session.completed.clone()),
            errcode,
            error,
        })
    }
}
