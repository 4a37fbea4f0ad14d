//! The session registry: creates, finds, runs commands on, and closes sessions.
//!
//! [`Registry`] is a cheap `Clone` handle around shared state. It implements the design's API
//! (`create_session`, `get_session`, `send_command`, `update_state`, `get_session_info`,
//! `get_session_history`, `list_sessions`, `close_session`, `cleanup_idle_sessions`) plus the
//! richer calls the MCP tools use ([`Registry::execute_code`], [`Registry::scene_info`], …).
//!
//! Every command goes through one path (`Registry::run`): mark the session busy, take the
//! session's link lock (so commands within a session run one at a time while sessions run in
//! parallel), make sure the keep-alive connection is healthy (reconnecting silently when the
//! peer closed an idle socket), write the request once, wait for the reply under the command
//! timeout and the caller's cancellation, and record the outcome in the history. A connection
//! that timed out, was cancelled, broke or desynchronised is dropped, never reused, and the
//! command is never re-sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::blender::protocol::{ProtocolError, encode_request};
use crate::blender::script;
use crate::blender::{
    Connection, ConnectionError, IdleState, Reply, Snapshot, Target, in_band_error,
};

use super::error::SessionError;
use super::history::{HistoryEntry, Outcome, recordable, recordable_str};
use super::session::{
    AddonInfo, Link, Selection, Session, SessionHistory, SessionInfo, new_session_id, unix_now,
};

/// Settings of a registry; the CLI's flags map onto these one to one.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Blender addon used by sessions created without an explicit target.
    pub default_target: Target,
    /// Limit for opening a connection.
    pub connect_timeout: Duration,
    /// Limit for one command's reply.
    pub command_timeout: Duration,
    /// Largest reply accepted.
    pub max_reply_bytes: usize,
    /// Largest request sent.
    pub max_request_bytes: usize,
    /// History entries kept per session.
    pub history_limit: usize,
    /// Idle time after which the cleanup task closes a session.
    pub idle_timeout: Duration,
    /// Period of the cleanup task.
    pub cleanup_interval: Duration,
    /// Most sessions alive at once.
    pub max_sessions: usize,
    /// Whether `execute_code` also snapshots the scene state.
    pub track_state: bool,
    /// Whether `create_session` connects at once (the design's behaviour) or leaves it to
    /// the session's first command.
    pub connect_on_create: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            default_target: Target::new("127.0.0.1", 9876),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(180),
            max_reply_bytes: 256 * 1024 * 1024,
            max_request_bytes: 8 * 1024 * 1024,
            history_limit: 1000,
            idle_timeout: Duration::from_secs(300),
            cleanup_interval: Duration::from_secs(300),
            max_sessions: 1000,
            track_state: true,
            connect_on_create: true,
        }
    }
}

/// Who is asking, for history and cancellation.
#[derive(Debug, Clone)]
pub struct Call {
    /// The MCP tool (or API) that caused the command; recorded in history.
    pub tool: String,
    /// Fires when the caller gives up (MCP `notifications/cancelled`).
    pub cancel: CancellationToken,
}

impl Call {
    /// A call from `tool` that is never cancelled.
    pub fn new(tool: impl Into<String>) -> Self {
        Call {
            tool: tool.into(),
            cancel: CancellationToken::new(),
        }
    }

    /// The same call, cancelled when `cancel` fires.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }
}

/// What `execute_code` produced.
#[derive(Debug, Clone, Serialize)]
pub struct CodeOutput {
    /// Everything the code printed.
    pub stdout: String,
}

/// A screenshot taken by Blender.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Width in pixels, when Blender said.
    pub width: Option<u64>,
    /// Height in pixels, when Blender said.
    pub height: Option<u64>,
}

/// What a command's reply means, decided by the caller of [`Registry::run`].
struct Interpreted<T> {
    output: Result<T, SessionError>,
    /// The result as recorded in history and `last_result`.
    recorded: Value,
    snapshot: Option<Snapshot>,
}

impl<T> Interpreted<T> {
    fn plain(output: T, recorded: Value) -> Self {
        Interpreted {
            output: Ok(output),
            recorded,
            snapshot: None,
        }
    }

    fn failed(error: SessionError) -> Self {
        Interpreted {
            output: Err(error),
            recorded: Value::Null,
            snapshot: None,
        }
    }
}

struct Inner {
    config: RegistryConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shutdown: CancellationToken,
    sweeps: watch::Sender<u64>,
}

/// The session registry. Clone it freely: clones share the same sessions.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sessions", &self.len())
            .finish()
    }
}

/// Decrements a session's in-flight count when a command ends, however it ends.
struct Busy(Arc<Session>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Registry {
    /// A registry with no sessions.
    pub fn new(config: RegistryConfig) -> Self {
        tracing::info!(
            "SessionManager initialized (Blender: {})",
            config.default_target
        );
        Registry {
            inner: Arc::new(Inner {
                config,
                sessions: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                sweeps: watch::channel(0).0,
            }),
        }
    }

    /// The registry's settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Create a session for `target` (the default target when `None`) and connect it.
    ///
    /// The session exists even if Blender is unreachable: its info then says
    /// `connected: false` with the reason, and its next command tries again.
    pub async fn create_session(&self, target: Option<Target>) -> Result<String, SessionError> {
        let target = target.unwrap_or_else(|| self.inner.config.default_target.clone());
        let session = {
            let mut sessions = self.sessions();
            if self.inner.shutdown.is_cancelled() {
                return Err(SessionError::ShuttingDown);
            }
            if sessions.len() >= self.inner.config.max_sessions {
                return Err(SessionError::TooManySessions {
                    limit: self.inner.config.max_sessions,
                });
            }
            let mut id = new_session_id();
            while sessions.contains_key(&id) {
                id = new_session_id();
            }
            let session = Arc::new(Session::new(
                id.clone(),
                target,
                self.inner.config.history_limit,
            ));
            sessions.insert(id, session.clone());
            session
        };
        tracing::info!("✓ Session created: {}", session.id);
        if self.inner.config.connect_on_create {
            let mut link = session.link.lock().await;
            match self.ready_connection(&session, &mut link).await {
                Ok(conn) => link.conn = Some(conn),
                Err(e) => {
                    tracing::warn!("✗ Blender not reachable for session {}: {e}", session.id)
                }
            }
        }
        Ok(session.id.clone())
    }

    /// Find a session.
    pub fn get_session(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        self.sessions()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::not_found(id))
    }

    /// Whether a session exists.
    pub fn contains(&self, id: &str) -> bool {
        self.sessions().contains_key(id)
    }

    /// Look up a session and mark it busy, atomically with respect to idle cleanup.
    fn begin(&self, id: &str) -> Result<Busy, SessionError> {
        let sessions = self.sessions();
        let session = sessions
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::not_found(id))?;
        session
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(sessions);
        session.touch();
        Ok(Busy(session))
    }

    /// Send any addon command on a session and return its result (the design's
    /// `send_command`). Both error layers become [`SessionError::Blender`].
    pub async fn send_command(
        &self,
        id: &str,
        command: &str,
        params: Option<Value>,
    ) -> Result<Value, SessionError> {
        self.send_command_as(id, command, params, &Call::new("send_command"))
            .await
    }

    /// [`Registry::send_command`] on behalf of a tool, cancellable. When state tracking is on
    /// and the command may change the scene, the state is refreshed after it.
    pub async fn send_command_as(
        &self,
        id: &str,
        command: &str,
        params: Option<Value>,
        call: &Call,
    ) -> Result<Value, SessionError> {
        let request = self.encode(command, params.as_ref());
        let args = json!({"type": command, "params": params});
        let result = self
            .run(id, call, command, request, args, |result| {
                Interpreted::plain(result.clone(), result)
            })
            .await?;
        if self.inner.config.track_state && !is_read_only(command) {
            // The command may have changed the scene; refresh the state quietly. A failure here
            // does not change the command's own result.
            if let Ok(session) = self.get_session(id) {
                let _ = self.refresh_state(&session, call).await;
            }
        }
        Ok(result)
    }

    /// Run Python `code` in Blender on a session. Returns the code's stdout; when the code
    /// raises, [`SessionError::CodeFailed`] carries the traceback and the stdout printed before
    /// it. The state snapshot travels in the same request.
    pub async fn execute_code(
        &self,
        id: &str,
        code: &str,
        call: &Call,
    ) -> Result<CodeOutput, SessionError> {
        let limit = self.inner.config.max_request_bytes;
        let (request, markers) = if code.len() > limit {
            // The wrapped request is always larger than the code: refuse before wrapping.
            let refused = ProtocolError::RequestTooLarge {
                size: code.len(),
                limit,
            };
            (Err(refused), script::Markers::new())
        } else {
            let (program, markers) = script::wrap_user_code(code, self.inner.config.track_state);
            (
                self.encode("execute_code", Some(&json!({"code": program}))),
                markers,
            )
        };
        self.run(
            id,
            call,
            "execute_code",
            request,
            json!({"code": recordable_str(code)}),
            move |result| match script::parse_wrapped(result, &markers) {
                Ok(out) => {
                    let snapshot = out.report.state;
                    if let Some(e) = &out.report.state_error {
                        tracing::warn!("state snapshot failed: {e}");
                    }
                    match out.report.error {
                        Some(traceback) => Interpreted {
                            recorded: json!({"stdout": recordable_str(&out.stdout), "traceback": traceback}),
                            output: Err(SessionError::CodeFailed {
                                traceback,
                                stdout: out.stdout,
                            }),
                            snapshot,
                        },
                        None => Interpreted {
                            recorded: json!({"stdout": recordable_str(&out.stdout)}),
                            output: Ok(CodeOutput { stdout: out.stdout }),
                            snapshot,
                        },
                    }
                }
                Err(problem) => Interpreted::failed(SessionError::Unexpected(problem)),
            },
        )
        .await
    }

    /// Ask Blender for the whole scene (every object, the selection, the materials count) in
    /// one round trip, and refresh the session state from it.
    pub async fn scene_info(&self, id: &str, call: &Call) -> Result<Value, SessionError> {
        let (program, markers) = script::scene_info_program();
        let request = self.encode("execute_code", Some(&json!({"code": program})));
        self.run(
            id,
            call,
            "execute_code",
            request,
            json!({}),
            move |result| match script::parse_scene_info(&result, &markers) {
                Ok((_stray, info)) => {
                    let snapshot = snapshot_from_scene(&info);
                    Interpreted {
                        recorded: recordable(&info),
                        output: Ok(info),
                        snapshot,
                    }
                }
                Err(problem) => Interpreted::failed(SessionError::Unexpected(problem)),
            },
        )
        .await
    }

    /// Take a viewport screenshot as PNG, `max_size` pixels on the longest side.
    ///
    /// Uses `return_data` when the addon's protocol is 14 or newer; otherwise asks Blender to
    /// write a temporary file on this machine, reads it and deletes it, which needs Blender to
    /// run here.
    pub async fn screenshot(
        &self,
        id: &str,
        max_size: u32,
        call: &Call,
    ) -> Result<Screenshot, SessionError> {
        let session = self.get_session(id)?;
        let protocol = self.addon_info(&session, call).await?.protocol_version;
        // Protocol 14+ returns the image in the reply; older addons can only write a file on
        // Blender's disk, which this server can read only when Blender runs here.
        let file = if protocol >= 14 {
            None
        } else if session.target.is_local() {
            Some(std::env::temp_dir().join(format!(
                "blender-session-mcp-{}.png",
                uuid::Uuid::new_v4().simple()
            )))
        } else {
            return Err(SessionError::Unexpected(format!(
                "this Blender ({}) runs on another machine and its addon (protocol {protocol}) can only save screenshots to Blender's own disk. Update the BlenderMCP addon to a version with protocol 14 or newer (it returns the image directly), or run this server on Blender's machine.",
                session.target
            )));
        };
        let params = match &file {
            None => json!({"max_size": max_size, "format": "png", "return_data": true}),
            Some(path) => {
                json!({"max_size": max_size, "format": "png", "filepath": path.to_string_lossy()})
            }
        };
        let request = self.encode("get_viewport_screenshot", Some(&params));
        let outcome = self
            .run(
                id,
                call,
                "get_viewport_screenshot",
                request,
                params,
                |result| Interpreted {
                    recorded: json!({"width": result.get("width"), "height": result.get("height")}),
                    output: Ok(result),
                    snapshot: None,
                },
            )
            .await;
        let shot = match (outcome, &file) {
            (Err(e), _) => Err(e),
            (Ok(result), None) => decode_image_data(&result),
            (Ok(result), Some(path)) => match tokio::fs::read(path).await {
                Ok(png) => Ok(Screenshot {
                    png,
                    width: result.get("width").and_then(Value::as_u64),
                    height: result.get("height").and_then(Value::as_u64),
                }),
                Err(e) => Err(SessionError::Unexpected(format!(
                    "Blender reported a screenshot at {} but it cannot be read here: {e}",
                    path.display()
                ))),
            },
        };
        if let Some(path) = &file {
            let _ = tokio::fs::remove_file(path).await;
        }
        shot
    }

    /// What the addon says about itself (cached per connection; not recorded in history).
    pub async fn addon_info(
        &self,
        session: &Arc<Session>,
        call: &Call,
    ) -> Result<AddonInfo, SessionError> {
        if let Some(info) = session.link.lock().await.addon.clone() {
            return Ok(info);
        }
        let request = encode_request("get_addon_info", None, self.inner.config.max_request_bytes)
            .map_err(SessionError::RequestRefused)?;
        let info = match self
            .exchange(session, "get_addon_info", &request, &call.cancel)
            .await?
        {
            Reply::Success(result) => AddonInfo {
                protocol_version: result
                    .get("protocol_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                info: Some(result),
            },
            // The classic addon does not know the command.
            Reply::Error(_) => AddonInfo {
                protocol_version: 0,
                info: None,
            },
        };
        session.link.lock().await.addon = Some(info.clone());
        Ok(info)
    }

    /// Overwrite parts of a session's recorded state (the design's `update_state`).
    pub fn update_state(
        &self,
        id: &str,
        objects: Option<Vec<String>>,
        selection: Option<Selection>,
    ) -> Result<(), SessionError> {
        let session = self.get_session(id)?;
        let mut record = session.record();
        if let Some(objects) = objects {
            record.state.objects = objects;
        }
        if let Some(selection) = selection {
            record.state.selection = selection;
        }
        record.state.refreshed_at = Some(unix_now());
        Ok(())
    }

    /// A session's info (the design's session structure).
    pub fn get_session_info(&self, id: &str) -> Result<SessionInfo, SessionError> {
        Ok(self.get_session(id)?.info())
    }

    /// A session's newest `limit` history entries (all kept when `None`).
    pub fn get_session_history(
        &self,
        id: &str,
        limit: Option<usize>,
    ) -> Result<SessionHistory, SessionError> {
        Ok(self.get_session(id)?.history(limit))
    }

    /// Info of every live session, oldest first.
    pub fn list_sessions(&self) -> Vec<SessionInfo> {
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        let mut infos: Vec<SessionInfo> = sessions.iter().map(|s| s.info()).collect();
        infos.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        infos
    }

    /// Close a session: a command in flight on it ends with [`SessionError::SessionClosed`],
    /// and its connection is closed cleanly. Returns the session's final info.
    pub async fn close_session(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let session = self
            .sessions()
            .remove(id)
            .ok_or_else(|| SessionError::not_found(id))?;
        Ok(self.finish(session, "closed").await)
    }

    async fn finish(&self, session: Arc<Session>, why: &str) -> SessionInfo {
        session.closed.cancel();
        let mut link = session.link.lock().await;
        if let Some(conn) = link.conn.take() {
            conn.close().await;
        }
        drop(link);
        session.record().connected = false;
        tracing::info!("✓ Session {why}: {}", session.id);
        session.info()
    }

    /// Close every session idle for at least `timeout` with no command queued or running.
    /// Returns the ids closed.
    pub async fn cleanup_idle_sessions(&self, timeout: Duration) -> Vec<String> {
        let reaped: Vec<Arc<Session>> = {
            let mut sessions = self.sessions();
            let idle: Vec<String> = sessions
                .values()
                .filter(|s| s.in_flight() == 0 && s.record().idle_since.elapsed() >= timeout)
                .map(|s| s.id.clone())
                .collect();
            idle.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        let mut ids = Vec::with_capacity(reaped.len());
        for session in reaped {
            ids.push(session.id.clone());
            self.finish(session, "closed (idle)").await;
        }
        self.inner.sweeps.send_modify(|n| *n += 1);
        ids
    }

    /// Count of completed cleanup sweeps, for whoever needs to wait for one.
    pub fn sweeps(&self) -> watch::Receiver<u64> {
        self.inner.sweeps.subscribe()
    }

    /// Start the periodic idle-cleanup task (every `cleanup_interval`, closing sessions idle
    /// longer than `idle_timeout`). It stops at [`Registry::shutdown`].
    pub fn spawn_cleanup(&self) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        let every = self.inner.config.cleanup_interval;
        let idle = self.inner.config.idle_timeout;
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + every;
            let mut ticks = tokio::time::interval_at(start, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = registry.inner.shutdown.cancelled() => break,
                    _ = ticks.tick() => {
                        let closed = registry.cleanup_idle_sessions(idle).await;
                        if !closed.is_empty() {
                            tracing::info!("idle cleanup closed {} session(s)", closed.len());
                        }
                    }
                }
            }
        })
    }

    /// Close every session (commands in flight end as cancelled and are recorded) and stop
    /// the cleanup task.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let all: Vec<Arc<Session>> = self.sessions().drain().map(|(_, s)| s).collect();
        for session in all {
            self.finish(session, "closed (shutdown)").await;
        }
    }

    /// Refresh a session's state with a snapshot program (not recorded in history).
    async fn refresh_state(&self, session: &Arc<Session>, call: &Call) -> Result<(), SessionError> {
        let (program, markers) = script::wrap_user_code("", true);
        let request = encode_request(
            "execute_code",
            Some(&json!({"code": program})),
            self.inner.config.max_request_bytes,
        )
        .map_err(SessionError::RequestRefused)?;
        if let Reply::Success(result) = self
            .exchange(session, "execute_code", &request, &call.cancel)
            .await?
            && let Ok(out) = script::parse_wrapped(result, &markers)
            && let Some(snapshot) = out.report.state
        {
            session.record().state.apply(&snapshot);
        }
        Ok(())
    }

    /// Encode a request under the `--max-request-bytes` cap.
    fn encode(&self, command: &str, params: Option<&Value>) -> Result<Vec<u8>, ProtocolError> {
        encode_request(command, params, self.inner.config.max_request_bytes)
    }

    /// The one path every recorded command takes. `request` is the encoded request (or why
    /// it cannot be sent); `history_args` is what the history shows as the arguments;
    /// `interpret` turns a success result into the caller's output.
    async fn run<T>(
        &self,
        id: &str,
        call: &Call,
        command: &str,
        request: Result<Vec<u8>, ProtocolError>,
        history_args: Value,
        interpret: impl FnOnce(Value) -> Interpreted<T>,
    ) -> Result<T, SessionError> {
        let busy = self.begin(id)?;
        let session = &busy.0;
        let timestamp = unix_now();
        let started = Instant::now();

        let outcome = match request {
            Err(e) => Interpreted::failed(SessionError::RequestRefused(e)),
            Ok(request) => {
                tracing::info!("→ Command sent: {command} (session: {})", session.id);
                match self
                    .exchange(session, command, &request, &call.cancel)
                    .await
                {
                    Err(e) => Interpreted::failed(e),
                    Ok(Reply::Error(message)) => {
                        Interpreted::failed(SessionError::Blender { message })
                    }
                    Ok(Reply::Success(result)) => match in_band_error(&result) {
                        Some(message) => Interpreted {
                            output: Err(SessionError::Blender { message }),
                            recorded: recordable(&result),
                            snapshot: None,
                        },
                        None => interpret(result),
                    },
                }
            }
        };
        let duration = started.elapsed().as_secs_f64();
        let (status, message) = match &outcome.output {
            Ok(_) => (Outcome::Success, None),
            Err(e) => (e.outcome(), Some(e.to_string())),
        };
        tracing::info!(
            "← Response: {} ({duration:.2}s) [session: {}]",
            status.as_str(),
            session.id
        );
        {
            let mut record = session.record();
            if let Some(snapshot) = &outcome.snapshot {
                record.state.apply(snapshot);
            }
            record.state.last_command = Some(command.to_owned());
            record.state.last_result = Some(match &message {
                None => json!({"status": "success", "result": outcome.recorded}),
                Some(m) => json!({"status": status.as_str(), "message": m}),
            });
            record.history.push(HistoryEntry {
                seq: 0,
                timestamp,
                command: command.to_owned(),
                tool: call.tool.clone(),
                arguments: recordable(&history_args),
                outcome: status,
                result: message.is_none().then(|| outcome.recorded.clone()),
                message,
                duration,
            });
        }
        outcome.output
    }

    /// Write one request on the session's connection and read its reply, owning the
    /// connection for the whole round trip.
    async fn exchange(
        &self,
        session: &Arc<Session>,
        command: &str,
        request: &[u8],
        cancel: &CancellationToken,
    ) -> Result<Reply, SessionError> {
        let closed = || SessionError::SessionClosed {
            id: session.id.clone(),
            sent: false,
        };
        let mut link = tokio::select! {
            biased;
            _ = session.closed.cancelled() => return Err(closed()),
            _ = cancel.cancelled() => return Err(SessionError::Cancelled { sent: false }),
            link = session.link.lock() => link,
        };
        // The connection is owned by this round trip until it succeeds; if the future is
        // dropped or the command fails, the connection goes with it.
        let mut conn = tokio::select! {
            biased;
            _ = session.closed.cancelled() => return Err(closed()),
            _ = cancel.cancelled() => return Err(SessionError::Cancelled { sent: false }),
            conn = self.ready_connection(session, &mut link) => conn?,
        };
        let timeout = self.inner.config.command_timeout;
        let result = tokio::select! {
            biased;
            _ = session.closed.cancelled() => Err(SessionError::SessionClosed { id: session.id.clone(), sent: true }),
            _ = cancel.cancelled() => Err(SessionError::Cancelled { sent: true }),
            r = tokio::time::timeout(timeout, conn.round_trip(request)) => match r {
                Err(_) => Err(SessionError::Timeout { command: command.to_owned(), after: timeout }),
                Ok(Err(ConnectionError::Protocol(source))) => Err(SessionError::Protocol { command: command.to_owned(), source }),
                Ok(Err(source)) => Err(SessionError::ConnectionLost { command: command.to_owned(), source }),
                Ok(Ok(reply)) => Ok(reply),
            },
        };
        let mut record = session.record();
        match &result {
            Ok(_) => {
                link.conn = Some(conn);
                record.last_heartbeat = Some(unix_now());
            }
            Err(e) => {
                // Never reuse a connection whose reply is unaccounted for.
                drop(conn);
                link.addon = None;
                record.connected = false;
                record.last_error = Some(e.to_string());
                tracing::warn!("connection of session {} dropped: {e}", session.id);
            }
        }
        result
    }

    /// Take a healthy connection out of `link`, or open a new one if there is none or the
    /// idle one was closed by the peer. The caller puts it back after a successful use.
    async fn ready_connection(
        &self,
        session: &Session,
        link: &mut Link,
    ) -> Result<Connection, SessionError> {
        if let Some(mut conn) = link.conn.take() {
            match conn.probe_idle() {
                IdleState::Healthy => return Ok(conn),
                other => {
                    tracing::info!(
                        "stale connection of session {} replaced ({other:?})",
                        session.id
                    );
                    link.addon = None;
                }
            }
        }
        let cfg = &self.inner.config;
        match Connection::connect(&session.target, cfg.connect_timeout, cfg.max_reply_bytes).await {
            Ok(conn) => {
                let mut record = session.record();
                record.connected = true;
                record.last_error = None;
                record.connections_opened += 1;
                tracing::info!("✓ Blender connected for session {}", session.id);
                Ok(conn)
            }
            Err(source) => {
                let mut record = session.record();
                record.connected = false;
                record.last_error = Some(source.to_string());
                Err(SessionError::Unreachable {
                    target: session.target.clone(),
                    source,
                })
            }
        }
    }
}

/// Commands known not to change the scene (no state refresh needed after them).
fn is_read_only(command: &str) -> bool {
    matches!(
        command,
        "get_scene_info"
            | "get_object_info"
            | "get_viewport_screenshot"
            | "get_addon_info"
            | "ping"
            | "get_telemetry_consent"
            | "get_polyhaven_categories"
            | "search_polyhaven_assets"
            | "search_sketchfab_models"
            | "poll_rodin_job_status"
            | "poll_hunyuan_job_status"
    ) || (command.starts_with("get_") && command.ends_with("_status"))
}

fn snapshot_from_scene(info: &Value) -> Option<Snapshot> {
    let objects = info
        .get("objects")?
        .as_array()?
        .iter()
        .filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let selection = info.get("selection");
    Some(Snapshot {
        scene: info.get("name").and_then(Value::as_str).map(str::to_owned),
        objects,
        active: selection
            .and_then(|s| s.get("active"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        selected: selection
            .and_then(|s| s.get("selected"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn decode_image_data(result: &Value) -> Result<Screenshot, SessionError> {
    use base64::Engine;
    let data = result
        .get("image_data")
        .and_then(Value::as_str)
        .ok_or_else(|| SessionError::Unexpected("the screenshot reply has no image_data".into()))?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| {
            SessionError::Unexpected(format!("the screenshot is not valid base64: {e}"))
        })?;
    Ok(Screenshot {
        png,
        width: result.get("width").and_then(Value::as_u64),
        height: result.get("height").and_then(Value::as_u64),
    })
}
