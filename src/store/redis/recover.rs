//! Recovery on the Redis store: entries written as running whose holder no longer holds a
//! live lease (or is gone) are rewritten as interrupted. It reads the running marks, the lease
//! and the entries first, builds the interrupted entries here (Lua's JSON would round floats),
//! then one script writes each back only if it is still running under the holder it was read
//! with.

use std::collections::HashMap;

use crate::session::{HistoryEntry, Outcome};
use crate::store::{HolderGone, INTERRUPTED_MESSAGE, StoreResult};

use super::RedisStore;

/// What recovery reads of one session: the running marks (seq → holder), the lease (holder,
/// until), the last sequence number, the length of the kept history.
type RunningRead = (
    HashMap<u64, String>,
    (Option<String>, Option<f64>),
    Option<u64>,
    u64,
);

impl RedisStore {
    /// Interrupt the stale running entries of one session; how many were marked.
    pub(super) async fn recover_one(
        &self,
        id: &str,
        now: f64,
        gone: &HolderGone,
    ) -> StoreResult<u64> {
        let k = &self.keys;
        let (running, lease, total, len): RunningRead = self
            .run("reading running entries", |mut con| {
                let mut p = redis::pipe();
                p.atomic()
                    .hgetall(k.running(id))
                    .cmd("HMGET")
                    .arg(k.session(id))
                    .arg("lease_holder")
                    .arg("lease_until")
                    .hget(k.session(id), "seq")
                    .llen(k.history(id));
                async move { p.query_async(&mut con).await }
            })
            .await?;
        let (holder, until) = lease;
        let gone_holder = holder.clone().filter(|h| gone(h));
        let live = holder
            .filter(|_| gone_holder.is_none())
            .filter(|_| until.is_some_and(|u| u > now));
        let total = total.unwrap_or(0);
        let stale: Vec<(u64, String)> = running
            .into_iter()
            .filter(|(_, h)| live.as_ref() != Some(h))
            .collect();
        if stale.is_empty() && gone_holder.is_none() {
            return Ok(0);
        }
        // Read the stale entries still kept (index from the end of the list: the newest
        // entry is `total`), to write them back interrupted; a trimmed one only loses its mark.
        let indexed: Vec<(u64, String, Option<isize>)> = stale
            .into_iter()
            .map(|(seq, h)| {
                let back = total.checked_sub(seq).and_then(|b| isize::try_from(b).ok());
                let index = back
                    .and_then(|b| isize::try_from(len).ok().map(|l| l - 1 - b))
                    .filter(|i| *i >= 0);
                (seq, h, index)
            })
            .collect();
        let kept: Vec<isize> = indexed.iter().filter_map(|(_, _, i)| *i).collect();
        let mut texts: std::vec::IntoIter<Option<String>> = if kept.is_empty() {
            Vec::new().into_iter()
        } else {
            let texts: Vec<Option<String>> = self
                .run("reading running entries", |mut con| {
                    let mut p = redis::pipe();
                    for index in &kept {
                        p.lindex(k.history(id), *index);
                    }
                    async move { p.query_async(&mut con).await }
                })
                .await?;
            texts.into_iter()
        };
        let mut triples: Vec<String> = Vec::new();
        for (seq, h, index) in indexed {
            let text = if index.is_some() {
                texts.next().flatten()
            } else {
                None
            };
            let replacement = match text {
                Some(text) => {
                    let mut entry: HistoryEntry = serde_json::from_str(&text)
                        .map_err(|e| self.corrupt("history entry", e.to_string()))?;
                    if entry.seq != seq || entry.outcome != Outcome::Running {
                        String::new()
                    } else {
                        entry.outcome = Outcome::Interrupted;
                        entry.message = Some(INTERRUPTED_MESSAGE.into());
                        self.encode(serde_json::to_string(&entry))?
                    }
                }
                None => String::new(),
            };
            triples.extend([seq.to_string(), h, replacement]);
        }
        let keys = [
            k.session(id),
            k.history(id),
            k.running(id),
            k.running_sessions(),
        ];
        let gone_holder = gone_holder.unwrap_or_default();
        let marked: u64 = self
            .run("marking interrupted entries", |mut con| {
                let mut inv = self.scripts.interrupt.prepare_invoke();
                inv.key(&keys[..])
                    .arg(id)
                    .arg(now.to_string())
                    .arg(&gone_holder)
                    .arg(&triples);
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        Ok(marked)
    }
}
