//! Errors of the session layer: every way a session call can fail, each saying what
//! happened. What to do about it is the MCP layer's to add (`mcp::errors`).

use std::time::Duration;

use crate::backend::BackendError;

use super::history::Outcome;
use crate::store::StoreError;

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session has this id.
    #[error("Session not found: {0}")]
    NotFound(String),
    /// The registry is full.
    #[error("Too many sessions: the limit of {limit} is reached")]
    TooManySessions {
        /// The most sessions alive at once.
        limit: usize,
    },
    /// The user owns as many open sessions as allowed.
    #[error("User {user} already has {limit} open sessions, the most allowed")]
    TooManyForUser {
        /// The user.
        user: String,
        /// The most open sessions per user.
        limit: usize,
    },
    /// The session is shared with the caller read-only; nothing was sent.
    #[error("Session {0} is shared with you read-only; nothing was sent to Blender")]
    ReadOnly(String),
    /// Only the owner may do this to the session.
    #[error("Only the owner of session {0} may close or share it")]
    NotOwner(String),
    /// The server is shutting down; nothing was sent.
    #[error("The server is shutting down; nothing was sent to Blender.")]
    ShuttingDown,
    /// No reply within the command timeout.
    #[error(
        "Timeout waiting for Blender response: no reply to {command} within {after:?}. The command may still be running in Blender (a slow script or a busy Blender); it was not re-sent. The connection was dropped so a late reply cannot be mistaken for another answer"
    )]
    Timeout {
        /// The backend command.
        command: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The MCP client cancelled the call.
    #[error("{}", cancelled_text("The call was cancelled", *sent))]
    Cancelled {
        /// Whether the command had been handed to Blender.
        sent: bool,
    },
    /// The session was closed (by close_session or shutdown) while the command waited or ran.
    #[error("{}", cancelled_text(&format!("Session {id} was closed while this command was pending"), *sent))]
    SessionClosed {
        /// The session id.
        id: String,
        /// Whether the command had been handed to Blender.
        sent: bool,
    },
    /// Talking to Blender failed, or Blender reported an error.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The session store could not be read or written; nothing was sent to Blender.
    #[error("{0}; nothing was sent to Blender")]
    Store(#[from] StoreError),
    /// The session is closed (by this process or another sharing the store).
    #[error("Session {0} is closed; nothing was sent to Blender")]
    Closed(String),
    /// Another process held the session's lease for the whole command timeout.
    #[error(
        "Session {id} was busy with a command of another server process ({holder}) for {waited:?}; nothing was sent to Blender"
    )]
    LeaseTimeout {
        /// The session id.
        id: String,
        /// The process holding the lease.
        holder: String,
        /// How long this command waited.
        waited: Duration,
    },
}

fn cancelled_text(what: &str, sent: bool) -> String {
    if sent {
        format!(
            "{what}. The command had already been sent, so it may still run in Blender; its connection is not used again, and the next command opens a new one."
        )
    } else {
        format!("{what} before anything was sent to Blender.")
    }
}

impl SessionError {
    /// [`SessionError::NotFound`] for `id`, echoing at most 80 characters of it (ids come
    /// from clients and may be anything).
    pub fn not_found(id: &str) -> Self {
        let shown: String = id.chars().take(80).collect();
        if shown.len() < id.len() {
            SessionError::NotFound(format!("{shown}… ({} bytes)", id.len()))
        } else {
            SessionError::NotFound(shown)
        }
    }

    /// How a command that failed this way is recorded in history.
    pub fn outcome(&self) -> Outcome {
        match self {
            SessionError::Timeout { .. } | SessionError::LeaseTimeout { .. } => Outcome::Timeout,
            SessionError::Cancelled { .. } | SessionError::SessionClosed { .. } => {
                Outcome::Cancelled
            }
            SessionError::Backend(BackendError::ConnectionLost { .. }) => Outcome::ConnectionLost,
            SessionError::Backend(BackendError::Unreachable { .. }) => Outcome::Unreachable,
            _ => Outcome::Error,
        }
    }
}
