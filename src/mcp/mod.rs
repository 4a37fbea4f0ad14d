//! The MCP layer: an rmcp [`ServerHandler`], created per client, whose tools delegate to the
//! shared session [`Registry`]. Failures the model should read (Blender unreachable,
//! timeouts, unknown sessions, Python exceptions) become `isError` tool results with a
//! message saying what happened and what to do ([`errors`]); JSON-RPC errors are left to
//! rmcp for requests that cannot be routed.
//!
//! - [`names`]: the tool names; [`params`]: their parameters (the schemas models read).
//! - [`errors`]: the advice added to lower layers' errors.
//! - [`stdio`]: the stdio transport.

pub mod errors;
pub mod names;
pub mod params;
pub mod schema;
pub mod stdio;

use std::sync::{Arc, Mutex};

use base64::Engine;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::Serialize;
use serde_json::{Value, json};

use crate::backend::Target;
use crate::session::{Call, Registry, SessionError};

pub use errors::error_text;

use params::{
    BlenderCommandParams, CreateSessionParams, ExecuteCodeParams, HistoryParams, ObjectInfoParams,
    ScreenshotParams, SessionParams,
};

const INSTRUCTIONS: &str = "\
This server drives a running Blender (with the BlenderMCP addon) through sessions.

A session holds one keep-alive connection to Blender, remembers Blender's state (all objects, \
the selection, the last command and its result) and records a history of every command. You \
do not need to manage sessions: every tool takes an optional session_id, and without it your \
default session is used (created on first use, then reused). Create extra sessions with \
create_session only to drive another Blender (blender_host/blender_port) or to keep separate \
histories. Sessions idle for a while are closed automatically; an unknown session_id error \
means that happened: omit session_id or call list_sessions.

Use get_scene_info to see the scene (every object, the selection), execute_blender_code to \
change it (print() what you want back; each call has a fresh namespace with bpy imported), \
get_object_info for one object, get_viewport_screenshot to look at it, and blender_command \
for any other addon command. get_session_info shows the tracked state without asking Blender.";

/// What the server knows of the one client it serves.
#[derive(Debug)]
struct ClientContext {
    /// Who is calling (`local` on stdio).
    user: String,
    /// The client's default session, once it has one.
    default_session: Mutex<Option<String>>,
}

/// The MCP server for one client. Create one per client connection with
/// [`BlenderServer::new`]: every one shares the registry, each has its own default session.
/// Clones serve the same client.
#[derive(Clone)]
pub struct BlenderServer {
    registry: Registry,
    client: Arc<ClientContext>,
    tool_router: ToolRouter<BlenderServer>,
}

impl std::fmt::Debug for BlenderServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlenderServer")
            .field("registry", &self.registry)
            .field("user", &self.client.user)
            .finish()
    }
}

fn error_result(e: &SessionError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error_text(e))])
}

/// A tool result from a session call: structured JSON on success, an `isError` text otherwise.
fn respond<T: Serialize>(result: Result<T, SessionError>) -> CallToolResult {
    match result {
        Ok(value) => json_result(&value),
        Err(e) => error_result(&e),
    }
}

fn json_result<T: Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
            let mut result = CallToolResult::structured(v);
            result.content = vec![ContentBlock::text(text)];
            result
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
            "internal error: could not serialize the result: {e}"
        ))]),
    }
}

impl BlenderServer {
    /// A server for one new client over `registry`, with no default session yet.
    pub fn new(registry: Registry) -> Self {
        BlenderServer {
            registry,
            client: Arc::new(ClientContext {
                user: "local".into(),
                default_session: Mutex::new(None),
            }),
            tool_router: Self::tool_router(),
        }
    }

    fn default_session(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.client
            .default_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The registry the tools use.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The session a call addresses: the given id, or the caller's default session (created
    /// when there is none or it was closed).
    async fn session(&self, session_id: Option<String>) -> Result<String, SessionError> {
        if let Some(id) = session_id.filter(|s| !s.trim().is_empty()) {
            return Ok(id);
        }
        // The default session is made under the lock (which never waits), and connected
        // outside it: nobody queues behind a connect to reach the client's default session.
        let id = {
            let mut default = self.default_session();
            if let Some(id) = default.as_ref()
                && self.registry.contains(id)
            {
                return Ok(id.clone());
            }
            let id = self.registry.open_session(None)?;
            *default = Some(id.clone());
            id
        };
        if self.registry.config().connect_on_create {
            self.registry.connect_session(&id).await;
        }
        Ok(id)
    }

    fn call(tool: &str, ctx: &RequestContext<RoleServer>) -> Call {
        Call::new(tool).with_cancel(ctx.ct.clone())
    }
}

#[tool_router]
impl BlenderServer {
    /// Run Python code inside Blender and return what it printed.
    #[tool(
        description = "Run Python code inside Blender (bpy is imported; fresh namespace each call) and return exactly what it printed. If the code raises, the result is an error carrying the Python traceback and the output printed before the exception. The session's tracked state (objects, selection) is refreshed in the same round trip.",
        annotations(
            title = "Execute Blender Python",
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = false
        )
    )]
    async fn execute_blender_code(
        &self,
        Parameters(p): Parameters<ExecuteCodeParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::EXECUTE_BLENDER_CODE, &ctx);
        let result = async {
            let id = self.session(p.session_id).await?;
            self.registry.execute_code(&id, &p.code, &call).await
        }
        .await;
        match result {
            Ok(out) if out.stdout.is_empty() => CallToolResult::success(vec![ContentBlock::text(
                "(the code ran and printed nothing)",
            )]),
            Ok(out) => CallToolResult::success(vec![ContentBlock::text(out.stdout)]),
            Err(e) => error_result(&e),
        }
    }

    /// Read the whole scene from Blender.
    #[tool(
        description = "Read the current Blender scene: its name, every object (name, type, location), the selection (active and selected objects) and the number of materials. Always asks Blender (a person may have changed the scene in the GUI) and refreshes the session's tracked state.",
        annotations(
            title = "Get scene info",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_scene_info(
        &self,
        Parameters(p): Parameters<SessionParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::GET_SCENE_INFO, &ctx);
        let result = async {
            let id = self.session(p.session_id).await?;
            let info = self.registry.scene_info(&id, &call).await?;
            let mut info = serde_json::to_value(info).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut info {
                map.insert("session_id".into(), Value::String(id));
            }
            Ok::<_, SessionError>(info)
        }
        .await;
        respond(result)
    }

    /// Detailed information about one object.
    #[tool(
        description = "Get details of one object by exact name: type, location, rotation, scale, visibility, materials, and for meshes the bounding box and vertex/edge/polygon counts.",
        annotations(
            title = "Get object info",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_object_info(
        &self,
        Parameters(p): Parameters<ObjectInfoParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::GET_OBJECT_INFO, &ctx);
        let result = async {
            let id = self.session(p.session_id).await?;
            self.registry.object_info(&id, &p.name, &call).await
        }
        .await;
        respond(result)
    }

    /// A PNG screenshot of Blender's 3D viewport.
    #[tool(
        description = "Capture Blender's 3D viewport as a PNG image. max_size bounds the longest side in pixels (default 800).",
        annotations(
            title = "Viewport screenshot",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_viewport_screenshot(
        &self,
        Parameters(p): Parameters<ScreenshotParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::GET_VIEWPORT_SCREENSHOT, &ctx);
        let max_size = p.max_size.unwrap_or(800).clamp(16, 8192);
        let result = async {
            let id = self.session(p.session_id).await?;
            self.registry.screenshot(&id, max_size, &call).await
        }
        .await;
        match result {
            Ok(shot) => {
                let data = base64::engine::general_purpose::STANDARD.encode(&shot.png);
                CallToolResult::success(vec![ContentBlock::image(data, "image/png")])
            }
            Err(e) => error_result(&e),
        }
    }

    /// Send any other addon command.
    #[tool(
        description = "Send any other BlenderMCP addon command by type with its params object, and return its raw result, e.g. {\"type\": \"get_polyhaven_status\"}. Prefer the dedicated tools for scene info, objects, code and screenshots.",
        annotations(
            title = "Raw addon command",
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    async fn blender_command(
        &self,
        Parameters(p): Parameters<BlenderCommandParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::BLENDER_COMMAND, &ctx);
        let result = async {
            let id = self.session(p.session_id).await?;
            self.registry
                .send_command_as(&id, &p.command_type, p.params.map(Value::Object), &call)
                .await
        }
        .await;
        respond(result)
    }

    /// Create a new session.
    #[tool(
        description = "Create a new session (its own connection, state and history) and return its info, including session_id. Only needed to drive another Blender (blender_host/blender_port) or to keep a separate history: other tools use your default session when session_id is omitted.",
        annotations(
            title = "Create session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_session(
        &self,
        Parameters(p): Parameters<CreateSessionParams>,
    ) -> CallToolResult {
        let defaults = &self.registry.config().default_target;
        let target = Target::new(
            p.blender_host.unwrap_or_else(|| defaults.host.clone()),
            p.blender_port.unwrap_or(defaults.port),
        );
        let result = async {
            let id = self.registry.create_session(Some(target)).await?;
            self.registry.get_session_info(&id)
        }
        .await;
        respond(result)
    }

    /// List live sessions.
    #[tool(
        description = "List every live session with its connection status, tracked state, command count and idle time.",
        annotations(
            title = "List sessions",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_sessions(&self) -> CallToolResult {
        let sessions = self.registry.list_sessions();
        let default = self.default_session().clone();
        json_result(
            &json!({"sessions": sessions, "count": sessions.len(), "default_session": default}),
        )
    }

    /// A session's info.
    #[tool(
        description = "Show a session's tracked state without asking Blender: connection status, objects, selection, last command and result, command count, idle time.",
        annotations(
            title = "Get session info",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_session_info(&self, Parameters(p): Parameters<SessionParams>) -> CallToolResult {
        let result = async {
            let id = self.session(p.session_id).await?;
            self.registry.get_session_info(&id)
        }
        .await;
        respond(result)
    }

    /// A session's command history.
    #[tool(
        description = "Show a session's command history, oldest first: sequence number, timestamp, addon command, tool, arguments, outcome (success, error, timeout, cancelled, connection_lost, unreachable), result or message, and duration in seconds.",
        annotations(
            title = "Get session history",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_session_history(
        &self,
        Parameters(p): Parameters<HistoryParams>,
    ) -> CallToolResult {
        let result = async {
            let id = self.session(p.session_id).await?;
            self.registry.get_session_history(&id, p.limit)
        }
        .await;
        respond(result)
    }

    /// Close a session.
    #[tool(
        description = "Close a session and its Blender connection, returning its final info. Closing your default session is fine: the next call without session_id creates a new one.",
        annotations(
            title = "Close session",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn close_session(&self, Parameters(p): Parameters<SessionParams>) -> CallToolResult {
        let id = match p.session_id.filter(|s| !s.trim().is_empty()) {
            Some(id) => Some(id),
            None => self.default_session().clone(),
        };
        let Some(id) = id else {
            return error_result(&SessionError::NotFound(
                "(no session_id given and no default session exists yet)".into(),
            ));
        };
        respond(
            self.registry
                .close_session(&id)
                .await
                .map(|info| json!({"closed": true, "session": info})),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BlenderServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_match_the_constants() {
        let mut listed: Vec<String> = BlenderServer::tool_router()
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        listed.sort();
        let mut names: Vec<String> = names::ALL.iter().map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(listed, names);
    }
}
