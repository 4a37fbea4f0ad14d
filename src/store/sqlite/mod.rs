//! The SQLite store (the default): one file shared by every process of one machine.
//!
//! Each store owns one connection, behind a mutex, and one dedicated thread fed through a
//! channel: the connection's prepared-statement cache is reused by every call, and this
//! process's writes are serialized before they reach SQLite, which takes one writer at a
//! time anyway. Across processes, WAL mode and the busy timeout ([`schema::BUSY_TIMEOUT`])
//! share the file.
//!
//! The command path's own writes (a command's running entry, its completion) run inline on
//! the caller's task when the connection is free, with a zero busy timeout: such a
//! transaction is a few page writes into the WAL (no fsync under `synchronous = NORMAL`),
//! 20–40 µs, cheaper than the two thread hops (and their wake-ups) a trip to the thread
//! costs. Anything that would wait — the connection busy on this process's thread, the file
//! locked by another process — goes to the thread instead, so no executor thread ever waits
//! on a lock; every other call always goes to the thread.
//!
//! The file is made 0600 in a directory made 0700 on Unix (on Windows it gets the default
//! ACL of the user's local app-data directory, readable by that user and administrators).
//! A file that is not ours, or is newer, is refused before anything is written to it.

mod events;
mod ops;
mod row;
pub mod schema;
mod sharing;
mod upkeep;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{StoreError, StoreKind, StoreLocation, StoreResult};

/// Work for the store's thread.
type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// What the store's thread owns.
#[derive(Debug)]
struct Db {
    conn: Connection,
    store: StoreLocation,
    history_limit: usize,
}

/// Sessions in an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    location: StoreLocation,
    path: PathBuf,
    /// The connection, shared by the thread and the inline path.
    db: Arc<Mutex<Db>>,
    jobs: mpsc::Sender<Job>,
}

/// Where the store file is by default: `$XDG_STATE_HOME/blender-session-mcp/sessions.db`
/// (`~/.local/state/…`) on Linux, the local application-data directory elsewhere
/// (`~/Library/Application Support/blender-session-mcp/`, `%LOCALAPPDATA%\blender-session-mcp\data\`).
pub fn default_path() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "blender-session-mcp")?;
    let dir = dirs
        .state_dir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
    Some(dir.join("sessions.db"))
}

impl SqliteStore {
    /// Open (creating when missing) the store at `path`, keeping at most `history_limit`
    /// entries per session. Refuses, untouched, a file that is not a session database of
    /// this program or has a newer schema.
    pub fn open(path: &Path, history_limit: usize) -> StoreResult<Self> {
        let store = StoreLocation::new(StoreKind::Sqlite, path.display().to_string());
        schema::check_header(path, &store)?;
        create_file(path, &store)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|e| StoreError::Unreachable {
                store: store.clone(),
                detail: format!("the file cannot be opened: {e}"),
            })?;
        schema::prepare(&mut conn, &store)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let db = Arc::new(Mutex::new(Db {
            conn,
            store: store.clone(),
            history_limit,
        }));
        let shared = db.clone();
        std::thread::Builder::new()
            .name("bsm-sqlite".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A job that panicked left nothing half-done: its transaction rolled
                    // back when it unwound.
                    job(&mut shared.lock().unwrap_or_else(|e| e.into_inner()));
                }
            })
            .map_err(|e| StoreError::Failed {
                store: store.clone(),
                what: "starting the store's thread",
                detail: e.to_string(),
            })?;
        Ok(SqliteStore {
            location: store,
            path: path.to_path_buf(),
            db,
            jobs,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the store's thread and wait for its result.
    async fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Db) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = tx.send(f(db));
        });
        let gone = || StoreError::Failed {
            store: self.location.clone(),
            what,
            detail: "the store's thread stopped".into(),
        };
        self.jobs.send(job).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Run `f` right here when the connection is free and the file is not locked, else on
    /// the store's thread (see the module's note). `f` must be one transaction: a try that
    /// finds the file locked has rolled back and is run again on the thread.
    async fn call_inline<T: Send + 'static>(
        &self,
        what: &'static str,
        mut f: impl FnMut(&mut Db) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        if let Ok(mut db) = self.db.try_lock() {
            let db = &mut *db;
            let quick = db.conn.busy_timeout(std::time::Duration::ZERO).is_ok();
            let result = quick.then(|| f(db));
            // The thread's calls wait for other processes as long as they always did.
            if let Err(e) = db.conn.busy_timeout(schema::BUSY_TIMEOUT) {
                tracing::warn!("{}: the busy timeout could not be set: {e}", self.location);
            }
            match result {
                Some(Err(StoreError::Locked { .. })) | None => {}
                Some(done) => return done,
            }
        }
        self.call(what, f).await
    }
}

/// Create the file (0600) and its directory (0700) when missing; never truncates.
fn create_file(path: &Path, store: &StoreLocation) -> StoreResult<()> {
    let unreachable = |what: &str, e: std::io::Error| StoreError::Unreachable {
        store: store.clone(),
        detail: format!("{what}: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .map_err(|e| unreachable("its directory cannot be created", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unreachable("the file cannot be created", e)),
    }
}

/// A rusqlite error as a store error: locked past the busy timeout, not a database, or a
/// failure of `what`.
pub(crate) fn map_error(
    store: &StoreLocation,
    what: &'static str,
    e: rusqlite::Error,
) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Locked {
                    store: store.clone(),
                    what,
                    waited_ms: schema::BUSY_TIMEOUT.as_millis() as u64,
                };
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return StoreError::NotADatabase {
                    store: store.clone(),
                    detail: e.to_string(),
                };
            }
            _ => {}
        }
    }
    StoreError::Failed {
        store: store.clone(),
        what,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
