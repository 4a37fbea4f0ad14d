//! A session's record: everything a store can keep about a session (id, target, times,
//! tracked state, connection facts, history), as plain serializable data, and the views the
//! tools show of it. What only this process can hold (the open link, the command in flight)
//! lives apart, in [`super::live`].

use serde::{Deserialize, Serialize};

use crate::backend::Target;

use super::history::{History, HistoryEntry};
use super::tracked::OBJECTS_PAGE;
pub use super::tracked::{SessionState, StateView};
use crate::store::Status;

/// A new session id: `scene-YYYYMMDD-HHMMSS-xxxxxxxx` (local time, 8 random hex digits).
pub fn new_session_id() -> String {
    let now = chrono::Local::now();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("scene-{}-{}", now.format("%Y%m%d-%H%M%S"), &random[..8])
}

/// One user a session is shared with.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SharedWith {
    /// The user, or "*" for every user.
    pub user: String,
    /// "read" or "write".
    pub access: String,
}

/// Facts about the session's connection to Blender.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionFacts {
    /// Whether a connection is open now (as far as this process knows).
    pub connected: bool,
    /// Last time Blender answered (Unix seconds).
    pub last_heartbeat: Option<f64>,
    /// Why the last connection attempt or connection failed, if it did.
    pub last_error: Option<String>,
    /// Connections opened over the session's life.
    pub connections_opened: u64,
}

/// Everything a store keeps about one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// Where its Blender is.
    pub target: Target,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last command start or end (Unix seconds).
    pub last_activity: f64,
    /// Blender's state as last seen.
    pub state: SessionState,
    /// The connection facts.
    pub connection: ConnectionFacts,
    /// The bounded command history.
    pub history: History,
    /// Whether the session was closed.
    #[serde(default)]
    pub closed: bool,
}

impl SessionRecord {
    /// A fresh record.
    pub fn new(id: String, target: Target, now: f64, history_limit: usize) -> Self {
        SessionRecord {
            id,
            target,
            created_at: now,
            last_activity: now,
            state: SessionState::default(),
            connection: ConnectionFacts::default(),
            history: History::new(history_limit),
            closed: false,
        }
    }

    /// The session as `get_session_info` shows it, at `now`, `busy` when a command is queued
    /// or running in this process: the first page of its tracked objects.
    pub fn info(&self, now: f64, busy: bool) -> SessionInfo {
        self.info_page(now, busy, 0, OBJECTS_PAGE)
    }

    /// [`SessionRecord::info`] with `objects_limit` tracked objects from `objects_offset`.
    pub fn info_page(
        &self,
        now: f64,
        busy: bool,
        objects_offset: usize,
        objects_limit: usize,
    ) -> SessionInfo {
        let c = &self.connection;
        SessionInfo {
            session_id: self.id.clone(),
            name: None,
            owner: crate::store::LOCAL_OWNER.into(),
            shared_with: Vec::new(),
            status: if self.closed {
                Status::Closed
            } else {
                Status::Open
            },
            closed_at: None,
            created_at: self.created_at,
            last_activity: self.last_activity,
            idle_seconds: (now - self.last_activity).max(0.0),
            busy,
            blender: BlenderStatus {
                connected: c.connected,
                host: self.target.host.clone(),
                port: self.target.port,
                last_heartbeat: c.last_heartbeat,
                last_error: c.last_error.clone(),
                connections_opened: c.connections_opened,
            },
            state: self.state.view(objects_offset, objects_limit),
            command_count: self.history.total(),
            history_kept: self.history.len(),
            history_dropped: self.history.dropped(),
        }
    }

    /// The newest `limit` history entries (all when `None`), oldest first, with counts.
    pub fn history_page(&self, limit: Option<usize>) -> SessionHistory {
        SessionHistory {
            session_id: self.id.clone(),
            entries: self.history.recent(limit),
            total: self.history.total(),
            dropped: self.history.dropped(),
        }
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

/// Everything known about a session (the design's session structure).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionInfo {
    /// The session id.
    pub session_id: String,
    /// Its name, when it was made by name (`create_session {name}`, `--session`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who owns it (`local`: stdio and unauthenticated clients).
    pub owner: String,
    /// Who else may use it: user (or "*", everyone) and access ("read" or "write").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<SharedWith>,
    /// `open`, or `closed` (readable until pruned; commands refused).
    pub status: Status,
    /// When it was closed (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<f64>,
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
    /// Blender's state as last seen (counts, one page of the objects, a selection sample).
    pub state: StateView,
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

    #[test]
    fn a_record_round_trips_through_json() {
        let mut record =
            SessionRecord::new(new_session_id(), Target::new("127.0.0.1", 9876), 1.0, 10);
        record.state.objects = ["Cube".to_string()].into_iter().collect();
        let text = serde_json::to_string(&record).expect("serializes");
        let back: SessionRecord = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back.id, record.id);
        assert_eq!(back.state.objects, record.state.objects);
        assert_eq!(back.history.total(), 0);
    }
}
