//! The tool names, in one place: the MCP handler's methods are named after them (a test
//! checks that the two agree), and `chat` refers to tools only through these constants.

/// Run Python code in Blender.
pub const EXECUTE_BLENDER_CODE: &str = "execute_blender_code";
/// Read the scene.
pub const GET_SCENE_INFO: &str = "get_scene_info";
/// One object's details.
pub const GET_OBJECT_INFO: &str = "get_object_info";
/// A viewport screenshot.
pub const GET_VIEWPORT_SCREENSHOT: &str = "get_viewport_screenshot";
/// Any other addon command.
pub const BLENDER_COMMAND: &str = "blender_command";
/// Create a session.
pub const CREATE_SESSION: &str = "create_session";
/// List sessions.
pub const LIST_SESSIONS: &str = "list_sessions";
/// A session's info.
pub const GET_SESSION_INFO: &str = "get_session_info";
/// A session's history.
pub const GET_SESSION_HISTORY: &str = "get_session_history";
/// Close a session.
pub const CLOSE_SESSION: &str = "close_session";
/// Share a session with another user.
pub const SHARE_SESSION: &str = "share_session";
/// Stop sharing a session.
pub const UNSHARE_SESSION: &str = "unshare_session";

/// Every tool the server offers.
pub const ALL: &[&str] = &[
    EXECUTE_BLENDER_CODE,
    GET_SCENE_INFO,
    GET_OBJECT_INFO,
    GET_VIEWPORT_SCREENSHOT,
    BLENDER_COMMAND,
    CREATE_SESSION,
    LIST_SESSIONS,
    GET_SESSION_INFO,
    GET_SESSION_HISTORY,
    CLOSE_SESSION,
    SHARE_SESSION,
    UNSHARE_SESSION,
];
