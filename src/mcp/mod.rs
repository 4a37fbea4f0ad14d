//! The MCP layer: an rmcp [`ServerHandler`], created per client, whose tools delegate to the
//! shared session [`Registry`]. Failures the model should read (Blender unreachable,
//! timeouts, unknown sessions, Python exceptions) become `isError` tool results with a
//! message saying what happened and what to do ([`errors`]); JSON-RPC errors are left to
//! rmcp for requests that cannot be routed.
//!
//! - [`tools`]: the tools; [`names`]: their names; [`params`]: their parameters;
//!   [`catalog`]: the published list (plain input schemas, titles, output schemas);
//!   [`schema`]: lenient arguments (string forms coerced, errors naming the parameter).
//! - [`resources`], [`prompts`]: resources with subscriptions, and prompts; completions of
//!   session ids.
//! - [`progress`]: progress notifications for long calls; [`notify`]: resource updates and
//!   log messages driven by the session events.
//! - [`errors`]: the advice added to lower layers' errors; [`stdio`]: the stdio transport.

pub mod catalog;
pub mod errors;
pub mod names;
pub mod notify;
pub mod params;
pub mod progress;
pub mod prompts;
pub mod resources;
pub mod schema;
pub mod stdio;
pub mod tools;

use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
#[allow(deprecated)]
use rmcp::model::SetLevelRequestParams;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::session::{Call, Registry, SessionError};

pub use errors::error_text;
use notify::Interests;
use resources::Uri;

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
for any other addon command. get_session_info shows the tracked state without asking Blender. \
The same facts are resources (blender://sessions, blender://sessions/{session_id} and \
blender://sessions/{session_id}/history); long calls send progress notifications.";

/// What the server knows of the one client it serves.
#[derive(Debug)]
struct ClientContext {
    /// Who is calling (`local` on stdio).
    user: String,
    /// The client's default session, once it has one.
    default_session: Mutex<Option<String>>,
    /// Held while the default session is being made (it may wait for the store).
    creating: tokio::sync::Mutex<()>,
    /// What it subscribed to and the log level it set.
    interests: Arc<Interests>,
    /// Stops this client's notification task.
    stop: CancellationToken,
    /// Fires `stop` when the client's handler goes away.
    _stop: DropGuard,
}

/// The MCP server for one client. Create one per client connection with
/// [`BlenderServer::new`]: every one shares the registry, each has its own default session.
/// Clones serve the same client.
#[derive(Clone)]
pub struct BlenderServer {
    registry: Registry,
    client: Arc<ClientContext>,
    tools: Arc<Vec<Tool>>,
    /// Each tool's published input schema, as the argument checks read it.
    parameters: Arc<std::collections::HashMap<String, Value>>,
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

impl BlenderServer {
    /// A server for one new client over `registry`, with no default session yet.
    pub fn new(registry: Registry) -> Self {
        let router = Self::tool_router();
        let tools = catalog::tools(&router);
        let stop = CancellationToken::new();
        BlenderServer {
            registry,
            client: Arc::new(ClientContext {
                user: "local".into(),
                default_session: Mutex::new(None),
                creating: tokio::sync::Mutex::new(()),
                interests: Arc::new(Interests::default()),
                _stop: stop.clone().drop_guard(),
                stop,
            }),
            parameters: Arc::new(
                tools
                    .iter()
                    .map(|t| (t.name.to_string(), Value::Object((*t.input_schema).clone())))
                    .collect(),
            ),
            tools: Arc::new(tools),
            tool_router: router,
        }
    }

    pub(super) fn default_session(&self) -> std::sync::MutexGuard<'_, Option<String>> {
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
    pub(super) async fn session(&self, session_id: Option<String>) -> Result<String, SessionError> {
        if let Some(id) = session_id.filter(|s| !s.trim().is_empty()) {
            return Ok(id);
        }
        // The default session is made under the client's creation lock (so two first calls
        // make one), and connected outside it.
        let _creating = self.client.creating.lock().await;
        let known = self.default_session().clone();
        if let Some(id) = known
            && self.registry.contains(&id)
        {
            return Ok(id);
        }
        let id = self.registry.open_default().await?;
        *self.default_session() = Some(id.clone());
        drop(_creating);
        if self.registry.config().connect_on_create {
            self.registry.connect_session(&id).await;
        }
        Ok(id)
    }

    pub(super) fn call(tool: &str, ctx: &RequestContext<RoleServer>) -> Call {
        Call::new(tool).with_cancel(ctx.ct.clone())
    }
}

impl BlenderServer {
    /// Start forwarding session events to this client, once it asked for any (a
    /// subscription or a log level): until then no event is even built for it.
    fn watch_events(&self, peer: &Peer<RoleServer>) {
        let interests = &self.client.interests;
        if interests
            .watching
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        tokio::spawn(notify::forward(
            peer.clone(),
            Arc::downgrade(interests),
            self.registry.subscribe(),
            self.client.stop.clone(),
        ));
    }

    fn published(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    fn resource_error(e: &SessionError, uri: &str) -> ErrorData {
        ErrorData::resource_not_found(format!("{uri}: {}", error_text(e)), None)
    }

    /// Session ids starting with `prefix`, for completions.
    async fn session_ids(&self, prefix: &str) -> Vec<String> {
        self.registry
            .list_sessions()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.session_id)
            .filter(|id| id.starts_with(prefix))
            .take(CompletionInfo::MAX_VALUES)
            .collect()
    }
}

impl ServerHandler for BlenderServer {
    #[allow(deprecated)] // enable_logging: see notify.rs
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    /// Arguments are coerced to the published schema (string forms of numbers, booleans and
    /// objects) and checked, so an argument that does not fit is refused naming the parameter.
    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(parameters) = self.parameters.get(request.name.as_ref()) {
            let given = request.arguments.take().unwrap_or_default();
            let arguments = schema::coerce_object(parameters, given, schema::Coercion::FromStrings);
            if let Err(problem) = schema::check_arguments(parameters, &arguments) {
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{problem} See the {} tool's input schema.",
                    request.name
                ))])
                .into());
            }
            request.arguments = Some(arguments);
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.published(name).cloned()
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = Uri::parse(&request.uri).ok_or_else(|| {
            ErrorData::resource_not_found(
                format!(
                    "no resource {}; resources/list and resources/templates/list show them",
                    request.uri
                ),
                None,
            )
        })?;
        let default = self.default_session().clone();
        let contents = resources::read(&self.registry, &uri, default)
            .await
            .map_err(|e| Self::resource_error(&e, &request.uri))?;
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if Uri::parse(&request.uri).is_none() {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        }
        notify::subscribed(&self.client.interests).insert(request.uri);
        self.watch_events(&context.peer);
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        notify::subscribed(&self.client.interests).remove(&request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.resource_subscriptions = requested.resource_subscriptions.as_ref().map(|uris| {
            uris.iter()
                .filter(|u| Uri::parse(u).is_some())
                .cloned()
                .collect()
        });
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let wanted: Vec<String> = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let mut events = self.registry.subscribe();
        loop {
            let event = tokio::select! {
                _ = context.cancelled() => return Ok(()),
                _ = self.client.stop.cancelled() => return Ok(()),
                e = events.recv() => match e {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
            };
            for uri in resources::updated_by(&event) {
                let uri = uri.text();
                if wanted.contains(&uri)
                    && context.sink().notify_resource_updated(uri).await.is_err()
                {
                    return Ok(());
                }
            }
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let default = self.default_session().clone();
        prompts::get(&self.registry, default, &request.name, &args)
            .await
            .map(Into::into)
            .map_err(|e| ErrorData::invalid_params(e, None))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let values = if request.argument.name == "session_id" {
            self.session_ids(&request.argument.value).await
        } else {
            Vec::new()
        };
        let info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *notify::level(&self.client.interests) = Some(request.level);
        self.watch_events(&context.peer);
        Ok(())
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
