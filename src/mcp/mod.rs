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

pub mod caller;
pub mod catalog;
pub mod errors;
pub mod names;
pub mod notify;
pub mod params;
pub mod progress;
pub mod prompts;
pub mod resources;
pub mod schema;
pub mod sharing;
pub mod stdio;
pub mod tools;

use std::sync::Arc;

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
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::http::guard::Slot;
use crate::session::{Call, Registry, SessionError};
use crate::store::Access;

pub use caller::Caller;
use caller::Defaults;

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

Use get_scene_info to see the scene (a summary and a page of objects; filter by type, name glob \
or collection, page with offset), execute_blender_code to \
change it (print() what you want back; each call has a fresh namespace with bpy imported), \
get_object_info for one object, get_viewport_screenshot to look at it, and blender_command \
for any other addon command. get_session_info shows the tracked state without asking Blender. \
The same facts are resources (blender://sessions, blender://sessions/{session_id} and \
blender://sessions/{session_id}/history); long calls send progress notifications.";

/// What the server knows of the one client it serves.
#[derive(Debug)]
struct ClientContext {
    /// The client's default sessions (by user: one HTTP MCP session has one user).
    defaults: Defaults,
    /// What it subscribed to and the log level it set.
    interests: Arc<Interests>,
    /// Stops this client's notification task.
    stop: CancellationToken,
    /// Fires `stop` when the client's handler goes away.
    _stop: DropGuard,
    /// Its place among the HTTP clients served at once.
    _slot: Option<Slot>,
}

impl ClientContext {
    fn new(slot: Option<Slot>) -> Self {
        let stop = CancellationToken::new();
        ClientContext {
            defaults: Defaults::default(),
            interests: Arc::new(Interests::default()),
            _stop: stop.clone().drop_guard(),
            stop,
            _slot: slot,
        }
    }
}

/// The MCP server for one client. Create one per client connection with
/// [`BlenderServer::new`]: every one shares the registry, each has its own default session.
/// Clones serve the same client.
#[derive(Clone)]
pub struct BlenderServer {
    registry: Registry,
    client: Arc<ClientContext>,
    /// The default sessions of sessionless HTTP requests, by user (shared by every handler
    /// made from one prototype).
    sessionless: Arc<Defaults>,
    /// The tools, built on first use and shared by every handler made from one prototype.
    toolbox: Arc<std::sync::OnceLock<catalog::Toolbox>>,
    /// Whether the tools that run code are served (`--disable-code-exec` turns them off).
    code_exec: bool,
}

impl std::fmt::Debug for BlenderServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlenderServer")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl BlenderServer {
    /// A server for one new client over `registry`, with no default session yet.
    pub fn new(registry: Registry) -> Self {
        BlenderServer {
            registry,
            client: Arc::new(ClientContext::new(None)),
            sessionless: Arc::new(Defaults::default()),
            toolbox: Arc::default(),
            code_exec: true,
        }
    }

    /// This server without the tools that run code (`execute_blender_code`,
    /// `blender_command`): for deployments that only inspect.
    pub fn without_code_exec(mut self) -> Self {
        self.code_exec = false;
        self.toolbox = Arc::default();
        self
    }

    /// The tools, built the first time they are needed.
    fn toolbox(&self) -> &catalog::Toolbox {
        self.toolbox
            .get_or_init(|| catalog::Toolbox::build(self.code_exec))
    }

    /// The tools this server publishes.
    pub fn tools(&self) -> &[Tool] {
        &self.toolbox().tools
    }

    /// A handler for a new HTTP client, sharing this one's registry, tools and the
    /// sessionless default sessions; `slot` is its place among the clients served.
    pub fn for_http_client(&self, slot: Slot) -> Self {
        BlenderServer {
            registry: self.registry.clone(),
            client: Arc::new(ClientContext::new(Some(slot))),
            sessionless: self.sessionless.clone(),
            toolbox: self.toolbox.clone(),
            code_exec: self.code_exec,
        }
    }

    /// The registry the tools use.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(super) fn call(tool: &str, ctx: &RequestContext<RoleServer>) -> Call {
        Call::new(tool).with_cancel(ctx.ct.clone())
    }
}

impl BlenderServer {
    /// Start forwarding session events to this client, once it asked for any (a
    /// subscription or a log level): until then no event is even built for it.
    fn watch_events(&self, peer: &Peer<RoleServer>, caller: &Caller) {
        let interests = &self.client.interests;
        if interests
            .watching
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let (registry, user) = (self.registry.clone(), caller.user.name.clone());
        tokio::spawn(notify::forward(
            peer.clone(),
            Arc::downgrade(interests),
            self.registry.subscribe(),
            Box::new(move |id| registry.owner_of_live(id).as_deref() == Some(user.as_str())),
            self.client.stop.clone(),
        ));
    }

    fn published(&self, name: &str) -> Option<&Tool> {
        self.tools().iter().find(|t| t.name == name)
    }

    fn resource_error(e: &SessionError, uri: &str) -> ErrorData {
        ErrorData::resource_not_found(format!("{uri}: {}", error_text(e)), None)
    }

    /// Session ids starting with `prefix` that `user` may see, for completions.
    async fn session_ids(&self, user: &str, prefix: &str) -> Vec<String> {
        self.registry
            .list_sessions_for(user)
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
        if let Some(parameters) = self.toolbox().parameters.get(request.name.as_ref()) {
            let given = request.arguments.take().unwrap_or_default();
            let arguments = schema::coerce_object(parameters, given, schema::Coercion::FromStrings);
            if let Err(problem) = schema::check_arguments(parameters, &arguments) {
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{problem} See the {} tool's input schema.",
                    request.name
                ))])
                .into());
            }
            if let Some(tool) = self.published(&request.name)
                && let Err(refused) = self.admit(&Self::caller(&context), tool, &arguments).await
            {
                return Ok(refused.into());
            }
            request.arguments = Some(arguments);
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.toolbox().router.call(tcc).await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools().to_vec()))
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
        context: RequestContext<RoleServer>,
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
        let caller = Self::caller(&context);
        let default = self.default_session(&caller);
        let contents = resources::read(&self.registry, &uri, &caller.user.name, default)
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
        let Some(uri) = Uri::parse(&request.uri) else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        };
        let caller = Self::caller(&context);
        if let Some(id) = uri.session_id() {
            self.registry
                .authorize(id, &caller.user.name, Access::Read)
                .await
                .map_err(|e| Self::resource_error(&e, &request.uri))?;
            notify::seen(&self.client.interests).insert(id.to_owned());
        }
        notify::subscribed(&self.client.interests).insert(request.uri);
        self.watch_events(&context.peer, &caller);
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
        let caller = Self::caller(context.request_context());
        let mut wanted: Vec<String> = Vec::new();
        for uri in context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default()
        {
            // A session the caller may not read is left out, as if it did not exist.
            let readable = match Uri::parse(&uri).as_ref().and_then(Uri::session_id) {
                Some(id) => self
                    .registry
                    .authorize(id, &caller.user.name, Access::Read)
                    .await
                    .is_ok(),
                None => true,
            };
            if readable {
                wanted.push(uri);
            }
        }
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
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let caller = Self::caller(&context);
        let default = self.default_session(&caller);
        prompts::get(
            &self.registry,
            &caller.user.name,
            default,
            &request.name,
            &args,
        )
        .await
        .map(Into::into)
        .map_err(|e| ErrorData::invalid_params(e, None))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let values = if request.argument.name == "session_id" {
            let caller = Self::caller(&context);
            self.session_ids(&caller.user.name, &request.argument.value)
                .await
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
        self.watch_events(&context.peer, &Self::caller(&context));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_match_the_constants() {
        let mut router = BlenderServer::tool_router();
        router.merge(BlenderServer::sharing_router());
        let mut listed: Vec<String> = router
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
