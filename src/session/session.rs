//! One session: its id, its Blender link (the keep-alive connection and its owner lock), and
//! its record (state, history, activity), plus the serializable views of it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::blender::{Connection, Snapshot, Target};

use super::history::{History, HistoryEntry};

/// A new session id: `scene-YYYYMMDD-HHMMSS-xxxxxxxx` (local time, 8 random hex digits).
pub fn new_session_id() -> String {
    let now = chrono::Local::now();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("scene-{}-{}", now.format("%Y%m%d-%H%M%S"), &random[..8])
}

/// Seconds since the Unix epoch, as the design's timestamps are.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What the addon said about itself (`get_addon_info`), cached per connection.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AddonInfo {
    /// Protocol level; 0 for the classic addon, which has no `get_addon_info`.
    pub protocol_version: u64,
    /// The raw `get_addon_info` result, if the addon has the command.
    pub info: Option<Value>,
}

/// The keep-alive connection of a session and what is known about its peer. Guarded by an
/// async mutex held across each whole round trip: that mutex is the connection's one owner.
#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) conn: Option<Connection>,
    pub(crate) addon: Option<AddonInfo>,
}

/// The selection in Blender.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Selection {
    /// The active object.
    pub active: Option<String>,
    /// All selected objects.
    pub selected: Vec<String>,
}

/// Blender's state as this session last saw it.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct SessionState {
    /// Every object in the scene.
    pub objects: Vec<String>,
    /// Active and selected objects.
    pub selection: Selection,
    /// The last addon command type sent.
    pub last_command: Option<String>,
    /// The last command's result (truncated when large), or its error.
    pub last_result: Option<Value>,
    /// When `objects`/`selection` were last read from Blender (Unix seconds).
    pub refreshed_at: Option<f64>,
}

impl SessionState {
    pub(crate) fn apply(&mut self, snapshot: &Snapshot) {
        self.objects = snapshot.objects.clone();
        self.selection = Selection {
            active: snapshot.active.clone(),
            selected: snapshot.selected.clone(),
        };
        self.refreshed_at = Some(unix_now());
    }
}

/// Connection facts shown in the session info.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BlenderStatus {
    /// Whether a keep-alive connection is open now.
    pub connected: bool,
    /// The addon's host.
    pub host: String,
    /// The addon's port.
    pub port: u16,
    /// Last time Blender answered (Unix seconds).
    pub last_heartbeat: Option<f64>,
    /// Why the last connection attempt or connection failed, if it did.
    pub last_error: Option<String>,
    /// Connections opened over the session's life (1 while keep-alive holds).
    pub connections_opened: u64,
}

/// Mutable facts about a session, behind a short-lived sync mutex (never held across I/O).
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) state: SessionState,
    pub(crate) history: History,
    pub(crate) last_activity: f64,
    pub(crate) idle_since: tokio::time::Instant,
    pub(crate) connected: bool,
    pub(crate) last_heartbeat: Option<f64>,
    pub(crate) last_error: Option<String>,
    pub(crate) connections_opened: u64,
}

/// One session. Shared as `Arc<Session>` between the registry and running commands.
#[derive(Debug)]
pub struct Session {
    pub(crate) id: String,
    pub(crate) created_at: f64,
    pub(crate) target: Target,
    pub(crate) link: tokio::sync::Mutex<Link>,
    pub(crate) record: Mutex<Record>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) closed: CancellationToken,
}

impl Session {
    pub(crate) fn new(id: String, target: Target, history_limit: usize) -> Self {
        let now = unix_now();
        Session {
            id,
            created_at: now,
            target,
            link: tokio::sync::Mutex::new(Link::default()),
            record: Mutex::new(Record {
                state: SessionState::default(),
                history: History::new(history_limit),
                last_activity: now,
                idle_since: tokio::time::Instant::now(),
                connected: false,
                last_heartbeat: None,
                last_error: None,
                connections_opened: 0,
            }),
            in_flight: AtomicUsize::new(0),
            closed: CancellationToken::new(),
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where this session's Blender is.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Commands queued or running on this session.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Lock the record. A poisoned lock (a panic elsewhere) still yields the data: the record
    /// holds no invariant a panic could break half-way.
    pub(crate) fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn touch(&self) {
        let mut r = self.record();
        r.last_activity = unix_now();
        r.idle_since = tokio::time::Instant::now();
    }

    /// The session as the design's `get_session_info` shows it.
    pub fn info(&self) -> SessionInfo {
        let r = self.record();
        SessionInfo {
            session_id: self.id.clone(),
            created_at: self.created_at,
            last_activity: r.last_activity,
            idle_seconds: r.idle_since.elapsed().as_secs_f64(),
            busy: self.in_flight() > 0,
            blender: BlenderStatus {
                connected: r.connected,
                host: self.target.host.clone(),
                port: self.target.port,
                last_heartbeat: r.last_heartbeat,
                last_error: r.last_error.clone(),
                connections_opened: r.connections_opened,
            },
            state: r.state.clone(),
            command_count: r.history.total(),
            history_kept: r.history.len(),
            history_dropped: r.history.dropped(),
        }
    }

    /// The newest `limit` history entries (all when `None`), oldest first, with counts.
    pub fn history(&self, limit: Option<usize>) -> SessionHistory {
        let r = self.record();
        SessionHistory {
            session_id: self.id.clone(),
            entries: r.history.recent(limit),
            total: r.history.total(),
            dropped: r.history.dropped(),
        }
    }
}

/// Everything known about a session (the design's session structure).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionInfo {
    /// The session id.
    pub session_id: String,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last command start or end (Unix seconds).
    pub last_activity: f64,
    /// Seconds since the last activity; idle cleanup compares this to `--idle-timeout`.
    pub idle_seconds: f64,
    /// Whether a command is queued or running (a busy session is never reaped).
    pub busy: bool,
    /// The Blender connection.
    pub blender: BlenderStatus,
    /// Blender's state as last seen.
    pub state: SessionState,
    /// Commands sent over the session's life.
    pub command_count: u64,
    /// History entries kept.
    pub history_kept: usize,
    /// History entries dropped to respect `--history-limit`.
    pub history_dropped: u64,
}

/// A page of a session's history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionHistory {
    /// The session id.
    pub session_id: String,
    /// Entries, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Commands ever recorded.
    pub total: u64,
    /// Entries dropped to respect `--history-limit`.
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_has_the_design_format() {
        let id = new_session_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert_eq!(parts[0], "scene");
        assert_eq!(parts[1].len(), 8);
        assert!(parts[1].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parts[2].len(), 6);
        assert!(parts[2].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parts[3].len(), 8);
        assert!(parts[3].bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
