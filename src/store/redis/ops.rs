//! The [`SessionStore`] methods of the Redis store: each one round trip (a script, a
//! `MULTI`, or a pipeline for listing), except recovery, which reads before its script.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::session::events::CloseReason;
use crate::session::{HistoryEntry, Outcome};
use crate::store::{
    Access, BeginCommand, Begun, Created, EventPage, FinishCommand, HistoryPage, HolderGone, Lease,
    NewSession, SessionPage, SessionStore, StateBlob, Status, StoreLocation, StoreResult,
    StoreStats, StoredSession,
};

use super::RedisStore;
use super::record::{self, from_reply, with_shares};

/// Closed sessions deleted per prune script call (each call blocks Redis briefly).
const PRUNE_BATCH: usize = 500;

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
    /// A record from the fields of its hash and of its shares hash.
    pub(super) fn parse(
        &self,
        fields: HashMap<String, String>,
        shares: HashMap<String, String>,
    ) -> StoreResult<Option<StoredSession>> {
        with_shares(fields, shares).map_err(|e| self.corrupt("session record", e))
    }

    pub(super) fn encode<T>(&self, r: Result<T, serde_json::Error>) -> StoreResult<T> {
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
}

#[async_trait]
impl SessionStore for RedisStore {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    async fn create(&self, new: NewSession) -> StoreResult<Created> {
        let k = &self.keys;
        let keys = [
            k.session(&new.id),
            k.sessions(),
            k.open(),
            k.names(&new.owner),
            k.owned(&new.owner),
        ];
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
            Some("existing") => match from_reply(reply.collect()) {
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
        let (session, shares) = (self.keys.session(id), self.keys.shares(id));
        let (fields, shares): (HashMap<String, String>, HashMap<String, String>) = self
            .run("reading a session", |mut con| {
                let mut p = redis::pipe();
                p.atomic().hgetall(&session).hgetall(&shares);
                async move { p.query_async(&mut con).await }
            })
            .await?;
        self.parse(fields, shares)
    }

    async fn get_by_name(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSession>> {
        let names = self.keys.names(owner);
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
        Ok(self.get(&id).await?.filter(|s| {
            s.status == Status::Open && s.owner == owner && s.name.as_deref() == Some(name)
        }))
    }

    async fn count_owned(&self, owner: &str) -> StoreResult<u64> {
        let owned = self.keys.owned(owner);
        self.run("counting sessions", |mut con| {
            let owned = owned.clone();
            async move { redis::cmd("SCARD").arg(owned).query_async(&mut con).await }
        })
        .await
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
        let mut sessions = self.records_of(&ids, closed).await?;
        sessions.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(sessions)
    }

    async fn list_page(
        &self,
        offset: usize,
        limit: usize,
        viewer: Option<&str>,
    ) -> StoreResult<SessionPage> {
        match viewer {
            None => self.page(offset, limit).await,
            Some(viewer) => self.page_seen(offset, limit, viewer).await,
        }
    }

    async fn share(&self, id: &str, user: &str, access: Option<Access>) -> StoreResult<bool> {
        let keys = [self.keys.session(id), self.keys.shares(id)];
        let done: i64 = self
            .run("sharing a session", |mut con| {
                let mut inv = self.scripts.share.prepare_invoke();
                inv.key(&keys[..])
                    .arg(user)
                    .arg(access.map_or("", Access::as_str));
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        Ok(done == 1)
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
        self.close_where(id, reason, now, None).await
    }

    async fn close_idle(
        &self,
        id: &str,
        idle_before: f64,
        now: f64,
    ) -> StoreResult<Option<StoredSession>> {
        self.close_where(id, CloseReason::Idle, now, Some(idle_before))
            .await
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

    async fn append_events(&self, bodies: &[String]) -> StoreResult<Vec<u64>> {
        self.append_stream(bodies).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> StoreResult<EventPage> {
        self.stream_after(after, limit).await
    }

    fn event_wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.wakeups())
    }
}
