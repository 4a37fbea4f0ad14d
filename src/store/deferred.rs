//! A store that is still opening: the server answers `initialize` while its store opens
//! (an SQLite file read and maybe migrated, a Redis connection made), and every store call
//! waits for the opening to finish, then goes to the opened store.
//!
//! Opening an SQLite file costs about 1.5 ms and a Redis connection a round trip or more, the
//! better part of a cold start; a client's first tool call comes after `initialize` and
//! `tools/list`, by which time the store is usually open. A store that cannot be opened
//! fails every call with the opening's error, and [`Opening::finish`] hands that error to
//! the binary, which stops the server with it (as it did when it opened the store first).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    BeginCommand, Begun, Created, EventPage, FinishCommand, HistoryPage, HolderGone, NewSession,
    SessionPage, SessionStore, StateBlob, StoreError, StoreKind, StoreLocation, StoreResult,
    StoreStats, StoredSession,
};
use crate::session::HistoryEntry;
use crate::session::events::CloseReason;

/// What the opening gave: the store, or why it could not be opened (as text: every waiting
/// call gets its own error with it).
type Opened = Option<Result<Arc<dyn SessionStore>, String>>;

/// The store being opened, as a [`SessionStore`].
#[derive(Debug)]
pub struct Deferred {
    location: StoreLocation,
    opened: watch::Receiver<Opened>,
    /// Event wake-ups of the opened store, forwarded (only a Redis store pushes them).
    wakeups: Option<watch::Receiver<u64>>,
}

/// The other end of a [`Deferred`]: hands it the opened store.
#[derive(Debug)]
pub struct Opening {
    opened: watch::Sender<Opened>,
    wakeups: Option<watch::Sender<u64>>,
}

impl Deferred {
    /// A store of `location` that calls wait on until [`Opening::finish`].
    pub fn new(location: StoreLocation) -> (Deferred, Opening) {
        let (opened_tx, opened) = watch::channel(None);
        let (wakeups_tx, wakeups) = if location.kind == StoreKind::Redis {
            let (tx, rx) = watch::channel(0);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        (
            Deferred {
                location,
                opened,
                wakeups,
            },
            Opening {
                opened: opened_tx,
                wakeups: wakeups_tx,
            },
        )
    }

    /// The opened store, once it is.
    async fn store(&self) -> StoreResult<Arc<dyn SessionStore>> {
        let mut opened = self.opened.clone();
        let outcome = match opened.wait_for(Option::is_some).await {
            Ok(done) => done.clone(),
            // The opening was dropped unfinished (the server is stopping).
            Err(_) => None,
        };
        match outcome {
            Some(Ok(store)) => Ok(store),
            Some(Err(detail)) => Err(StoreError::Unreachable {
                store: self.location.clone(),
                detail,
            }),
            None => Err(StoreError::Unreachable {
                store: self.location.clone(),
                detail: "the server stopped before it was open".to_owned(),
            }),
        }
    }
}

impl Opening {
    /// Hand over the opening's outcome; the error (when it failed) is returned for the
    /// binary to stop with.
    pub fn finish(
        self,
        outcome: StoreResult<Arc<dyn SessionStore>>,
    ) -> StoreResult<Arc<dyn SessionStore>> {
        match outcome {
            Ok(store) => {
                if let (Some(tx), Some(mut rx)) = (self.wakeups, store.event_wakeups()) {
                    tokio::spawn(async move {
                        while rx.changed().await.is_ok() {
                            let newest = *rx.borrow_and_update();
                            if tx.send(newest).is_err() {
                                return;
                            }
                        }
                    });
                }
                let _ = self.opened.send(Some(Ok(store.clone())));
                Ok(store)
            }
            Err(e) => {
                let _ = self.opened.send(Some(Err(e.to_string())));
                Err(e)
            }
        }
    }
}

#[async_trait]
impl SessionStore for Deferred {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    async fn create(&self, new: NewSession) -> StoreResult<Created> {
        self.store().await?.create(new).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        self.store().await?.get(id).await
    }

    async fn get_by_name(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSession>> {
        self.store().await?.get_by_name(owner, name).await
    }

    async fn list(&self, closed: bool) -> StoreResult<Vec<StoredSession>> {
        self.store().await?.list(closed).await
    }

    async fn list_page(
        &self,
        offset: usize,
        limit: usize,
        viewer: Option<&str>,
    ) -> StoreResult<SessionPage> {
        self.store().await?.list_page(offset, limit, viewer).await
    }

    async fn count_owned(&self, owner: &str) -> StoreResult<u64> {
        self.store().await?.count_owned(owner).await
    }

    async fn share(
        &self,
        id: &str,
        user: &str,
        access: Option<super::Access>,
    ) -> StoreResult<bool> {
        self.store().await?.share(id, user, access).await
    }

    async fn begin_command(&self, id: &str, begin: BeginCommand) -> StoreResult<Begun> {
        self.store().await?.begin_command(id, begin).await
    }

    async fn renew_lease(&self, id: &str, holder: &str, until: f64) -> StoreResult<bool> {
        self.store().await?.renew_lease(id, holder, until).await
    }

    async fn release_lease(&self, id: &str, holder: &str) -> StoreResult<()> {
        self.store().await?.release_lease(id, holder).await
    }

    async fn finish_command(&self, id: &str, finish: FinishCommand) -> StoreResult<()> {
        self.store().await?.finish_command(id, finish).await
    }

    async fn record_entry(
        &self,
        id: &str,
        now: f64,
        entry: HistoryEntry,
    ) -> StoreResult<Option<u64>> {
        self.store().await?.record_entry(id, now, entry).await
    }

    async fn set_state(&self, id: &str, state: StateBlob, now: f64) -> StoreResult<bool> {
        self.store().await?.set_state(id, state, now).await
    }

    async fn history(&self, id: &str, limit: Option<usize>) -> StoreResult<Option<HistoryPage>> {
        self.store().await?.history(id, limit).await
    }

    async fn close(
        &self,
        id: &str,
        reason: CloseReason,
        now: f64,
    ) -> StoreResult<Option<StoredSession>> {
        self.store().await?.close(id, reason, now).await
    }

    async fn close_idle(
        &self,
        id: &str,
        idle_before: f64,
        now: f64,
    ) -> StoreResult<Option<StoredSession>> {
        self.store().await?.close_idle(id, idle_before, now).await
    }

    async fn list_idle(&self, idle_before: f64, now: f64) -> StoreResult<Vec<String>> {
        self.store().await?.list_idle(idle_before, now).await
    }

    async fn prune(&self, closed_before: f64) -> StoreResult<u64> {
        self.store().await?.prune(closed_before).await
    }

    async fn recover(&self, id: Option<&str>, now: f64, gone: &HolderGone) -> StoreResult<u64> {
        self.store().await?.recover(id, now, gone).await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.store().await?.stats().await
    }

    async fn append_events(&self, bodies: &[String]) -> StoreResult<Vec<u64>> {
        self.store().await?.append_events(bodies).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> StoreResult<EventPage> {
        self.store().await?.events_after(after, limit).await
    }

    fn event_wakeups(&self) -> Option<watch::Receiver<u64>> {
        self.wakeups.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn calls_wait_for_the_opening_then_reach_the_opened_store() {
        let (store, opening) = Deferred::new(StoreLocation::new(StoreKind::Memory, ""));
        let store = Arc::new(store);
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.count_owned("alice").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "answered before the store was open");
        let opened: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(10));
        assert!(opening.finish(Ok(opened)).is_ok());
        assert_eq!(waiting.await.expect("joins").expect("counts"), 0);
        assert_eq!(store.stats().await.expect("stats").open, 0);
        assert!(store.event_wakeups().is_none(), "memory pushes no wake-ups");
    }

    #[tokio::test]
    async fn a_failed_opening_fails_every_call_with_its_reason() {
        let location = StoreLocation::new(StoreKind::Sqlite, "/x/sessions.db");
        let (store, opening) = Deferred::new(location.clone());
        let refused = opening.finish(Err(StoreError::NotADatabase {
            store: location,
            detail: "the file does not start with the SQLite header".into(),
        }));
        assert!(matches!(refused, Err(StoreError::NotADatabase { .. })));
        let e = store.count_owned("alice").await.expect_err("no store");
        let text = e.to_string();
        assert!(text.contains("/x/sessions.db"), "{text}");
        assert!(text.contains("SQLite header"), "{text}");
    }

    #[tokio::test]
    async fn a_dropped_opening_fails_calls_instead_of_hanging() {
        let (store, opening) = Deferred::new(StoreLocation::new(StoreKind::Memory, ""));
        drop(opening);
        let e = store.stats().await.expect_err("never opened");
        assert!(e.to_string().contains("stopped"), "{e}");
    }
}
