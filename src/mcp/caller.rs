//! Who is calling and what they may do: the [`Caller`] of each request (the user the HTTP
//! guard authenticated, `local` on stdio; whether it has an MCP session), its default
//! sessions (per MCP session, or per user for sessionless requests), and the checks made
//! before any tool runs (rights, and the session's owner or shares).

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock, ProtocolVersion, Tool};
use rmcp::service::RequestContext;
use serde_json::Value;

use super::{BlenderServer, names, notify, tools};
use crate::auth::{Rights, User};
use crate::session::SessionError;
use crate::store::Access;

/// Default sessions by user, with the lock held while one is being made (it may wait for
/// the store) so two first calls make one.
#[derive(Debug, Default)]
pub(super) struct Defaults {
    ids: Mutex<HashMap<String, String>>,
    creating: tokio::sync::Mutex<()>,
}

impl Defaults {
    fn get(&self, user: &str) -> Option<String> {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    fn set(&self, user: &str, id: String) {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_owned(), id);
    }
}

/// Who is making one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated user (`local` on stdio and unauthenticated loopback HTTP).
    pub user: User,
    /// Whether the request came without an MCP session (HTTP on the 2026-07-28 revision):
    /// its default session is then its user's, shared by all such requests.
    pub sessionless: bool,
}

/// Whether rmcp serves this request the 2026-07-28 way, without an MCP session, as its
/// Streamable HTTP service decides it: the request's `_meta` carries what that revision
/// requires, or its protocol version (in `_meta` or the `MCP-Protocol-Version` header) is
/// that revision or later. Such a request gets a handler of its own even when it carries a
/// stray `Mcp-Session-Id`, so its default session must be its user's, never the handler's
/// (that would open a new Blender session per request).
fn modern_request(ctx: &RequestContext<RoleServer>, headers: &axum::http::HeaderMap) -> bool {
    let modern = ProtocolVersion::V_2026_07_28;
    if ctx.meta.missing_required_keys(&modern).is_empty() {
        return true;
    }
    let version = ctx
        .meta
        .protocol_version()
        .map(|v| v.to_string())
        .or_else(|| {
            headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    // Revisions are dates: their order is their text's.
    version.is_some_and(|v| v.as_str() >= modern.as_str())
}

impl BlenderServer {
    /// Who makes the request of `ctx`: the user the HTTP guard authenticated, else `local`.
    pub(super) fn caller(ctx: &RequestContext<RoleServer>) -> Caller {
        let parts = ctx.extensions.get::<axum::http::request::Parts>();
        Caller {
            user: parts
                .and_then(|p| p.extensions.get::<User>())
                .cloned()
                .unwrap_or_else(User::local),
            sessionless: parts.is_some_and(|p| {
                !p.headers.contains_key("mcp-session-id") || modern_request(ctx, &p.headers)
            }),
        }
    }

    pub(super) fn defaults(&self, caller: &Caller) -> &Defaults {
        if caller.sessionless {
            &self.sessionless
        } else {
            &self.client.defaults
        }
    }

    /// The caller's default session id, if it has one yet.
    pub(super) fn default_session(&self, caller: &Caller) -> Option<String> {
        self.defaults(caller).get(&caller.user.name)
    }

    /// The session a call addresses: the given id (its access is checked in `call_tool`
    /// before any tool runs), or the caller's default session (created when there is none
    /// or it was closed).
    pub(super) async fn session(
        &self,
        caller: &Caller,
        session_id: Option<String>,
    ) -> Result<String, SessionError> {
        if let Some(id) = session_id.filter(|s| !s.trim().is_empty()) {
            return Ok(id);
        }
        let user = caller.user.name.as_str();
        let defaults = self.defaults(caller);
        let creating = defaults.creating.lock().await;
        if let Some(id) = defaults.get(user)
            && self.registry.contains(&id)
        {
            return Ok(id);
        }
        let id = self.registry.open_default_for(user).await?;
        defaults.set(user, id.clone());
        notify::seen(&self.client.interests).insert(id.clone());
        drop(creating);
        if self.registry.config().connect_on_create {
            self.registry.connect_session(&id).await;
        }
        Ok(id)
    }

    /// Refuse what the caller may not do before a tool runs: a tool beyond its rights, or a
    /// session it may not see (exactly like an unknown one) or not use this way.
    pub(super) async fn admit(
        &self,
        caller: &Caller,
        tool: &Tool,
        arguments: &serde_json::Map<String, Value>,
    ) -> Result<(), CallToolResult> {
        let read_only = tool
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false);
        if !read_only && caller.user.rights == Rights::Read {
            return Err(CallToolResult::error(vec![ContentBlock::text(format!(
                "{} needs exec rights; your token ({}) has read rights only. The read-only tools (get_scene_info, get_object_info, get_viewport_screenshot, list_sessions, get_session_info, get_session_history) work; ask the server's admin for an exec token to change the scene.",
                tool.name, caller.user.name
            ))]));
        }
        let Some(id) = arguments
            .get("session_id")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
        else {
            return Ok(());
        };
        let user = caller.user.name.as_str();
        let checked = match tool.name.as_ref() {
            names::CLOSE_SESSION | names::SHARE_SESSION | names::UNSHARE_SESSION => {
                self.registry.authorize_owner(id, user).await
            }
            _ => {
                let need = if read_only {
                    Access::Read
                } else {
                    Access::Write
                };
                self.registry.authorize(id, user, need).await
            }
        };
        match checked {
            Ok(()) => {
                notify::seen(&self.client.interests).insert(id.to_owned());
                Ok(())
            }
            Err(e) => Err(tools::error_result(&e)),
        }
    }
}
