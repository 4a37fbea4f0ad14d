//! Test support: the fake BlenderMCP addon (`fake_addon.py`, a faithful Python twin of the
//! real addon that really executes the code it receives against a mock `bpy`), started as a
//! child process, with its event log (connections accepted and closed, requests received,
//! commands executed) collected for assertions.
#![allow(dead_code)]

pub mod blender;
mod chat;
pub mod http;
pub mod mock_llm;
pub mod node;
pub mod redis;
pub mod store_suite;
pub mod stream;
pub mod webdriver;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::{Registry, RegistryConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

// Each test crate uses a few of these.
#[allow(unused_imports)]
pub use chat::{ChatRun, run_chat, run_chat_env, run_chat_port};

/// Whether this is a CI run (`CI` set and non-empty), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Skip `test`, whose prerequisite is missing for `reason`: in CI (see [`in_ci`]) this
/// panics, so the test fails; elsewhere it writes `SKIPPED <test>: <reason>` to the process's
/// stderr and returns `false`, for `if !require(..) { return; }`. The line is written to the
/// stderr handle itself, which libtest does not capture (it captures `eprintln!`), so it shows
/// in plain `cargo test` output; `.ci/run` counts these lines as skipped, not passed.
#[track_caller]
pub fn skip(test: &str, reason: &str) -> bool {
    if in_ci() {
        panic!("{test}: cannot run: {reason}; in CI (`CI` set) nothing may be skipped");
    }
    use std::io::Write;
    // One write of the whole line (stderr is unbuffered: `writeln!` would write it piecemeal,
    // and libtest's stdout lines could land in between), on a line of its own even when
    // libtest has written `test <name> ... ` without a newline.
    let line = format!("\nSKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// `true` when `prerequisite` holds; otherwise [`skip`]s `test` with its error as the reason.
#[track_caller]
pub fn require(test: &str, prerequisite: Result<(), String>) -> bool {
    match prerequisite {
        Ok(()) => true,
        Err(reason) => skip(test, &reason),
    }
}

/// Safety net for waits on the fake's events: a test that waits longer has failed.
pub const EVENT_WAIT: Duration = Duration::from_secs(30);

pub fn fake_addon_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_addon.py")
}

/// A running fake addon.
pub struct FakeAddon {
    child: Child,
    _stdin: Option<tokio::process::ChildStdin>,
    pub port: u16,
    events: Arc<Mutex<Vec<Value>>>,
    changed: watch::Receiver<usize>,
}

impl FakeAddon {
    /// Start a classic (protocol 0) fake on a free port.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Start a fake with extra arguments (e.g. `["--protocol", "14"]`, `["--port", "N"]`).
    pub async fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(fake_addon_path())
            .args(args)
            // The fake exits when this pipe closes, so a crashed test leaves no orphan.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 must be installed to run the fake addon");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = watch::channel(0usize);
        let sink = events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let n = {
                        let mut list = sink.lock().unwrap();
                        list.push(v);
                        list.len()
                    };
                    let _ = tx.send(n);
                }
            }
        });
        let mut fake = FakeAddon {
            child,
            _stdin: stdin,
            port: 0,
            events,
            changed: rx,
        };
        fake.wait_for(|ev| ev.iter().any(|e| e["event"] == "listening"))
            .await;
        fake.port = fake
            .events()
            .iter()
            .find(|e| e["event"] == "listening")
            .and_then(|e| e["port"].as_u64())
            .expect("port") as u16;
        fake
    }

    pub fn target(&self) -> Target {
        Target::new("127.0.0.1", self.port)
    }

    /// The events read so far. The fake's log travels on its own pipe, so it may lag what a
    /// client has already been answered: use it inside `wait_for`, or after `settle`.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn count_now(&self, kind: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == kind).count()
    }

    /// Bring the log up to date: every event the fake logged before this call (such as the
    /// `executed` it logs just before replying) is in `events()` when this returns. A
    /// barrier through the fake's stdin (`sync`), or the end of its log if it has exited.
    pub async fn settle(&mut self) {
        use tokio::io::AsyncWriteExt;
        let before = self.count_now("synced");
        if let Some(stdin) = self._stdin.as_mut() {
            // A fake that has exited cannot answer; its log then ends, which also settles it.
            let _ = stdin.write_all(b"{\"kind\": \"sync\"}\n").await;
            let _ = stdin.flush().await;
        }
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        while self.count_now("synced") <= before {
            match tokio::time::timeout_at(deadline, self.changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return, // the log ended: everything it will hold is read
                Err(_) => panic!("the fake addon did not answer a sync within {EVENT_WAIT:?}"),
            }
        }
    }

    /// Number of events of a kind (`accepted`, `closed`, `request`, `executed`, `error`)
    /// logged so far (after `settle`).
    pub async fn count(&mut self, kind: &str) -> usize {
        self.settle().await;
        self.count_now(kind)
    }

    /// Events of a kind logged so far (after `settle`).
    pub async fn of(&mut self, kind: &str) -> Vec<Value> {
        self.settle().await;
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// Wait until `pred` holds on the event log (signalled by each new event).
    pub async fn wait_for(&mut self, pred: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            if pred(&self.events()) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    if pred(&self.events()) {
                        return;
                    }
                    panic!("the fake addon exited; events: {:?}", self.events());
                }
                Err(_) => panic!(
                    "condition not met within {EVENT_WAIT:?}; events: {:?}",
                    self.events()
                ),
            }
        }
    }

    /// Wait until at least `n` events of `kind` were seen.
    pub async fn wait_count(&mut self, kind: &str, n: usize) {
        let kind = kind.to_owned();
        self.wait_for(move |ev| ev.iter().filter(|e| e["event"] == kind.as_str()).count() >= n)
            .await;
    }

    /// Arm a fault (see `fake_addon.py`): it applies to the next matching request(s) or
    /// connection(s). Returns once the fake has acknowledged it.
    pub async fn arm(&mut self, spec: Value) {
        use tokio::io::AsyncWriteExt;
        let before = self.count_now("armed");
        let stdin = self._stdin.as_mut().expect("the fake's stdin");
        stdin
            .write_all(format!("{spec}\n").as_bytes())
            .await
            .expect("write a fault spec");
        stdin.flush().await.expect("flush");
        self.wait_count("armed", before + 1).await;
    }

    /// Request digests the fake received (a wrapped execute_code request is unique, so a
    /// repeated digest means a command was sent twice).
    pub async fn request_digests(&mut self) -> Vec<String> {
        self.of("request")
            .await
            .iter()
            .filter_map(|e| e["digest"].as_str().map(str::to_owned))
            .collect()
    }

    /// Assert that no request reached the fake twice.
    pub async fn assert_nothing_sent_twice(&mut self) {
        let digests = self.request_digests().await;
        let mut unique = digests.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            digests.len(),
            "a request was sent twice: {digests:?}"
        );
    }

    /// Kill the fake (like Blender being killed).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Registry settings pointing at `target`, with the defaults otherwise.
pub fn config(target: Target) -> RegistryConfig {
    RegistryConfig {
        default_target: target,
        ..RegistryConfig::default()
    }
}

/// A registry whose default target is the fake.
pub fn registry(fake: &FakeAddon) -> Registry {
    Registry::new(config(fake.target()))
}

/// A port on which nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The server binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_blender-session-mcp");

/// A session store of one's own for a spawned binary: a temporary SQLite file (the default
/// store kind), deleted when this is dropped.
pub struct TempStore {
    _dir: tempfile::TempDir,
    /// The file, for `BSM_STORE_PATH` / `--store-path`.
    pub path: String,
}

impl TempStore {
    /// A fresh store file path (the file itself is made by the binary).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sessions.db").display().to_string();
        TempStore { _dir: dir, path }
    }
}

impl Default for TempStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The server binary driven with raw JSON-RPC lines, checking that every stdout line is
/// JSON-RPC and collecting stderr.
pub struct RawServer {
    pub child: Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    /// Every stdout line seen so far.
    pub stdout_lines: Vec<String>,
    /// Its own session store (unless the test set BSM_STORE_PATH).
    pub store: TempStore,
}

impl RawServer {
    /// Spawn the binary with `args` and initialize an MCP session.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_env(args, &[]).await
    }

    /// [`RawServer::start`] with extra environment variables.
    pub async fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let store = TempStore::new();
        let mut child = Command::new(BIN)
            .args(args)
            .env("BSM_STORE_PATH", &store.path)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the server");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
            s
        });
        let mut server = RawServer {
            child,
            stdin,
            lines,
            stderr: Some(stderr),
            stdout_lines: Vec::new(),
            store,
        };
        let init = server
            .request(
                serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"}}}),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "blender-session-mcp");
        server
            .send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        server
    }

    /// Write one raw line.
    pub async fn send_line(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Read the next stdout line (it must be JSON-RPC), or `None` at EOF.
    pub async fn next_message(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the server answers in time")
            .expect("read stdout")?;
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("non-JSON on stdout ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC: {line}");
        self.stdout_lines.push(line);
        Some(v)
    }

    /// Send a request and return the response with the same id.
    pub async fn request(&mut self, message: Value) -> Value {
        let id = message["id"].clone();
        self.send_line(&message.to_string()).await;
        loop {
            let v = self.next_message().await.expect("stdout open");
            if v.get("id") == Some(&id) {
                return v;
            }
        }
    }

    /// Call a tool; returns the JSON-RPC response.
    pub async fn call_tool(&mut self, id: u64, name: &str, arguments: Value) -> Value {
        self.request(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}),
        )
        .await
    }

    /// Close stdin (EOF for the server).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait for the process to exit; drain stdout (checking every line) and return
    /// (exit status, stderr, every stdout line).
    pub async fn finish(mut self) -> (std::process::ExitStatus, String, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits")
            .expect("status");
        while self.next_message().await.is_some() {}
        let stderr = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        (status, stderr, std::mem::take(&mut self.stdout_lines))
    }
}

/// An rmcp client connected to a server.
pub type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// Call a tool with an object of arguments; the call must be answered (as a result, which
/// may be an `isError` one).
pub async fn call(
    client: &rmcp::Peer<rmcp::RoleClient>,
    tool: &str,
    args: Value,
) -> rmcp::model::CallToolResult {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(rmcp::model::CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
        .expect("the call is answered")
}

/// The text content of a result, joined.
pub fn text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Assert a result is not an error, and return it.
pub fn ok(result: &rmcp::model::CallToolResult) -> &rmcp::model::CallToolResult {
    assert_eq!(
        result.is_error,
        Some(false),
        "unexpected error: {}",
        text(result)
    );
    result
}

/// Assert a result is an error, and return its text.
pub fn err(result: &rmcp::model::CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected an error, got: {}",
        text(result)
    );
    text(result)
}

/// The structured content of a successful result.
pub fn structured(result: &rmcp::model::CallToolResult) -> Value {
    ok(result)
        .structured_content
        .clone()
        .expect("structured content")
}

/// Serve `reg` to one in-process MCP client; returns the client's end of the pipe.
pub fn serve_in_process(reg: Registry) -> tokio::io::DuplexStream {
    use rmcp::ServiceExt;
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = blender_session_mcp::mcp::BlenderServer::new(reg);
    tokio::spawn(async move {
        if let Ok(service) = server.serve(server_io).await {
            let _ = service.waiting().await;
        }
    });
    client_io
}
