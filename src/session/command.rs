//! The one path every command takes, generic over the backend: mark the session busy, take
//! the session's link (so commands within a session run one at a time while sessions run in
//! parallel), make sure the keep-alive link is healthy (replacing one the peer closed while
//! idle, silently), carry out the operation once under the command timeout and the caller's
//! cancellation, and record the outcome. A link whose reply is unaccounted for (timeout,
//! cancellation, broken stream) is dropped, never reused, and the command is never re-sent.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::backend::{Answer, IdleState, Link, Operation, Output};

use super::error::SessionError;
use super::history::{HistoryEntry, Outcome};
use super::lease::Taken;
use super::live::{Live, Unfinished};
use super::registry::Registry;
use crate::store::FinishCommand;

/// A session's locked link slot.
type LinkSlot<'a> = tokio::sync::MutexGuard<'a, Option<Box<dyn Link>>>;

/// What an exchange leaves: its result, the link slot still locked (when it was taken),
/// and the cancelled command it found still unfinished, if any.
type Exchanged<'a> = (
    Result<Answer, SessionError>,
    Option<LinkSlot<'a>>,
    Option<Box<Unfinished>>,
    Option<Taken>,
);

/// Waits shorter than this are not worth telling.
const NOTEWORTHY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a command that started at `started` waited for a cancelled one before it, as a
/// note for the caller, when that was long enough to matter.
async fn waited_for(mut previous: Box<Unfinished>, started: Instant) -> Option<String> {
    // Blender answers the cancelled command before this one; its answer is noticed on
    // another socket, so allow it a moment to arrive.
    if previous.done.borrow().is_none() {
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            previous.done.changed(),
        )
        .await;
    }
    let done = (*previous.done.borrow())?;
    let waited = done.checked_duration_since(started)?;
    (waited >= NOTEWORTHY_WAIT).then(|| {
        format!(
            "Blender was still running the cancelled command (history seq {}) when this call arrived: this call waited {:.1} s for it before Blender ran it.",
            previous.seq,
            waited.as_secs_f64()
        )
    })
}

/// Who is asking, for history and cancellation.
#[derive(Debug, Clone)]
pub struct Call {
    /// The MCP tool (or API) that caused the command; recorded in history.
    pub tool: String,
    /// Fires when the caller gives up (MCP `notifications/cancelled`).
    pub cancel: CancellationToken,
    notes: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Call {
    /// A call from `tool` that is never cancelled.
    pub fn new(tool: impl Into<String>) -> Self {
        Call {
            tool: tool.into(),
            cancel: CancellationToken::new(),
            notes: Arc::default(),
        }
    }

    /// What the caller should also be told about its commands (e.g. that Blender was still
    /// running a cancelled command first), taken once.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn note(&self, note: String) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(note);
    }

    /// The same call, cancelled when `cancel` fires.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }
}

impl Registry {
    /// Carry out `op` on session `id` and record it in the session's history: the entry is
    /// written as running before anything is sent, and completed (durably) before this
    /// returns.
    pub async fn run(&self, id: &str, call: &Call, op: Operation) -> Result<Output, SessionError> {
        let busy = self.begin(id).await?;
        let live = busy.live();
        let records = self.records();
        let command = self.backend().command_name(&op);
        let arguments = self.backend().arguments(&op);
        records.command_started(&live.record, &command, &call.tool, &arguments);
        let timestamp = records.clock().now();
        let started = Instant::now();
        let mut entry = HistoryEntry {
            seq: 0,
            timestamp,
            command,
            tool: call.tool.clone(),
            arguments,
            outcome: Outcome::Running,
            result: None,
            message: None,
            duration: 0.0,
            note: None,
        };

        // The link stays locked until the entry is recorded, so history order is the order
        // the commands went over the wire.
        let (answer, link, previous, taken) = match self.backend().admit(&op) {
            Err(e) => (Err(SessionError::Backend(e)), None, None, None),
            Ok(()) => {
                tracing::info!("→ Command sent: {} (session: {id})", entry.command);
                self.exchange(live, &op, &entry, call, started).await
            }
        };
        let mut notes = Vec::new();
        if let Some(note) = taken.as_ref().and_then(|t| t.note.clone()) {
            notes.push(note);
        }
        if let Some(previous) = previous
            && let Some(note) = waited_for(previous, started).await
        {
            notes.push(note);
        }
        for note in &notes {
            call.note(note.clone());
        }
        // Blender answered (whatever it said), as opposed to never being reached or heard.
        let answered = answer.is_ok();
        let (output, recorded, state) = match answer {
            Ok(a) => (a.output.map_err(SessionError::Backend), a.recorded, a.state),
            Err(e) => (Err(e), Value::Null, None),
        };
        let duration = started.elapsed().as_secs_f64();
        let (outcome, message) = match &output {
            Ok(_) => (Outcome::Success, None),
            Err(e) => (e.outcome(), Some(e.to_string())),
        };
        tracing::info!(
            "← Response: {} ({duration:.2}s) [session: {id}]",
            outcome.as_str()
        );
        let last_result = match &message {
            None => json!({"status": "success", "result": recorded}),
            Some(m) => json!({"status": outcome.as_str(), "message": m}),
        };
        entry.outcome = outcome;
        entry.result = message.is_none().then_some(recorded);
        entry.message = message;
        entry.duration = duration;
        entry.note = (!notes.is_empty()).then(|| notes.join(" "));
        let cancelled_sent = matches!(output, Err(SessionError::Cancelled { sent: true }));
        let store_failed = matches!(output, Err(SessionError::Store(_)));
        let now = records.clock().now();
        let seq = match &taken {
            Some(t) => {
                entry.seq = t.seq;
                let blob = records.command_finished(
                    &live.record,
                    entry.clone(),
                    last_result.clone(),
                    state.as_ref(),
                    answered,
                    t.stale_state,
                );
                let wrote_state = blob.is_some();
                let finish = FinishCommand {
                    holder: self.holder().to_owned(),
                    seq: t.seq,
                    now,
                    last_command: entry.command.clone(),
                    last_result,
                    entry,
                    state: blob,
                };
                match self.store().finish_command(id, finish).await {
                    Ok(()) if wrote_state => {
                        live.state_version
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!("session {id}: {e}");
                        call.note(format!(
                            "The command ran, but its history entry could not be completed: {e}"
                        ));
                    }
                }
                t.seq
            }
            // Refused before the lease: nothing was sent. A failing store cannot take the
            // entry either.
            None if store_failed => 0,
            None => {
                let seq = match self.store().record_entry(id, now, entry.clone()).await {
                    Ok(seq) => seq.unwrap_or(0),
                    Err(e) => {
                        tracing::warn!("session {id}: {e}");
                        0
                    }
                };
                entry.seq = seq;
                records.command_finished(
                    &live.record,
                    entry,
                    last_result,
                    state.as_ref(),
                    answered,
                    false,
                );
                seq
            }
        };
        drop(taken);
        if cancelled_sent && let Some(u) = live.unfinished().as_mut() {
            u.seq = seq;
        }
        drop(link);
        self.close_if_closed(live).await;
        output
    }

    /// A session closed while one of its commands held the link: `finish` could not take the
    /// link then, so whoever releases it last closes it.
    async fn close_if_closed(&self, live: &Live) {
        if !live.closed.is_cancelled() {
            return;
        }
        let link = live.link.try_lock().ok().and_then(|mut slot| slot.take());
        if let Some(link) = link {
            link.close().await;
        }
    }

    /// Open the session's link now, if it has none, without recording a command. Never waits
    /// for anything but the session's own link; gives up when the session closes.
    pub async fn connect_session(&self, id: &str) {
        let Ok(busy) = self.begin(id).await else {
            return;
        };
        let live = busy.live();
        {
            let mut slot = tokio::select! {
                biased;
                _ = live.closed.cancelled() => return,
                slot = live.link.lock() => slot,
            };
            if slot.is_some() {
                return;
            }
            tokio::select! {
                biased;
                _ = live.closed.cancelled() => {}
                link = self.ready_link(live, &mut slot) => match link {
                    Ok(link) => *slot = Some(link),
                    Err(e) => tracing::warn!("✗ Blender not reachable for session {id}: {e}"),
                },
            }
        }
        self.close_if_closed(live).await;
    }

    /// Carry out one operation on the session's link, owning the link for the whole
    /// operation. Returns the session's link slot still locked, when it was taken.
    async fn exchange<'a>(
        &self,
        live: &'a Arc<Live>,
        op: &Operation,
        entry: &HistoryEntry,
        call: &Call,
        started: Instant,
    ) -> Exchanged<'a> {
        let command = entry.command.as_str();
        let closed = || SessionError::SessionClosed {
            id: live.id.to_string(),
            sent: false,
        };
        let mut slot = tokio::select! {
            biased;
            _ = live.closed.cancelled() => return (Err(closed()), None, None, None),
            _ = call.cancel.cancelled() => return (Err(SessionError::Cancelled { sent: false }), None, None, None),
            slot = live.link.lock() => slot,
        };
        // A command cancelled before this one may still run in Blender: this one waits for it
        // there, and says so.
        let previous = live.unfinished().take();
        // The lease, with the entry written as running, before anything goes to Blender.
        let deadline = started + self.config().command_timeout;
        let taken = match self.take_lease(live, entry, &call.cancel, deadline).await {
            Ok(t) => t,
            Err(e) => {
                *live.unfinished() = previous;
                return (Err(e), Some(slot), None, None);
            }
        };
        // The link is owned by this operation until it succeeds; if the future is dropped or
        // the operation fails, the link goes with it.
        let ready = tokio::select! {
            biased;
            _ = live.closed.cancelled() => Err(closed()),
            _ = call.cancel.cancelled() => Err(SessionError::Cancelled { sent: false }),
            link = self.ready_link(live, &mut slot) => link,
        };
        let mut link = match ready {
            Ok(link) => link,
            Err(e) => {
                // Nothing was sent: the cancelled command is still the next one's to wait for.
                *live.unfinished() = previous;
                return (Err(e), Some(slot), None, Some(taken));
            }
        };
        let timeout = self.config().command_timeout;
        // Where the session stands in Blender's change journal: the state comes back as the
        // changes since then (a short lock; the cursor is a few bytes).
        let cursor = crate::session::store::lock(&live.record)
            .state
            .cursor
            .clone();
        let cursor = cursor.as_ref();
        let result = tokio::select! {
            biased;
            _ = live.closed.cancelled() => Err(SessionError::SessionClosed { id: live.id.to_string(), sent: true }),
            _ = call.cancel.cancelled() => Err(SessionError::Cancelled { sent: true }),
            r = tokio::time::timeout(timeout, link.call(op, cursor)) => match r {
                Err(_) => Err(SessionError::Timeout { command: command.to_owned(), after: timeout }),
                Ok(Err(e)) => Err(SessionError::Backend(e)),
                Ok(Ok(answer)) => Ok(answer),
            },
        };
        let mut result = result;
        let mut broken = None;
        if let Ok(answer) = &mut result
            && answer.read_state
        {
            // The operation asked for a state read of our own: under its own timeout, and a
            // failure drops the link but never changes the operation's result.
            let read = tokio::select! {
                biased;
                _ = live.closed.cancelled() => Err("the session was closed during the state read".to_owned()),
                _ = call.cancel.cancelled() => Err("the call was cancelled during the state read".to_owned()),
                r = tokio::time::timeout(timeout, link.read_state(cursor)) => match r {
                    Err(_) => Err(format!("the state read got no reply within {timeout:?}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(state)) => Ok(state),
                },
            };
            match read {
                Ok(state) => answer.state = state,
                Err(why) => broken = Some(why),
            }
        }
        match (&result, broken) {
            (Ok(_), None) => {
                if live.closed.is_cancelled() {
                    // Closed while we finished: nobody else will close this link.
                    link.close().await;
                } else {
                    *slot = Some(link);
                }
            }
            (Ok(_), Some(why)) => {
                drop(link);
                tracing::warn!("connection of session {} dropped: {why}", live.id);
                self.records().connection_down(&live.record, why);
            }
            (Err(SessionError::Cancelled { sent: true }), _) => {
                // Blender runs the command to its end anyway. The link is never used again;
                // it only tells when Blender answered, so the next command can say how long
                // it waited for Blender.
                // A Blender that can stop it is asked to.
                if let Some(stop) = link.interrupt() {
                    tokio::spawn(stop);
                }
                let (done, rx) = tokio::sync::watch::channel(None);
                *live.unfinished() = Some(Box::new(Unfinished { seq: 0, done: rx }));
                let wait = self.config().command_timeout;
                tokio::spawn(async move {
                    let mut link = link;
                    let _ = tokio::time::timeout(wait, link.wait_reply()).await;
                    let _ = done.send(Some(std::time::Instant::now()));
                    link.close().await;
                });
                self.records()
                    .connection_down(&live.record, "the call was cancelled".into());
            }
            (Err(e), _) => {
                // Never reuse a link whose reply is unaccounted for.
                drop(link);
                self.records().connection_down(&live.record, e.to_string());
                tracing::warn!("connection of session {} dropped: {e}", live.id);
            }
        }
        (result, Some(slot), previous, Some(taken))
    }

    /// Take a healthy link out of `slot`, or open a new one if there is none or the idle one
    /// was closed by the peer. The caller puts it back after a successful use.
    pub(super) async fn ready_link(
        &self,
        live: &Live,
        slot: &mut Option<Box<dyn Link>>,
    ) -> Result<Box<dyn Link>, SessionError> {
        if let Some(mut link) = slot.take() {
            match link.probe_idle() {
                IdleState::Healthy => return Ok(link),
                other => {
                    tracing::info!(
                        "stale connection of session {} replaced ({other:?})",
                        live.id
                    )
                }
            }
        }
        let target = crate::session::store::lock(&live.record).target.clone();
        let connect = self
            .backend()
            .connect(&target, self.config().connect_timeout);
        match connect.await {
            Ok(link) => {
                self.records().connection_opened(&live.record);
                tracing::info!("✓ Blender connected for session {}", live.id);
                Ok(link)
            }
            Err(e) => {
                self.records().connection_down(&live.record, e.to_string());
                Err(SessionError::Backend(e))
            }
        }
    }
}
