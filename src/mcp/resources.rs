//! Resources: `blender://sessions` (the sessions this client may see) and the templates
//! `blender://sessions/{session_id}` (info and state) and
//! `blender://sessions/{session_id}/history`, read as JSON; which resources an event updates.

use rmcp::model::{Resource, ResourceContents, ResourceTemplate};

use crate::session::{Event, EventKind, Registry, SessionError};
use crate::store::Access;

/// The list of sessions.
pub const SESSIONS: &str = "blender://sessions";
/// One session's info and tracked state.
pub const SESSION_TEMPLATE: &str = "blender://sessions/{session_id}";
/// One session's history.
pub const HISTORY_TEMPLATE: &str = "blender://sessions/{session_id}/history";

/// A resource this server has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// [`SESSIONS`].
    Sessions,
    /// A session's info.
    Session(String),
    /// A session's history.
    History(String),
}

impl Uri {
    /// Parse one of this server's resource URIs.
    pub fn parse(uri: &str) -> Option<Uri> {
        let rest = uri.strip_prefix(SESSIONS)?;
        if rest.is_empty() || rest == "/" {
            return Some(Uri::Sessions);
        }
        let rest = rest.strip_prefix('/')?;
        match rest.split_once('/') {
            None if !rest.is_empty() => Some(Uri::Session(rest.to_owned())),
            Some((id, "history")) if !id.is_empty() => Some(Uri::History(id.to_owned())),
            _ => None,
        }
    }

    /// The session it is about, if any.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Uri::Sessions => None,
            Uri::Session(id) | Uri::History(id) => Some(id),
        }
    }

    /// Its text form.
    pub fn text(&self) -> String {
        match self {
            Uri::Sessions => SESSIONS.to_owned(),
            Uri::Session(id) => format!("{SESSIONS}/{id}"),
            Uri::History(id) => format!("{SESSIONS}/{id}/history"),
        }
    }
}

/// The fixed resources.
pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(SESSIONS, "sessions")
            .with_title("Sessions")
            .with_description("Every live session with its connection, tracked state and counts.")
            .with_mime_type("application/json"),
    ]
}

/// The templates.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(SESSION_TEMPLATE, "session")
            .with_title("Session")
            .with_description("One session: connection, tracked state (objects, selection), last command, counts.")
            .with_mime_type("application/json"),
        ResourceTemplate::new(HISTORY_TEMPLATE, "session-history")
            .with_title("Session history")
            .with_description("One session's command history, oldest first.")
            .with_mime_type("application/json"),
    ]
}

/// Read a resource as JSON text, as `user` may see it (a session it may not read is not
/// found).
pub async fn read(
    registry: &Registry,
    uri: &Uri,
    user: &str,
    default_session: Option<String>,
) -> Result<ResourceContents, SessionError> {
    if let Some(id) = uri.session_id() {
        registry.authorize(id, user, Access::Read).await?;
    }
    let json = match uri {
        Uri::Sessions => {
            let sessions = registry.list_sessions_for(user).await?;
            serde_json::json!({"sessions": sessions, "count": sessions.len(), "default_session": default_session})
        }
        Uri::Session(id) => serde_json::to_value(registry.get_session_info(id).await?)
            .unwrap_or(serde_json::Value::Null),
        Uri::History(id) => serde_json::to_value(registry.get_session_history(id, None).await?)
            .unwrap_or(serde_json::Value::Null),
    };
    let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
    Ok(ResourceContents::text(text, uri.text()).with_mime_type("application/json"))
}

/// The resources an event changes.
pub fn updated_by(event: &Event) -> Vec<Uri> {
    let id = &event.session_id;
    match &event.kind {
        EventKind::SessionCreated { .. } | EventKind::SessionClosed { .. } => {
            vec![Uri::Sessions, Uri::Session(id.clone())]
        }
        EventKind::CommandFinished { .. } => vec![
            Uri::Session(id.clone()),
            Uri::History(id.clone()),
            Uri::Sessions,
        ],
        EventKind::StateChanged { .. } | EventKind::Connection { .. } => {
            vec![Uri::Session(id.clone())]
        }
        EventKind::CommandStarted { .. } | EventKind::Resync { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_print() {
        for uri in [
            Uri::Sessions,
            Uri::Session("scene-1".into()),
            Uri::History("scene-1".into()),
        ] {
            assert_eq!(Uri::parse(&uri.text()), Some(uri));
        }
        assert_eq!(Uri::parse("blender://sessions/"), Some(Uri::Sessions));
        for bad in [
            "blender://other",
            "blender://sessions/a/b",
            "blender://sessions//history",
            "http://x",
        ] {
            assert_eq!(Uri::parse(bad), None, "{bad}");
        }
    }
}
