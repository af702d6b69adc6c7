//! The SMTP sink the email tests use (`matrix_tests::smtp`): a real SMTP server
//! (`tests/smtp/sink.py`, aiosmtpd) on loopback, driven here with `lettre`, the
//! crate the server will send with.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::{Error as SmtpError, SmtpTransport};
use lettre::Transport;
use matrix_tests::smtp::{unused_port, Message, Mode, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);

fn transport(port: u16) -> SmtpTransport {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

fn mailbox(s: &str) -> Mailbox {
    s.parse().expect("mailbox")
}

fn simple(subject: &str) -> lettre::Message {
    lettre::Message::builder()
        .from(mailbox("Matrix <noreply@example.org>"))
        .to(mailbox("alice@example.com"))
        .subject(subject)
        .body(String::from("Your code is 123456.\n"))
        .expect("message")
}

fn status(e: &SmtpError) -> Option<u16> {
    e.status().map(u16::from)
}

#[test]
fn multipart_alternative_round_trips_with_envelope_and_encodings() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let text = "Hallo Jürgen,\n\nyour validation code is 482913.\nÜberprüfen: https://example.org/validate?token=abc_DEF-123&sid=9\n— the server ✓\n";
    let html = "<p>Hallo J&uuml;rgen / Jürgen,</p>\n<p>your validation code is <b>482913</b>.</p>\n<p>✓ <a href=\"https://example.org/validate?token=abc_DEF-123&amp;sid=9\">Überprüfen</a></p>\n";
    let subject = "Bestätigen Sie Ihre E-Mail-Adresse ✉ – Matrix";
    let email = lettre::Message::builder()
        .from(mailbox("Matrix Server <noreply@example.org>"))
        .to(mailbox("Jürgen <juergen@example.com>"))
        .cc(mailbox("bob@example.net"))
        .subject(subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .header(ContentTransferEncoding::QuotedPrintable)
                        .body(text.to_string()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .header(ContentTransferEncoding::Base64)
                        .body(html.to_string()),
                ),
        )
        .expect("message");
    transport(sink.port()).send(&email).expect("sent");

    let got = sink.wait_for_message(WAIT);
    assert_eq!(got.from, "noreply@example.org");
    assert_eq!(got.to, ["juergen@example.com", "bob@example.net"]);
    assert_eq!(got.subject.as_deref(), Some(subject));
    assert_eq!(got.text_body.as_deref(), Some(text));
    assert_eq!(got.html_body.as_deref(), Some(html));
    assert_eq!(got.login, None);
    assert_eq!(got.header_addresses("From"), ["noreply@example.org"]);
    assert_eq!(got.header_addresses("To"), ["juergen@example.com"]);

    // It really went over the wire encoded: nothing of it is 8-bit.
    let raw = String::from_utf8(got.raw.clone()).expect("7-bit message");
    assert!(raw.is_ascii(), "{raw}");
    let lower = raw.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: multipart/alternative"),
        "{raw}"
    );
    assert!(
        lower.contains("content-transfer-encoding: quoted-printable"),
        "{raw}"
    );
    assert!(lower.contains("content-transfer-encoding: base64"), "{raw}");
    assert!(raw.contains("=?utf-8?"), "subject RFC 2047-encoded: {raw}");

    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn messages_arrive_in_order_and_each_once() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let mailer = transport(sink.port());
    for i in 1..=3 {
        mailer.send(&simple(&format!("message {i}"))).expect("sent");
    }
    for i in 1..=3 {
        let got = sink.wait_for_message(WAIT);
        assert_eq!(got.subject, Some(format!("message {i}")));
        // (lettre ends the data with CRLF . CRLF after the message: a body
        // that ends in a line break arrives with one more.)
        let text = got.text_body.expect("text body");
        assert_eq!(text.trim_end(), "Your code is 123456.");
        assert_eq!(got.html_body, None);
    }
    let all = sink.messages();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].subject.as_deref(), Some("message 3"));
}

/// Hand-written wire bytes: soft line breaks and `=XX` escapes, base64 split
/// over lines, a Latin-1 charset and an RFC 2047 Q-encoded subject, and the
/// envelope differing from the headers.
#[test]
fn raw_message_with_hand_written_encodings_is_decoded() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let raw = concat!(
        "From: a@example.org\r\n",
        "To: b@example.org\r\n",
        "Subject: =?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/alternative; boundary=\"XYZ\"\r\n",
        "\r\n",
        "--XYZ\r\n",
        "Content-Type: text/plain; charset=iso-8859-1\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n",
        "\r\n",
        "Gr=FC=DFe, this line is long enough that it was wrapped with a soft line =\r\n",
        "break.\r\n",
        ".a line that starts with a dot\r\n",
        "--XYZ\r\n",
        "Content-Type: text/html; charset=utf-8\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        "\r\n",
        "PHA+R3LDvMOfZSDinJM8L3A+\r\n",
        "Cg==\r\n",
        "--XYZ--\r\n",
    );
    let envelope = Envelope::new(
        Some("bounce@example.org".parse().unwrap()),
        vec!["rcpt1@example.com".parse().unwrap()],
    )
    .unwrap();
    transport(sink.port())
        .send_raw(&envelope, raw.as_bytes())
        .expect("sent");

    let got = sink.wait_for_message(WAIT);
    assert_eq!(got.from, "bounce@example.org");
    assert_eq!(got.to, ["rcpt1@example.com"]);
    assert_eq!(got.subject.as_deref(), Some("Grüße aus Köln"));
    assert_eq!(
        got.text_body.as_deref(),
        Some(
            "Grüße, this line is long enough that it was wrapped with a soft line break.\n\
             .a line that starts with a dot"
        )
    );
    assert_eq!(got.html_body.as_deref(), Some("<p>Grüße ✓</p>\n"));
    // The sink keeps the bytes as sent (the dot-stuffing undone), plus the
    // CRLF lettre puts before the final "." even after a message's own CRLF.
    assert_eq!(got.raw, format!("{raw}\r\n").as_bytes());
    assert_eq!(got.header("Subject").as_deref(), Some("Grüße aus Köln"));
    assert_eq!(got.header("MIME-Version").as_deref(), Some("1.0"));
}

#[test]
fn refusing_sink_makes_the_send_fail_permanently() {
    let Some(sink) = SmtpSink::start(Mode::Refuse) else {
        return;
    };
    let err = transport(sink.port())
        .send(&simple("refused"))
        .expect_err("the sink refuses every recipient");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(status(&err), Some(550), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(sink.messages().is_empty());
}

#[test]
fn auth_sink_accepts_the_right_credentials_and_refuses_others() {
    let Some(sink) = SmtpSink::start(Mode::Auth {
        user: "mailer".into(),
        password: "s3cret:with colon".into(),
    }) else {
        return;
    };
    let with = |user: &str, password: &str, mechanism: Mechanism| {
        SmtpTransport::builder_dangerous("127.0.0.1")
            .port(sink.port())
            .timeout(Some(Duration::from_secs(10)))
            .credentials(Credentials::new(user.into(), password.into()))
            .authentication(vec![mechanism])
            .build()
    };

    // No credentials: 530 at MAIL FROM.
    let err = transport(sink.port())
        .send(&simple("anonymous"))
        .expect_err("AUTH is required");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(status(&err), Some(530), "{err}");

    // Wrong password, wrong user: 535.
    for (user, password) in [("mailer", "wrong"), ("someone", "s3cret:with colon")] {
        let err = with(user, password, Mechanism::Plain)
            .send(&simple("wrong"))
            .expect_err("wrong credentials");
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(status(&err), Some(535), "{err}");
    }

    // The right ones, with either mechanism.
    with("mailer", "s3cret:with colon", Mechanism::Plain)
        .send(&simple("plain"))
        .expect("AUTH PLAIN");
    with("mailer", "s3cret:with colon", Mechanism::Login)
        .send(&simple("login"))
        .expect("AUTH LOGIN");
    let first = sink.wait_for_message(WAIT);
    let second = sink.wait_for_message(WAIT);
    assert_eq!(first.subject.as_deref(), Some("plain"));
    assert_eq!(second.subject.as_deref(), Some("login"));
    assert_eq!(first.login.as_deref(), Some("mailer"));
    assert_eq!(second.login.as_deref(), Some("mailer"));
    assert_eq!(sink.messages().len(), 2);
}

#[test]
fn closed_port_gives_a_connection_error() {
    let port = unused_port();
    let err = transport(port)
        .send(&simple("nobody listens"))
        .expect_err("nothing listens");
    assert!(!err.is_permanent() && !err.is_transient(), "{err:?}");
    assert_eq!(err.status(), None);
    let mut source = std::error::Error::source(&err);
    let mut refused = false;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = e.source();
    }
    assert!(refused, "connection refused: {err:?}");
}

#[test]
fn dropping_the_sink_stops_its_server() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let port = sink.port();
    assert!(transport(port).test_connection().expect("connects"));
    drop(sink);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the sink's port still accepts connections after drop"
    );
}

/// Bad envelope JSON or bytes from the sink side give an error, not a panic.
#[test]
fn parsing_bad_input_is_an_error() {
    let raw = b"Subject: x\r\n\r\nbody\r\n".to_vec();
    assert!(Message::parse(raw.clone(), b"not json").is_err());
    assert!(Message::parse(raw.clone(), b"{}").is_err());
    assert!(Message::parse(raw.clone(), br#"{"mail_from": "a@b", "rcpt_tos": [1]}"#).is_err());
    assert!(Message::parse(Vec::new(), br#"{"mail_from": "", "rcpt_tos": []}"#).is_err());
    let ok = Message::parse(raw, br#"{"mail_from": "", "rcpt_tos": ["c@d"]}"#).expect("parses");
    assert_eq!(ok.text_body.as_deref(), Some("body\n"));
    // Garbage bytes still parse to something, without panicking.
    let _ = Message::parse(
        vec![0xff, 0xfe, b'\r', b'\n', 0x80, b'='],
        br#"{"mail_from": "", "rcpt_tos": []}"#,
    );
}
