//! Tool parameter structs. Their field doc comments become the JSON schema descriptions the
//! model reads, so they are written for a model.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Parameters of `execute_blender_code`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExecuteCodeParams {
    /// Python code to run inside Blender. `bpy` is already imported; every call starts with a
    /// fresh namespace (variables do not persist between calls). Use print() to return
    /// values: the tool result is exactly what the code printed.
    pub code: String,
    /// Session to run in. Omit it to use your default session (created on first use and
    /// reused, keeping one connection to Blender).
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of tools that only need a session.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SessionParams {
    /// Session to use. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of `get_scene_info`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SceneInfoParams {
    /// Objects to list at most on this page (default 100). The answer also stops early to
    /// stay under the server's result size limit, and says so.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100000), extend("default" = 100))]
    pub limit: Option<usize>,
    /// Matching objects to skip first (default 0): pass the previous answer's
    /// `next_offset` to get the next page.
    #[serde(default)]
    #[schemars(extend("default" = 0))]
    pub offset: Option<usize>,
    /// Only objects of this type, e.g. "MESH", "LIGHT", "CAMERA", "EMPTY", "CURVE".
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Only objects whose name matches this case-sensitive glob: `*` any text, `?` one
    /// character, `[abc]` one of these, e.g. "Cube*".
    #[serde(default)]
    pub name: Option<String>,
    /// Only objects in this collection (or its child collections), by exact name.
    #[serde(default)]
    pub collection: Option<String>,
    /// Session to use. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of `list_sessions`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListSessionsParams {
    /// Sessions to skip first (default 0): pass the previous answer's `next_offset` to get
    /// the next page.
    #[serde(default)]
    #[schemars(extend("default" = 0))]
    pub offset: Option<usize>,
    /// Sessions to list at most (default 20).
    #[serde(default)]
    #[schemars(range(min = 0, max = 200), extend("default" = 20))]
    pub limit: Option<usize>,
}

/// Parameters of `get_session_info`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SessionInfoParams {
    /// Tracked objects to skip first (default 0): pass the previous answer's
    /// `state.objects_next_offset` to page through them.
    #[serde(default)]
    #[schemars(extend("default" = 0))]
    pub objects_offset: Option<usize>,
    /// Tracked objects to list at most (default 100).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000), extend("default" = 100))]
    pub objects_limit: Option<usize>,
    /// Session to use. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of `get_object_info`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ObjectInfoParams {
    /// Exact name of the object (as listed by get_scene_info), e.g. "Cube".
    pub name: String,
    /// Session to use. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of `get_viewport_screenshot`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScreenshotParams {
    /// Largest side of the image in pixels (default 800).
    #[serde(default)]
    #[schemars(range(min = 16, max = 8192), extend("default" = 800))]
    pub max_size: Option<u32>,
    /// Session to use. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of `blender_command`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlenderCommandParams {
    /// The addon command type, e.g. "get_polyhaven_status" or "search_polyhaven_assets".
    #[serde(rename = "type")]
    pub command_type: String,
    /// The command's parameters as an object of keyword arguments (unknown keys are an error
    /// in Blender). Omit for commands without parameters.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    /// Session to use. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Parameters of `create_session`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct CreateSessionParams {
    /// Host of the Blender to drive (default: the server's --blender-host, usually 127.0.0.1).
    #[serde(default)]
    pub blender_host: Option<String>,
    /// Port of the BlenderMCP addon (default: the server's --blender-port, usually 9876).
    #[serde(default)]
    pub blender_port: Option<u16>,
    /// A name for the session: when an open session of this name exists (made by you, or
    /// by another client sharing this server's store) it is reused and returned instead.
    #[serde(default)]
    pub name: Option<String>,
}

/// Parameters of `get_session_history`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct HistoryParams {
    /// Session to read. Omit it to use your default session.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Return only the newest this many entries (default: all kept entries).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Parameters of `share_session`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareParams {
    /// The session to share: one you own (list_sessions shows them).
    pub session_id: String,
    /// The user to share it with (their user name on this server), or "*" for every user.
    pub user: String,
    /// "read" lets them use the read-only tools on it (get_scene_info, get_object_info,
    /// get_viewport_screenshot, get_session_info, get_session_history); "write" also lets
    /// them run code in it. Sharing again replaces the access given before.
    #[serde(default)]
    #[schemars(extend("enum" = ["read", "write"], "default" = "read"))]
    pub access: Option<String>,
}

/// Parameters of `unshare_session`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnshareParams {
    /// The session to stop sharing: one you own.
    pub session_id: String,
    /// The user to stop sharing it with, or "*" to undo a share with every user (shares
    /// with named users stay).
    pub user: String,
}
