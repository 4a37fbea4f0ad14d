//! The session event stream: one typed event per change of a session record, published on
//! a broadcast channel. MCP resource notifications, a live event stream and a persistent
//! store all read the same events; with nobody subscribed, no event is even built.

use serde::Serialize;

use crate::backend::{Selection, Target};

use super::history::HistoryEntry;

/// One change of one session.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Monotonically increasing within a registry, starting at 1.
    pub id: u64,
    /// When it happened (Unix seconds).
    pub at: f64,
    /// The session it concerns.
    pub session_id: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened to a session.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The session was created.
    SessionCreated {
        /// Its Blender.
        target: Target,
    },
    /// A command was accepted for the session (it may wait for the one before it).
    CommandStarted {
        /// The backend command.
        command: String,
        /// The tool or API that caused it.
        tool: String,
        /// The arguments, as compact JSON cut to about 200 characters.
        arguments_preview: String,
    },
    /// A command ended; the history entry says how.
    CommandFinished {
        /// The recorded entry (with its sequence number).
        entry: HistoryEntry,
    },
    /// Blender's tracked state changed.
    StateChanged {
        /// Objects now in the scene.
        object_count: usize,
        /// Objects that appeared.
        added: Vec<String>,
        /// Objects that disappeared.
        removed: Vec<String>,
        /// Objects renamed: `[old, new]` pairs.
        renamed: Vec<(String, String)>,
        /// The selection now.
        selection: Selection,
    },
    /// The connection to Blender went up or down.
    Connection {
        /// Whether it is up now.
        connected: bool,
        /// Why it went down, when it did.
        error: Option<String>,
    },
    /// Events were lost (a watcher fell behind, or asked to resume from an event no longer
    /// kept): reload what is shown, then follow the stream again. Its `session_id` is empty.
    Resync {
        /// The oldest event id still kept (0 when unknown).
        oldest: u64,
    },
    /// The session was closed.
    SessionClosed {
        /// Why: `closed`, `idle` or `shutdown`.
        reason: CloseReason,
    },
}

/// Why a session was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// `close_session`.
    Closed,
    /// Idle longer than the idle timeout.
    Idle,
    /// The server shut down.
    Shutdown,
}

/// How much of a command's arguments an event shows.
const PREVIEW_CHARS: usize = 200;

/// The arguments as compact JSON cut to [`PREVIEW_CHARS`] characters (with `…` when cut).
pub fn arguments_preview(arguments: &serde_json::Value) -> String {
    let text = arguments.to_string();
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

impl CloseReason {
    /// How the design's log line says it.
    pub fn log_text(self) -> &'static str {
        match self {
            CloseReason::Closed => "closed",
            CloseReason::Idle => "closed (idle)",
            CloseReason::Shutdown => "closed (shutdown)",
        }
    }
}
