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
        SessionError::Store(e) => store_hint(e),
        SessionError::Closed(_) => "Closed sessions stay readable (get_session_info, get_session_history) until pruned. Omit session_id to use your default session, or call create_session.".into(),
        SessionError::TooManyForUser { .. } => "Close sessions you no longer need with close_session (list_sessions shows yours), or ask the server's admin for a larger --max-sessions-per-user.".into(),
        SessionError::ReadOnly(_) => "Its owner shared it for reading: get_scene_info, get_object_info, get_session_info and the history work. Ask the owner for write access (share_session with access \"write\"), or omit session_id to work in your own default session.".into(),
        SessionError::NotOwner(_) => "Ask the session's owner; you can keep using it as it was shared with you.".into(),
        SessionError::LeaseTimeout { .. } => "Another client sharing this session is running a long command; retry when it is done (get_session_history shows it), or use a session of your own.".into(),
        SessionError::ShuttingDown | SessionError::Cancelled { .. } | SessionError::SessionClosed { .. } => return None,
    })
}

fn store_hint(e: &crate::store::StoreError) -> String {
    use crate::store::StoreError as E;
    if e.store().kind == crate::store::StoreKind::Redis {
        return redis_hint(e).into();
    }
    let what = match e {
        E::Unreachable { .. } => {
            "Check that the store is reachable (the file's directory exists and is writable, or the Redis server runs), then retry: the server keeps running and uses the store again as soon as it answers."
        }
        E::Locked { .. } => "Another process holds the store's write lock; retry in a moment.",
        E::Failed { .. } | E::TimedOut { .. } => {
            "Free disk space or fix the store's permissions, then retry; the server keeps running and recovers when the store does."
        }
        E::NotADatabase { .. } | E::Corrupt { .. } => {
            "Point --store-path at another file (the damaged one was left as it was), or run with --store memory."
        }
        E::NewerSchema { .. } => {
            "Upgrade blender-session-mcp, or point --store-path at another file."
        }
        E::Unsupported { .. } => "Choose another --store (sqlite or memory).",
    };
    what.into()
}

/// What to do about a Redis store error: the same kinds of trouble, told as Redis has them.
fn redis_hint(e: &crate::store::StoreError) -> &'static str {
    use crate::store::StoreError as E;
    match e {
        E::Unreachable { .. } => {
            "Check that the Redis server runs and this machine reaches it (URL, password, TLS), then retry: the server keeps running and reconnects as soon as Redis answers."
        }
        E::TimedOut { .. } => {
            "Redis did not answer in time (hung, overloaded or far away): check it, then retry; the server reconnects by itself."
        }
        E::Locked { .. } | E::Failed { .. } => {
            "Redis refused the write (out of memory, a read-only replica, a key of another type under the prefix): fix that, then retry."
        }
        E::NotADatabase { .. } | E::Corrupt { .. } => {
            "Choose another --store-prefix (the keys found were left as they were), or run with --store memory."
        }
        E::NewerSchema { .. } => "Upgrade blender-session-mcp, or choose another --store-prefix.",
        E::Unsupported { .. } => {
            "Give --store a redis://host:port/db or rediss://host:port/db URL, or choose sqlite or memory."
        }
    }
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

/// What to do when Blender at `target` cannot be reached (for a model: one paragraph).
pub fn unreachable_hint(target: &Target) -> String {
    format!(
        "Check that a Blender serving the BlenderMCP protocol is running, started one of three ways: a GUI Blender with the BlenderMCP addon enabled and its server started (\"Connect to MCP server\" in the 3D viewport's BlenderMCP sidebar tab); a headless Blender started with `blender-session-mcp blender [FILE.blend]`; or this server started with `serve --spawn-blender` (or `chat --spawn-blender`), which starts a headless Blender itself. Check also that the host and port are right (this session uses {target}; set --blender-host/--blender-port or BLENDER_HOST/BLENDER_PORT) and that no other program holds that port (`blender-session-mcp check` says what answers there). Then call the tool again: the session reconnects by itself."
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
         1. Start a Blender that serves the BlenderMCP protocol, one of three ways:\n   \
            a. GUI Blender with the BlenderMCP addon installed and enabled\n      \
               (Edit > Preferences > Add-ons > Install… addon.py, tick \"Interface: Blender MCP\");\n      \
               in the 3D viewport press N, open the BlenderMCP tab and click \"Connect to MCP server\".\n   \
            b. Headless: blender-session-mcp blender [FILE.blend] (add --port N for another port).\n   \
            c. Let this program start a headless one: serve --spawn-blender, or chat --spawn-blender.\n\
         2. Check host and port: this run used {target}; the GUI addon shows its port in its panel.\n   \
            Change them with --blender-host/--blender-port or BLENDER_HOST/BLENDER_PORT.\n\
         3. Use 127.0.0.1 rather than localhost: the addon listens on IPv4 only.\n\
         4. If another program holds the port (check names it), stop it or serve Blender on a free port."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_three_ways_to_have_a_blender() {
        let target = Target::new("127.0.0.1", 9876);
        for text in [troubleshooting(&target), unreachable_hint(&target)] {
            for way in [
                "Connect to MCP server",
                "blender-session-mcp blender [FILE.blend]",
                "serve --spawn-blender",
                "chat --spawn-blender",
                "127.0.0.1:9876",
            ] {
                assert!(text.contains(way), "lacks {way:?}:\n{text}");
            }
        }
        let steps = troubleshooting(&target);
        assert!(steps.starts_with("Troubleshooting:\n1. "), "{steps}");
        assert!(
            steps.contains("\n      in the 3D viewport press N"),
            "continuation lines keep their indent:\n{steps}"
        );
    }
}
