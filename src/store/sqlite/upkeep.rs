//! The SQLite store's upkeep and its less frequent calls: an entry never sent (refused
//! before Blender), replacing the state (`update_state`), closing (once, and only if still
//! idle for idle cleanup), recovering commands whose server died in flight, and the counts
//! `check` reports. Called from the [`SessionStore`](super::super::SessionStore) methods in
//! `ops`.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::session::events::CloseReason;
use crate::session::{HistoryEntry, Outcome};

use super::super::{
    HolderGone, INTERRUPTED_MESSAGE, StateBlob, StoreResult, StoreStats, StoredSession,
};
use super::ops::{Append, write_state};
use super::row::{decode, encode, reason_str};
use super::{Db, SqliteStore, map_error};

/// The holders of leases and of running entries (`?1`: one session, or NULL for all).
/// `CROSS JOIN`: the sessions rows first (SQLite keeps that order), then the history of the
/// few with running entries from `running_min` on; the planner would rather scan every
/// history row.
pub(super) const RUNNING_HOLDERS: &str =
    "SELECT lease_holder FROM sessions WHERE lease_holder IS NOT NULL AND (?1 IS NULL OR id = ?1)
                         UNION SELECT h.holder FROM sessions s
                           CROSS JOIN history h ON h.session_id = s.id AND h.seq >= s.running_min
                         WHERE s.running_min IS NOT NULL AND (?1 IS NULL OR s.id = ?1)
                           AND h.outcome = 'running' AND h.holder IS NOT NULL";

/// Running entries whose holder no longer holds the session's lease (`?2`: now).
pub(super) const STALE_RUNNING: &str = "SELECT h.session_id, h.seq, h.entry FROM sessions s
                           CROSS JOIN history h ON h.session_id = s.id AND h.seq >= s.running_min
                         WHERE s.running_min IS NOT NULL AND (?1 IS NULL OR s.id = ?1)
                           AND h.outcome = 'running'
                           AND (h.holder IS NULL OR s.lease_holder IS NULL OR s.lease_holder != h.holder
                                OR s.lease_until <= ?2)";

impl SqliteStore {
    /// Close `id` if open (and, with `idle_before`, still idle with its lease free or
    /// expired at `now`): the conditional update is the once-only step, of two processes
    /// one changes the row.
    pub(super) async fn close_where(
        &self,
        id: &str,
        reason: CloseReason,
        now: f64,
        idle_before: Option<f64>,
    ) -> StoreResult<Option<StoredSession>> {
        let id = id.to_owned();
        self.call("closing a session", move |db| {
            let fail = |e| map_error(&db.store, "closing a session", e);
            let changed = db
                .conn
                .prepare_cached(
                    "UPDATE sessions SET status = 'closed', closed_at = ?2, close_reason = ?3,
                       lease_holder = NULL, lease_until = NULL
                     WHERE id = ?1 AND status = 'open'
                       AND (?4 IS NULL OR (last_activity <= ?4
                            AND (lease_until IS NULL OR lease_until <= ?2)))",
                )
                .and_then(|mut s| s.execute(params![id, now, reason_str(reason), idle_before]))
                .map_err(fail)?;
            if changed == 0 {
                return Ok(None);
            }
            db.get(&id).map_err(fail)
        })
        .await
    }

    pub(super) async fn recover_running(
        &self,
        id: Option<&str>,
        now: f64,
        gone: &HolderGone,
    ) -> StoreResult<u64> {
        // Which holders are gone is asked here, on the caller's side, from the leases and
        // running entries read first: `gone` is not 'static.
        let id_owned = id.map(str::to_owned);
        let holders = self
            .call("recovering interrupted commands", move |db| {
                let fail = |e| map_error(&db.store, "recovering interrupted commands", e);
                let mut stmt = db.conn.prepare_cached(RUNNING_HOLDERS).map_err(fail)?;
                let holders = stmt
                    .query_map([&id_owned], |r| r.get::<_, String>(0))
                    .map_err(fail)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(fail)?;
                Ok(holders)
            })
            .await?;
        let dead: Vec<String> = holders.into_iter().filter(|h| gone(h)).collect();
        let id = id.map(str::to_owned);
        self.call("recovering interrupted commands", move |db| {
            let fail = |e| map_error(&db.store, "recovering interrupted commands", e);
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            for holder in &dead {
                tx.prepare_cached(
                    "UPDATE sessions SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = ?1",
                )
                .and_then(|mut s| s.execute([holder]))
                .map_err(fail)?;
            }
            let stale: Vec<(String, i64, String)> = {
                let mut stmt = tx
                    .prepare_cached(
                        STALE_RUNNING,
                    )
                    .map_err(fail)?;
                stmt.query_map(params![id, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(fail)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(fail)?
            };
            for (session, seq, text) in &stale {
                let mut entry = decode(&db.store, text)?;
                entry.outcome = Outcome::Interrupted;
                entry.message = Some(INTERRUPTED_MESSAGE.into());
                let text = encode(&db.store, &entry)?;
                tx.prepare_cached(
                    "UPDATE history SET outcome = 'interrupted', holder = NULL, entry = ?3
                     WHERE session_id = ?1 AND seq = ?2",
                )
                .and_then(|mut s| s.execute(params![session, seq, text]))
                .map_err(fail)?;
            }
            // The bounds made exact again: the oldest entry still running, if any.
            tx.prepare_cached(
                "UPDATE sessions SET running_min = (SELECT min(h.seq) FROM history h
                   WHERE h.session_id = sessions.id AND h.seq >= sessions.running_min
                     AND h.outcome = 'running')
                 WHERE running_min IS NOT NULL AND (?1 IS NULL OR id = ?1)",
            )
            .and_then(|mut s| s.execute(params![id]))
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(stale.len() as u64)
        })
        .await
    }

    pub(super) async fn count_sessions(&self) -> StoreResult<StoreStats> {
        self.call("counting sessions", move |db| {
            let fail = |e| map_error(&db.store, "counting sessions", e);
            let (open, closed) = db
                .conn
                .prepare_cached(
                    "SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'closed') FROM sessions",
                )
                .and_then(|mut s| s.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))))
                .map_err(fail)?;
            // A write that changes nothing: it still needs the write lock and a writable file.
            let writable = db
                .conn
                .execute_batch("BEGIN IMMEDIATE; UPDATE sessions SET id = id WHERE 0; COMMIT;")
                .is_ok();
            if !writable {
                let _ = db.conn.execute_batch("ROLLBACK");
            }
            Ok(StoreStats {
                open: open.max(0) as u64,
                closed: closed.max(0) as u64,
                writable,
            })
        })
        .await
    }

    pub(super) async fn idle_ids(&self, idle_before: f64, now: f64) -> StoreResult<Vec<String>> {
        self.call("listing idle sessions", move |db| {
            let fail = |e| map_error(&db.store, "listing idle sessions", e);
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT id FROM sessions WHERE status = 'open' AND last_activity <= ?1
                     AND (lease_until IS NULL OR lease_until <= ?2)",
                )
                .map_err(fail)?;
            let ids = stmt
                .query_map(params![idle_before, now], |r| r.get::<_, String>(0))
                .map_err(fail)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(fail)?;
            Ok(ids)
        })
        .await
    }

    pub(super) async fn prune_closed(&self, closed_before: f64) -> StoreResult<u64> {
        self.call("pruning closed sessions", move |db| {
            db.conn
                .prepare_cached("DELETE FROM sessions WHERE status = 'closed' AND closed_at <= ?1")
                .and_then(|mut s| s.execute([closed_before]))
                .map(|n| n as u64)
                .map_err(|e| map_error(&db.store, "pruning closed sessions", e))
        })
        .await
    }

    pub(super) async fn replace_state(
        &self,
        id: &str,
        state: StateBlob,
        now: f64,
    ) -> StoreResult<bool> {
        let id = id.to_owned();
        self.call("writing the state", move |db| {
            let fail = |e| map_error(&db.store, "writing the state", e);
            let tx = db.conn.transaction().map_err(fail)?;
            let open = tx
                .prepare_cached(
                    "UPDATE sessions SET state_version = state_version + 1, last_activity = ?2
                     WHERE id = ?1 AND status = 'open'",
                )
                .and_then(|mut s| s.execute(params![id, now]))
                .map_err(fail)?
                > 0;
            if open {
                write_state(&tx, &id, &state).map_err(fail)?;
            }
            tx.commit().map_err(fail)?;
            Ok(open)
        })
        .await
    }

    pub(super) async fn record_unsent(
        &self,
        id: &str,
        now: f64,
        entry: HistoryEntry,
    ) -> StoreResult<Option<u64>> {
        let id = id.to_owned();
        self.call("writing a history entry", move |db| {
            let fail = |e| map_error(&db.store, "writing a history entry", e);
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            let counts = tx
                .prepare_cached(
                    "SELECT command_count, history_kept FROM sessions WHERE id = ?1 AND status = 'open'",
                )
                .and_then(|mut s| {
                    s.query_row([&id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                        .optional()
                })
                .map_err(fail)?;
            let Some((count, kept)) = counts else {
                return Ok(None);
            };
            let mut entry = entry;
            let at = Append {
                id: &id,
                count: count.max(0) as u64,
                kept: kept.max(0) as u64,
                holder: None,
                lease_until: None,
                now,
            };
            let seq = Db::append(&tx, &db.store, db.history_limit, at, &mut entry)?;
            tx.commit().map_err(fail)?;
            Ok(Some(seq))
        })
        .await
    }
}
