//! Sending text messages through an HTTP gateway (`[sms]`): a `POST` of a small
//! JSON document with a bearer secret, as most SMS providers and self-hosted
//! gateways accept. The request runs on the blocking pool (ureq, rustls) and
//! returns once the gateway accepted the message (any 2xx).

use std::time::Duration;

use crate::config::Sms;

/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

pub struct SmsSender {
    url: String,
    bearer: String,
    from: String,
    agent: ureq::Agent,
}

impl SmsSender {
    pub fn new(config: &Sms) -> SmsSender {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(SEND_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        SmsSender {
            url: config.gateway_url.clone(),
            bearer: config.bearer_token.clone(),
            from: config.from.clone(),
            agent,
        }
    }

    /// Sends `text` to `to` (E.164 digits, without `+`). The error says why,
    /// without the secret or the gateway's URL (which may hold a key).
    pub async fn send(&self, to: &str, text: &str) -> Result<(), String> {
        let body = serde_json::json!({"to": format!("+{to}"), "from": self.from, "text": text});
        let agent = self.agent.clone();
        let url = self.url.clone();
        let bearer = self.bearer.clone();
        tokio::task::spawn_blocking(move || {
            let mut request = agent.post(&url).header("content-type", "application/json");
            if !bearer.is_empty() {
                request = request.header("authorization", &format!("Bearer {bearer}"));
            }
            match request.send(body.to_string().as_bytes()) {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!(
                    "the SMS gateway refused the message ({})",
                    resp.status()
                )),
                Err(e) => Err(format!(
                    "the SMS gateway could not be reached ({})",
                    kind(&e)
                )),
            }
        })
        .await
        .map_err(|e| format!("SMS task failed: {e}"))?
    }
}

/// What went wrong, in words that never include the URL.
fn kind(e: &ureq::Error) -> &'static str {
    match e {
        ureq::Error::Timeout(_) => "timed out",
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed => "connection failed",
        ureq::Error::HostNotFound => "host not found",
        _ => "request failed",
    }
}
