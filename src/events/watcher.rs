//! One watcher of the event stream: what it asked for (a session or all it may see, events
//! after an id), the log read that replays what it missed, the broadcast after that, and
//! the visibility rule (a user sees events of their sessions and of sessions shared with
//! them; checks are cached for [`ACCESS_TTL`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{EventHub, PAGE, WireEvent};

/// How long a watcher trusts a visibility check (a share or unshare takes effect within it).
pub const ACCESS_TTL: Duration = Duration::from_secs(1);

/// What a watcher asks for.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// The user watching; `None` sees every session (in-process tools).
    pub user: Option<String>,
    /// Only this session's events.
    pub session: Option<String>,
    /// Replay the events after this id first (`Last-Event-ID`, `?since=`).
    pub since: Option<u64>,
}

/// A stream of the events one watcher may see, in id order.
#[derive(Debug)]
pub struct Watcher {
    hub: EventHub,
    watch: Watch,
    live: broadcast::Receiver<Arc<WireEvent>>,
    /// The last id handed out (or skipped).
    last: u64,
    /// Read the log until this id before following the broadcast.
    catch_up_to: Option<u64>,
    backlog: VecDeque<Arc<WireEvent>>,
    access: HashMap<String, (bool, Instant)>,
}

impl Watcher {
    pub(super) fn new(
        hub: EventHub,
        watch: Watch,
        live: broadcast::Receiver<Arc<WireEvent>>,
        delivered: u64,
    ) -> Self {
        let (last, catch_up_to) = match watch.since {
            Some(since) if since < delivered => (since, Some(delivered)),
            Some(since) => (since, None),
            None => (delivered, None),
        };
        Watcher {
            hub,
            watch,
            live,
            last,
            catch_up_to,
            backlog: VecDeque::new(),
            access: HashMap::new(),
        }
    }

    /// The id of the last event handed out or passed over.
    pub fn last_id(&self) -> u64 {
        self.last
    }

    /// The next event this watcher may see; `None` once the server stops.
    pub async fn next(&mut self) -> Option<Arc<WireEvent>> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                if self.visible(&event).await {
                    return Some(event);
                }
                continue;
            }
            if let Some(target) = self.catch_up_to {
                self.read_log(target).await;
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.is_resync() => return Some(event),
                Ok(event) if event.id <= self.last => continue,
                Ok(event) => {
                    self.last = event.id;
                    if self.visible(&event).await {
                        return Some(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Fell behind the broadcast: what it dropped is still in the log.
                    self.catch_up_to = Some(self.hub.delivered());
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// One page of the log after `last`, queued; done once it reaches `target`.
    async fn read_log(&mut self, target: u64) {
        let store = self.hub.registry().store().clone();
        match store.events_after(self.last, PAGE).await {
            Ok(page) => {
                if let Some(oldest) = page.oldest
                    && oldest > self.last + 1
                    && page.newest > self.last
                {
                    let at = self.hub.registry().now();
                    self.backlog
                        .push_back(Arc::new(WireEvent::resync(self.last, oldest, at)));
                }
                let short = page.events.len() < PAGE;
                for stored in &page.events {
                    self.last = stored.id;
                    self.backlog
                        .push_back(Arc::new(WireEvent::from_stored(stored)));
                }
                if short || self.last >= target {
                    self.catch_up_to = None;
                }
            }
            Err(e) => {
                tracing::warn!("replaying events after {}: {e}", self.last);
                let at = self.hub.registry().now();
                self.backlog
                    .push_back(Arc::new(WireEvent::resync(self.last, target + 1, at)));
                self.last = self.last.max(target);
                self.catch_up_to = None;
            }
        }
    }

    /// Whether this watcher may see `event`.
    async fn visible(&mut self, event: &WireEvent) -> bool {
        if event.is_resync() {
            return true;
        }
        if let Some(only) = &self.watch.session
            && *only != event.session_id
        {
            return false;
        }
        let Some(user) = self.watch.user.clone() else {
            return true;
        };
        if let Some((ok, at)) = self.access.get(&event.session_id)
            && at.elapsed() < ACCESS_TTL
        {
            return *ok;
        }
        let ok = self
            .hub
            .registry()
            .access(&event.session_id, &user)
            .await
            .is_ok();
        self.access
            .insert(event.session_id.clone(), (ok, Instant::now()));
        ok
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.unwatch(self.watch.session.as_deref());
    }
}
