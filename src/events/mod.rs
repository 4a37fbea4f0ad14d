//! The live event stream watchers read (the HTTP server's `/events` and `/ws`, the
//! dashboard): every session event of every server process on one store, in one order.
//!
//! Each process's registry publishes its events in process ([`crate::session::Event`]); the
//! [`EventHub`]'s writer appends them to the session store's event log, which numbers them
//! across every process on it. A relay reads the log after its cursor (at once for this
//! process's events, every [`OTHERS_POLL`] for other processes') and broadcasts what it
//! reads to this process's watchers; on Redis, the append publishes the newest id on a
//! pub/sub channel, which wakes every process's relay at once (polling is then a fallback). A [`Watcher`] that resumes from an id reads the log
//! itself until it meets the broadcast, so a resume replays exactly the missed events, as
//! far back as the store keeps them; further back it gets a `resync` marker.
//!
//! With nobody watching in this process the relay and the watch poll stop; the writer
//! still appends, because a watcher of another process may be reading.

mod watcher;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::session::{Event, EventKind, Registry};
use crate::store::StoredEvent;

pub use watcher::{Watch, Watcher};

/// How often the relay looks for other processes' events while someone watches.
pub const OTHERS_POLL: Duration = Duration::from_millis(100);

/// How often the relay looks anyway when the store pushes wake-ups (Redis pub/sub).
pub const PUSHED_POLL: Duration = Duration::from_secs(1);

/// The default `--watch-interval`.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Events read from the log per request.
const PAGE: usize = 512;

/// How long the writer gathers events into one append (one store transaction). Watchers in
/// this process get them once appended; other processes' relays poll SQLite every 100 ms.
/// At 3 ms, a stream of commands on SQLite paid ~90 µs more per command for the appends.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Most events in one append.
const BATCH_MAX: usize = 256;

/// Events a slow watcher may fall behind the broadcast before it re-reads the log.
const LIVE_BUFFER: usize = 4096;

/// One event as watchers get it.
#[derive(Debug, Clone, PartialEq)]
pub struct WireEvent {
    /// Its id in the store's event log (a `resync` marker carries the last id before it).
    pub id: u64,
    /// The session it concerns (empty for `resync`).
    pub session_id: String,
    /// The event's name (`command_finished`, …).
    pub event: String,
    /// The whole event as JSON, `id` first.
    pub json: String,
}

/// The head of a stored body: what filtering needs.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    event: String,
}

/// An event as the log stores it: everything but the id.
#[derive(Serialize)]
struct Body<'a> {
    at: f64,
    session_id: &'a str,
    #[serde(flatten)]
    kind: &'a EventKind,
}

/// The JSON body the log stores for `event`.
fn body_of(event: &Event) -> String {
    serde_json::to_string(&Body {
        at: event.at,
        session_id: &event.session_id,
        kind: &event.kind,
    })
    .unwrap_or_else(|_| "{}".into())
}

impl WireEvent {
    /// The event a stored one is: `{"id":N,` put before the body's fields.
    pub fn from_stored(stored: &StoredEvent) -> Self {
        let head: Head = serde_json::from_str(&stored.body).unwrap_or(Head {
            session_id: String::new(),
            event: String::new(),
        });
        let rest = stored.body.trim_start();
        let rest = rest.strip_prefix('{').unwrap_or("}");
        let sep = if rest.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        WireEvent {
            id: stored.id,
            session_id: head.session_id,
            event: head.event,
            json: format!("{{\"id\":{}{sep}{rest}", stored.id),
        }
    }

    /// The marker saying events after `last` up to `oldest` were lost.
    pub fn resync(last: u64, oldest: u64, at: f64) -> Self {
        let json = serde_json::json!({
            "id": last,
            "at": at,
            "session_id": "",
            "event": "resync",
            "oldest": oldest,
        });
        WireEvent {
            id: last,
            session_id: String::new(),
            event: "resync".into(),
            json: json.to_string(),
        }
    }

    /// Whether this is a `resync` marker.
    pub fn is_resync(&self) -> bool {
        self.event == "resync"
    }
}

/// What watchers ask to be watched, for the watch poll.
#[derive(Debug, Default)]
struct Watched {
    /// Sessions watched by id, with how many watchers.
    sessions: HashMap<String, usize>,
    /// Watchers of every session they may see.
    everything: usize,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    /// Made for the first watcher: its buffer is written whole when made, a cost a process
    /// nobody watches (a stdio server) need not pay at start.
    live: std::sync::OnceLock<broadcast::Sender<Arc<WireEvent>>>,
    /// The id of the last event the relay broadcast.
    delivered: AtomicU64,
    /// Whether the relay runs; taken by the relay to pause and by a new watcher to start it.
    running: tokio::sync::Mutex<bool>,
    watchers: AtomicUsize,
    /// Wakes the relay: an append, or the first watcher.
    wake: Notify,
    watched: Mutex<Watched>,
    watch_interval: Duration,
    stop: CancellationToken,
    /// The writer, awaited by [`EventHub::close`].
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    /// The broadcast to this process's watchers.
    fn live(&self) -> &broadcast::Sender<Arc<WireEvent>> {
        self.live.get_or_init(|| broadcast::channel(LIVE_BUFFER).0)
    }
}

/// A cheap handle to this process's event stream.
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

impl EventHub {
    /// Start publishing `registry`'s events to its store and serving them to watchers, until
    /// `stop` fires; watched sessions' Blenders are asked for changes every
    /// `watch_interval`.
    pub fn start(registry: Registry, watch_interval: Duration, stop: CancellationToken) -> Self {
        // Subscribed before anything else runs: no event of this registry is missed.
        let events = registry.subscribe();
        let hub = EventHub {
            inner: Arc::new(Inner {
                registry,
                live: std::sync::OnceLock::new(),
                delivered: AtomicU64::new(0),
                running: tokio::sync::Mutex::new(false),
                watchers: AtomicUsize::new(0),
                wake: Notify::new(),
                watched: Mutex::new(Watched::default()),
                watch_interval: watch_interval.max(Duration::from_millis(50)),
                stop,
                writer: Mutex::new(None),
            }),
        };
        let writer = tokio::spawn(write(hub.inner.clone(), events));
        *lock(&hub.inner.writer) = Some(writer);
        tokio::spawn(relay(hub.inner.clone()));
        tokio::spawn(poll(hub.inner.clone()));
        hub
    }

    /// Stop: streams end, and the events published so far (a shutdown's `session_closed`)
    /// are appended to the store before this returns.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        let writer = lock(&self.inner.writer).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }

    /// The registry whose events these are.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Watchers connected to this process now.
    pub fn watchers(&self) -> usize {
        self.inner.watchers.load(Ordering::SeqCst)
    }

    /// The poll period for watched sessions.
    pub fn watch_interval(&self) -> Duration {
        self.inner.watch_interval
    }

    /// Start watching: events from now on, or after `watch.since` first.
    pub async fn watch(&self, watch: Watch) -> Watcher {
        let inner = &self.inner;
        inner.watchers.fetch_add(1, Ordering::SeqCst);
        {
            let mut w = lock(&inner.watched);
            match &watch.session {
                Some(id) => *w.sessions.entry(id.clone()).or_default() += 1,
                None => w.everything += 1,
            }
        }
        {
            let mut running = inner.running.lock().await;
            if !*running {
                // The relay was paused (nobody watched): it goes on from the log's newest
                // event; a watcher that wants older ones reads them from the log itself.
                if let Ok(page) = inner.registry.store().events_after(0, 1).await {
                    inner.delivered.fetch_max(page.newest, Ordering::SeqCst);
                }
                *running = true;
            }
        }
        inner.wake.notify_one();
        let live = inner.live().subscribe();
        let delivered = inner.delivered.load(Ordering::SeqCst);
        Watcher::new(self.clone(), watch, live, delivered)
    }

    fn unwatch(&self, session: Option<&str>) {
        let inner = &self.inner;
        {
            let mut w = lock(&inner.watched);
            match session {
                Some(id) => {
                    if let Some(n) = w.sessions.get_mut(id) {
                        *n -= 1;
                        if *n == 0 {
                            w.sessions.remove(id);
                        }
                    }
                }
                None => w.everything = w.everything.saturating_sub(1),
            }
        }
        inner.watchers.fetch_sub(1, Ordering::SeqCst);
    }

    fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Append the registry's events to the store's log, a few milliseconds' worth at a time.
async fn write(inner: Arc<Inner>, mut events: crate::session::Subscription) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let mut batch = Vec::new();
        let mut lost = 0u64;
        tokio::select! {
            e = events.recv() => match e {
                Ok(e) => batch.push(e),
                Err(RecvError::Lagged(n)) => lost += n,
                Err(RecvError::Closed) => return,
            },
            _ = inner.stop.cancelled() => {
                // The last events (the shutdown's session_closed) still go out.
                while let Ok(e) = events.try_recv() {
                    batch.push(e);
                }
                append(&inner, &batch, 0).await;
                return;
            }
        }
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while batch.len() < BATCH_MAX {
            tokio::select! {
                _ = &mut window => break,
                e = events.recv() => match e {
                    Ok(e) => batch.push(e),
                    Err(RecvError::Lagged(n)) => lost += n,
                    Err(RecvError::Closed) => break,
                },
            }
        }
        append(&inner, &batch, lost).await;
    }
}

async fn append(inner: &Inner, batch: &[Arc<Event>], lost: u64) {
    if lost > 0 {
        tracing::warn!(
            "{lost} session event(s) were published faster than the store took them and are lost"
        );
    }
    if batch.is_empty() {
        return;
    }
    let bodies: Vec<String> = batch.iter().map(|e| body_of(e)).collect();
    match inner.registry.store().append_events(&bodies).await {
        Ok(_) => inner.wake.notify_one(),
        Err(e) => {
            tracing::warn!("{} session event(s) not published: {e}", bodies.len());
            let at = inner.registry.now();
            let last = inner.delivered.load(Ordering::SeqCst);
            let _ = inner
                .live()
                .send(Arc::new(WireEvent::resync(last, last + 1, at)));
        }
    }
}

/// Read the log after the relay's cursor and broadcast it, while anyone watches.
async fn relay(inner: Arc<Inner>) {
    let mut failing = false;
    // Redis tells of other processes' appends at once (pub/sub); then polling is only a
    // fallback for a missed wake-up.
    let mut pushed = inner.registry.store().event_wakeups();
    let others = if pushed.is_some() {
        PUSHED_POLL
    } else {
        OTHERS_POLL
    };
    loop {
        {
            let mut running = inner.running.lock().await;
            if inner.watchers.load(Ordering::SeqCst) == 0 {
                *running = false;
                drop(running);
                tokio::select! {
                    _ = inner.wake.notified() => continue,
                    _ = inner.stop.cancelled() => return,
                }
            }
        }
        let after = inner.delivered.load(Ordering::SeqCst);
        let mut full = false;
        match inner.registry.store().events_after(after, PAGE).await {
            Ok(page) => {
                failing = false;
                if let Some(oldest) = page.oldest
                    && after > 0
                    && oldest > after + 1
                {
                    let at = inner.registry.now();
                    let _ = inner
                        .live()
                        .send(Arc::new(WireEvent::resync(after, oldest, at)));
                }
                full = page.events.len() >= PAGE;
                for stored in &page.events {
                    let _ = inner.live().send(Arc::new(WireEvent::from_stored(stored)));
                    inner.delivered.store(stored.id, Ordering::SeqCst);
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("the event log could not be read: {e}");
                }
                failing = true;
            }
        }
        if full {
            continue;
        }
        let wait = if failing {
            Duration::from_secs(1)
        } else {
            others
        };
        let woken = async {
            match pushed.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = woken => {}
            _ = tokio::time::sleep(wait) => {}
            _ = inner.stop.cancelled() => return,
        }
    }
}

/// Ask watched sessions' Blenders for changes every watch interval.
async fn poll(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.watch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = inner.stop.cancelled() => return,
        }
        let ids: Vec<String> = {
            let w = lock(&inner.watched);
            if w.everything > 0 {
                inner.registry.live_ids()
            } else {
                w.sessions.keys().cloned().collect()
            }
        };
        if ids.is_empty() {
            continue;
        }
        let polls = ids.iter().map(|id| inner.registry.poll_state(id));
        futures::future::join_all(polls).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_body_gets_its_id_first() {
        let stored = StoredEvent {
            id: 7,
            body: r#"{"at":1.5,"session_id":"s","event":"command_started","tool":"t"}"#.into(),
        };
        let wire = WireEvent::from_stored(&stored);
        assert_eq!(wire.id, 7);
        assert_eq!(wire.session_id, "s");
        assert_eq!(wire.event, "command_started");
        let v: serde_json::Value = serde_json::from_str(&wire.json).expect("valid JSON");
        assert_eq!(v["id"], 7);
        assert_eq!(v["tool"], "t");
        assert!(wire.json.starts_with("{\"id\":7,"));
    }

    #[test]
    fn an_empty_body_still_makes_valid_json() {
        let wire = WireEvent::from_stored(&StoredEvent {
            id: 1,
            body: "{}".into(),
        });
        assert_eq!(wire.json, "{\"id\":1}");
    }

    #[test]
    fn a_resync_marker_says_what_was_lost() {
        let m = WireEvent::resync(4, 10, 2.0);
        assert!(m.is_resync());
        let v: serde_json::Value = serde_json::from_str(&m.json).expect("valid JSON");
        assert_eq!(v["oldest"], 10);
        assert_eq!(v["session_id"], "");
    }
}
