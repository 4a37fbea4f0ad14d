//! Reading Blender's changes while nobody runs a command: the event stream's watch poll
//! asks a watched session's Blender for what changed since the session's journal cursor
//! (one small request, O(changes)) and applies it like a command's state report, so a
//! change made in Blender's own UI or through another connection is published as
//! `state_changed`. No history entry is written: nothing was asked of Blender but its state.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::live::Live;
use super::store::lock;
use super::{Registry, SessionError};

impl Registry {
    /// Now, on the registry's clock (Unix seconds).
    pub fn now(&self) -> f64 {
        self.records().clock().now()
    }

    /// Ids of the sessions open in this process.
    pub fn live_ids(&self) -> Vec<String> {
        self.live().keys().map(|k| k.to_string()).collect()
    }

    /// Bring session `id`'s tracked state up to date from Blender, if its link is free now.
    /// Returns whether the state changed. A session busy with a command is left alone (the
    /// command reports the state itself), as is one with state tracking off, one whose
    /// cancelled command Blender may still be running, and one not open in this process.
    pub async fn poll_state(&self, id: &str) -> bool {
        if !self.config().track_state {
            return false;
        }
        let Some(live) = self.live().get(id).cloned() else {
            return false;
        };
        if live.in_flight() > 0 || live.closed.is_cancelled() || live.unfinished().is_some() {
            return false;
        }
        let Ok(mut slot) = live.link.try_lock() else {
            return false;
        };
        let mut link = match self.ready_link(&live, &mut slot).await {
            Ok(link) => link,
            Err(_) => return false,
        };
        let cursor = lock(&live.record).state.cursor.clone();
        let timeout = self.config().command_timeout;
        let read = tokio::select! {
            biased;
            _ = live.closed.cancelled() => None,
            r = tokio::time::timeout(timeout, link.read_state(cursor.as_ref())) => Some(r),
        };
        let update = match read {
            Some(Ok(Ok(update))) => update,
            Some(Ok(Err(e))) => {
                self.records().connection_down(&live.record, e.to_string());
                return false;
            }
            Some(Err(_)) => {
                self.records().connection_down(
                    &live.record,
                    format!("the state read got no reply within {timeout:?}"),
                );
                return false;
            }
            None => return false,
        };
        if live.closed.is_cancelled() {
            link.close().await;
            return false;
        }
        *slot = Some(link);
        let Some(update) = update else {
            return false;
        };
        let Some(blob) = self.records().state_read(&live.record, &update) else {
            return false;
        };
        self.store_polled_state(&live, blob).await;
        true
    }

    /// A page of session `id`'s tracked object names that contain `q` (case-insensitive;
    /// empty: all), `limit` from `offset`, and how many match in all.
    pub async fn find_objects(
        &self,
        id: &str,
        q: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<String>, usize), SessionError> {
        let q = q.trim().to_lowercase();
        let pick = |names: &mut dyn Iterator<Item = &String>| {
            let mut page = Vec::new();
            let mut matched = 0usize;
            for name in names {
                if q.is_empty() || name.to_lowercase().contains(&q) {
                    if matched >= offset && page.len() < limit {
                        page.push(name.clone());
                    }
                    matched += 1;
                }
            }
            (page, matched)
        };
        let live = self.live().get(id).cloned();
        if let Some(live) = live {
            let record = lock(&live.record);
            return Ok(pick(&mut record.state.objects.iter()));
        }
        let stored = self.stored(id).await?;
        let state = super::stored::state_of(&stored);
        Ok(pick(&mut state.objects.iter()))
    }

    async fn store_polled_state(&self, live: &Arc<Live>, blob: crate::store::StateBlob) {
        let now = self.records().clock().now();
        match self.store().set_state(&live.id, blob, now).await {
            Ok(true) => {
                live.state_version.fetch_add(1, Ordering::SeqCst);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("session {}: the polled state was not stored: {e}", live.id),
        }
    }
}
