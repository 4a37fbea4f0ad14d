//! WAL checkpoints on a thread of their own, off the command path.
//!
//! By itself SQLite checkpoints inside the commit that leaves the write-ahead log past
//! 1 000 pages: that commit copies the log into the database file and fsyncs it. With ~7
//! pages a command, that was one command in ~140 paying a few milliseconds (p99 of the
//! running entry's commit measured at 5.7–7.6 ms on a 2-core VM). Here the store's
//! connection does not checkpoint; it counts its commits, and every [`EVERY`] commits it
//! wakes a thread that runs a `PASSIVE` checkpoint on a connection of its own. A passive
//! checkpoint never waits for and never blocks a writer (WAL mode lets them run at once), so
//! the fsync happens beside the commands, not in one. Other processes on the file keep
//! SQLite's own checkpoints; any of them may do the work.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreLocation;

/// Commits between two checkpoints (about 400–700 WAL pages).
pub(super) const EVERY: u32 = 100;

/// A log this long (16 MiB of 4 KiB pages) is started over once copied, even if that makes
/// a writer wait (see [`checkpoint`]).
const RESTART_AT: i64 = 4096;

/// How long a restart waits for the writer before trying again at the next checkpoint.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Copy the log into the database without waiting for anyone; start a long log over.
///
/// The log starts over at its beginning only when a writer begins with all of it copied.
/// Under a steady stream of commands a commit lands during every passive checkpoint (its
/// fsync alone takes milliseconds), so the log would only grow: past [`RESTART_AT`] pages a
/// `RESTART` checkpoint copies the few pages left and holds new writers back until the log
/// is started over (one command in several hundred waits for it; a writer of this process
/// that finds the file busy goes to the store's thread, which waits).
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let (log, copied): (i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?;
    if log >= RESTART_AT && copied > 0 {
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))?;
    }
    Ok(())
}

/// Move `conn`'s checkpoints to a thread with its own connection to `path`. When the
/// thread or its connection cannot be had, `conn` keeps SQLite's own checkpoints (with a
/// warning): the store works either way.
pub(super) fn move_off(conn: &Connection, path: &Path, flags: OpenFlags, store: &StoreLocation) {
    let opened = Connection::open_with_flags(path, flags)
        .and_then(|c| c.busy_timeout(RESTART_WAIT).map(|()| c));
    let checkpointer = match opened {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{store}: checkpoints stay on the command path: {e}");
            return;
        }
    };
    // One pending wake-up is enough: a checkpoint copies whatever the log holds by then.
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("bsm-sqlite-checkpoint".into())
        .spawn({
            let store = store.clone();
            move || {
                // Ends when the store's connection (and with it the hook holding `wake`)
                // is dropped.
                while woken.recv().is_ok() {
                    if let Err(e) = checkpoint(&checkpointer) {
                        tracing::warn!("{store}: checkpointing the write-ahead log: {e}");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("{store}: checkpoints stay on the command path: {e}");
        return;
    }
    if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", 0) {
        tracing::warn!("{store}: checkpoints stay on the command path: {e}");
        return;
    }
    let mut commits = 0u32;
    conn.commit_hook(Some(move || {
        commits = commits.wrapping_add(1);
        if commits.is_multiple_of(EVERY) {
            // Full: a checkpoint is already due; gone: the thread ended (nothing to do).
            let _ = wake.try_send(());
        }
        false // let the commit go on
    }));
}
