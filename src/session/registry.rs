//! The session registry: creates, finds, closes and reaps sessions, and offers the typed
//! operations the tools use.
//!
//! [`Registry`] is a cheap `Clone` handle around shared state: the session records (in
//! [`Records`], the one place record changes go through, which publishes an event per
//! change), this process's live part of each session (its link to Blender), and the backend
//! every session's link comes from. It implements the design's API (`create_session`,
//! `get_session`, `send_command`, `update_state`, `get_session_info`, `get_session_history`,
//! `list_sessions`, `close_session`, `cleanup_idle_sessions`); the command path itself is in
//! [`super::command`].
//!
//! No lock here is held across a network wait: creating a session inserts it first and
//! connects afterwards, outside every lock but the session's own link; closing a session
//! never waits for a connect or a command (they see the session's `closed` token and drop
//! their link themselves).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backend::classic::{ClassicBackend, ClassicConfig};
use crate::backend::{
    AddonInfo, Backend, BackendError, CodeOutput, Operation, Output, SceneInfo, SceneQuery,
    Screenshot, Selection, Target,
};

use super::clock::Clock;
use super::command::Call;
use super::error::SessionError;
use super::events::CloseReason;
use super::live::{Busy, Live};
use super::record::{SessionHistory, SessionInfo, new_session_id};
use super::store::{Records, Subscription, lock};

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
    /// Whether code runs also report the scene state.
    pub track_state: bool,
    /// Largest answer a tool gives the model (bytes of JSON): `get_scene_info` lists fewer
    /// objects to stay under it.
    pub max_result_bytes: usize,
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
            max_result_bytes: 65536,
            connect_on_create: true,
        }
    }
}

impl RegistryConfig {
    /// The classic backend these settings describe.
    pub fn classic_backend(&self) -> ClassicBackend {
        ClassicBackend::new(ClassicConfig {
            max_reply_bytes: self.max_reply_bytes,
            max_request_bytes: self.max_request_bytes,
            track_state: self.track_state,
        })
    }
}

struct Inner {
    config: RegistryConfig,
    backend: Arc<dyn Backend>,
    records: Records,
    live: Mutex<HashMap<Arc<str>, Arc<Live>>>,
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
            .field("backend", &self.inner.backend)
            .finish()
    }
}

/// The variant an operation was expected to produce was not the one it produced.
fn unexpected(output: Output) -> SessionError {
    SessionError::Backend(BackendError::Unexpected(format!(
        "the backend answered with a {}",
        output.kind()
    )))
}

impl Registry {
    /// A registry with no sessions, talking to Blender through the classic addon protocol.
    pub fn new(config: RegistryConfig) -> Self {
        let backend = Arc::new(config.classic_backend());
        Self::with_backend(config, backend)
    }

    /// A registry with no sessions over any backend.
    pub fn with_backend(config: RegistryConfig, backend: Arc<dyn Backend>) -> Self {
        tracing::info!(
            "SessionManager initialized (Blender: {})",
            config.default_target
        );
        Registry {
            inner: Arc::new(Inner {
                config,
                backend,
                records: Records::new(Clock::new()),
                live: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                sweeps: watch::channel(0).0,
            }),
        }
    }

    /// The registry's settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    pub(super) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    pub(super) fn records(&self) -> &Records {
        &self.inner.records
    }

    /// Every session change from now on, as events.
    pub fn subscribe(&self) -> Subscription {
        self.inner.records.subscribe()
    }

    fn live(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Live>>> {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.live().len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Create a session for `target` (the default target when `None`) and, when the
    /// registry connects on create, connect it.
    ///
    /// The session exists even if Blender is unreachable: its info then says
    /// `connected: false` with the reason, and its next command tries again.
    pub async fn create_session(&self, target: Option<Target>) -> Result<String, SessionError> {
        let id = self.open_session(target)?;
        if self.inner.config.connect_on_create {
            self.connect_session(&id).await;
        }
        Ok(id)
    }

    /// Create a session without connecting it (its first command connects). Never waits.
    pub fn open_session(&self, target: Option<Target>) -> Result<String, SessionError> {
        let target = target.unwrap_or_else(|| self.inner.config.default_target.clone());
        let mut live = self.live();
        if self.inner.shutdown.is_cancelled() {
            return Err(SessionError::ShuttingDown);
        }
        if live.len() >= self.inner.config.max_sessions {
            return Err(SessionError::TooManySessions {
                limit: self.inner.config.max_sessions,
            });
        }
        let (id, record) = self.inner.records.create(
            new_session_id,
            |id| live.contains_key(id),
            target,
            self.inner.config.history_limit,
        );
        live.insert(id.clone(), Arc::new(Live::new(id.clone(), record)));
        drop(live);
        tracing::info!("✓ Session created: {id}");
        Ok(id.to_string())
    }

    fn find(&self, id: &str) -> Result<Arc<Live>, SessionError> {
        self.live()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::not_found(id))
    }

    /// Find a session: its info (the design's `get_session`).
    pub fn get_session(&self, id: &str) -> Result<SessionInfo, SessionError> {
        self.get_session_info(id)
    }

    /// Whether a session exists.
    pub fn contains(&self, id: &str) -> bool {
        self.live().contains_key(id)
    }

    /// Look up a session and mark it busy, atomically with respect to idle cleanup.
    pub(super) fn begin(&self, id: &str) -> Result<Busy, SessionError> {
        let live = self.live();
        let session = live.get(id).ok_or_else(|| SessionError::not_found(id))?;
        Ok(session.mark_busy())
    }

    /// Send any addon command on a session and return its result (the design's
    /// `send_command`). Both error layers become [`BackendError::Blender`].
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
    /// and the command may change the scene, the state is read after it.
    pub async fn send_command_as(
        &self,
        id: &str,
        command: &str,
        params: Option<Value>,
        call: &Call,
    ) -> Result<Value, SessionError> {
        let op = Operation::Raw {
            command: command.to_owned(),
            params,
        };
        match self.run(id, call, op).await? {
            Output::Raw(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// Run Python `code` in Blender on a session. Returns the code's stdout; when the code
    /// raises, [`BackendError::CodeFailed`] carries the traceback and the stdout printed
    /// before it. The state snapshot travels in the same request.
    pub async fn execute_code(
        &self,
        id: &str,
        code: &str,
        call: &Call,
    ) -> Result<CodeOutput, SessionError> {
        let op = Operation::ExecuteCode {
            code: code.to_owned(),
        };
        match self.run(id, call, op).await? {
            Output::Code(out) => Ok(out),
            other => Err(unexpected(other)),
        }
    }

    /// Read the scene's summary (counts by type, collections, selection, materials) and one
    /// page of its objects (`query`) in one round trip, and bring the session state up to
    /// date with it.
    pub async fn scene_info(
        &self,
        id: &str,
        call: &Call,
        query: SceneQuery,
    ) -> Result<SceneInfo, SessionError> {
        match self.run(id, call, Operation::SceneInfo(query)).await? {
            Output::Scene(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Details of one object by exact name.
    pub async fn object_info(
        &self,
        id: &str,
        name: &str,
        call: &Call,
    ) -> Result<Value, SessionError> {
        let op = Operation::ObjectInfo {
            name: name.to_owned(),
        };
        match self.run(id, call, op).await? {
            Output::Object(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// Take a viewport screenshot as PNG, `max_size` pixels on the longest side.
    pub async fn screenshot(
        &self,
        id: &str,
        max_size: u32,
        call: &Call,
    ) -> Result<Screenshot, SessionError> {
        match self
            .run(id, call, Operation::Screenshot { max_size })
            .await?
        {
            Output::Screenshot(shot) => Ok(shot),
            other => Err(unexpected(other)),
        }
    }

    /// What the Blender side says about itself.
    pub async fn addon_info(&self, id: &str, call: &Call) -> Result<AddonInfo, SessionError> {
        match self.run(id, call, Operation::AddonInfo).await? {
            Output::Addon(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Overwrite parts of a session's recorded state (the design's `update_state`).
    pub fn update_state(
        &self,
        id: &str,
        objects: Option<Vec<String>>,
        selection: Option<Selection>,
    ) -> Result<(), SessionError> {
        let live = self.find(id)?;
        self.inner
            .records
            .set_state(&live.record, objects, selection);
        Ok(())
    }

    fn info_of(&self, live: &Live) -> SessionInfo {
        let now = self.inner.records.clock().now();
        lock(&live.record).info(now, live.in_flight() > 0)
    }

    /// A session's info (the design's session structure), with the first page of its
    /// tracked objects.
    pub fn get_session_info(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let live = self.find(id)?;
        Ok(self.info_of(&live))
    }

    /// [`Registry::get_session_info`] with `limit` tracked objects from `offset`.
    pub fn get_session_info_page(
        &self,
        id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<SessionInfo, SessionError> {
        let live = self.find(id)?;
        let now = self.inner.records.clock().now();
        Ok(lock(&live.record).info_page(now, live.in_flight() > 0, offset, limit))
    }

    /// A session's newest `limit` history entries (all kept when `None`).
    pub fn get_session_history(
        &self,
        id: &str,
        limit: Option<usize>,
    ) -> Result<SessionHistory, SessionError> {
        let live = self.find(id)?;
        let page = lock(&live.record).history_page(limit);
        Ok(page)
    }

    /// Info of every live session, oldest first.
    pub fn list_sessions(&self) -> Vec<SessionInfo> {
        let sessions: Vec<Arc<Live>> = self.live().values().cloned().collect();
        let mut infos: Vec<SessionInfo> = sessions.iter().map(|s| self.info_of(s)).collect();
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
        let live = self
            .live()
            .remove(id)
            .ok_or_else(|| SessionError::not_found(id))?;
        Ok(self.finish(live, CloseReason::Closed).await)
    }

    /// End a session that was taken out of the live map. Never waits for a command or a
    /// connect in flight: they see `closed` and drop their link themselves.
    async fn finish(&self, live: Arc<Live>, reason: CloseReason) -> SessionInfo {
        live.closed.cancel();
        let link = live.link.try_lock().ok().and_then(|mut slot| slot.take());
        if let Some(link) = link {
            link.close().await;
        }
        let info = match self
            .inner
            .records
            .close(&live.record, reason, live.in_flight() > 0)
        {
            Some(info) => info,
            None => self.info_of(&live),
        };
        tracing::info!("✓ Session {}: {}", reason.log_text(), live.id);
        info
    }

    /// Close every session idle for at least `timeout` with no command queued or running.
    /// Returns the ids closed.
    pub async fn cleanup_idle_sessions(&self, timeout: Duration) -> Vec<String> {
        let now = self.inner.records.clock().now();
        let limit = timeout.as_secs_f64();
        let reaped: Vec<Arc<Live>> = {
            let mut live = self.live();
            let idle: Vec<Arc<str>> = live
                .values()
                .filter(|s| s.in_flight() == 0 && now - lock(&s.record).last_activity >= limit)
                .map(|s| s.id.clone())
                .collect();
            idle.iter()
                .filter_map(|id| live.remove(id.as_ref()))
                .collect()
        };
        let mut ids = Vec::with_capacity(reaped.len());
        for session in reaped {
            ids.push(session.id.to_string());
            self.finish(session, CloseReason::Idle).await;
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
        let all: Vec<Arc<Live>> = self.live().drain().map(|(_, s)| s).collect();
        for session in all {
            self.finish(session, CloseReason::Shutdown).await;
        }
    }
}
