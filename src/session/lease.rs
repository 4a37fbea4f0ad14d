//! The per-session lease in the store: commands of one session never overlap, even from
//! two processes. A command takes the lease and writes its entry as `running` in one store
//! step before anything goes to Blender, keeps the lease renewed while it runs (so a crashed
//! holder blocks the session for one lease time at most), and gives it back when its entry
//! is completed. A command that finds the lease held waits within its timeout.

use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use crate::store::{BeginCommand, Begun, holder_gone};

use super::error::SessionError;
use super::history::HistoryEntry;
use super::live::Live;
use super::registry::Registry;

/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// How often a running command renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// The longest pause between two tries for a held lease.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Waits shorter than this are not worth telling.
const NOTEWORTHY_WAIT: Duration = Duration::from_millis(100);

/// A lease taken for one command, with its entry written as running.
#[derive(Debug)]
pub(super) struct Taken {
    /// The entry's sequence number.
    pub(super) seq: u64,
    /// Whether this process's copy of the state is older than the store's.
    pub(super) stale_state: bool,
    /// What to tell about waiting for another process, when it was long enough to matter.
    pub(super) note: Option<String>,
    renew: AbortHandle,
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

impl Registry {
    /// Take the session's lease and write `entry` as running, waiting while another
    /// process holds the lease, until `deadline`, a cancellation or the session's close.
    pub(super) async fn take_lease(
        &self,
        live: &Live,
        entry: &HistoryEntry,
        cancel: &tokio_util::sync::CancellationToken,
        deadline: Instant,
    ) -> Result<Taken, SessionError> {
        let started = Instant::now();
        let store = self.store().clone();
        let mut pause = Duration::from_millis(2);
        // Whether another holder's lease made this call wait (a slow store alone is not
        // worth a note to the model).
        let mut leased_by_other = false;
        loop {
            let now = self.records().clock().now();
            let begin = BeginCommand {
                holder: self.holder().to_owned(),
                now,
                lease_until: now + LEASE_TTL.as_secs_f64(),
                entry: entry.clone(),
            };
            let holder = match store.begin_command(&live.id, begin).await? {
                Begun::Started { seq, state_version } => {
                    let stale_state = live.state_version.load(std::sync::atomic::Ordering::SeqCst)
                        != state_version;
                    let waited = started.elapsed();
                    let note = (leased_by_other && waited >= NOTEWORTHY_WAIT).then(|| {
                        format!(
                            "Another server process sharing this session was running a command: this call waited {:.1} s for it before being sent.",
                            waited.as_secs_f64()
                        )
                    });
                    return Ok(Taken {
                        seq,
                        stale_state,
                        note,
                        renew: self.spawn_renewal(live),
                    });
                }
                Begun::Closed => {
                    self.closed_elsewhere(&live.id).await;
                    return Err(SessionError::Closed(live.id.to_string()));
                }
                Begun::Missing => {
                    self.closed_elsewhere(&live.id).await;
                    return Err(SessionError::not_found(&live.id));
                }
                Begun::Leased(lease) => lease.holder,
            };
            leased_by_other = true;
            if holder_gone(&holder) {
                // Its process died: take over at once rather than waiting out the lease.
                store.recover(Some(&live.id), now, &holder_gone).await?;
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SessionError::LeaseTimeout {
                    id: live.id.to_string(),
                    holder,
                    waited: started.elapsed(),
                });
            }
            tokio::select! {
                biased;
                _ = live.closed.cancelled() => return Err(SessionError::SessionClosed { id: live.id.to_string(), sent: false }),
                _ = cancel.cancelled() => return Err(SessionError::Cancelled { sent: false }),
                _ = tokio::time::sleep(pause.min(left)) => {}
            }
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Renew the session's lease every [`RENEW_EVERY`] until the returned handle aborts.
    fn spawn_renewal(&self, live: &Live) -> AbortHandle {
        let (store, id, holder, clock) = (
            self.store().clone(),
            live.id.clone(),
            self.holder().to_owned(),
            *self.records().clock(),
        );
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RENEW_EVERY);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let until = clock.now() + LEASE_TTL.as_secs_f64();
                match store.renew_lease(&id, &holder, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("session {id}: the lease was lost while a command ran");
                        break;
                    }
                    Err(e) => tracing::warn!("session {id}: renewing the lease: {e}"),
                }
            }
        })
        .abort_handle()
    }
}
