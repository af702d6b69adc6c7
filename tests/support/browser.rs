//! A real browser for the black-box page tests: [`Browser`] runs Debian's
//! `chromedriver` on a free loopback port and drives headless Chromium through
//! it with the `fantoccini` WebDriver client. Nothing is emulated: the pages
//! are fetched, parsed, styled (under their CSP) and their forms submitted by
//! the browser itself.
//!
//! How it works:
//!
//! - **Finding it.** `chromedriver` and `chromium` (or `chromium-browser`,
//!   `google-chrome`) are looked up on `PATH`; `.ci/run` installs Debian's
//!   `chromium` and `chromium-driver`. When one is missing, [`Browser::start`]
//!   skips the test through [`crate::skip`] (a failure in CI) and returns `None`.
//! - **The driver.** `chromedriver --port=N` runs under a small bash watchdog
//!   that is the leader of its own process group (chromedriver and Chromium
//!   join it) and waits on a pipe from this process: when the pipe closes
//!   (drop, or this process dying) it stops chromedriver and kills the rest of
//!   the group, so no browser outlives its test. [`Browser::start`] waits for
//!   `GET /status` to say `ready`.
//! - **The session.** Headless Chromium (`--headless=new --no-sandbox
//!   --disable-gpu`) at a fixed [`Viewport`] (a phone by default), with the
//!   browser's console log recorded (`goog:loggingPrefs`, read back through
//!   chromedriver's `se/log`), so CSP violations and failed loads can be
//!   checked ([`Browser::console`], [`Browser::assert_console_clean`]).
//! - **Sync API.** The tests are synchronous: every method runs one WebDriver
//!   step on a private current-thread tokio runtime, bounded by [`STEP`]; a
//!   step that does not finish in time fails the test.
//! - **Screenshots.** [`Browser::screenshot`] writes
//!   `<target dir>/test-screenshots/<test>/<name>.png` (the target directory of
//!   the running test binary; `<test>` is the test's path, `::` as `.`), for a
//!   person to look at. The test's directory is emptied when its browser
//!   starts; after a panic a `panic.png` is taken too.

use std::future::Future;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The longest any one WebDriver step (open, click, read, screenshot) may take.
pub const STEP: Duration = Duration::from_secs(15);
/// How long starting chromedriver and then Chromium may take.
const START: Duration = Duration::from_secs(30);

/// The browser window's size (headless: the viewport's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewport {
    /// 390×844, a current phone held upright.
    Phone,
    /// 1280×800, a laptop.
    Desktop,
}

impl Viewport {
    pub fn size(self) -> (u32, u32) {
        match self {
            Viewport::Phone => (390, 844),
            Viewport::Desktop => (1280, 800),
        }
    }
}

/// One entry of the browser's console log.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`, ...
    pub level: String,
    /// `security` (CSP), `network`, `console-api`, `javascript`, ...
    pub source: String,
    pub message: String,
}

/// A headless Chromium session; the browser and its driver end on drop.
pub struct Browser {
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    watchdog: Child,
    watchdog_stdin: Option<ChildStdin>,
    log: tempfile::TempDir,
    screenshots: PathBuf,
    /// Console entries read so far (chromedriver hands each out once).
    console: std::sync::Mutex<Vec<LogEntry>>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session at `viewport`.
    /// `None` (after a visible skip; in CI a failure) when chromedriver or
    /// Chromium is not installed. Panics if they are there but do not start.
    pub fn start(viewport: Viewport) -> Option<Browser> {
        let Some(driver) = find_in_path(&["chromedriver"]) else {
            crate::skip::skip(
                "no browser: chromedriver is not on PATH (Debian: apt-get install chromium chromium-driver)",
            );
            return None;
        };
        let Some(chromium) = find_in_path(&["chromium", "chromium-browser", "google-chrome"])
        else {
            crate::skip::skip(
                "no browser: chromium is not on PATH (Debian: apt-get install chromium chromium-driver)",
            );
            return None;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let log = tempfile::Builder::new()
            .prefix("chromedriver-")
            .tempdir()
            .expect("a temporary directory");
        let screenshots = crate::smtp::target_dir()
            .join("test-screenshots")
            .join(test_name());
        let _ = std::fs::remove_dir_all(&screenshots);

        // A port taken between `unused_port` and chromedriver's bind makes it
        // exit at once: try another.
        let mut attempts = 0;
        let (watchdog, stdin, port) = loop {
            attempts += 1;
            let port = crate::smtp::unused_port();
            let (mut watchdog, stdin) = spawn_driver(&driver, port, log.path());
            match wait_ready(&mut watchdog, port) {
                Ok(()) => break (watchdog, stdin, port),
                Err(e) => {
                    drop(stdin);
                    let _ = watchdog.wait();
                    assert!(
                        attempts < 3,
                        "chromedriver did not start: {e}; its log:\n{}",
                        read_log(log.path())
                    );
                }
            }
        };

        let (width, height) = viewport.size();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"pageLoad": STEP.as_millis() as u64, "script": 5000, "implicit": 0},
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}/");
        let connected = rt.block_on(async {
            tokio::time::timeout(
                START,
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&url),
            )
            .await
        });
        let client = match connected {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "no Chromium session from chromedriver: {e}; its log:\n{}",
                read_log(log.path())
            ),
            Err(_) => panic!(
                "no Chromium session within {START:?}; chromedriver's log:\n{}",
                read_log(log.path())
            ),
        };
        let browser = Browser {
            client: Some(client),
            rt,
            watchdog,
            watchdog_stdin: Some(stdin),
            log,
            screenshots,
            console: Default::default(),
        };
        // `--window-size` sets the outer window; make the viewport exact.
        browser.set_viewport(viewport);
        Some(browser)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }

    /// Runs one WebDriver step, failing the test if it errs or takes over [`STEP`].
    fn step<T, E: std::fmt::Display>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, E>>,
    ) -> T {
        match self
            .rt
            .block_on(async { tokio::time::timeout(STEP, future).await })
        {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("browser: {what}: {e}"),
            Err(_) => panic!("browser: {what}: not within {STEP:?}"),
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn open(&self, url: &str) {
        self.step(&format!("open {url}"), self.client().goto(url));
    }

    /// The URL the browser shows (after any redirects).
    pub fn url(&self) -> String {
        self.step("current URL", self.client().current_url())
            .to_string()
    }

    /// The page's title.
    pub fn title(&self) -> String {
        self.step("title", self.client().title())
    }

    /// Clicks the element `css` selects (waiting up to [`STEP`] for it).
    pub fn click(&self, css: &str) {
        let element = self.wait_for(css);
        self.step(&format!("click {css}"), element.click());
    }

    /// Types `text` into the field `css` selects, as a person would.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css);
        self.step(&format!("type into {css}"), element.send_keys(text));
    }

    /// Waits up to [`STEP`] for an element `css` selects, e.g. the page a click
    /// leads to.
    pub fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client()
            .wait()
            .at_most(STEP)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css));
        let current = self.client().current_url();
        match self.rt.block_on(async {
            let found = tokio::time::timeout(STEP + Duration::from_secs(1), found).await;
            (found, current.await)
        }) {
            (Ok(Ok(element)), _) => element,
            (found, url) => panic!(
                "browser: no {css} within {STEP:?} ({}) on {}",
                match found {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                },
                url.map(|u| u.to_string()).unwrap_or_default()
            ),
        }
    }

    /// Whether an element `css` selects is on the page now (no waiting).
    pub fn exists(&self, css: &str) -> bool {
        !self
            .step(
                &format!("find {css}"),
                self.client().find_all(Locator::Css(css)),
            )
            .is_empty()
    }

    /// The rendered text of the element `css` selects (waiting up to [`STEP`]).
    pub fn text(&self, css: &str) -> String {
        let element = self.wait_for(css);
        self.step(&format!("text of {css}"), element.text())
    }

    /// The computed value of CSS `property` on the element `css` selects
    /// (`getComputedStyle`, e.g. `rgb(11, 110, 79)` for a colour).
    pub fn computed_style(&self, css: &str, property: &str) -> String {
        self.wait_for(css);
        let value = self.execute(
            "return getComputedStyle(document.querySelector(arguments[0])).getPropertyValue(arguments[1]);",
            vec![json!(css), json!(property)],
        );
        value
            .as_str()
            .unwrap_or_else(|| panic!("computed {property} of {css}: {value}"))
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.step("script", self.client().execute(script, args))
    }

    /// The HTTP status of the page's own response (Navigation Timing).
    pub fn status(&self) -> u64 {
        let status = self.execute(
            "return performance.getEntriesByType('navigation')[0].responseStatus;",
            vec![],
        );
        status
            .as_u64()
            .unwrap_or_else(|| panic!("no navigation status: {status}"))
    }

    /// Resizes the window so that the viewport (the page's `innerWidth` ×
    /// `innerHeight`) is `viewport`'s size.
    pub fn set_viewport(&self, viewport: Viewport) {
        let (width, height) = viewport.size();
        let inner = || {
            let v = self.execute("return [window.innerWidth, window.innerHeight];", vec![]);
            (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0))
        };
        let (mut w, mut h) = (i64::from(width), i64::from(height));
        // Set, measure the window's frame, correct. On a loaded machine the
        // page may see the new size a moment after the resize returns: each
        // size is given a second to show before it is corrected.
        for _ in 0..4 {
            self.step(
                "set the window size",
                self.client().set_window_size(w as u32, h as u32),
            );
            let mut seen = inner();
            for _ in 0..20 {
                if seen == (i64::from(width), i64::from(height)) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                seen = inner();
            }
            w += i64::from(width) - seen.0;
            h += i64::from(height) - seen.1;
        }
        panic!(
            "browser: the viewport is {:?}, not {width}×{height}",
            inner()
        );
    }

    /// Saves a screenshot of the viewport as
    /// `<target dir>/test-screenshots/<test>/<name>.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.step("screenshot", self.client().screenshot());
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        std::fs::create_dir_all(&self.screenshots).expect("the screenshot directory");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Runs `source` in every page opened from now on, before the page's own
    /// scripts (as an app's embedded browser defines `window.onAuthDone`).
    pub fn before_every_page(&self, source: &str) {
        self.step(
            "add a script to new documents",
            self.client()
                .issue_cmd(ScriptOnNewDocument(source.to_string())),
        );
    }

    /// Every console entry of this session so far (the browser's own
    /// messages, such as CSP violations and failed loads, and the pages').
    pub fn console(&self) -> Vec<LogEntry> {
        let value = self.step("read the console log", self.client().issue_cmd(BrowserLog));
        let mut all = self.console.lock().unwrap_or_else(|e| e.into_inner());
        for entry in value.as_array().into_iter().flatten() {
            let field = |k: &str| entry[k].as_str().unwrap_or_default().to_string();
            all.push(LogEntry {
                level: field("level"),
                source: field("source"),
                message: field("message"),
            });
        }
        all.clone()
    }

    /// Fails the test if the console reports a Content Security Policy
    /// violation (something a page tried to load, apply or run was blocked).
    pub fn assert_no_csp_violations(&self) {
        let violations: Vec<LogEntry> = self
            .console()
            .into_iter()
            .filter(|e| e.source == "security" || e.message.contains("Content Security Policy"))
            .collect();
        assert!(violations.is_empty(), "CSP violations: {violations:#?}");
    }

    /// Fails the test on a CSP violation, and on any other error in the
    /// console (a failed load, a script error) whose message contains none of
    /// `expected` (e.g. `"/favicon.ico - "`, `"status of 400"`).
    pub fn assert_console_clean(&self, expected: &[&str]) {
        self.assert_no_csp_violations();
        let errors: Vec<LogEntry> = self
            .console()
            .into_iter()
            .filter(|e| e.level == "SEVERE" && !expected.iter().any(|x| e.message.contains(x)))
            .collect();
        assert!(errors.is_empty(), "errors in the console: {errors:#?}");
    }

    /// Fails the test unless the page's stylesheet `href_suffix` loaded and
    /// applies: it is in `document.styleSheets` with rules, and `element` has
    /// `property` computed to `expected` (not the browser's default). Proves
    /// the page's CSP (`style-src 'self'`) lets its own stylesheet in.
    pub fn assert_styled(&self, href_suffix: &str, element: &str, property: &str, expected: &str) {
        let sheets = self.execute(
            "return Array.from(document.styleSheets).map(s => {
                 let rules = -1;
                 try { rules = s.cssRules.length; } catch (e) {}
                 return {href: s.href, rules};
             });",
            vec![],
        );
        let loaded = sheets.as_array().into_iter().flatten().any(|s| {
            s["href"].as_str().is_some_and(|h| h.ends_with(href_suffix))
                && s["rules"].as_i64().is_some_and(|n| n > 0)
        });
        assert!(
            loaded,
            "stylesheet {href_suffix} not loaded with rules: {sheets}; console: {:#?}",
            self.console()
        );
        let value = self.computed_style(element, property);
        assert_eq!(
            value, expected,
            "computed {property} of {element} (the stylesheet does not apply?)"
        );
    }

    /// Fails the test if the page is wider than the viewport (sideways
    /// scrolling on a phone).
    pub fn assert_fits_width(&self) {
        let widths = self.execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        );
        let (page, viewport) = (widths[0].as_u64(), widths[1].as_u64());
        assert!(
            page.is_some() && page <= viewport,
            "the page is wider than the viewport: {widths}"
        );
    }

    /// chromedriver's log (for failure messages).
    pub fn driver_log(&self) -> String {
        read_log(self.log.path())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking && self.client.is_some() {
            // Best effort, briefly: what the page looked like when it failed.
            let shot = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), self.client().screenshot()).await
            });
            if let Ok(Ok(png)) = shot {
                let _ = std::fs::create_dir_all(&self.screenshots);
                let path = self.screenshots.join("panic.png");
                if std::fs::write(&path, png).is_ok() {
                    let _ = writeln!(
                        std::io::stderr(),
                        "browser: the page at the panic: {}",
                        path.display()
                    );
                }
            }
        }
        // Ending the session quits Chromium; then the watchdog kills whatever is left.
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
        drop(self.watchdog_stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.watchdog.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    kill_group(&self.watchdog);
                    let _ = self.watchdog.wait();
                    break;
                }
            }
        }
        let log = read_log(self.log.path());
        if panicking && !log.trim().is_empty() {
            let _ = writeln!(std::io::stderr(), "browser: chromedriver's log:\n{log}");
        }
    }
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute` with
/// `Page.addScriptToEvaluateOnNewDocument`: a script every later page runs
/// before its own (what an embedded browser of a client does to define
/// `window.onAuthDone`).
#[derive(Debug)]
struct ScriptOnNewDocument(String);

impl WebDriverCompatibleCommand for ScriptOnNewDocument {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({
            "cmd": "Page.addScriptToEvaluateOnNewDocument",
            "params": {"source": self.0},
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// chromedriver's legacy `POST /session/{id}/se/log` (still served in W3C
/// mode): the browser's console entries since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// `chromedriver --port=<port>` under a watchdog (bash), the leader of a new
/// process group that chromedriver and Chromium join. The watchdog ends when
/// its stdin (held by the returned `ChildStdin`) closes, or when chromedriver
/// exits by itself (so its exit tells that chromedriver did not start). On the
/// way out it stops chromedriver (SIGTERM, and waits for it, so nothing is
/// left unreaped) and then SIGKILLs whatever is left of the group.
const WATCHDOG: &str = r#"
"$0" "$@" </dev/null &
driver=$!
while kill -0 "$driver" 2>/dev/null; do
  read -r -t 0.2 _
  [ $? -gt 128 ] || break
done
kill "$driver" 2>/dev/null
wait "$driver"
kill -9 0
"#;

fn spawn_driver(driver: &Path, port: u16, log_dir: &Path) -> (Child, ChildStdin) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("chromedriver.log"))
        .expect("chromedriver's log file");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(WATCHDOG)
        .arg(driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("a log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("running bash for {}: {e}", driver.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin)
}

/// Polls chromedriver's `GET /status` until it says `ready`.
fn wait_ready(watchdog: &mut Child, port: u16) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + START;
    loop {
        if let Ok(mut response) = agent.get(&url).call() {
            let body: Value = response.body_mut().read_json().unwrap_or_default();
            if body["value"]["ready"] == true {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = watchdog.try_wait() {
            return Err(format!("it exited ({status})"));
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready on port {port} within {START:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL to the process group the watchdog leads (its id is the group's).
fn kill_group(watchdog: &Child) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", watchdog.id())])
        .stderr(Stdio::null())
        .status();
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default()
}

/// The first of `names` found as an executable file on `PATH`.
fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// The running test's path with `::` as `.` (the test thread's name).
fn test_name() -> String {
    let thread = std::thread::current();
    thread.name().unwrap_or("unnamed").replace("::", ".")
}
