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
    Screenshot, Target,
};

use super::clock::Clock;
use super::command::Call;
use super::error::SessionError;
use super::events::CloseReason;
use super::live::{Busy, Live};
use super::store::{Records, Subscription};
use super::stored::record_of;
use crate::store::{MemoryStore, SessionStore, Status, StoreKind, StoredSession};

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
    /// How long closed sessions stay readable in the store before idle cleanup prunes them.
    pub retain_closed: Duration,
    /// The name of every client's default session (`--session`): created if missing,
    /// reused otherwise, shared by every process on the store.
    pub session_name: Option<String>,
    /// Most open sessions one user may own (`None`: no cap besides `max_sessions`).
    pub max_sessions_per_user: Option<usize>,
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
            retain_closed: Duration::from_secs(7 * 24 * 3600),
            session_name: None,
            max_sessions_per_user: None,
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
    store: Arc<dyn SessionStore>,
    /// This process's lease holder id.
    holder: String,
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

    /// A registry with no sessions over any backend, its records in memory.
    pub fn with_backend(config: RegistryConfig, backend: Arc<dyn Backend>) -> Self {
        let store = Arc::new(MemoryStore::new(config.history_limit));
        Self::with_store(config, backend, store)
    }

    /// A registry over any backend and any session store.
    pub fn with_store(
        config: RegistryConfig,
        backend: Arc<dyn Backend>,
        store: Arc<dyn SessionStore>,
    ) -> Self {
        tracing::info!(
            "SessionManager initialized (Blender: {}, sessions in {})",
            config.default_target,
            store.location()
        );
        Registry {
            inner: Arc::new(Inner {
                config,
                backend,
                records: Records::new(Clock::new()),
                store,
                holder: crate::store::holder_id(),
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

    /// The session store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// This process's lease holder id.
    pub(super) fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// Count a completed cleanup sweep.
    pub(super) fn swept(&self) {
        self.inner.sweeps.send_modify(|n| *n += 1);
    }

    /// Count of completed cleanup sweeps, for whoever needs to wait for one.
    pub fn sweeps(&self) -> watch::Receiver<u64> {
        self.inner.sweeps.subscribe()
    }

    /// Every session change from now on, as events.
    pub fn subscribe(&self) -> Subscription {
        self.inner.records.subscribe()
    }

    pub(super) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(super) fn live(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Live>>> {
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

    /// This process's live part of a stored open session (made when missing).
    pub(super) fn adopt(&self, stored: &StoredSession, created: bool) -> Arc<Live> {
        let mut live = self.live();
        if let Some(l) = live.get(stored.id.as_str()) {
            return l.clone();
        }
        let record = record_of(stored, self.inner.config.history_limit);
        let (key, record) = self.inner.records.adopt(record, created);
        let session = Arc::new(Live::new(
            key.clone(),
            record,
            stored.name.clone(),
            stored.owner.clone(),
            stored.state_version,
        ));
        live.insert(key, session.clone());
        session
    }

    /// A session's live part, loaded from the store when this process has none yet (a
    /// session made by another process, or before a restart).
    pub(super) async fn find(&self, id: &str) -> Result<Arc<Live>, SessionError> {
        if let Some(l) = self.live().get(id).cloned() {
            return Ok(l);
        }
        match self.inner.store.get(id).await? {
            None => Err(SessionError::not_found(id)),
            Some(s) if s.status == Status::Closed => Err(SessionError::Closed(s.id)),
            Some(s) => {
                if self.inner.shutdown.is_cancelled() {
                    return Err(SessionError::ShuttingDown);
                }
                Ok(self.adopt(&s, false))
            }
        }
    }

    /// Whether this process holds a session.
    pub fn contains(&self, id: &str) -> bool {
        self.live().contains_key(id)
    }

    /// Look up a session and mark it busy, atomically with respect to idle cleanup.
    pub(super) async fn begin(&self, id: &str) -> Result<Busy, SessionError> {
        loop {
            {
                let live = self.live();
                if let Some(session) = live.get(id) {
                    return Ok(session.mark_busy());
                }
            }
            // Loaded, then marked under the lock (a sweep may have dropped it in between).
            self.find(id).await?;
        }
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

    /// Drop every session of this process (commands in flight end as cancelled and are
    /// recorded) and stop the cleanup task. Sessions stay open in a persistent store, for
    /// the next start or another process; the memory store closes them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let all: Vec<Arc<Live>> = self.live().drain().map(|(_, s)| s).collect();
        let persistent = self.inner.store.location().kind != StoreKind::Memory;
        let mut dropped = Vec::with_capacity(all.len());
        for session in all {
            if !persistent {
                let now = self.inner.records.clock().now();
                if let Err(e) = self
                    .inner
                    .store
                    .close(&session.id, CloseReason::Shutdown, now)
                    .await
                {
                    tracing::warn!("{e}");
                }
            }
            self.drop_live(session.clone(), CloseReason::Shutdown).await;
            dropped.push(session);
        }
        // Commands in flight saw their session close: give them a moment to record their
        // outcome (cancelled) before the transports stop and drop their tasks.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while dropped.iter().any(|s| s.in_flight() > 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
