//! What only this process holds for a session: its open link to Blender (behind an async
//! mutex that is the link's one owner for each whole operation), the count of commands
//! queued or running, and the token that fires when the session closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;

use crate::backend::Link;

use super::store::RecordRef;

/// The live part of one open session.
#[derive(Debug)]
pub(crate) struct Live {
    /// The session id, shared with the registry's map key.
    pub(crate) id: std::sync::Arc<str>,
    /// This process's copy of the session's record (its target is read from there).
    pub(crate) record: RecordRef,
    /// The session's name, if it has one.
    pub(crate) name: Option<String>,
    /// Who owns it (never changes).
    pub(crate) owner: String,
    /// The store's state version this process's copy of the state matches.
    pub(crate) state_version: AtomicU64,
    /// The keep-alive link, when one is open and idle.
    pub(crate) link: tokio::sync::Mutex<Option<Box<dyn Link>>>,
    in_flight: AtomicUsize,
    /// Fires when the session is closed (close_session, idle cleanup, shutdown).
    pub(crate) closed: CancellationToken,
    /// A command cancelled after it was sent, that Blender may still be running; guarded
    /// by the link slot's lock in practice (set and taken only while it is held).
    pub(crate) unfinished: std::sync::Mutex<Option<Box<Unfinished>>>,
}

/// A command cancelled after it was sent: Blender runs it to its end anyway.
#[derive(Debug)]
pub(crate) struct Unfinished {
    /// Its history sequence number (0 until recorded).
    pub(crate) seq: u64,
    /// When Blender answered it (or gave up waiting); `None` while it still runs.
    pub(crate) done: tokio::sync::watch::Receiver<Option<std::time::Instant>>,
}

impl Live {
    pub(crate) fn new(
        id: std::sync::Arc<str>,
        record: RecordRef,
        name: Option<String>,
        owner: String,
        state_version: u64,
    ) -> Self {
        Live {
            id,
            record,
            name,
            owner,
            state_version: AtomicU64::new(state_version),
            link: tokio::sync::Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            closed: CancellationToken::new(),
            unfinished: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn unfinished(&self) -> std::sync::MutexGuard<'_, Option<Box<Unfinished>>> {
        self.unfinished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commands queued or running on this session.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Mark one more command queued or running; the returned guard unmarks it however the
    /// command ends. Call it under the registry's session-map lock, so that idle cleanup
    /// (which checks the count under the same lock) never reaps a session being used.
    pub(crate) fn mark_busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }
}

/// A command queued or running on a session.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Live>);

impl Busy {
    pub(crate) fn live(&self) -> &Arc<Live> {
        &self.0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
