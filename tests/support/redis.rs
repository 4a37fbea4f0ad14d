//! A real `redis-server` for a test: started on a free loopback port in a temporary
//! directory of its own (no RDB save points, no AOF), ready once it says so on its log and
//! answers `PING`, stopped and started again on the same port and data directory when a test
//! needs Redis to go away and come back, and killed when dropped.
//!
//! `redis-server` missing → [`RedisServer::start`] returns `Err` with the reason, for
//! `support::require` (skipped locally, a failure under CI).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a starting redis-server may take to say it is ready.
const READY_WAIT: Duration = Duration::from_secs(20);

/// The line redis-server logs once it accepts connections (Redis 6 and 7 alike begin so).
const READY_LINE: &str = "Ready to accept connections";

/// Ports tried before giving up (another process may take a free port before we bind it).
const PORT_TRIES: usize = 5;

/// A running (or stopped, between [`RedisServer::stop`] and [`RedisServer::start_again`])
/// redis-server.
pub struct RedisServer {
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start a redis-server on a free port. `Err` says why it cannot (not installed, did not
    /// become ready).
    pub async fn start() -> Result<Self, String> {
        let bin = which::which("redis-server").map_err(|e| {
            format!("redis-server is not installed ({e}); apt-get install redis-server")
        })?;
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            let port = free_port()?;
            match spawn(&bin, dir.path(), port).await {
                Ok(child) => {
                    return Ok(RedisServer {
                        child: Some(child),
                        port,
                        bin,
                        dir,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(format!("redis-server did not start: {last}"))
    }

    /// `redis://127.0.0.1:PORT/`, the URL `--store` takes.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The data directory (where `SHUTDOWN SAVE` writes `dump.rdb`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client connection for assertions on the keys themselves.
    pub async fn connection(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis-server")
    }

    /// Stop the server the way an operator does (`SHUTDOWN SAVE`: the data is written to
    /// `dump.rdb` and read back by [`RedisServer::start_again`]) and wait until it exited,
    /// so its port refuses connections when this returns.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut con = self.connection().await;
        // The server closes the connection instead of answering: an error here is expected.
        let _: Result<(), _> = ::redis::cmd("SHUTDOWN")
            .arg("SAVE")
            .query_async(&mut con)
            .await;
        let status = tokio::time::timeout(READY_WAIT, child.wait())
            .await
            .expect("redis-server exits after SHUTDOWN");
        assert!(status.is_ok(), "redis-server exited: {status:?}");
    }

    /// Start the server again on the same port and data directory, after
    /// [`RedisServer::stop`].
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        let child = spawn(&self.bin, self.dir.path(), self.port)
            .await
            .unwrap_or_else(|e| panic!("redis-server did not start again: {e}"));
        self.child = Some(child);
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing is answered, like a
    /// Redis host that hangs. [`RedisServer::resume`] undoes it.
    #[cfg(unix)]
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Let a paused server go on (SIGCONT).
    #[cfg(unix)]
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    #[cfg(unix)]
    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
        nix::sys::signal::kill(pid, signal).expect("signal redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SIGKILL ends a paused (SIGSTOPped) server too.
            let _ = child.start_kill();
        }
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local address: {e}"))
}

/// Spawn redis-server on `port` with its data in `dir`, and wait until it is ready.
async fn spawn(bin: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let mut child = Command::new(bin)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no"])
        .args(["--logfile", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut log = Vec::new();
    let ready = tokio::time::timeout(READY_WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let ready = line.contains(READY_LINE);
            log.push(line);
            if ready {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let _ = child.start_kill();
        return Err(format!(
            "no {READY_LINE:?} on port {port}; its log: {}",
            log.join(" | ")
        ));
    }
    // Keep draining its log so a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ping(port).await?;
    Ok(child)
}

/// `PING` → `PONG` on a fresh connection.
async fn ping(port: u16) -> Result<(), String> {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("client: {e}"))?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let pong: String = ::redis::cmd("PING")
        .query_async(&mut con)
        .await
        .map_err(|e| format!("PING: {e}"))?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong:?}"))
    }
}
