//! A real browser for the dashboard tests: Debian's headless Chromium driven by chromedriver
//! over the W3C WebDriver protocol.
//!
//! Why not a WebDriver crate (fantoccini, thirtyfour): the handful of commands these tests
//! send (new session, navigate, find, click, type, execute a script, screenshot) are plain
//! JSON over HTTP to a loopback chromedriver, and the `reqwest` this crate already has
//! speaks that. A client crate would add its own HTTP and TLS stack (hyper-rustls, another
//! crypto provider) to the lockfile and to every CI build for no test it makes possible.
//!
//! The browser: `$BSM_TEST_CHROMIUM`, else `chromium` (or `chromium-browser`,
//! `google-chrome`) on `PATH`; the driver: `$BSM_TEST_CHROMEDRIVER`, else `chromedriver` on
//! `PATH`. Debian: `apt-get install chromium chromium-driver` (`.ci/run` does it). Each
//! [`Browser`] has its own chromedriver on a free port and a fresh profile directory; the
//! driver runs in its own process group, killed with the browser when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// The Chromium flags: headless, quiet (no first-run, sync, update or background traffic).
const CHROMIUM_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// The first of `env` (when set) or `names` found on `PATH`.
fn find(env: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!("${env} is {} which does not exist", path.display()))
        };
    }
    names
        .iter()
        .find_map(|n| which::which(n).ok())
        .ok_or_else(|| {
            format!(
                "none of {names:?} is on PATH and ${env} is not set (Debian: apt-get install chromium chromium-driver)"
            )
        })
}

/// Chromium and chromedriver, or why they are missing (for `support::require`).
pub fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let chromium = find(
        "BSM_TEST_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )?;
    let driver = find("BSM_TEST_CHROMEDRIVER", &["chromedriver"])?;
    Ok((chromium, driver))
}

/// A headless Chromium under chromedriver, with one WebDriver session.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// A WebDriver answer's `value`, or its error as text.
async fn answer(resp: reqwest::Response) -> Result<Value, String> {
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("chromedriver sent no JSON ({status}): {e}"))?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!(
            "{}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or_default()
        ))
    }
}

impl Browser {
    /// Start chromedriver on a free port and a browser session in a fresh profile.
    pub async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = super::closed_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => answer(r).await.is_ok_and(|v| v["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver is not ready on port {port} after 20 s"
            );
            tokio::time::sleep(POLL).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let resp = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("POST /session");
        let value = answer(resp).await.expect("chromedriver starts the browser");
        let id = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            driver,
            _profile: profile,
        }
    }

    /// One command: `method` on the session's `path` with `body`.
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        answer(resp).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    /// Load `url` (returns once the page has loaded).
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url}))
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Run `script` (a function body: `return …`) with `args` in the page; its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Poll `script` until it returns something truthy (not null, false, 0, "" or []) and
    /// return that, or panic after `within` saying `what` was awaited and what the script
    /// returned last.
    pub async fn wait_for(&self, what: &str, within: Duration, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.execute(script, args.clone()).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
                Value::Bool(true) => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let page = self
                    .execute("return document.body.innerText.slice(0, 2000);", json!([]))
                    .await;
                panic!(
                    "{what}: not within {within:?} (last: {v})\npage text:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The element `css` matches now, or why there is none.
    async fn element(&self, css: &str) -> Result<String, String> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("not an element reference: {v}"))
    }

    /// Run `action` on the element `css` matches, retrying while it is missing or was just
    /// replaced (the page re-renders lists as events arrive), for up to 5 s.
    async fn on_element(&self, css: &str, what: &str, path: &str, body: Value) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let last = match self.element(css).await {
                Ok(id) => match self
                    .post(&format!("/element/{id}{path}"), body.clone())
                    .await
                {
                    Ok(_) => return,
                    Err(e) => e,
                },
                Err(e) => e,
            };
            assert!(Instant::now() < deadline, "{what} {css}: {last}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Click the element `css` matches.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", "/click", json!({})).await;
    }

    /// Type `text` into the element `css` matches (real key events: `input` fires).
    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "type into", "/value", json!({"text": text}))
            .await;
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await
            .expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 text"))
            .expect("a base64 PNG")
    }

    /// The browser console's messages of level SEVERE since the last call (CSP violations,
    /// script errors, failed loads), as text.
    pub async fn console_errors(&self) -> Vec<String> {
        let v = self
            .post("/se/log", json!({"type": "browser"}))
            .await
            .expect("chromedriver's browser log");
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Kill chromedriver's process group: the driver and every browser process it started.
    fn kill_group(&self) {
        if let Some(pid) = self.driver.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// End the session (the browser exits), then chromedriver and anything left of its group.
    pub async fn quit(mut self) {
        let _ = self.command(reqwest::Method::DELETE, "", None).await;
        self.kill_group();
        let _ = self.driver.wait().await;
    }
}
