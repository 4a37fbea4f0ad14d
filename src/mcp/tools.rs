//! The tools: each a method of [`BlenderServer`] delegating to the registry, with its
//! description and annotations (what the model reads), its progress notifications while
//! Blender works, and the shapes of its structured results (declared as output schemas in
//! [`super::catalog`]).

use base64::Engine;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;
use serde_json::{Map, Value};

use super::params::{
    BlenderCommandParams, CreateSessionParams, ExecuteCodeParams, HistoryParams,
    ListSessionsParams, ObjectInfoParams, SceneInfoParams, ScreenshotParams, SessionInfoParams,
    SessionParams,
};
use super::progress::with_progress;
use super::{BlenderServer, errors, names};
use crate::backend::{SceneInfo, SceneQuery, Target};
use crate::session::{Call, SessionError, SessionInfo};

/// Sessions in one `list_sessions` page by default, and at most.
const LIST_PAGE: usize = 20;
const LIST_MAX: usize = 200;

/// `get_scene_info`'s result: the scene and the session it was read in.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SceneInfoResult {
    /// The session that read the scene.
    pub session_id: String,
    /// The scene: its summary and one page of objects.
    #[serde(flatten)]
    pub scene: SceneInfo,
    /// How to get what this page does not show, when there is more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more: Option<String>,
}

/// What to tell the model about the objects a scene page does not show.
fn scene_more(scene: &SceneInfo, limit_bytes: usize) -> Option<String> {
    let shown = scene.objects.len();
    let next = scene.next_offset?;
    let mut text = format!(
        "Listed {shown} of the {} matching objects (from offset {}). For the next page call get_scene_info with offset={next} and the same filters; narrow the list with type, name (a glob such as \"Cube*\") or collection.",
        scene.matched, scene.offset
    );
    if scene.truncated_by_size {
        text.push_str(&format!(
            " This page was cut short to keep the result under {limit_bytes} bytes."
        ));
    }
    Some(text)
}

/// A structured result whose text copy is compact JSON (a page sized to a byte budget
/// stays within it twice: structured and text).
fn compact_result<T: Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        // The text content is the same JSON, compact (`structured` writes it once).
        Ok(v) => CallToolResult::structured(v),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
            "internal error: could not serialize the result: {e}"
        ))]),
    }
}

/// `list_sessions`' result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SessionList {
    /// One page of the open sessions, oldest first (each with a sample of its tracked
    /// objects; get_session_info pages one session's objects).
    pub sessions: Vec<SessionInfo>,
    /// How many sessions are open in all.
    pub count: usize,
    /// Sessions skipped before this page.
    pub offset: usize,
    /// The offset of the next page, when there are more sessions.
    pub next_offset: Option<usize>,
    /// This client's default session, once it has one.
    pub default_session: Option<String>,
}

/// `close_session`'s result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Closed {
    /// Always true.
    pub closed: bool,
    /// The session's final info.
    pub session: SessionInfo,
}

/// The result with what else the caller should know (e.g. that Blender was still running a
/// cancelled command first) as further text blocks.
fn with_notes(mut result: CallToolResult, call: &Call) -> CallToolResult {
    for note in call.take_notes() {
        result
            .content
            .push(ContentBlock::text(format!("Note: {note}")));
    }
    result
}

/// Structured content must be an object: an addon result that is not one is wrapped as
/// `{"result": …}`.
fn as_object_result(value: Value) -> Value {
    match value {
        Value::Object(_) => value,
        other => {
            let mut map = Map::new();
            map.insert("result".into(), other);
            Value::Object(map)
        }
    }
}

pub(super) fn error_result(e: &SessionError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(errors::error_text(e))])
}

/// A tool result from a session call: structured JSON on success, an `isError` text otherwise.
pub(super) fn respond_json<T: Serialize>(result: Result<T, SessionError>) -> CallToolResult {
    respond(result)
}

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

#[tool_router(vis = "pub(super)")]
impl BlenderServer {
    /// Run Python code inside Blender and return what it printed.
    #[tool(
        description = "Run Python code inside Blender (bpy is imported; fresh namespace each call) and return exactly what it printed. If the code raises, the result is an error carrying the Python traceback and the output printed before the exception. The session's tracked state (objects, selection) is refreshed in the same round trip.",
        annotations(
            title = "Execute Blender Python",
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    async fn execute_blender_code(
        &self,
        Parameters(p): Parameters<ExecuteCodeParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::EXECUTE_BLENDER_CODE, &ctx);
        let result = with_progress(&ctx, "the script", async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            self.registry.execute_code(&id, &p.code, &call).await
        })
        .await;
        let r = match result {
            Ok(out) if out.stdout.is_empty() => CallToolResult::success(vec![ContentBlock::text(
                "(the code ran and printed nothing)",
            )]),
            Ok(out) => CallToolResult::success(vec![ContentBlock::text(out.stdout)]),
            Err(e) => error_result(&e),
        };
        with_notes(r, &call)
    }

    /// Read the scene's summary and one page of its objects from Blender.
    #[tool(
        description = "Read the current Blender scene: a summary (object count by type, collections, the selection with the active object, materials count) and one page of objects (name, type, location; 100 by default). Filter with type, name (a glob such as \"Cube*\") and collection; page with limit and offset (the answer's next_offset and `more` say how to get the rest). The answer stays under the server's size limit whatever the scene. Always asks Blender (a person may have changed the scene in the GUI) and refreshes the session's tracked state.",
        annotations(
            title = "Get scene info",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_scene_info(
        &self,
        Parameters(p): Parameters<SceneInfoParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = Self::call(names::GET_SCENE_INFO, &ctx);
        let limit_bytes = self.registry.config().max_result_bytes;
        let query = SceneQuery {
            limit: p.limit.unwrap_or(100),
            offset: p.offset.unwrap_or(0),
            kind: p.kind,
            name_pattern: p.name,
            collection: p.collection,
            // The result carries the JSON twice (structured, and its text copy): each half
            // of the limit, less room for the session id and the `more` note.
            max_bytes: (limit_bytes / 2).saturating_sub(1024),
        };
        let result = with_progress(&ctx, "the scene read", async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            let scene = self.registry.scene_info(&id, &call, query).await?;
            Ok::<_, SessionError>(SceneInfoResult {
                session_id: id,
                more: scene_more(&scene, limit_bytes),
                scene,
            })
        })
        .await;
        let r = match result {
            Ok(value) => compact_result(&value),
            Err(e) => error_result(&e),
        };
        with_notes(r, &call)
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
        let result = with_progress(&ctx, "get_object_info", async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            self.registry.object_info(&id, &p.name, &call).await
        })
        .await;
        with_notes(respond(result.map(as_object_result)), &call)
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
        let result = with_progress(&ctx, "the screenshot", async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            self.registry.screenshot(&id, max_size, &call).await
        })
        .await;
        let r = match result {
            Ok(shot) => {
                let data = base64::engine::general_purpose::STANDARD.encode(&shot.png);
                CallToolResult::success(vec![ContentBlock::image(data, "image/png")])
            }
            Err(e) => error_result(&e),
        };
        with_notes(r, &call)
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
        let result = with_progress(&ctx, &p.command_type, async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            self.registry
                .send_command_as(&id, &p.command_type, p.params.map(Value::Object), &call)
                .await
        })
        .await;
        with_notes(respond(result.map(as_object_result)), &call)
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
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let defaults = &self.registry.config().default_target;
        let target = Target::new(
            p.blender_host.unwrap_or_else(|| defaults.host.clone()),
            p.blender_port.unwrap_or(defaults.port),
        );
        let name = p.name.filter(|n| !n.trim().is_empty());
        let caller = Self::caller(&ctx);
        let owner = caller.user.name.as_str();
        let result = async {
            let id = match name {
                Some(name) => {
                    let id = self
                        .registry
                        .open_named_for(owner, &name, Some(target))
                        .await?;
                    if self.registry.config().connect_on_create {
                        self.registry.connect_session(&id).await;
                    }
                    id
                }
                None => {
                    self.registry
                        .create_session_for(owner, Some(target))
                        .await?
                }
            };
            self.registry.get_session_info(&id).await
        }
        .await;
        match result {
            // The session exists, but "it worked" would mislead: say why it is not connected.
            Ok(info) if !info.blender.connected && self.registry.config().connect_on_create => {
                let why = info.blender.last_error.clone().unwrap_or_default();
                let target = Target::new(info.blender.host.clone(), info.blender.port);
                let mut r = json_result(&info);
                r.is_error = Some(true);
                r.content = vec![ContentBlock::text(format!(
                    "Session {} was created, but Blender could not be reached: {why}. {} The session exists and keeps this id; its next command tries to connect again.",
                    info.session_id,
                    errors::unreachable_hint(&target)
                ))];
                r
            }
            other => respond(other),
        }
    }

    /// List live sessions.
    #[tool(
        description = "List the open sessions, oldest first, one page at a time (20 by default; limit and offset, next_offset gives the next page): each with its connection status, a sample of its tracked state, command count and idle time.",
        annotations(
            title = "List sessions",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_sessions(
        &self,
        Parameters(p): Parameters<ListSessionsParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = Self::caller(&ctx);
        let offset = p.offset.unwrap_or(0);
        let limit = p.limit.unwrap_or(LIST_PAGE).min(LIST_MAX);
        let sessions = self
            .registry
            .list_sessions_page(offset, limit, Some(&caller.user.name))
            .await
            .map(|(sessions, total)| {
                let total = usize::try_from(total).unwrap_or(usize::MAX);
                let next = offset.saturating_add(sessions.len());
                SessionList {
                    count: total,
                    offset,
                    next_offset: (next < total && !sessions.is_empty()).then_some(next),
                    sessions,
                    default_session: self.default_session(&caller),
                }
            });
        respond(sessions)
    }

    /// A session's info.
    #[tool(
        description = "Show a session's tracked state without asking Blender: connection status, object count and one page of the tracked object names (objects_offset / objects_limit, 100 by default; state.objects_next_offset gives the next page), the selection, last command and result, command count, idle time.",
        annotations(
            title = "Get session info",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_session_info(
        &self,
        Parameters(p): Parameters<SessionInfoParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let result = async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            self.registry
                .get_session_info_page(
                    &id,
                    p.objects_offset.unwrap_or(0),
                    p.objects_limit.unwrap_or(100),
                )
                .await
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
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let result = async {
            let id = self.session(&Self::caller(&ctx), p.session_id).await?;
            self.registry.get_session_history(&id, p.limit).await
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
    async fn close_session(
        &self,
        Parameters(p): Parameters<SessionParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = Self::caller(&ctx);
        let id = match p.session_id.filter(|s| !s.trim().is_empty()) {
            Some(id) => Some(id),
            None => self.default_session(&caller),
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
                .map(|session| Closed {
                    closed: true,
                    session,
                }),
        )
    }
}
