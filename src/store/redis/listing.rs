//! The Redis store's reads of several sessions and its closing: a page of the open
//! sessions (walking `sessions` by creation, picking the open ones), the records of a list
//! of ids in one pipeline, and the once-only close (idle cleanup's re-checks idleness in the
//! same script). Called from the [`SessionStore`](crate::store::SessionStore) methods in
//! `ops`.

use std::collections::HashMap;

use crate::session::events::CloseReason;
use crate::store::{SessionPage, Status, StoreResult, StoredSession};

use super::RedisStore;
use super::record::{self, from_flat};

impl RedisStore {
    pub(super) async fn page(&self, offset: usize, limit: usize) -> StoreResult<SessionPage> {
        // `sessions` (every id, by created_at) walked in chunks, open ones picked by their
        // score in `open`: the cost grows with offset + limit (and the closed sessions
        // retained among them), not with the store.
        const CHUNK: usize = 512;
        let (sessions_key, open_key) = (self.keys.sessions(), self.keys.open());
        let total: u64 = self
            .run("listing sessions", |mut con| {
                let open_key = open_key.clone();
                async move {
                    redis::cmd("ZCARD")
                        .arg(open_key)
                        .query_async(&mut con)
                        .await
                }
            })
            .await?;
        let (mut skipped, mut start, mut ids) = (0usize, 0usize, Vec::new());
        while ids.len() < limit && (skipped + ids.len()) < total as usize {
            let chunk: Vec<String> = self
                .run("listing sessions", |mut con| {
                    let key = sessions_key.clone();
                    async move {
                        redis::cmd("ZRANGE")
                            .arg(key)
                            .arg(start)
                            .arg(start + CHUNK - 1)
                            .query_async(&mut con)
                            .await
                    }
                })
                .await?;
            if chunk.is_empty() {
                break;
            }
            start += chunk.len();
            let scores: Vec<Option<f64>> = self
                .run("listing sessions", |mut con| {
                    let mut p = redis::pipe();
                    for id in &chunk {
                        p.zscore(&open_key, id);
                    }
                    async move { p.query_async(&mut con).await }
                })
                .await?;
            for (id, score) in chunk.into_iter().zip(scores) {
                if score.is_none() || ids.len() >= limit {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                } else {
                    ids.push(id);
                }
            }
        }
        if ids.is_empty() {
            return Ok(SessionPage {
                sessions: Vec::new(),
                total,
            });
        }
        let sessions = self.records_of(&ids, false).await?;
        Ok(SessionPage { sessions, total })
    }

    /// The records of `ids` in one pipeline, in that order; closed ones too when `closed`.
    /// A session closed or pruned since its id was read is simply not returned.
    pub(super) async fn records_of(
        &self,
        ids: &[String],
        closed: bool,
    ) -> StoreResult<Vec<StoredSession>> {
        let all: Vec<HashMap<String, String>> = self
            .run("listing sessions", |mut con| {
                let mut p = redis::pipe();
                for id in ids {
                    p.hgetall(self.keys.session(id));
                }
                async move { p.query_async(&mut con).await }
            })
            .await?;
        let mut sessions = Vec::with_capacity(all.len());
        for fields in all {
            if let Some(s) = self.parse(fields)?
                && (closed || s.status == Status::Open)
            {
                sessions.push(s);
            }
        }
        Ok(sessions)
    }

    /// Close `id` if open (and, with `idle_before`, still idle), in one script: of two
    /// processes, one closes it.
    pub(super) async fn close_where(
        &self,
        id: &str,
        reason: CloseReason,
        now: f64,
        idle_before: Option<f64>,
    ) -> StoreResult<Option<StoredSession>> {
        let k = &self.keys;
        let keys = [k.session(id), k.open(), k.closed()];
        let flat: Vec<String> = self
            .run("closing a session", |mut con| {
                let mut inv = self.scripts.close.prepare_invoke();
                inv.key(&keys[..])
                    .arg(id)
                    .arg(now.to_string())
                    .arg(record::reason_name(reason))
                    .arg(k.prefix());
                if let Some(before) = idle_before {
                    inv.arg(before.to_string());
                }
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        from_flat(flat).map_err(|e| self.corrupt("session record", e))
    }
}
