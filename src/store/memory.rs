//! The memory store (`--store memory`): every record in this process's memory, nothing on
//! disk, gone when the process ends. One sync mutex over the map, never held across an
//! await; each trait method is one critical section, so each is atomic like a transaction.
//! The event log is a ring of its own (`events`), behind a mutex of its own.

mod events;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::session::events::CloseReason;
use crate::session::{HistoryEntry, Outcome};

use super::{
    Access, BeginCommand, Begun, Created, EventPage, FinishCommand, HistoryPage, HolderGone,
    INTERRUPTED_MESSAGE, Lease, NewSession, SessionPage, SessionStore, Share, StateBlob, Status,
    StoreKind, StoreLocation, StoreResult, StoreStats, StoredSession,
};

/// One session: the record and its kept history (with the holder of each running entry).
#[derive(Debug)]
struct Kept {
    session: StoredSession,
    history: VecDeque<(HistoryEntry, Option<String>)>,
}

/// Sessions in this process's memory.
#[derive(Debug)]
pub struct MemoryStore {
    location: StoreLocation,
    history_limit: usize,
    sessions: Mutex<HashMap<String, Kept>>,
    events: Mutex<events::EventLog>,
}

impl MemoryStore {
    /// An empty store keeping at most `history_limit` entries per session.
    pub fn new(history_limit: usize) -> Self {
        MemoryStore {
            location: StoreLocation::new(StoreKind::Memory, ""),
            history_limit,
            sessions: Mutex::new(HashMap::new()),
            events: Mutex::new(events::EventLog::default()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn events(&self) -> MutexGuard<'_, events::EventLog> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StoredSession {
    /// Whether this is `owner`'s open session named `name`.
    fn is_open_named(&self, owner: &str, name: &str) -> bool {
        self.status == Status::Open && self.owner == owner && self.name.as_deref() == Some(name)
    }
}

impl Kept {
    /// Append `entry` with the next sequence number, dropping the oldest past `limit`.
    fn push(&mut self, mut entry: HistoryEntry, holder: Option<String>, limit: usize) -> u64 {
        self.session.command_count += 1;
        entry.seq = self.session.command_count;
        let seq = entry.seq;
        if limit > 0 {
            while self.history.len() >= limit {
                self.history.pop_front();
            }
            self.history.push_back((entry, holder));
        }
        self.session.history_kept = self.history.len() as u64;
        seq
    }

    fn entry(&mut self, seq: u64) -> Option<&mut (HistoryEntry, Option<String>)> {
        // Entries are in seq order: the one asked for is usually the newest.
        self.history.iter_mut().rev().find(|(e, _)| e.seq == seq)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    async fn create(&self, new: NewSession) -> StoreResult<Created> {
        let mut map = self.map();
        if let Some(name) = &new.name
            && let Some(k) = map
                .values()
                .find(|k| k.session.is_open_named(&new.owner, name))
        {
            return Ok(Created::Existing(k.session.clone()));
        }
        let session = StoredSession::new(new);
        map.insert(
            session.id.clone(),
            Kept {
                session: session.clone(),
                history: VecDeque::new(),
            },
        );
        Ok(Created::New(session))
    }

    async fn get(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        Ok(self.map().get(id).map(|k| k.session.clone()))
    }

    async fn get_by_name(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSession>> {
        Ok(self
            .map()
            .values()
            .find(|k| k.session.is_open_named(owner, name))
            .map(|k| k.session.clone()))
    }

    async fn count_owned(&self, owner: &str) -> StoreResult<u64> {
        Ok(self
            .map()
            .values()
            .filter(|k| k.session.status == Status::Open && k.session.owner == owner)
            .count() as u64)
    }

    async fn list_page(
        &self,
        offset: usize,
        limit: usize,
        viewer: Option<&str>,
    ) -> StoreResult<SessionPage> {
        // Sort references; clone only the page.
        let map = self.map();
        let mut open: Vec<&StoredSession> = map
            .values()
            .map(|k| &k.session)
            .filter(|s| s.status == Status::Open)
            .filter(|s| viewer.is_none_or(|v| s.access_of(v).is_some()))
            .collect();
        open.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(SessionPage {
            total: open.len() as u64,
            sessions: open.into_iter().skip(offset).take(limit).cloned().collect(),
        })
    }

    async fn list(&self, closed: bool) -> StoreResult<Vec<StoredSession>> {
        let mut all: Vec<StoredSession> = self
            .map()
            .values()
            .filter(|k| closed || k.session.status == Status::Open)
            .map(|k| k.session.clone())
            .collect();
        all.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(all)
    }

    async fn share(&self, id: &str, user: &str, access: Option<Access>) -> StoreResult<bool> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id).filter(|k| k.session.status == Status::Open) else {
            return Ok(false);
        };
        let shares = &mut k.session.shares;
        shares.retain(|s| s.user != user);
        if let Some(access) = access {
            shares.push(Share {
                user: user.to_owned(),
                access,
            });
            shares.sort_by(|a, b| a.user.cmp(&b.user));
        }
        Ok(true)
    }

    async fn begin_command(&self, id: &str, begin: BeginCommand) -> StoreResult<Begun> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id) else {
            return Ok(Begun::Missing);
        };
        if k.session.status == Status::Closed {
            return Ok(Begun::Closed);
        }
        if let Some(lease) = k.session.leased_to_other(&begin.holder, begin.now) {
            return Ok(Begun::Leased(lease.clone()));
        }
        k.session.lease = Some(Lease {
            holder: begin.holder.clone(),
            until: begin.lease_until,
        });
        k.session.last_activity = begin.now;
        let mut entry = begin.entry;
        entry.outcome = Outcome::Running;
        let seq = k.push(entry, Some(begin.holder), self.history_limit);
        Ok(Begun::Started {
            seq,
            state_version: k.session.state_version,
        })
    }

    async fn renew_lease(&self, id: &str, holder: &str, until: f64) -> StoreResult<bool> {
        let mut map = self.map();
        let lease = map.get_mut(id).and_then(|k| k.session.lease.as_mut());
        Ok(match lease {
            Some(l) if l.holder == holder => {
                l.until = until;
                true
            }
            _ => false,
        })
    }

    async fn release_lease(&self, id: &str, holder: &str) -> StoreResult<()> {
        if let Some(k) = self.map().get_mut(id)
            && k.session.lease.as_ref().is_some_and(|l| l.holder == holder)
        {
            k.session.lease = None;
        }
        Ok(())
    }

    async fn finish_command(&self, id: &str, finish: FinishCommand) -> StoreResult<()> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id) else {
            return Ok(());
        };
        if let Some((entry, holder)) = k.entry(finish.seq) {
            let seq = entry.seq;
            *entry = finish.entry;
            entry.seq = seq;
            *holder = None;
        }
        let s = &mut k.session;
        s.last_activity = finish.now;
        s.last_command = Some(finish.last_command);
        s.last_result = Some(finish.last_result);
        if let Some(state) = finish.state {
            s.state = Some(state);
            s.state_version += 1;
        }
        if s.lease.as_ref().is_some_and(|l| l.holder == finish.holder) {
            s.lease = None;
        }
        Ok(())
    }

    async fn record_entry(
        &self,
        id: &str,
        now: f64,
        entry: HistoryEntry,
    ) -> StoreResult<Option<u64>> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id).filter(|k| k.session.status == Status::Open) else {
            return Ok(None);
        };
        k.session.last_activity = now;
        Ok(Some(k.push(entry, None, self.history_limit)))
    }

    async fn set_state(&self, id: &str, state: StateBlob, now: f64) -> StoreResult<bool> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id).filter(|k| k.session.status == Status::Open) else {
            return Ok(false);
        };
        k.session.state = Some(state);
        k.session.state_version += 1;
        k.session.last_activity = now;
        Ok(true)
    }

    async fn history(&self, id: &str, limit: Option<usize>) -> StoreResult<Option<HistoryPage>> {
        let map = self.map();
        let Some(k) = map.get(id) else {
            return Ok(None);
        };
        let n = limit.unwrap_or(k.history.len()).min(k.history.len());
        Ok(Some(HistoryPage {
            entries: k
                .history
                .iter()
                .skip(k.history.len() - n)
                .map(|(e, _)| e.clone())
                .collect(),
            total: k.session.command_count,
            dropped: k.session.history_dropped(),
        }))
    }

    async fn close(
        &self,
        id: &str,
        reason: CloseReason,
        now: f64,
    ) -> StoreResult<Option<StoredSession>> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id).filter(|k| k.session.status == Status::Open) else {
            return Ok(None);
        };
        k.session.status = Status::Closed;
        k.session.closed = Some((now, reason));
        k.session.lease = None;
        Ok(Some(k.session.clone()))
    }

    async fn close_idle(
        &self,
        id: &str,
        idle_before: f64,
        now: f64,
    ) -> StoreResult<Option<StoredSession>> {
        let mut map = self.map();
        let Some(k) = map.get_mut(id).filter(|k| {
            k.session.status == Status::Open
                && k.session.last_activity <= idle_before
                && k.session.lease.as_ref().is_none_or(|l| l.until <= now)
        }) else {
            return Ok(None);
        };
        k.session.status = Status::Closed;
        k.session.closed = Some((now, CloseReason::Idle));
        k.session.lease = None;
        Ok(Some(k.session.clone()))
    }

    async fn list_idle(&self, idle_before: f64, now: f64) -> StoreResult<Vec<String>> {
        Ok(self
            .map()
            .values()
            .filter(|k| {
                let s = &k.session;
                s.status == Status::Open
                    && s.last_activity <= idle_before
                    && s.lease.as_ref().is_none_or(|l| l.until <= now)
            })
            .map(|k| k.session.id.clone())
            .collect())
    }

    async fn prune(&self, closed_before: f64) -> StoreResult<u64> {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, k| !matches!(k.session.closed, Some((at, _)) if at <= closed_before));
        Ok((before - map.len()) as u64)
    }

    async fn recover(&self, id: Option<&str>, now: f64, gone: &HolderGone) -> StoreResult<u64> {
        let mut map = self.map();
        let mut count = 0;
        for k in map.values_mut() {
            if id.is_some_and(|id| id != k.session.id) {
                continue;
            }
            if k.session.lease.as_ref().is_some_and(|l| gone(&l.holder)) {
                k.session.lease = None;
            }
            let live = k
                .session
                .lease
                .clone()
                .filter(|l| l.until > now)
                .map(|l| l.holder);
            for (entry, holder) in k.history.iter_mut() {
                let stale = entry.outcome == Outcome::Running
                    && holder.as_ref().is_none_or(|h| live.as_ref() != Some(h));
                if stale {
                    entry.outcome = Outcome::Interrupted;
                    entry.message = Some(INTERRUPTED_MESSAGE.into());
                    *holder = None;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let map = self.map();
        let open = map
            .values()
            .filter(|k| k.session.status == Status::Open)
            .count() as u64;
        Ok(StoreStats {
            open,
            closed: map.len() as u64 - open,
            writable: true,
        })
    }

    async fn append_events(&self, bodies: &[String]) -> StoreResult<Vec<u64>> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.events().append(bodies))
    }

    async fn events_after(&self, after: u64, limit: usize) -> StoreResult<EventPage> {
        Ok(self.events().after(after, limit))
    }
}

#[cfg(test)]
mod tests;
