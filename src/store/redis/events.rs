//! The Redis store's event log: a stream `{p}events` whose entry ids are the event ids
//! (`<id>-0`) and a counter `{p}events:seq` ([`super::keys`]). Appending is one script
//! (`lua/append_events.lua`: the counter and the stream move together, so two processes'
//! ids never land out of order in the stream), reading is one script too
//! (`lua/events_after.lua`: the events, the oldest kept and the newest in one round trip).
//! Called from the [`SessionStore`](crate::store::SessionStore) methods in `ops`.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::store::{EVENT_LOG_KEEP, EventPage, StoreResult, StoredEvent};

use super::RedisStore;

impl RedisStore {
    /// Wake-ups from the append script's `PUBLISH` (the newest id), on one pub/sub
    /// connection of this store, opened on first use and again after it drops. Ends when
    /// every receiver is gone.
    pub(super) fn wakeups(&self) -> watch::Receiver<u64> {
        let mut slot = self.wakeups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = slot.as_ref() {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(0u64);
        let (client, channel) = (self.client.clone(), self.keys.events_channel());
        let store = self.location.clone();
        tokio::spawn(async move {
            let mut failing = false;
            while !tx.is_closed() {
                let pubsub = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match pubsub.await {
                    Ok(pubsub) => {
                        failing = false;
                        // Whatever was published while this connection was down: read it.
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                        let mut messages = pubsub.into_on_message();
                        loop {
                            tokio::select! {
                                m = messages.next() => match m {
                                    Some(m) => {
                                        let id = m.get_payload::<String>().ok()
                                            .and_then(|p| p.parse().ok());
                                        tx.send_modify(|n| *n = id.unwrap_or(n.wrapping_add(1)));
                                    }
                                    None => break,
                                },
                                _ = tx.closed() => return,
                            }
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(
                                "{store}: no event wake-ups ({e}); readers poll meanwhile"
                            );
                        }
                        failing = true;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        *slot = Some(rx.clone());
        rx
    }

    /// Append `bodies` to the stream in one script; their ids.
    pub(super) async fn append_stream(&self, bodies: &[String]) -> StoreResult<Vec<u64>> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let keys = [self.keys.events(), self.keys.events_seq()];
        let ids: Vec<String> = self
            .run("appending events", |mut con| {
                let mut inv = self.scripts.append_events.prepare_invoke();
                inv.key(&keys[..])
                    .arg(EVENT_LOG_KEEP)
                    .arg(self.keys.events_channel());
                for body in bodies {
                    inv.arg(body);
                }
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        let ids = ids
            .iter()
            .map(|id| self.id(id))
            .collect::<StoreResult<Vec<u64>>>()?;
        if ids.len() != bodies.len() {
            return Err(self.corrupt(
                "appending events",
                format!("{} ids for {} events", ids.len(), bodies.len()),
            ));
        }
        Ok(ids)
    }

    /// The events above `after` (at most `limit`) and the bounds, in one script.
    pub(super) async fn stream_after(&self, after: u64, limit: usize) -> StoreResult<EventPage> {
        let keys = [self.keys.events(), self.keys.events_seq()];
        // No id is above u64::MAX: only the bounds are read then.
        let (from, limit) = match after.checked_add(1) {
            Some(from) => (from, limit),
            None => (after, 0),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let reply: Vec<String> = self
            .run("reading events", |mut con| {
                let mut inv = self.scripts.events_after.prepare_invoke();
                inv.key(&keys[..]).arg(from).arg(limit);
                async move { inv.invoke_async(&mut con).await }
            })
            .await?;
        let mut reply = reply.into_iter();
        let (Some(newest), Some(oldest)) = (reply.next(), reply.next()) else {
            return Err(self.corrupt("reading events", "a short reply".into()));
        };
        let rest: Vec<String> = reply.collect();
        if !rest.len().is_multiple_of(2) {
            return Err(self.corrupt("reading events", "an id without its body".into()));
        }
        let mut events = Vec::with_capacity(rest.len() / 2);
        for pair in rest.chunks_exact(2) {
            events.push(StoredEvent {
                id: self.id(&pair[0])?,
                body: pair[1].clone(),
            });
        }
        Ok(EventPage {
            events,
            oldest: match oldest.as_str() {
                "" => None,
                o => Some(self.id(o)?),
            },
            newest: self.id(&newest)?,
        })
    }

    /// An event id as the scripts return it.
    fn id(&self, text: &str) -> StoreResult<u64> {
        text.parse()
            .map_err(|_| self.corrupt("reading events", format!("the event id {text:?}")))
    }
}
