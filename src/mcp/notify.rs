//! Notifications to one client, driven by the registry's event stream:
//! `notifications/resources/updated` for the resources it subscribed to, and
//! `notifications/message` for the server's own events at the level it set with
//! `logging/setLevel` (none until it sets one). stderr keeps the design's log lines.
//!
//! MCP logging is deprecated by SEP-2577 (rmcp marks its types so) but is what today's
//! clients show; this module is the only user of those types.
#![allow(deprecated)]

use std::collections::HashSet;
use std::sync::Mutex;

use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::{Peer, RoleServer};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::resources::updated_by;
use crate::session::{Event, EventKind, Outcome};

/// What one client asked to be told.
#[derive(Debug, Default)]
pub struct Interests {
    /// Resource URIs subscribed to with `resources/subscribe`.
    pub subscribed: Mutex<HashSet<String>>,
    /// The level set with `logging/setLevel`.
    pub level: Mutex<Option<LoggingLevel>>,
    /// Sessions whose events this client may see besides those its user owns: the ones it
    /// was granted access to by a check (shared with it).
    pub seen: Mutex<HashSet<String>>,
    /// Whether the event forwarder runs.
    pub watching: std::sync::atomic::AtomicBool,
}

/// The sessions this client may see events of besides its user's own.
pub fn seen(interests: &Interests) -> std::sync::MutexGuard<'_, HashSet<String>> {
    guard(&interests.seen)
}

/// Tells whether the caller's user owns a session (live in this process).
pub type OwnsSession = Box<dyn Fn(&str) -> bool + Send + Sync>;

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Severity order of MCP log levels.
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// An event as a log line, with its level (the design's wording).
pub fn log_line(event: &Event) -> (LoggingLevel, String) {
    let id = &event.session_id;
    match &event.kind {
        EventKind::SessionCreated { target } => (
            LoggingLevel::Info,
            format!("✓ Session created: {id} (Blender at {target})"),
        ),
        EventKind::SessionClosed { reason } => (
            LoggingLevel::Info,
            format!("✓ Session {}: {id}", reason.log_text()),
        ),
        EventKind::CommandStarted { command, tool, .. } => (
            LoggingLevel::Info,
            format!("→ Command sent: {command} (tool {tool}, session: {id})"),
        ),
        EventKind::CommandFinished { entry } => (
            if entry.outcome == Outcome::Success {
                LoggingLevel::Info
            } else {
                LoggingLevel::Warning
            },
            format!(
                "← Response: {} ({:.2}s) [session: {id}, seq {}]",
                entry.outcome.as_str(),
                entry.duration,
                entry.seq
            ),
        ),
        EventKind::StateChanged {
            object_count,
            added,
            removed,
            ..
        } => (
            LoggingLevel::Debug,
            format!(
                "state of session {id}: {object_count} object(s), {} added, {} removed",
                added.len(),
                removed.len()
            ),
        ),
        EventKind::Connection {
            connected: true, ..
        } => (
            LoggingLevel::Info,
            format!("✓ Blender connected for session {id}"),
        ),
        EventKind::Resync { oldest } => (
            LoggingLevel::Warning,
            format!("events before {oldest} were lost: reload what is shown"),
        ),
        EventKind::Connection { error, .. } => (
            LoggingLevel::Warning,
            format!(
                "connection of session {id} dropped: {}",
                error.as_deref().unwrap_or("closed")
            ),
        ),
    }
}

/// Forward events to `peer` until `stop` fires, the stream ends, or the client is gone.
pub async fn forward(
    peer: Peer<RoleServer>,
    interests: std::sync::Weak<Interests>,
    mut events: crate::session::store::Subscription,
    owns: OwnsSession,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = events.recv() => match e {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let Some(interests) = interests.upgrade() else {
            return;
        };
        // Another user's session is not this client's business (not even its existence).
        if !owns(&event.session_id) && !seen(&interests).contains(&event.session_id) {
            continue;
        }
        let uris: Vec<String> = {
            let subscribed = guard(&interests.subscribed);
            updated_by(&event)
                .into_iter()
                .map(|u| u.text())
                .filter(|u| subscribed.contains(u))
                .collect()
        };
        for uri in uris {
            let param = rmcp::model::ResourceUpdatedNotificationParam::new(uri);
            if peer.notify_resource_updated(param).await.is_err() {
                return;
            }
        }
        let level = *guard(&interests.level);
        if let Some(min) = level {
            let (level, line) = log_line(&event);
            if rank(level) >= rank(min) {
                #[allow(deprecated)]
                let sent = peer
                    .notify_logging_message(
                        LoggingMessageNotificationParam::new(
                            level,
                            serde_json::Value::String(line),
                        )
                        .with_logger("blender-session-mcp"),
                    )
                    .await;
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

/// The subscribed URIs, locked.
pub fn subscribed(interests: &Interests) -> std::sync::MutexGuard<'_, HashSet<String>> {
    guard(&interests.subscribed)
}

/// The log level, locked.
pub fn level(interests: &Interests) -> std::sync::MutexGuard<'_, Option<LoggingLevel>> {
    guard(&interests.level)
}
