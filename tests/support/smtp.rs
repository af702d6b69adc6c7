//! A real SMTP server for the black-box email tests: [`SmtpSink`] runs
//! `tests/smtp/sink.py` (Python, on `aiosmtpd`) as a child process listening on
//! 127.0.0.1, and reads back what it accepted. Nothing is mocked: the code under
//! test talks SMTP over TCP, as it would to a real relay.
//!
//! How it works:
//!
//! - **The venv.** `aiosmtpd` is pinned with its dependency set in
//!   `tests/smtp/requirements.txt`. The first [`SmtpSink::start`] of a test
//!   process runs `tests/smtp/setup`, which installs it into
//!   `<target dir>/smtp-venv` (the target directory of the running test binary)
//!   and reuses that venv while `requirements.txt` is unchanged: the first run
//!   on a clean checkout takes a few seconds and needs PyPI, later runs none.
//!   Within a process a `OnceLock` runs the setup once; across processes (two
//!   test binaries at once) the script holds an exclusive `flock` on
//!   `<target dir>/smtp-venv.lock`, so the venv is never built twice at once.
//!   If `python3` (with `venv`) is missing or the install fails, `start` skips
//!   the test through [`crate::skip`] (a failure in CI) and returns `None`.
//! - **The server.** Each sink is its own process on its own port (the system
//!   picks it; `sink.py` prints it as its first line of stdout), with a
//!   temporary directory: `messages/` for what it accepts, `sink.log` for its
//!   log (stderr). Message `n` (from 1) is `messages/n.eml` (the raw RFC 5322
//!   bytes) plus `messages/n.json` (the envelope), each renamed into place once
//!   complete, the JSON first; [`SmtpSink::wait_for_message`] polls for them.
//! - **Modes** ([`Mode`]): accept everything; refuse every recipient with 550;
//!   require AUTH PLAIN/LOGIN (offered without TLS: it is loopback).
//! - **Cleanup.** The sink holds the write end of the child's stdin; the child
//!   exits when stdin closes, so even a test process that is killed leaves no
//!   sink behind. `Drop` closes stdin, waits for the child a moment and kills
//!   it if it has not gone. After a panic the directory is kept and its path
//!   printed, so the messages and the log can be read.
//! - **Reading.** [`Message`] is parsed with `mail-parser`: multipart/alternative,
//!   quoted-printable and base64 bodies, RFC 2047 headers and charsets.
//!
//! [`unused_port`] gives a port on which nothing listens, for "SMTP server down".

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a sink answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accepts every message.
    Accept,
    /// Answers `550` to every `RCPT TO`: no message is ever accepted.
    Refuse,
    /// Requires `AUTH PLAIN` or `AUTH LOGIN` with these credentials before
    /// `MAIL FROM` (`530` otherwise; `535` for wrong credentials). The user
    /// may not contain `:`.
    Auth { user: String, password: String },
}

/// A message the sink accepted: its envelope and its decoded content.
#[derive(Clone, Debug)]
pub struct Message {
    /// The envelope's `MAIL FROM` (empty for the null sender `<>`).
    pub from: String,
    /// The envelope's `RCPT TO`s, in order.
    pub to: Vec<String>,
    /// The `Subject` header, decoded (RFC 2047).
    pub subject: Option<String>,
    /// The first text/plain body part, decoded (transfer encoding and charset),
    /// with CRLF line ends turned into LF.
    pub text_body: Option<String>,
    /// The first text/html body part, decoded likewise.
    pub html_body: Option<String>,
    /// The message as the sink received it (RFC 5322 bytes).
    pub raw: Vec<u8>,
    /// The user the client authenticated as, in [`Mode::Auth`].
    pub login: Option<String>,
}

impl Message {
    /// The first line of the text part that contains `needle`, trimmed (the
    /// link a validation message carries, say).
    pub fn text_line_containing(&self, needle: &str) -> Option<String> {
        self.text_body
            .as_deref()?
            .lines()
            .map(str::trim)
            .find(|l| l.contains(needle))
            .map(str::to_string)
    }

    /// Parses a message from its raw bytes and the sink's envelope JSON
    /// (`{"mail_from": "...", "rcpt_tos": ["..."], "login": ...}`).
    pub fn parse(raw: Vec<u8>, envelope_json: &[u8]) -> Result<Message, String> {
        let envelope: serde_json::Value = serde_json::from_slice(envelope_json)
            .map_err(|e| format!("envelope is not JSON: {e}"))?;
        let from = envelope
            .get("mail_from")
            .and_then(|v| v.as_str())
            .ok_or("envelope has no mail_from string")?
            .to_string();
        let to = envelope
            .get("rcpt_tos")
            .and_then(|v| v.as_array())
            .ok_or("envelope has no rcpt_tos array")?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("envelope has a rcpt_tos entry that is not a string")?;
        let login = envelope
            .get("login")
            .and_then(|v| v.as_str())
            .map(str::to_string);

        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .ok_or("mail-parser found no message in the bytes")?;
        let subject = parsed.subject().map(str::to_string);
        let text_body =
            parsed
                .text_body
                .iter()
                .find_map(|&id| match parsed.part(id).map(|p| &p.body) {
                    Some(mail_parser::PartType::Text(text)) => Some(normalize(text)),
                    _ => None,
                });
        let html_body =
            parsed
                .html_body
                .iter()
                .find_map(|&id| match parsed.part(id).map(|p| &p.body) {
                    Some(mail_parser::PartType::Html(html)) => Some(normalize(html)),
                    _ => None,
                });
        Ok(Message {
            from,
            to,
            subject,
            text_body,
            html_body,
            raw,
            login,
        })
    }

    /// A header of the message: decoded text for unstructured headers
    /// (`Subject`, `X-…`), else the raw value, unfolded and trimmed. `None` if
    /// absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = mail_parser::MessageParser::default().parse(&self.raw)?;
        if let Some(text) = parsed.header(name).and_then(|v| v.as_text()) {
            return Some(text.to_string());
        }
        parsed
            .header_raw(name)
            .map(|raw| raw.replace("\r\n", "").replace('\n', "").trim().to_string())
    }

    /// The bare addresses of an address header (`From`, `To`, `Reply-To`, …).
    pub fn header_addresses(&self, name: &str) -> Vec<String> {
        let Some(parsed) = mail_parser::MessageParser::default().parse(&self.raw) else {
            return Vec::new();
        };
        parsed
            .header(name)
            .and_then(|v| v.as_address())
            .map(|a| {
                a.iter()
                    .filter_map(|addr| addr.address.as_deref().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// A running `tests/smtp/sink.py`; stopped on drop.
pub struct SmtpSink {
    child: Mutex<Child>,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: Option<tempfile::TempDir>,
    /// The number of the next message [`SmtpSink::wait_for_message`] returns.
    next: Mutex<u64>,
}

impl SmtpSink {
    /// Starts a sink in `mode` on a free loopback port. `None` (after a visible
    /// skip; in CI a failure) when Python or the venv cannot be set up. Panics
    /// if the venv is there but the sink does not come up.
    pub fn start(mode: Mode) -> Option<SmtpSink> {
        let python = match venv_python() {
            Ok(python) => python,
            Err(reason) => {
                crate::skip::skip(&format!("no SMTP sink: {reason}"));
                return None;
            }
        };
        match SmtpSink::spawn(&python, &mode) {
            Ok(sink) => Some(sink),
            Err(e) => panic!("SMTP sink ({mode:?}) did not start: {e}"),
        }
    }

    fn spawn(python: &Path, mode: &Mode) -> Result<SmtpSink, String> {
        let dir = tempfile::Builder::new()
            .prefix("smtp-sink-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let messages = dir.path().join("messages");
        std::fs::create_dir(&messages).map_err(|e| format!("{}: {e}", messages.display()))?;
        let log_path = dir.path().join("sink.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;

        let mut command = Command::new(python);
        command
            .arg(workspace().join("tests/smtp/sink.py"))
            .arg("--dir")
            .arg(&messages)
            .args(["--port", "0"]);
        match mode {
            Mode::Accept => {}
            Mode::Refuse => {
                command.arg("--refuse");
            }
            Mode::Auth { user, password } => {
                assert!(
                    !user.contains(':'),
                    "Mode::Auth: the user may not contain ':'"
                );
                command.arg("--auth").arg(format!("{user}:{password}"));
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("running {}: {e}", python.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();

        // The first line of stdout is the port, printed once the sink listens.
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                let mut line = String::new();
                let read = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(read.map(|_| line));
            });
        }
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => line.trim().parse::<u16>().ok().filter(|&p| p != 0),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no port on its first line of stdout within 30 s; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            ));
        };
        Ok(SmtpSink {
            child: Mutex::new(child),
            stdin,
            port,
            dir: Some(dir),
            next: Mutex::new(1),
        })
    }

    /// The loopback port the sink listens on (host `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the sink writes messages (`n.eml`, `n.json`).
    pub fn messages_dir(&self) -> PathBuf {
        self.path().join("messages")
    }

    /// The sink's log (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("sink.log")).unwrap_or_default()
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// The next message not yet returned by this method (the first call
    /// returns message 1, the next message 2, ...), waiting for it up to
    /// `timeout`. Panics when it does not come, or when the sink has exited.
    pub fn wait_for_message(&self, timeout: Duration) -> Message {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + timeout;
        loop {
            if self.message_path(*next, "eml").exists() {
                let message = self
                    .read_message(*next)
                    .unwrap_or_else(|e| panic!("SMTP sink message {}: {e}", *next));
                *next += 1;
                return message;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "SMTP sink exited ({status}) while waiting for message {}; its log:\n{}",
                    *next,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "SMTP sink: no message {} within {timeout:?}; its log:\n{}",
                    *next,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Message> {
        let mut numbers: Vec<u64> = std::fs::read_dir(self.messages_dir())
            .map(|entries| {
                entries
                    .filter_map(|entry| {
                        let name = entry.ok()?.file_name();
                        name.to_str()?.strip_suffix(".eml")?.parse().ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        numbers.sort_unstable();
        numbers
            .into_iter()
            .map(|n| {
                self.read_message(n)
                    .unwrap_or_else(|e| panic!("SMTP sink message {n}: {e}"))
            })
            .collect()
    }

    fn message_path(&self, n: u64, ext: &str) -> PathBuf {
        self.messages_dir().join(format!("{n}.{ext}"))
    }

    fn read_message(&self, n: u64) -> Result<Message, String> {
        let read = |ext| {
            let path = self.message_path(n, ext);
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let envelope = read("json")?;
        let raw = read("eml")?;
        Message::parse(raw, &envelope)
    }

    /// `Some(status)` once the sink process has ended.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().ok().flatten()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin asks the sink to stop; a kill if it has not within 2 s.
        drop(self.stdin.take());
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                let _ = writeln!(
                    std::io::stderr(),
                    "SMTP sink on port {}: messages and log kept in {}",
                    self.port,
                    kept.display()
                );
            }
        }
    }
}

/// A loopback port on which nothing listens (the system's pick of a free
/// port, closed again): connecting to it is refused. Another process could
/// take it in between, which on a test machine is unlikely.
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The target directory of the running test binary (`<target>/<profile>/deps/`),
/// else `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub(crate) fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| workspace().join("target"))
}

/// The venv's python, set up by `tests/smtp/setup` once per process.
fn venv_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = workspace().join("tests/smtp/setup");
            let output = Command::new("bash")
                .arg(&script)
                .env("CARGO_TARGET_DIR", target_dir())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "tests/smtp/setup failed ({}): {}",
                    output.status,
                    tail.join("\n")
                ));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            let python = stdout
                .lines()
                .last()
                .map(|l| PathBuf::from(l.trim()))
                .filter(|p| p.is_file())
                .ok_or_else(|| format!("tests/smtp/setup printed no venv python: {stdout:?}"))?;
            Ok(python)
        })
        .clone()
}
