//! The sharing tools: `share_session` and `unshare_session`. Only a session's owner may
//! share it (checked before the tool runs, in `call_tool`); shares live in the session
//! store, so they hold across server processes and restarts.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;

use super::BlenderServer;
use super::params::{ShareParams, UnshareParams};
use super::tools::respond_json;
use crate::session::SessionError;
use crate::store::{Access, EVERYONE};

/// What `share_session` and `unshare_session` answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Shared {
    /// The session.
    pub session_id: String,
    /// The user (or "*").
    pub user: String,
    /// The access they have now: "read", "write", or "none".
    pub access: String,
}

fn valid_target(user: &str) -> Result<(), String> {
    if user == EVERYONE || crate::auth::file::valid_user(user) {
        Ok(())
    } else {
        Err(format!(
            "{user:?} is not a user name: give a user of this server (letters, digits, '-', '_', '.', '@') or \"*\" for every user"
        ))
    }
}

#[tool_router(router = sharing_router, vis = "pub(super)")]
impl BlenderServer {
    /// Share a session with another user.
    #[tool(
        description = "Share one of your sessions with another user of this server (or \"*\" for every user): \"read\" lets them inspect it (scene, objects, screenshot, info, history), \"write\" also lets them run code in it. Closing and sharing stay yours. Sharing again replaces the access given before; unshare_session takes it back.",
        annotations(
            title = "Share session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn share_session(
        &self,
        Parameters(p): Parameters<ShareParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = Self::caller(&ctx);
        let access = match p.access.as_deref().unwrap_or("read").parse::<Access>() {
            Ok(a) => a,
            Err(_) => {
                return CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                    "access must be \"read\" or \"write\"",
                )]);
            }
        };
        if let Err(e) = valid_target(&p.user) {
            return CallToolResult::error(vec![rmcp::model::ContentBlock::text(e)]);
        }
        let result = self
            .registry
            .share(&p.session_id, &caller.user.name, &p.user, Some(access))
            .await
            .map(|()| Shared {
                session_id: p.session_id.clone(),
                user: p.user.clone(),
                access: access.as_str().into(),
            });
        respond_json(result)
    }

    /// Stop sharing a session.
    #[tool(
        description = "Stop sharing one of your sessions with a user (or with \"*\", every user): they can no longer see or use it.",
        annotations(
            title = "Unshare session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn unshare_session(
        &self,
        Parameters(p): Parameters<UnshareParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = Self::caller(&ctx);
        let result: Result<Shared, SessionError> = self
            .registry
            .share(&p.session_id, &caller.user.name, &p.user, None)
            .await
            .map(|()| Shared {
                session_id: p.session_id.clone(),
                user: p.user.clone(),
                access: "none".into(),
            });
        respond_json(result)
    }
}
