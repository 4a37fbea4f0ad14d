//! Test support: the fake BlenderMCP addon (`fake_addon.py`, a faithful Python twin of the
//! real addon that really executes the code it receives against a mock `bpy`), started as a
//! child process, with its event log (connections accepted and closed, requests received,
//! commands executed) collected for assertions.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blender_session_mcp::blender::Target;
use blender_session_mcp::session::{Registry, RegistryConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

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

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Number of events of a kind (`accepted`, `closed`, `request`, `executed`, `error`).
    pub fn count(&self, kind: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == kind).count()
    }

    /// Events of a kind.
    pub fn of(&self, kind: &str) -> Vec<Value> {
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
        let before = self.count("armed");
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
    pub fn request_digests(&self) -> Vec<String> {
        self.of("request")
            .iter()
            .filter_map(|e| e["digest"].as_str().map(str::to_owned))
            .collect()
    }

    /// Assert that no request reached the fake twice.
    pub fn assert_nothing_sent_twice(&self) {
        let digests = self.request_digests();
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
