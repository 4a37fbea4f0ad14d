//! The SQLite store's calls about users: sharing a session (a row of `shares` per user),
//! and a page of the open sessions, all of them or those one user sees (owned, or shared
//! with it or with everyone). Called from the
//! [`SessionStore`](super::super::SessionStore) methods in `ops`.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::super::{Access, EVERYONE, SessionPage, StoreResult};
use super::row::{COLUMNS, session_of};
use super::{SqliteStore, map_error};

/// The open sessions a viewer (`?1`) sees, by id: its own (index `sessions_open_owner`) and
/// those shared with it or with everyone (`?2`; index `shares_user`). Found from the
/// viewer's side, so the cost grows with what it sees (and its shares of closed sessions
/// not yet pruned), not with the store: 4 ms for a viewer owning or shared ~1 100 of 50 000
/// sessions, where `owner = ?1 OR EXISTS (share)` scans them all (50 ms).
const SEEN: &str = "SELECT id FROM sessions WHERE owner = ?1 AND status = 'open'
     UNION SELECT session_id FROM shares WHERE user IN (?1, ?2)";

impl SqliteStore {
    /// Set (`Some`) or remove (`None`) the share of `user` on the open session `id`, in one
    /// transaction; `false` when there is no open session `id`.
    pub(super) async fn set_share(
        &self,
        id: &str,
        user: &str,
        access: Option<Access>,
    ) -> StoreResult<bool> {
        let (id, user) = (id.to_owned(), user.to_owned());
        self.call("sharing a session", move |db| {
            let fail = |e| map_error(&db.store, "sharing a session", e);
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            let open = tx
                .prepare_cached("SELECT 1 FROM sessions WHERE id = ?1 AND status = 'open'")
                .and_then(|mut s| s.query_row([&id], |_| Ok(())).optional())
                .map_err(fail)?
                .is_some();
            if !open {
                return Ok(false);
            }
            match access {
                Some(access) => tx
                    .prepare_cached(
                        "INSERT INTO shares (session_id, user, access) VALUES (?1, ?2, ?3)
                         ON CONFLICT (session_id, user) DO UPDATE SET access = excluded.access",
                    )
                    .and_then(|mut s| s.execute(params![id, user, access.as_str()])),
                None => tx
                    .prepare_cached("DELETE FROM shares WHERE session_id = ?1 AND user = ?2")
                    .and_then(|mut s| s.execute(params![id, user])),
            }
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(true)
        })
        .await
    }

    /// The open sessions from `offset` (at most `limit`) and how many: all of them, or with
    /// `viewer` those it sees. One read transaction, so the page and the count agree.
    pub(super) async fn page(
        &self,
        offset: usize,
        limit: usize,
        viewer: Option<&str>,
    ) -> StoreResult<SessionPage> {
        let viewer = viewer.map(str::to_owned);
        self.call("listing sessions", move |db| {
            let fail = |e| map_error(&db.store, "listing sessions", e);
            let big = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            let tx = db.conn.transaction().map_err(fail)?;
            let (total, sessions) = match &viewer {
                None => {
                    let total: i64 = tx
                        .prepare_cached("SELECT count(*) FROM sessions WHERE status = 'open'")
                        .and_then(|mut s| s.query_row([], |r| r.get(0)))
                        .map_err(fail)?;
                    let sql = format!(
                        "SELECT {COLUMNS} FROM sessions WHERE status = 'open'
                         ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
                    );
                    let mut stmt = tx.prepare_cached(&sql).map_err(fail)?;
                    let sessions = stmt
                        .query_map(params![big(limit), big(offset)], session_of)
                        .map_err(fail)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(fail)?;
                    (total, sessions)
                }
                Some(viewer) => {
                    let total: i64 = tx
                        .prepare_cached(&format!(
                            "SELECT count(*) FROM ({SEEN}) seen
                             JOIN sessions ON sessions.id = seen.id WHERE status = 'open'"
                        ))
                        .and_then(|mut s| s.query_row(params![viewer, EVERYONE], |r| r.get(0)))
                        .map_err(fail)?;
                    let sql = format!(
                        "SELECT {COLUMNS} FROM sessions WHERE status = 'open' AND id IN ({SEEN})
                         ORDER BY created_at, id LIMIT ?3 OFFSET ?4"
                    );
                    let mut stmt = tx.prepare_cached(&sql).map_err(fail)?;
                    let sessions = stmt
                        .query_map(
                            params![viewer, EVERYONE, big(limit), big(offset)],
                            session_of,
                        )
                        .map_err(fail)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(fail)?;
                    (total, sessions)
                }
            };
            drop(tx);
            Ok(SessionPage {
                sessions,
                total: total.max(0) as u64,
            })
        })
        .await
    }
}
