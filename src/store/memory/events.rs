//! The memory store's event log: a ring of the newest [`EVENT_LOG_KEEP`] events in this
//! process's memory, ids from 1, behind its own mutex (appending an event never waits for a
//! session operation).

use std::collections::VecDeque;

use crate::store::{EVENT_LOG_KEEP, EventPage, StoredEvent};

/// The events kept and the newest id ever assigned.
#[derive(Debug)]
pub(super) struct EventLog {
    newest: u64,
    kept: VecDeque<StoredEvent>,
    keep: usize,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            newest: 0,
            kept: VecDeque::new(),
            keep: usize::try_from(EVENT_LOG_KEEP).unwrap_or(usize::MAX),
        }
    }
}

impl EventLog {
    /// Append `bodies` with the next ids, dropping the oldest past the keep; their ids.
    pub(super) fn append(&mut self, bodies: &[String]) -> Vec<u64> {
        let mut ids = Vec::with_capacity(bodies.len());
        for body in bodies {
            self.newest += 1;
            ids.push(self.newest);
            self.kept.push_back(StoredEvent {
                id: self.newest,
                body: body.clone(),
            });
        }
        let over = self.kept.len().saturating_sub(self.keep);
        self.kept.drain(..over);
        ids
    }

    /// The kept events with an id above `after`, at most `limit`, and the bounds.
    pub(super) fn after(&self, after: u64, limit: usize) -> EventPage {
        // Ids are consecutive in the ring: the first one above `after` is found by offset.
        let oldest = self.kept.front().map(|e| e.id);
        let skip = oldest.map_or(0, |o| after.saturating_add(1).saturating_sub(o));
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        EventPage {
            events: self.kept.iter().skip(skip).take(limit).cloned().collect(),
            oldest,
            newest: self.newest,
        }
    }
}
