//! What a failure means for the one who called: the lower layers say what happened, this
//! module adds what to do about it (which tool to call, which flag to raise), and renders
//! both as the text of an `isError` tool result.

use crate::backend::{BackendError, Target};
use crate::session::SessionError;

/// The advice for a failure, when there is any.
pub fn hint(e: &SessionError) -> Option<String> {
    Some(match e {
        SessionError::NotFound(_) => "It may have been closed, or removed after being idle longer than the idle timeout. Call list_sessions to see live sessions, or omit session_id to use your default session.".into(),
        SessionError::TooManySessions { .. } => "Close sessions you no longer need with close_session, or restart the server with a larger --max-sessions.".into(),
        SessionError::Timeout { .. } => "The next command reconnects. Check that Blender is not busy, send the work in smaller pieces, or raise --command-timeout.".into(),
        SessionError::Backend(b) => return backend_hint(b),
        SessionError::ShuttingDown | SessionError::Cancelled { .. } | SessionError::SessionClosed { .. } => return None,
    })
}

fn backend_hint(e: &BackendError) -> Option<String> {
    Some(match e {
        BackendError::Unreachable { target, .. } => unreachable_hint(target),
        BackendError::ConnectionLost { .. } => "Check the scene (get_scene_info) before retrying. The next command reconnects automatically.".into(),
        BackendError::Protocol { .. } => "The next command reconnects.".into(),
        BackendError::ReplyTooLarge { .. } => "Print less, or raise --max-reply-bytes; the next command reconnects.".into(),
        BackendError::RequestTooLarge { .. } => "Send the code in smaller pieces, or raise --max-request-bytes.".into(),
        BackendError::ScreenshotNeedsLocalBlender { .. } => "Update the BlenderMCP addon to a version with protocol 14 or newer (it returns the image directly), or run this server on Blender's machine.".into(),
        BackendError::Blender { .. } | BackendError::CodeFailed { .. } | BackendError::Unexpected(_) => return None,
    })
}

/// What to do when Blender at `target` cannot be reached.
pub fn unreachable_hint(target: &Target) -> String {
    format!(
        "Check that Blender is running, that the BlenderMCP addon is enabled and its server is started (\"Connect to MCP server\" in the 3D viewport's BlenderMCP sidebar tab), and that the host and port are right (this session uses {target}; set --blender-host/--blender-port or BLENDER_HOST/BLENDER_PORT). Then call the tool again: the session reconnects by itself."
    )
}

/// The full text a caller reads: what happened, then what to do.
pub fn error_text(e: &SessionError) -> String {
    let what = e.to_string();
    match hint(e) {
        None => what,
        Some(hint) if what.ends_with('.') => format!("{what} {hint}"),
        Some(hint) => format!("{what}. {hint}"),
    }
}

/// The troubleshooting steps shown by `check` and `chat` when Blender cannot be reached.
pub fn troubleshooting(target: &Target) -> String {
    format!(
        "Troubleshooting:\n\
         1. Start Blender, with the BlenderMCP addon installed and enabled\n   (Edit > Preferences > Add-ons > Install… addon.py, tick \"Interface: Blender MCP\").\n\
         2. In the 3D viewport press N, open the BlenderMCP tab and click \"Connect to MCP server\".\n\
         3. Check host and port: this run used {target}; the port is shown in that panel.\n   Change them with --blender-host/--blender-port or BLENDER_HOST/BLENDER_PORT.\n\
         4. Use 127.0.0.1 rather than localhost: the addon listens on IPv4 only."
    )
}
