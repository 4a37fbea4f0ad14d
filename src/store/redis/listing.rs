//! The Redis store's reads of several sessions and its closing: a page of the open
//! sessions (walking `sessions` by creation, picking the open ones, or those a viewer
//! sees), the records of a list of ids with their shares in one pipeline, and the once-only
//! close (idle cleanup's re-checks idleness in the same script). Called from the
//! [`SessionStore`](crate::store::SessionStore) methods in `ops`.

use std::collections::HashMap;

use crate::session::events::CloseReason;
use crate::store::{EVERYONE, SessionPage, Status, StoreResult, StoredSession};

use super::RedisStore;
use super::record::{self, from_reply};

/// Session ids read from `sessions` per round trip when walking it.
const CHUNK: usize = 512;

impl RedisStore {
    /// Ids `start..start + CHUNK` of `sessions` (every stored session, by `created_at`).
    async fn chunk(&self, start: usize) -> StoreResult<Vec<String>> {
        let key = self.keys.sessions();
        self.run("listing sessions", |mut con| {
            let key = key.clone();
            async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(start)
                    .arg(start + CHUNK - 1)
                    .query_async(&mut con)
                    .await
            }
        })
        .await
    }

    /// The open sessions `viewer` sees (owned, or shared with it or with everyone) from
    /// `offset`, and how many: `sessions` walked to its end (the count needs every one), a
    /// pipeline per chunk reading each one's owner, status and the two shares that matter.
    pub(super) async fn page_seen(
        &self,
        offset: usize,
        limit: usize,
        viewer: &str,
    ) -> StoreResult<SessionPage> {
        let (mut total, mut start, mut ids) = (0usize, 0usize, Vec::new());
        loop {
            let chunk = self.chunk(start).await?;
            if chunk.is_empty() {
                break;
            }
            start += chunk.len();
            let reads: Vec<Vec<Option<String>>> = self
                .run("listing sessions", |mut con| {
                    let mut p = redis::pipe();
                    for id in &chunk {
                        p.cmd("HMGET")
                            .arg(self.keys.session(id))
                            .arg("owner")
                            .arg("status");
                        p.cmd("HMGET")
                            .arg(self.keys.shares(id))
                            .arg(viewer)
                            .arg(EVERYONE);
                    }
                    async move { p.query_async(&mut con).await }
                })
                .await?;
            for (id, read) in chunk.into_iter().zip(reads.chunks(2)) {
                let [record, shares] = read else { continue };
                let open = record.get(1).is_some_and(|s| s.as_deref() == Some("open"));
                let owned = record.first().is_some_and(|o| o.as_deref() == Some(viewer));
                let shared = shares.iter().any(Option::is_some);
                if !(open && (owned || shared)) {
                    continue;
                }
                if total >= offset && ids.len() < limit {
                    ids.push(id);
                }
                total += 1;
            }
        }
        let total = total as u64;
        if ids.is_empty() {
            return Ok(SessionPage {
                sessions: Vec::new(),
                total,
            });
        }
        let sessions = self.records_of(&ids, false).await?;
        Ok(SessionPage { sessions, total })
    }

    pub(super) async fn page(&self, offset: usize, limit: usize) -> StoreResult<SessionPage> {
        // `sessions` (every id, by created_at) walked in chunks, open ones picked by their
        // score in `open`: the cost grows with offset + limit (and the closed sessions
        // retained among them), not with the store.
        let open_key = self.keys.open();
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
            let chunk = self.chunk(start).await?;
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

    /// The records of `ids` with their shares in one pipeline, in that order; closed ones too
    /// when `closed`. A session closed or pruned since its id was read is simply not
    /// returned.
    pub(super) async fn records_of(
        &self,
        ids: &[String],
        closed: bool,
    ) -> StoreResult<Vec<StoredSession>> {
        let all: Vec<HashMap<String, String>> = self
            .run("listing sessions", |mut con| {
                let mut p = redis::pipe();
                for id in ids {
                    p.hgetall(self.keys.session(id))
                        .hgetall(self.keys.shares(id));
                }
                async move { p.query_async(&mut con).await }
            })
            .await?;
        let mut sessions = Vec::with_capacity(ids.len());
        let mut all = all.into_iter();
        while let (Some(fields), Some(shares)) = (all.next(), all.next()) {
            if let Some(s) = self.parse(fields, shares)?
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
        let keys = [k.session(id), k.open(), k.closed(), k.shares(id)];
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
        from_reply(flat).map_err(|e| self.corrupt("session record", e))
    }
}
