//! The Redis store's event log: a stream `{p}events` whose entry ids are the event ids
//! (`<id>-0`) and a counter `{p}events:seq` ([`super::keys`]). Appending is one script
//! (`lua/append_events.lua`: the counter and the stream move together, so two processes'
//! ids never land out of order in the stream), reading is one script too
//! (`lua/events_after.lua`: the events, the oldest kept and the newest in one round trip).
//! Called from the [`SessionStore`](crate::store::SessionStore) methods in `ops`.

use crate::store::{EVENT_LOG_KEEP, EventPage, StoreResult, StoredEvent};

use super::RedisStore;

impl RedisStore {
    /// Append `bodies` to the stream in one script; their ids.
    pub(super) async fn append_stream(&self, bodies: &[String]) -> StoreResult<Vec<u64>> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let keys = [self.keys.events(), self.keys.events_seq()];
        let ids: Vec<String> = self
            .run("appending events", |mut con| {
                let mut inv = self.scripts.append_events.prepare_invoke();
                inv.key(&keys[..]).arg(EVENT_LOG_KEEP);
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
