//! The SQLite store's rows as records and back: the columns a session is read with
//! ([`COLUMNS`], its state and shares from their tables), a session row as a
//! [`StoredSession`], close reasons, history entries as JSON text.

use rusqlite::Row;
use rusqlite::types::Type;

use crate::backend::Target;
use crate::session::HistoryEntry;
use crate::session::events::CloseReason;

use super::super::{
    Access, Lease, Share, Status, StoreError, StoreLocation, StoreResult, StoredSession,
    UnknownAccess,
};

/// The session's columns, its state read from `states` and its shares from `shares` (as a
/// JSON array of `[user, access]` pairs; every query selecting these reads `FROM sessions`
/// unaliased). The command path reads its own few columns instead.
pub(super) const COLUMNS: &str = "id, name, owner, host, port, created_at, last_activity, status, \
     closed_at, close_reason, (SELECT state FROM states WHERE session_id = sessions.id), \
     state_version, last_command, last_result, command_count, \
     history_kept, lease_holder, lease_until, \
     (SELECT json_group_array(json_array(user, access)) FROM shares \
      WHERE session_id = sessions.id)";

pub(super) fn reason_str(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Closed => "closed",
        CloseReason::Idle => "idle",
        CloseReason::Shutdown => "shutdown",
    }
}

fn reason_of(s: &str) -> CloseReason {
    match s {
        "idle" => CloseReason::Idle,
        "shutdown" => CloseReason::Shutdown,
        _ => CloseReason::Closed,
    }
}

/// A session row (columns in [`COLUMNS`] order).
pub(super) fn session_of(row: &Row<'_>) -> rusqlite::Result<StoredSession> {
    let status: String = row.get(7)?;
    let closed_at: Option<f64> = row.get(8)?;
    let reason: Option<String> = row.get(9)?;
    let state: Option<String> = row.get(10)?;
    let last_result: Option<String> = row.get(13)?;
    let holder: Option<String> = row.get(16)?;
    let until: Option<f64> = row.get(17)?;
    let shares: Option<String> = row.get(18)?;
    Ok(StoredSession {
        id: row.get(0)?,
        name: row.get(1)?,
        owner: row.get(2)?,
        target: Target::new(row.get::<_, String>(3)?, row.get::<_, u16>(4)?),
        created_at: row.get(5)?,
        last_activity: row.get(6)?,
        status: if status == "closed" {
            Status::Closed
        } else {
            Status::Open
        },
        closed: closed_at.map(|at| (at, reason.as_deref().map_or(CloseReason::Closed, reason_of))),
        state: state.map(Into::into),
        state_version: row.get::<_, i64>(11)?.max(0) as u64,
        last_command: row.get(12)?,
        // A result that is not JSON any more is shown as its text.
        last_result: last_result
            .map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))),
        command_count: row.get::<_, i64>(14)?.max(0) as u64,
        history_kept: row.get::<_, i64>(15)?.max(0) as u64,
        lease: holder
            .zip(until)
            .map(|(holder, until)| Lease { holder, until }),
        shares: shares_of(shares.as_deref().unwrap_or("[]"))
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(18, Type::Text, e))?,
    })
}

/// The shares column: `[[user, access], ...]`, sorted by user.
fn shares_of(text: &str) -> Result<Vec<Share>, Box<dyn std::error::Error + Send + Sync>> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text)?;
    let mut shares = pairs
        .into_iter()
        .map(|(user, access)| {
            Ok(Share {
                user,
                access: access.parse::<Access>()?,
            })
        })
        .collect::<Result<Vec<_>, UnknownAccess>>()?;
    shares.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(shares)
}

pub(super) fn encode(store: &StoreLocation, entry: &HistoryEntry) -> StoreResult<String> {
    serde_json::to_string(entry).map_err(|e| StoreError::Failed {
        store: store.clone(),
        what: "encoding a history entry",
        detail: e.to_string(),
    })
}

pub(super) fn decode(store: &StoreLocation, text: &str) -> StoreResult<HistoryEntry> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        store: store.clone(),
        what: "history entry",
        detail: e.to_string(),
    })
}
