//! The [`SessionStore`] methods of the Redis store: each one round trip (a script, a
//! `MULTI`, or a pipeline for listing), except recovery, which reads before its script.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::session::events::CloseReason;
use crate::session::{HistoryEntry, Outcome};
use crate::store::{
    BeginCommand, Begun, Created, FinishCommand, HistoryPage, HolderGone, INTERRUPTED_MESSAGE,
    Lease, NewSession, SessionStore, StateBlob, Status, StoreLocation, StoreResult, StoreStats,
    StoredSession,
};

use super::RedisStore;
use super::record::{self, from_fields, from_flat};

/// Closed sessions deleted per prune script call (each call blocks Redis briefly).
const PRUNE_BATCH: usize = 500;

/// What recovery reads of one session: the running marks (seq → holder), the lease (holder,
/// until), the last sequence number, the length of the kept history.
type RunningRead = (
    HashMap<u64, String>,
    (Option<String>, Option<f64>),
    Option<u64>,
    u64,
);

/// `entry` as JSON without its `seq` (the append script puts the one it assigns first).
fn body(entry: &HistoryEntry) -> Result<String, serde_json::Error> {
    let mut v = serde_json::to_value(entry)?;
    if let Some(map) = v.as_object_mut() {
        map.remove("seq");
    }
    serde_json::to_string(&v)
}

/// `entry` as JSON with `seq`.
fn with_seq(mut entry: HistoryEntry, seq: u64) -> Result<String, serde_json::Error> {
    entry.seq = seq;
    serde_json::to_string(&entry)
}

impl RedisStore {
    fn parse(&self, fields: HashMap<String, String>) -> StoreResult<Option<StoredSession>> {
        from_fields(fields).map_err(|e| self.corrupt("session record", e))
    }

    fn encode<T>(&self, r: Result<T, serde_json::Error>) -> StoreResult<T> {
        r.map_err(|e| self.failed("encoding a history entry", e.to_string()))
    }

    /// Run the append script: `holder` empty for an entry already complete.
    async fn append(
        &self,
        id: &str,
        now: f64,
        entry: &HistoryEntry,
        holder: &str,
        lease_until: f64,
    ) -> StoreResult<Vec<String>> {
        let body = self.encode(body(entry))?;
        let k = &self.keys;
        let keys = [
            k.session(id),
            k.history(id),
            k.open(),
            k.running(id),
            k.running_sessions(),
        ];
        let limit = self.history_limit;
        self.run("writing a history entry", |mut con: ConnectionManager| {
            let mut inv = self.scripts.append.prepare_invoke();
            inv.key(&keys[..])
                .arg(id)
                .arg(now.to_string())
                .arg(&body)
                .arg(limit)
                .arg(holder)
                .arg(lease_until.to_string());
            async move { inv.invoke_async(&mut con).await }
        })
        .await
    }

    /// Interrupt the stale running entries of one session; how many were marked.
    async fn recover_one(&self, id: &str, now: f64, gone: &HolderGone) -> StoreResult<u64> {
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

#[async_trait]
impl SessionStore for RedisStore {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    async fn create(&self, new: NewSession) -> StoreResult<Created> {
        let k = &self.keys;
        let keys = [k.session(&new.id), k.sessions(), k.open(), k.names()];
        let fields = record::new_fields(&new);
        let reply: Vec<String> = self
            .run("creating a session", |mut con| {
                let mut inv = self.scripts.create.prepare_invoke();
                inv.key(&keys[..])
                    .arg(&new.id)
                    .arg(new.now.to_string())
                    .arg(new.name.as_deref().unwrap_or(""))
                    .arg(k.prefix());
                for (f, v) in &fields {
                    inv.arg(*f).arg(v);
                }
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        let mut reply = reply.into_iter();
        match reply.next().as_deref() {
            Some("new") => Ok(Created::New(StoredSession::new(new))),
            Some("existing") => match from_flat(reply.collect()) {
                Ok(Some(s)) => Ok(Created::Existing(s)),
                Ok(None) => Err(self.corrupt("session record", "empty".into())),
                Err(e) => Err(self.corrupt("session record", e)),
            },
            Some("id_taken") => {
                Err(self.failed("creating a session", format!("the id {} is taken", new.id)))
            }
            other => Err(self.failed("creating a session", format!("unexpected reply {other:?}"))),
        }
    }

    async fn get(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        let key = self.keys.session(id);
        let fields: HashMap<String, String> = self
            .run("reading a session", |mut con| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(key).query_async(&mut con).await }
            })
            .await?;
        self.parse(fields)
    }

    async fn get_by_name(&self, name: &str) -> StoreResult<Option<StoredSession>> {
        let names = self.keys.names();
        let id: Option<String> = self
            .run("reading a session name", |mut con| {
                let names = names.clone();
                async move {
                    redis::cmd("HGET")
                        .arg(names)
                        .arg(name)
                        .query_async(&mut con)
                        .await
                }
            })
            .await?;
        let Some(id) = id else { return Ok(None) };
        Ok(self
            .get(&id)
            .await?
            .filter(|s| s.status == Status::Open && s.name.as_deref() == Some(name)))
    }

    async fn list(&self, closed: bool) -> StoreResult<Vec<StoredSession>> {
        let index = if closed {
            self.keys.sessions()
        } else {
            self.keys.open()
        };
        let ids: Vec<String> = self
            .run("listing sessions", |mut con| {
                let index = index.clone();
                async move {
                    redis::cmd("ZRANGE")
                        .arg(index)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con)
                        .await
                }
            })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<HashMap<String, String>> = self
            .run("listing sessions", |mut con| {
                let mut p = redis::pipe();
                for id in &ids {
                    p.hgetall(self.keys.session(id));
                }
                async move { p.query_async(&mut con).await }
            })
            .await?;
        let mut sessions = Vec::with_capacity(all.len());
        for fields in all {
            // A session pruned between the two reads is simply not listed.
            if let Some(s) = self.parse(fields)?
                && (closed || s.status == Status::Open)
            {
                sessions.push(s);
            }
        }
        sessions.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(sessions)
    }

    async fn begin_command(&self, id: &str, begin: BeginCommand) -> StoreResult<Begun> {
        let mut entry = begin.entry;
        entry.outcome = Outcome::Running;
        let reply = self
            .append(id, begin.now, &entry, &begin.holder, begin.lease_until)
            .await?;
        let bad = |r: &[String]| {
            self.failed("writing a history entry", format!("unexpected reply {r:?}"))
        };
        match reply.first().map(String::as_str) {
            Some("started") => match (reply.get(1), reply.get(2)) {
                (Some(seq), Some(version)) => match (seq.parse(), version.parse()) {
                    (Ok(seq), Ok(state_version)) => Ok(Begun::Started { seq, state_version }),
                    _ => Err(bad(&reply)),
                },
                _ => Err(bad(&reply)),
            },
            Some("leased") => match (reply.get(1), reply.get(2).and_then(|u| u.parse().ok())) {
                (Some(holder), Some(until)) => Ok(Begun::Leased(Lease {
                    holder: holder.clone(),
                    until,
                })),
                _ => Err(bad(&reply)),
            },
            Some("closed") => Ok(Begun::Closed),
            Some("missing") => Ok(Begun::Missing),
            _ => Err(bad(&reply)),
        }
    }

    async fn renew_lease(&self, id: &str, holder: &str, until: f64) -> StoreResult<bool> {
        let key = self.keys.session(id);
        let held: i64 = self
            .run("renewing a lease", |mut con| {
                let mut inv = self.scripts.lease.key(&key);
                inv.arg(holder).arg(until.to_string());
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        Ok(held == 1)
    }

    async fn release_lease(&self, id: &str, holder: &str) -> StoreResult<()> {
        let key = self.keys.session(id);
        let _: i64 = self
            .run("giving a lease back", |mut con| {
                let mut inv = self.scripts.lease.key(&key);
                inv.arg(holder).arg("");
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        Ok(())
    }

    async fn finish_command(&self, id: &str, finish: FinishCommand) -> StoreResult<()> {
        let entry = self.encode(with_seq(finish.entry, finish.seq))?;
        let result = self.encode(serde_json::to_string(&finish.last_result))?;
        let k = &self.keys;
        let keys = [
            k.session(id),
            k.history(id),
            k.open(),
            k.running(id),
            k.running_sessions(),
        ];
        let (has_state, state) = match &finish.state {
            Some(s) => ("1", s.as_ref()),
            None => ("0", ""),
        };
        let _: i64 = self
            .run("completing a history entry", |mut con| {
                let mut inv = self.scripts.finish.prepare_invoke();
                inv.key(&keys[..])
                    .arg(id)
                    .arg(&finish.holder)
                    .arg(finish.seq)
                    .arg(finish.now.to_string())
                    .arg(&entry)
                    .arg(&finish.last_command)
                    .arg(&result)
                    .arg(has_state)
                    .arg(state);
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        Ok(())
    }

    async fn record_entry(
        &self,
        id: &str,
        now: f64,
        entry: HistoryEntry,
    ) -> StoreResult<Option<u64>> {
        let reply = self.append(id, now, &entry, "", 0.0).await?;
        match reply.first().map(String::as_str) {
            Some("started") => Ok(reply.get(1).and_then(|s| s.parse().ok())),
            _ => Ok(None),
        }
    }

    async fn set_state(&self, id: &str, state: StateBlob, now: f64) -> StoreResult<bool> {
        let keys = [self.keys.session(id), self.keys.open()];
        let done: i64 = self
            .run("writing the state", |mut con| {
                let mut inv = self.scripts.set_state.prepare_invoke();
                inv.key(&keys[..])
                    .arg(id)
                    .arg(now.to_string())
                    .arg(state.as_ref());
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        Ok(done == 1)
    }

    async fn history(&self, id: &str, limit: Option<usize>) -> StoreResult<Option<HistoryPage>> {
        let (session, list) = (self.keys.session(id), self.keys.history(id));
        // LRANGE -n -1 is the newest n; 1 0 is nothing.
        let (start, stop) = match limit {
            None => (0, -1),
            Some(0) => (1, 0),
            Some(n) => (-(isize::try_from(n).unwrap_or(isize::MAX)), -1),
        };
        let (total, kept, texts): (Option<u64>, u64, Vec<String>) = self
            .run("reading history", |mut con| {
                let mut p = redis::pipe();
                p.atomic()
                    .hget(&session, "seq")
                    .llen(&list)
                    .lrange(&list, start, stop);
                async move { p.query_async(&mut con).await }
            })
            .await?;
        let Some(total) = total else { return Ok(None) };
        let entries = texts;
        let entries = entries
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<Vec<HistoryEntry>, _>>()
            .map_err(|e| self.corrupt("history entry", e.to_string()))?;
        Ok(Some(HistoryPage {
            entries,
            total,
            dropped: total.saturating_sub(kept),
        }))
    }

    async fn close(
        &self,
        id: &str,
        reason: CloseReason,
        now: f64,
    ) -> StoreResult<Option<StoredSession>> {
        let k = &self.keys;
        let keys = [k.session(id), k.open(), k.closed(), k.names()];
        let flat: Vec<String> = self
            .run("closing a session", |mut con| {
                let mut inv = self.scripts.close.prepare_invoke();
                inv.key(&keys[..])
                    .arg(id)
                    .arg(now.to_string())
                    .arg(record::reason_name(reason));
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        from_flat(flat).map_err(|e| self.corrupt("session record", e))
    }

    async fn list_idle(&self, idle_before: f64, now: f64) -> StoreResult<Vec<String>> {
        let open = self.keys.open();
        self.run("listing idle sessions", |mut con| {
            let mut inv = self.scripts.idle.key(&open);
            inv.arg(idle_before.to_string())
                .arg(now.to_string())
                .arg(self.keys.prefix());
            async move { inv.invoke_async(&mut con).await }
        })
        .await
    }

    async fn prune(&self, closed_before: f64) -> StoreResult<u64> {
        let k = &self.keys;
        let keys = [k.closed(), k.sessions(), k.running_sessions()];
        let mut total = 0;
        loop {
            let n: u64 = self
                .run("pruning closed sessions", |mut con| {
                    let mut inv = self.scripts.prune.prepare_invoke();
                    inv.key(&keys[..])
                        .arg(closed_before.to_string())
                        .arg(PRUNE_BATCH)
                        .arg(k.prefix());
                    async move { inv.invoke_async(&mut con).await }
                })
                .await?;
            total += n;
            if n < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn recover(&self, id: Option<&str>, now: f64, gone: &HolderGone) -> StoreResult<u64> {
        let ids: Vec<String> = match id {
            Some(id) => vec![id.to_owned()],
            None => {
                let set = self.keys.running_sessions();
                self.run("listing running entries", |mut con| {
                    let set = set.clone();
                    async move { redis::cmd("SMEMBERS").arg(set).query_async(&mut con).await }
                })
                .await?
            }
        };
        let mut marked = 0;
        for id in ids {
            marked += self.recover_one(&id, now, gone).await?;
        }
        Ok(marked)
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (open, all): (u64, u64) = self
            .run("counting sessions", |mut con| {
                let mut p = redis::pipe();
                p.zcard(self.keys.open()).zcard(self.keys.sessions());
                async move { p.query_async(&mut con).await }
            })
            .await?;
        // A write that changes nothing: refused by a read-only replica or a full Redis.
        let schema = self.keys.schema();
        let writable = self
            .run("writing", |mut con| {
                let schema = schema.clone();
                async move {
                    redis::cmd("SET")
                        .arg(schema)
                        .arg(super::SCHEMA_VERSION)
                        .arg("NX")
                        .query_async::<Option<String>>(&mut con)
                        .await
                }
            })
            .await
            .is_ok();
        Ok(StoreStats {
            open,
            closed: all.saturating_sub(open),
            writable,
        })
    }
}
