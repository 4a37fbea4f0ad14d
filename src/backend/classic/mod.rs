//! The classic BlenderMCP addon protocol (ahujasid/blender-mcp's `addon.py`, also published as
//! `mcp-for-blender`), which this project's headless server (`python/headless_server.py`)
//! speaks too.
//!
//! What this backend must honour, measured against the real addon:
//!
//! * **TCP, IPv4, no framing.** A request is one JSON object (`{"type", "params"}`), a reply
//!   is one JSON object (`{"status": "success", "result"}` or `{"status": "error",
//!   "message"}`); the end of a reply is found only by parsing it ([`protocol`]). Bytes after
//!   it mean the stream is out of sync: drop the connection.
//! * **One request in flight per connection, never pipelined**: two requests in one buffer
//!   never parse on the addon side and hang that connection. A [`connection::Connection`]
//!   carries one round trip at a time (`&mut self`).
//! * **ASCII only on the wire**: the addon dies when a multi-byte character straddles its
//!   8 KiB read boundary, so every non-ASCII character is escaped.
//! * **Requests are capped**: the addon's parse is quadratic in the request size.
//! * **Two error layers**: a `status: "error"` reply and an in-band `error` / `succeed:
//!   false` inside a success reply; both keep the connection.
//! * **No cancellation on Blender's side**: a command sent runs to its end. After a timeout
//!   or a cancellation the connection is dropped (a late reply would answer the next
//!   command) and the command is never re-sent.
//! * **Commands run one at a time on Blender's main thread**, whatever the connection.
//!
//! Code runs through `execute_code` as a one-line call of this server's helper module
//! ([`script`], `python/bsm_helper.py`), installed into Blender once, that keeps the
//! traceback and the stdout printed before it and reports the changes to the scene state
//! since the session's cursor in the same round trip.

pub mod connection;
mod link;
pub mod protocol;
pub mod script;

use std::time::Duration;

pub use connection::{BoundedError, Connection, ConnectionError, ReplyLimits};
pub use protocol::{ProtocolError, Reply, encode_ascii, encode_request, in_band_error};

use serde_json::{Value, json};

use crate::preview::{recordable, recordable_str};

use super::{Backend, BackendError, BoxFuture, Link, Operation, Target};
use link::ClassicLink;

/// The headless server script: the classic protocol served from `blender -b` or a Python
/// with the `bpy` module.
pub const HEADLESS_SERVER: &str = include_str!("python/headless_server.py");

/// Settings of the classic backend.
#[derive(Debug, Clone)]
pub struct ClassicConfig {
    /// Largest reply accepted.
    pub max_reply_bytes: usize,
    /// Largest request sent.
    pub max_request_bytes: usize,
    /// Whether code runs report the scene state (and raw commands that may change the scene
    /// are followed by a state read).
    pub track_state: bool,
}

/// The classic BlenderMCP addon backend.
#[derive(Debug, Clone)]
pub struct ClassicBackend {
    /// Shared by every link (one pointer per connection, not a copy).
    config: std::sync::Arc<ClassicConfig>,
}

impl ClassicBackend {
    /// A backend with these settings.
    pub fn new(config: ClassicConfig) -> Self {
        ClassicBackend {
            config: std::sync::Arc::new(config),
        }
    }
}

impl Backend for ClassicBackend {
    fn connect<'a>(
        &'a self,
        target: &'a Target,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Box<dyn Link>, BackendError>> {
        Box::pin(async move {
            match Connection::connect(target, timeout, self.config.max_reply_bytes).await {
                Ok(conn) => Ok(
                    Box::new(ClassicLink::new(conn, target, self.config.clone())) as Box<dyn Link>,
                ),
                Err(e) => Err(BackendError::Unreachable {
                    target: target.clone(),
                    source: Box::new(e),
                }),
            }
        })
    }

    fn admit(&self, op: &Operation) -> Result<(), BackendError> {
        let limit = self.config.max_request_bytes;
        let size = match op {
            Operation::ExecuteCode { code } => code.len(),
            Operation::ObjectInfo { name } => name.len(),
            Operation::Raw { command, params } => {
                command.len() + params.as_ref().map_or(0, |p| encode_ascii(p).len())
            }
            _ => 0,
        };
        // The encoded request is always larger than these parts: refuse before encoding.
        if size > limit {
            return Err(BackendError::RequestTooLarge { size, limit });
        }
        Ok(())
    }

    fn command_name(&self, op: &Operation) -> String {
        match op {
            Operation::ExecuteCode { .. } | Operation::SceneInfo(_) => "execute_code".into(),
            Operation::ObjectInfo { .. } => "get_object_info".into(),
            Operation::Screenshot { .. } => "get_viewport_screenshot".into(),
            Operation::AddonInfo => "get_addon_info".into(),
            Operation::Raw { command, .. } => command.clone(),
        }
    }

    fn arguments(&self, op: &Operation) -> Value {
        match op {
            Operation::ExecuteCode { code } => json!({ "code": recordable_str(code) }),
            Operation::SceneInfo(query) => serde_json::to_value(query).unwrap_or(Value::Null),
            Operation::AddonInfo => json!({}),
            Operation::ObjectInfo { name } => {
                json!({"type": "get_object_info", "params": {"name": recordable_str(name)}})
            }
            Operation::Screenshot { max_size } => json!({"max_size": max_size, "format": "png"}),
            Operation::Raw { command, params } => {
                recordable(&json!({"type": command, "params": params}))
            }
        }
    }
}

/// Addon commands known not to change the scene (no state read needed after them).
pub fn is_read_only(command: &str) -> bool {
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
