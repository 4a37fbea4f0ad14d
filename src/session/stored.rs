//! The registry's operations on stored sessions: the views tools show (info, history, list,
//! read from the session store so every process sees the same), overwriting the state,
//! closing (once across processes), idle cleanup and pruning on the store, and recovering
//! the entries of commands whose server died.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Selection;
use crate::store::{HistoryPage, Status, StoredSession, holder_gone};

use super::error::SessionError;
use super::events::CloseReason;
use super::history::History;
use super::live::Live;
use super::record::{SessionHistory, SessionInfo, SessionRecord, SessionState, SharedWith};
use super::registry::Registry;
use super::store::{lock, state_blob};
use super::tracked::OBJECTS_PAGE;

/// Tracked objects shown per session in a page of `list_sessions`.
pub const LIST_OBJECTS_SAMPLE: usize = 10;

/// The state kept in a stored session, with its last command and result.
pub(super) fn state_of(stored: &StoredSession) -> SessionState {
    let mut state: SessionState = stored
        .state
        .as_deref()
        .and_then(|text| match serde_json::from_str(text) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("session {}: the stored state is unreadable: {e}", stored.id);
                None
            }
        })
        .unwrap_or_default();
    state.last_command.clone_from(&stored.last_command);
    state.last_result.clone_from(&stored.last_result);
    state
}

/// This process's copy of a stored session's record (its history stays in the store).
pub(super) fn record_of(stored: &StoredSession, history_limit: usize) -> SessionRecord {
    let mut record = SessionRecord::new(
        stored.id.clone(),
        stored.target.clone(),
        stored.created_at,
        history_limit,
    );
    record.last_activity = stored.last_activity;
    record.state = state_of(stored);
    record.history = History::new(0);
    record.history.count(stored.command_count);
    record.closed = stored.status == Status::Closed;
    record
}

impl Registry {
    /// A stored session as `get_session_info` shows it, with this process's connection facts.
    fn info_from(&self, stored: &StoredSession, live: Option<&Arc<Live>>) -> SessionInfo {
        self.info_page_from(stored, live, 0, OBJECTS_PAGE)
    }

    /// [`Self::info_from`] with `limit` tracked objects from `offset`.
    fn info_page_from(
        &self,
        stored: &StoredSession,
        live: Option<&Arc<Live>>,
        offset: usize,
        limit: usize,
    ) -> SessionInfo {
        let now = self.records().clock().now();
        let mut record = record_of(stored, 0);
        let busy = match live {
            Some(l) => {
                record.connection = lock(&l.record).connection.clone();
                l.in_flight() > 0
            }
            None => false,
        };
        if stored.status == Status::Closed {
            record.connection.connected = false;
        }
        let mut info = record.info_page(now, busy, offset, limit);
        info.history_kept = stored.history_kept as usize;
        info.history_dropped = stored.history_dropped();
        info.command_count = stored.command_count;
        info.status = stored.status;
        info.name.clone_from(&stored.name);
        info.owner.clone_from(&stored.owner);
        info.shared_with = stored
            .shares
            .iter()
            .map(|s| SharedWith {
                user: s.user.clone(),
                access: s.access.as_str().into(),
            })
            .collect();
        info.closed_at = stored.closed.map(|c| c.0);
        info
    }

    /// Read a session from the store, first recovering its entries when its lease holder
    /// is gone or its lease expired (a server that died mid-command).
    pub(super) async fn stored(&self, id: &str) -> Result<StoredSession, SessionError> {
        let store = self.store();
        let stored = store
            .get(id)
            .await?
            .ok_or_else(|| SessionError::not_found(id))?;
        let now = self.records().clock().now();
        let stale = stored
            .lease
            .as_ref()
            .is_some_and(|l| l.until <= now || holder_gone(&l.holder));
        if !stale {
            return Ok(stored);
        }
        store.recover(Some(id), now, &holder_gone).await?;
        store
            .get(id)
            .await?
            .ok_or_else(|| SessionError::not_found(id))
    }

    /// Find a session: its info (the design's `get_session`).
    pub async fn get_session(&self, id: &str) -> Result<SessionInfo, SessionError> {
        self.get_session_info(id).await
    }

    /// A session's info (the design's session structure); closed sessions too, until pruned.
    pub async fn get_session_info(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let stored = self.stored(id).await?;
        let live = self.live().get(id).cloned();
        Ok(self.info_from(&stored, live.as_ref()))
    }

    /// [`Registry::get_session_info`] with `limit` tracked objects from `offset`.
    pub async fn get_session_info_page(
        &self,
        id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<SessionInfo, SessionError> {
        let stored = self.stored(id).await?;
        let live = self.live().get(id).cloned();
        Ok(self.info_page_from(&stored, live.as_ref(), offset, limit))
    }

    /// A session's newest `limit` history entries (all kept when `None`); closed sessions
    /// too, until pruned.
    pub async fn get_session_history(
        &self,
        id: &str,
        limit: Option<usize>,
    ) -> Result<SessionHistory, SessionError> {
        self.stored(id).await?;
        let HistoryPage {
            entries,
            total,
            dropped,
        } = self
            .store()
            .history(id, limit)
            .await?
            .ok_or_else(|| SessionError::not_found(id))?;
        Ok(SessionHistory {
            session_id: id.to_owned(),
            entries,
            total,
            dropped,
        })
    }

    /// Info of every open session on the store (this process's or not), oldest first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        self.list_sessions_with(false).await
    }

    /// Info of the open sessions `viewer` may see (owns, or are shared with it), oldest
    /// first.
    pub async fn list_sessions_for(&self, viewer: &str) -> Result<Vec<SessionInfo>, SessionError> {
        let stored = self.store().list(false).await?;
        let live = self.live().clone();
        Ok(stored
            .iter()
            .filter(|s| s.access_of(viewer).is_some())
            .map(|s| self.info_from(s, live.get(s.id.as_str())))
            .collect())
    }

    /// One page of the open sessions on the store that `viewer` may see (all when `None`),
    /// `limit` from `offset`, oldest first, each with a sample of [`LIST_OBJECTS_SAMPLE`]
    /// tracked objects, and how many there are.
    pub async fn list_sessions_page(
        &self,
        offset: usize,
        limit: usize,
        viewer: Option<&str>,
    ) -> Result<(Vec<SessionInfo>, u64), SessionError> {
        let page = self.store().list_page(offset, limit, viewer).await?;
        let live = self.live().clone();
        let infos = page
            .sessions
            .iter()
            .map(|s| self.info_page_from(s, live.get(s.id.as_str()), 0, LIST_OBJECTS_SAMPLE))
            .collect();
        Ok((infos, page.total))
    }

    /// [`Registry::list_sessions`], with the closed sessions not yet pruned when `closed`.
    pub async fn list_sessions_with(&self, closed: bool) -> Result<Vec<SessionInfo>, SessionError> {
        let stored = self.store().list(closed).await?;
        let live = self.live().clone();
        Ok(stored
            .iter()
            .map(|s| self.info_from(s, live.get(s.id.as_str())))
            .collect())
    }

    /// Overwrite parts of a session's recorded state (the design's `update_state`).
    pub async fn update_state(
        &self,
        id: &str,
        objects: Option<Vec<String>>,
        selection: Option<Selection>,
    ) -> Result<(), SessionError> {
        let live = self.find(id).await?;
        self.records().set_state(&live.record, objects, selection);
        let blob = state_blob(&mut lock(&live.record).state);
        let now = self.records().clock().now();
        if !self.store().set_state(id, blob, now).await? {
            return Err(SessionError::Closed(id.to_owned()));
        }
        Ok(())
    }

    /// Close a session, in the store for every process: a command in flight on it here
    /// ends with [`SessionError::SessionClosed`], and its connection is closed cleanly.
    /// Returns the session's final info.
    pub async fn close_session(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let now = self.records().clock().now();
        let closed = self.store().close(id, CloseReason::Closed, now).await?;
        let live = self.live().remove(id);
        if let Some(live) = &live {
            self.drop_live(live.clone(), CloseReason::Closed).await;
        }
        match closed {
            Some(stored) => Ok(self.info_from(&stored, live.as_ref())),
            None => match self.store().get(id).await? {
                Some(s) if s.status == Status::Closed => Err(SessionError::Closed(s.id)),
                _ => Err(SessionError::not_found(id)),
            },
        }
    }

    /// End this process's part of a session taken out of the live map. Never waits for a
    /// command or a connect in flight: they see `closed` and drop their link themselves.
    pub(super) async fn drop_live(&self, live: Arc<Live>, reason: CloseReason) {
        live.closed.cancel();
        let link = live.link.try_lock().ok().and_then(|mut slot| slot.take());
        if let Some(link) = link {
            link.close().await;
        }
        self.records()
            .close(&live.record, reason, live.in_flight() > 0);
        tracing::info!("✓ Session {}: {}", reason.log_text(), live.id);
    }

    /// A session found closed in the store (by another process): drop this process's part.
    pub(super) async fn closed_elsewhere(&self, id: &str) {
        let live = self.live().remove(id);
        if let Some(live) = live {
            self.drop_live(live, CloseReason::Closed).await;
        }
    }

    /// Close every session of the store idle for at least `timeout` with no command queued
    /// or running (here, or under a lease elsewhere), once across processes, and prune
    /// sessions closed longer than `--retain-closed` ago. Returns the ids this call closed.
    pub async fn cleanup_idle_sessions(&self, timeout: Duration) -> Vec<String> {
        let now = self.records().clock().now();
        let store = self.store().clone();
        let idle = match store.list_idle(now - timeout.as_secs_f64(), now).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("idle cleanup: {e}");
                Vec::new()
            }
        };
        let mut ids = Vec::new();
        for id in idle {
            let busy = self
                .live()
                .get(id.as_str())
                .is_some_and(|l| l.in_flight() > 0);
            if busy {
                continue;
            }
            match store
                .close_idle(&id, now - timeout.as_secs_f64(), now)
                .await
            {
                Ok(Some(_)) => {
                    let live = self.live().remove(id.as_str());
                    if let Some(live) = live {
                        self.drop_live(live, CloseReason::Idle).await;
                    }
                    ids.push(id);
                }
                // Closed elsewhere, or busy again since it was listed: drop the live part
                // only when the store says closed.
                Ok(None) => {
                    if let Ok(Some(s)) = store.get(&id).await
                        && s.status == Status::Closed
                    {
                        self.closed_elsewhere(&id).await;
                    }
                }
                Err(e) => tracing::warn!("idle cleanup: {e}"),
            }
        }
        let retain = self.config().retain_closed.as_secs_f64();
        match store.prune(now - retain).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("pruned {n} session(s) closed more than {retain:.0} s ago"),
            Err(e) => tracing::warn!("pruning closed sessions: {e}"),
        }
        self.swept();
        ids
    }

    /// Mark `interrupted` the entries of commands whose server stopped while they were in
    /// flight (at start, and whenever a dead holder's lease is met). Returns how many.
    pub async fn recover(&self) -> Result<u64, SessionError> {
        let now = self.records().clock().now();
        let n = self.store().recover(None, now, &holder_gone).await?;
        if n > 0 {
            tracing::warn!(
                "{n} command(s) were in flight when their server stopped: recorded as interrupted"
            );
        }
        Ok(n)
    }
}
