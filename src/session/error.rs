//! Errors of the session layer: every way a session call can fail, each with a message that
//! tells the reader (often a model) what happened and what to do next.

use std::time::Duration;

use crate::blender::{ConnectionError, ProtocolError, Target};

use super::history::Outcome;

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session has this id.
    #[error(
        "Session not found: {0}. It may have been closed, or removed after being idle longer than the idle timeout. Call list_sessions to see live sessions, or omit session_id to use your default session."
    )]
    NotFound(String),
    /// The registry is full.
    #[error(
        "Too many sessions: the limit of {limit} is reached. Close sessions you no longer need with close_session, or restart the server with a larger --max-sessions."
    )]
    TooManySessions {
        /// `--max-sessions`.
        limit: usize,
    },
    /// The server is shutting down; nothing was sent.
    #[error("The server is shutting down; nothing was sent to Blender.")]
    ShuttingDown,
    /// Blender could not be reached; nothing was sent.
    #[error(
        "{source}. Nothing was sent. Check that Blender is running, that the BlenderMCP addon is enabled and its server is started (\"Connect to MCP server\" in the 3D viewport's BlenderMCP sidebar tab), and that the host and port are right (this session uses {target}; set --blender-host/--blender-port or BLENDER_HOST/BLENDER_PORT). Then call the tool again: the session reconnects by itself."
    )]
    Unreachable {
        /// Where the session's Blender should be.
        target: Target,
        /// The connection failure.
        #[source]
        source: ConnectionError,
    },
    /// No reply within the command timeout.
    #[error(
        "Timeout waiting for Blender response: no reply to {command} within {after:?}. The command may still be running in Blender (a slow script or a busy Blender); it was not re-sent. The connection was dropped so a late reply cannot be mistaken for another answer; the next command reconnects. Check that Blender is not busy, send the work in smaller pieces, or raise --command-timeout."
    )]
    Timeout {
        /// The addon command type.
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
    /// The connection broke after the command was written.
    #[error(
        "The connection to Blender was lost during {command}: {source}. The command may or may not have run; check the scene (get_scene_info) before retrying. The next command reconnects automatically."
    )]
    ConnectionLost {
        /// The addon command type.
        command: String,
        /// What broke.
        #[source]
        source: ConnectionError,
    },
    /// The reply could not be decoded; the connection was dropped.
    #[error(
        "Blender's reply to {command} could not be used: {source}. The connection was dropped and the command may have run; the next command reconnects."
    )]
    Protocol {
        /// The addon command type.
        command: String,
        /// The codec failure.
        #[source]
        source: ProtocolError,
    },
    /// The request was refused before sending (too large).
    #[error(transparent)]
    RequestRefused(ProtocolError),
    /// Blender answered with an error (`status: "error"` or an in-band error).
    #[error("Blender reported an error: {message}")]
    Blender {
        /// The addon's message.
        message: String,
    },
    /// The user's Python code raised; the traceback and the stdout printed before it.
    #[error("{}", code_failed_text(traceback, stdout))]
    CodeFailed {
        /// The formatted traceback.
        traceback: String,
        /// What the code printed before the exception.
        stdout: String,
    },
    /// Blender's answer did not have the expected shape.
    #[error("Unexpected answer from Blender: {0}")]
    Unexpected(String),
}

fn cancelled_text(what: &str, sent: bool) -> String {
    if sent {
        format!(
            "{what}. The command had already been sent, so it may still run in Blender; its connection was dropped and the next command reconnects."
        )
    } else {
        format!("{what} before anything was sent to Blender.")
    }
}

fn code_failed_text(traceback: &str, stdout: &str) -> String {
    let mut text = format!(
        "Python raised an exception in Blender:\n{}",
        traceback.trim_end()
    );
    if !stdout.is_empty() {
        text.push_str("\n\nOutput printed before the exception:\n");
        text.push_str(stdout);
    }
    text
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
            SessionError::Timeout { .. } => Outcome::Timeout,
            SessionError::Cancelled { .. } | SessionError::SessionClosed { .. } => {
                Outcome::Cancelled
            }
            SessionError::ConnectionLost { .. } => Outcome::ConnectionLost,
            SessionError::Unreachable { .. } => Outcome::Unreachable,
            _ => Outcome::Error,
        }
    }
}
