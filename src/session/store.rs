//! Session records in this process's memory (each behind its own handle, indexed by the
//! registry's session map), and the one place every record change goes through. Each change
//! method updates one record and publishes the matching [`Event`]; a persistent or shared
//! store plugs in here, behind the same methods.
//!
//! Records sit behind short-lived sync mutexes, one per session, never held across I/O.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::backend::{Selection, StateUpdate, Target};

use super::clock::Clock;
use super::events::{CloseReason, Event, EventKind};
use super::history::HistoryEntry;
use super::record::{SessionInfo, SessionRecord, SessionState};
use crate::store::StateBlob;

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

/// A handle to one record.
pub type RecordRef = Arc<Mutex<SessionRecord>>;

/// Lock a record. A poisoned lock (a panic elsewhere) still yields the data: a record holds
/// no invariant a panic could break half-way.
pub fn lock(record: &RecordRef) -> MutexGuard<'_, SessionRecord> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

/// A subscriber's view of the event stream; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    events: broadcast::Receiver<Arc<Event>>,
    listeners: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next event; `Lagged` when this subscriber fell more than the buffer behind.
    pub async fn recv(&mut self) -> Result<Arc<Event>, broadcast::error::RecvError> {
        self.events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Arc<Event>, broadcast::error::TryRecvError> {
        self.events.try_recv()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The records of every open session.
#[derive(Debug)]
pub struct Records {
    /// Shared, not copied, by every subscriber; a slot of the channel is a pointer, so its
    /// buffer is small to set up (the whole buffer is written when the channel is made).
    events: broadcast::Sender<Arc<Event>>,
    /// Live [`Subscription`]s.
    listeners: Arc<AtomicUsize>,
    next_event: AtomicU64,
    clock: Clock,
}

impl Records {
    /// An empty store on `clock`.
    pub fn new(clock: Clock) -> Self {
        Records {
            events: broadcast::channel(EVENT_BUFFER).0,
            listeners: Arc::new(AtomicUsize::new(0)),
            next_event: AtomicU64::new(1),
            clock,
        }
    }

    /// The clock records are stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Subscribe to every change from now on.
    pub fn subscribe(&self) -> Subscription {
        self.listeners.fetch_add(1, Ordering::SeqCst);
        Subscription {
            events: self.events.subscribe(),
            listeners: self.listeners.clone(),
        }
    }

    /// Whether anyone listens. An atomic read: the broadcast channel's own receiver count
    /// takes a lock every command of every session would contend on.
    fn listening(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Publish an event, built only when someone listens.
    fn publish(&self, session_id: &str, kind: impl FnOnce() -> EventKind) {
        if !self.listening() {
            return;
        }
        let event = Event {
            id: self.next_event.fetch_add(1, Ordering::Relaxed),
            at: self.clock.now(),
            session_id: session_id.to_owned(),
            kind: kind(),
        };
        let _ = self.events.send(Arc::new(event));
    }

    /// A new record under a fresh id made by `new_id`, tried again while `taken` says the id
    /// is in use (the caller holds its index locked meanwhile). Returns the id, to share as
    /// an index key, and the record's handle.
    pub fn create(
        &self,
        mut new_id: impl FnMut() -> String,
        taken: impl Fn(&str) -> bool,
        target: Target,
        history_limit: usize,
    ) -> (Arc<str>, RecordRef) {
        let mut id = new_id();
        while taken(&id) {
            id = new_id();
        }
        let key: Arc<str> = Arc::from(id.as_str());
        let record = SessionRecord::new(id, target.clone(), self.clock.now(), history_limit);
        let handle = Arc::new(Mutex::new(record));
        self.publish(&key, || EventKind::SessionCreated { target });
        (key, handle)
    }

    /// This process's copy of a record made or read by the session store; `created` when
    /// the session is new (the creation is published).
    pub fn adopt(&self, record: SessionRecord, created: bool) -> (Arc<str>, RecordRef) {
        let key: Arc<str> = Arc::from(record.id.as_str());
        let target = record.target.clone();
        let handle = Arc::new(Mutex::new(record));
        if created {
            self.publish(&key, || EventKind::SessionCreated { target });
        }
        (key, handle)
    }

    /// Mark a record closed (nothing about it is published afterwards, even by a command
    /// still finishing on it). Returns its final info, `busy` when a command is still queued
    /// or running on it; `None` when it was closed already.
    pub fn close(
        &self,
        record: &RecordRef,
        reason: CloseReason,
        busy: bool,
    ) -> Option<SessionInfo> {
        let (id, info) = {
            let mut r = lock(record);
            if r.closed {
                return None;
            }
            r.connection.connected = false;
            r.closed = true;
            (r.id.clone(), r.info(self.clock.now(), busy))
        };
        self.publish(&id, || EventKind::SessionClosed { reason });
        Some(info)
    }

    /// A command was accepted.
    pub fn command_started(
        &self,
        record: &RecordRef,
        command: &str,
        tool: &str,
        arguments: &serde_json::Value,
    ) {
        let Some(id) = self.change(record, |r| r.last_activity = self.clock.now()) else {
            return;
        };
        self.publish(&id, || EventKind::CommandStarted {
            command: command.to_owned(),
            tool: tool.to_owned(),
            arguments_preview: super::events::arguments_preview(arguments),
        });
    }

    /// A command ended: its history entry (numbered `seq` by the session store), the last
    /// command and result, and the state it reported (applied in O(changes)). Returns the state to write to the
    /// store: when the command changed it, or always when `stale` (this copy may be older
    /// than the store's).
    pub fn command_finished(
        &self,
        record: &RecordRef,
        entry: HistoryEntry,
        last_result: serde_json::Value,
        state: Option<&StateUpdate>,
        answered: bool,
        stale: bool,
    ) -> Option<StateBlob> {
        let listening = self.listening();
        let now = self.clock.now();
        let (id, recorded, change, blob) = {
            let mut r = lock(record);
            r.last_activity = now;
            if answered {
                r.connection.last_heartbeat = Some(now);
            }
            r.state.last_command = Some(entry.command.clone());
            r.state.last_result = Some(last_result);
            let applied = state.map(|s| r.state.apply(s, now));
            let changed = applied.as_ref().is_some_and(|a| a.changed);
            let blob = (changed || stale).then(|| state_blob(&mut r.state));
            let listening = listening && !r.closed;
            let change =
                applied
                    .filter(|a| listening && a.changed)
                    .map(|a| EventKind::StateChanged {
                        object_count: r.state.objects.len(),
                        added: a.added,
                        removed: a.removed,
                        renamed: a.renamed,
                        selection: r.state.selection.clone(),
                    });
            r.history.count(entry.seq);
            let recorded = listening.then_some(entry);
            (r.id.clone(), recorded, change, blob)
        };
        if let Some(entry) = recorded {
            self.publish(&id, || EventKind::CommandFinished { entry });
        }
        if let Some(kind) = change {
            self.publish(&id, || kind);
        }
        blob
    }

    /// Blender's state read without a command (the watch poll): applied in O(changes) and
    /// published. Returns the state to write to the store when it changed.
    pub fn state_read(&self, record: &RecordRef, update: &StateUpdate) -> Option<StateBlob> {
        let now = self.clock.now();
        let (id, kind, blob) = {
            let mut r = lock(record);
            r.connection.last_heartbeat = Some(now);
            let applied = r.state.apply(update, now);
            if !applied.changed {
                return None;
            }
            let kind = (!r.closed).then(|| EventKind::StateChanged {
                object_count: r.state.objects.len(),
                added: applied.added,
                removed: applied.removed,
                renamed: applied.renamed,
                selection: r.state.selection.clone(),
            });
            (r.id.clone(), kind, state_blob(&mut r.state))
        };
        if let Some(kind) = kind {
            self.publish(&id, || kind);
        }
        Some(blob)
    }

    /// A connection was opened.
    pub fn connection_opened(&self, record: &RecordRef) {
        let Some(id) = self.change(record, |r| {
            r.connection.connected = true;
            r.connection.last_error = None;
            r.connection.connections_opened += 1;
        }) else {
            return;
        };
        self.publish(&id, || EventKind::Connection {
            connected: true,
            error: None,
        });
    }

    /// A connection attempt failed, or an open connection was dropped.
    pub fn connection_down(&self, record: &RecordRef, error: String) {
        let mut was_up = false;
        let Some(id) = self.change(record, |r| {
            was_up = r.connection.connected;
            r.connection.connected = false;
            r.connection.last_error = Some(error.clone());
        }) else {
            return;
        };
        if was_up {
            self.publish(&id, || EventKind::Connection {
                connected: false,
                error: Some(error),
            });
        }
    }

    /// Apply `f` to a record; its id when the change is to be published (someone listens and
    /// the session is not closed).
    fn change(&self, record: &RecordRef, f: impl FnOnce(&mut SessionRecord)) -> Option<String> {
        let mut r = lock(record);
        f(&mut r);
        (self.listening() && !r.closed).then(|| r.id.clone())
    }

    /// Overwrite parts of the tracked state (the design's `update_state`). The journal cursor
    /// is dropped: the next report from Blender is a full one.
    pub fn set_state(
        &self,
        record: &RecordRef,
        objects: Option<Vec<String>>,
        selection: Option<Selection>,
    ) {
        let now = self.clock.now();
        let (id, kind) = {
            let mut r = lock(record);
            let mut update = StateUpdate {
                cursor: None,
                scene: None,
                object_count: None,
                objects: crate::backend::ObjectsUpdate::Full(
                    r.state.objects.iter().cloned().collect(),
                ),
                selection,
            };
            if let Some(objects) = objects {
                update.objects = crate::backend::ObjectsUpdate::Full(objects);
            }
            let applied = r.state.apply(&update, now);
            let kind = applied.changed.then(|| EventKind::StateChanged {
                object_count: r.state.objects.len(),
                added: applied.added,
                removed: applied.removed,
                renamed: applied.renamed,
                selection: r.state.selection.clone(),
            });
            (r.id.clone(), kind)
        };
        if let Some(kind) = kind {
            self.publish(&id, || kind);
        }
    }
}

/// The state as the store keeps it: without the last command and result, which the store
/// keeps apart (they change with every command, the state rarely).
pub fn state_blob(state: &mut SessionState) -> StateBlob {
    let last_command = state.last_command.take();
    let last_result = state.last_result.take();
    let text = serde_json::to_string(&*state).unwrap_or_else(|_| "{}".into());
    state.last_command = last_command;
    state.last_result = last_result;
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> HistoryEntry {
        crate::session::history::test_entry()
    }

    fn kinds(rx: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            let v = serde_json::to_value(&e).expect("serializes");
            out.push(v["event"].as_str().unwrap_or("?").to_owned());
        }
        out
    }

    #[test]
    fn every_change_is_one_event_and_nothing_follows_a_close() {
        let records = Records::new(Clock::new());
        let mut rx = records.subscribe();
        let (_id, r) = records.create(|| "s-1".into(), |_| false, Target::new("127.0.0.1", 1), 10);
        records.connection_opened(&r);
        records.command_started(&r, "execute_code", "t", &serde_json::json!({}));
        let snap = StateUpdate::from(crate::backend::Snapshot {
            scene: None,
            objects: vec!["Cube".into()],
            active: Some("Cube".into()),
            selected: vec!["Cube".into()],
        });
        let mut first = entry();
        first.seq = 1;
        let blob =
            records.command_finished(&r, first, serde_json::json!(null), Some(&snap), true, false);
        assert!(blob.expect("changed").contains("Cube"));
        // The same state again is no state change, and nothing to write.
        let mut second = entry();
        second.seq = 2;
        let blob = records.command_finished(
            &r,
            second,
            serde_json::json!(null),
            Some(&snap),
            true,
            false,
        );
        assert!(blob.is_none());
        assert_eq!(
            kinds(&mut rx),
            [
                "session_created",
                "connection",
                "command_started",
                "command_finished",
                "state_changed",
                "command_finished"
            ]
        );
        let info = records
            .close(&r, CloseReason::Closed, false)
            .expect("closed");
        assert_eq!(info.command_count, 2);
        assert!(
            records.close(&r, CloseReason::Closed, false).is_none(),
            "closed once"
        );
        records.command_finished(&r, entry(), serde_json::json!(null), None, true, false);
        records.connection_down(&r, "gone".into());
        assert_eq!(kinds(&mut rx), ["session_closed"]);
    }
}
