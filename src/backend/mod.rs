//! The backend seam: how a Blender is reached and how a typed [`Operation`] becomes bytes on
//! its wire and back.
//!
//! A [`Backend`] opens [`Link`]s to a [`Target`]; a link carries one operation at a time
//! ([`Link::call`] takes `&mut self`) and says, before it is reused, whether it is still fit
//! ([`Link::probe_idle`]). The session layer's command path (busy marker, per-session order,
//! timeout, cancellation, history) is generic over this trait and never sees a backend's
//! wire format. Today's one backend is [`classic`], the BlenderMCP addon protocol (which
//! this project's headless server speaks too).
//!
//! Errors say what happened, never what to do: the MCP layer adds the advice.

pub mod classic;
pub mod ops;
pub mod state;
pub mod target;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use ops::{
    AddonInfo, CodeOutput, CollectionSummary, Operation, Output, SceneInfo, SceneObject,
    SceneQuery, Screenshot, Selection, Snapshot,
};
pub use state::{Cursor, ObjectChange, ObjectsUpdate, StateUpdate};
pub use target::Target;

/// A boxed, `Send` future: what the object-safe backend traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed error cause, kept for its message.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A way of talking to Blender. Shared by every session of a registry.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// Open a link to `target` within `timeout`. Nothing of any operation is sent.
    fn connect<'a>(
        &'a self,
        target: &'a Target,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Box<dyn Link>, BackendError>>;

    /// Refuse, before a link is taken, an operation that can never be sent (too large).
    fn admit(&self, op: &Operation) -> Result<(), BackendError>;

    /// The backend command an operation is sent as, for history and logs.
    fn command_name(&self, op: &Operation) -> String;

    /// The operation's arguments as the history shows them (bounded previews).
    fn arguments(&self, op: &Operation) -> serde_json::Value;
}

/// What an idle link looks like just before it is reused.
#[derive(Debug)]
pub enum IdleState {
    /// Open, with nothing unread: safe to send on.
    Healthy,
    /// The peer closed it (for example Blender restarted).
    Closed,
    /// Bytes arrived that no request asked for: the stream is out of sync.
    UnexpectedData,
    /// The link reports an error, or an earlier failure left it unusable.
    Broken(String),
}

/// One open link to Blender, owned by one session.
pub trait Link: Send + std::fmt::Debug {
    /// Whether the link is still fit to carry a request, checked without blocking.
    fn probe_idle(&mut self) -> IdleState;

    /// Carry out one operation. `Err` means the link can no longer be trusted (it is then
    /// dropped, never reused); a failure Blender reported comes back inside the [`Answer`].
    /// The future may be dropped at any point (timeout, cancellation): the caller then drops
    /// the link too, because a late reply would otherwise answer the next request.
    /// `cursor` is where the session stands in Blender's change journal (`None`: it has no
    /// state yet, or lost it): state reported with the answer is relative to it.
    fn call<'a>(
        &'a mut self,
        op: &'a Operation,
        cursor: Option<&'a Cursor>,
    ) -> BoxFuture<'a, Result<Answer, BackendError>>;

    /// Blender's state since `cursor`, read after an operation whose answer asked for it
    /// ([`Answer::read_state`]). Run by the command path under its own timeout, so a slow or
    /// failed read never changes the operation's own result.
    fn read_state<'a>(
        &'a mut self,
        cursor: Option<&'a Cursor>,
    ) -> BoxFuture<'a, Result<Option<StateUpdate>, BackendError>> {
        let _ = cursor;
        Box::pin(async { Ok(None) })
    }

    /// After an operation was cancelled while it ran: a request, on a connection of its own,
    /// that makes Blender stop it, when this Blender can (`None`: it cannot, and the operation
    /// runs to its end).
    fn interrupt(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }

    /// Resolve once the peer sends anything or closes: after a cancelled operation, when
    /// Blender has finished it (the classic addon cannot stop a script, but it answers when
    /// the script ends). The link is never used for another operation afterwards.
    fn wait_reply(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    /// Close the link cleanly.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The outcome of an operation on a link that stays usable.
#[derive(Debug)]
pub struct Answer {
    /// The result, or the failure Blender reported (the code raised, an error reply, …).
    pub output: Result<Output, BackendError>,
    /// The result as the history records it (a bounded preview).
    pub recorded: serde_json::Value,
    /// Blender's state after the operation (whole, or the changes since the session's
    /// cursor), when the backend read it.
    pub state: Option<StateUpdate>,
    /// Whether the operation may have changed the scene without reporting the state, so the
    /// command path should call [`Link::read_state`] next.
    pub read_state: bool,
}

impl Answer {
    /// A failure with nothing to record.
    pub fn failed(error: BackendError) -> Self {
        Answer {
            output: Err(error),
            recorded: serde_json::Value::Null,
            state: None,
            read_state: false,
        }
    }
}

/// What went wrong talking to Blender.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Blender could not be reached; nothing was sent.
    #[error("{source}. Nothing was sent")]
    Unreachable {
        /// Where Blender should be.
        target: Target,
        /// Why the connection failed.
        #[source]
        source: Cause,
    },
    /// The link broke after the request was written.
    #[error(
        "The connection to Blender was lost during {command}: {source}. The command may or may not have run"
    )]
    ConnectionLost {
        /// The backend command.
        command: String,
        /// What broke.
        #[source]
        source: Cause,
    },
    /// The reply could not be decoded; the link was dropped.
    #[error(
        "Blender's reply to {command} could not be used: {source}. The connection was dropped and the command may have run"
    )]
    Protocol {
        /// The backend command.
        command: String,
        /// What was wrong with the reply.
        #[source]
        source: Cause,
    },
    /// The reply grew past the reply cap before it was complete; the link was dropped.
    #[error(
        "Blender's reply to {command} exceeded the {limit}-byte limit; the command ran in Blender but its result was dropped, the read stopped at the limit and the connection was dropped"
    )]
    ReplyTooLarge {
        /// The backend command.
        command: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The request is larger than the request cap; nothing was sent.
    #[error("the request is over the {limit}-byte limit (at least {size} bytes); nothing was sent")]
    RequestTooLarge {
        /// Size of the request (at least).
        size: usize,
        /// The cap in bytes.
        limit: usize,
    },
    /// Blender answered with an error.
    #[error("Blender reported an error: {message}")]
    Blender {
        /// Blender's message.
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
    /// A screenshot of a Blender on another machine whose addon can only write the image to
    /// Blender's own disk; no screenshot was requested.
    #[error(
        "this Blender ({target}) runs on another machine and its addon (protocol {protocol}) can only save screenshots to Blender's own disk"
    )]
    ScreenshotNeedsLocalBlender {
        /// Where Blender is.
        target: Target,
        /// The addon's protocol level.
        protocol: u64,
    },
    /// Blender's answer did not have the expected shape.
    #[error("Unexpected answer from Blender: {0}")]
    Unexpected(String),
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
