//! Sending email over SMTP with lettre: one transport built from
//! `[email] smtp_url` (plain, STARTTLS or implicit TLS, optional credentials),
//! and messages with a plain-text and an HTML part. A send returns only once
//! the SMTP server accepted the message, so a `200` means it is on its way.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::config::Email;

/// How long one delivery may take (connect, TLS, the SMTP dialogue).
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// One message to send.
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mailer {
    /// The transport of `[email]`. The error never repeats the URL, which may
    /// hold a password.
    pub fn new(config: &Email) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| format!("not an SMTP URL ({e})"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("email.from: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends and waits for the SMTP server to accept the message. The error
    /// says why, for the log and the client, without any credential.
    pub async fn send(&self, mail: Mail<'_>) -> Result<(), String> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("recipient not an address ({e})"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| format!("message not built ({e})"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                format!("the mail server refused the message ({e})")
            } else {
                format!("the mail server could not be reached or failed ({e})")
            }
        })
    }
}
