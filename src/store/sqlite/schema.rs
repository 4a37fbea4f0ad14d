//! The SQLite store's file: checks made before anything is written to it (an SQLite file of
//! this program, not newer than this program), the schema and its forward migrations,
//! numbered by `PRAGMA user_version`, and the connection settings.

use std::path::Path;

use rusqlite::Connection;

use super::super::{StoreError, StoreLocation};

/// The newest schema this program knows.
pub const SCHEMA_VERSION: i64 = 5;

/// `PRAGMA application_id` of our files ("BSM1").
pub(super) const APPLICATION_ID: i64 = 0x4253_4d31;

/// What a file starts with when it is an SQLite database.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// How long a write waits for another process's transaction before failing.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Migrations: `MIGRATIONS[n]` takes a file from version `n` to `n + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 → 1: sessions, their history (the entry as JSON, the outcome and holder of a running
    // entry apart for recovery), the lease on the session row.
    "CREATE TABLE sessions (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT,
        owner TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        created_at REAL NOT NULL,
        last_activity REAL NOT NULL,
        status TEXT NOT NULL,
        closed_at REAL,
        close_reason TEXT,
        state TEXT,
        state_version INTEGER NOT NULL DEFAULT 0,
        last_command TEXT,
        last_result TEXT,
        command_count INTEGER NOT NULL DEFAULT 0,
        history_kept INTEGER NOT NULL DEFAULT 0,
        lease_holder TEXT,
        lease_until REAL
    );
    CREATE UNIQUE INDEX sessions_open_name ON sessions(name)
        WHERE status = 'open' AND name IS NOT NULL;
    CREATE INDEX sessions_open_activity ON sessions(last_activity) WHERE status = 'open';
    CREATE INDEX sessions_closed_at ON sessions(closed_at) WHERE status = 'closed';
    CREATE INDEX sessions_created ON sessions(created_at, id);
    CREATE TABLE history (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        holder TEXT,
        entry TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX history_running ON history(session_id) WHERE outcome = 'running';",
    // 1 → 2: the tracked state in a table of its own. SQLite rewrites a whole row on any
    // update, so with the state (450 KB at 50 000 objects) in the session row every
    // command's activity and lease updates rewrote it: 5-6 ms per command at 50 000
    // objects instead of 0.1 ms. `sessions.state` stays, always NULL.
    "CREATE TABLE states (
        session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        state TEXT NOT NULL
    );
    INSERT INTO states (session_id, state) SELECT id, state FROM sessions WHERE state IS NOT NULL;
    UPDATE sessions SET state = NULL WHERE state IS NOT NULL;
    -- Every command moves last_activity twice: an index on it cost an index page in each
    -- commit, for an idle listing that a scan of the open sessions does in milliseconds.
    DROP INDEX sessions_open_activity;",
    // 2 → 3: several users. Who else may use a session, in a table of its own (the command
    // path never reads or writes it); a name is unique among one owner's open sessions;
    // an owner's open sessions found by index (counting them, listing what a user sees).
    "CREATE TABLE shares (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        access TEXT NOT NULL CHECK (access IN ('read', 'write')),
        PRIMARY KEY (session_id, user)
    ) WITHOUT ROWID;
    CREATE INDEX shares_user ON shares(user, session_id);
    DROP INDEX sessions_open_name;
    CREATE UNIQUE INDEX sessions_open_name ON sessions(owner, name)
        WHERE status = 'open' AND name IS NOT NULL;
    CREATE INDEX sessions_open_owner ON sessions(owner, created_at, id) WHERE status = 'open';",
    // 3 → 4: the event log every process on the file publishes to. AUTOINCREMENT: an id is
    // never reused, even once the rows below it are trimmed, and `sqlite_sequence` says the
    // newest ever assigned.
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL
    );",
    // 4 → 5: where a session's running entries are, in its own row: every entry with
    // `outcome = 'running'` has a seq ≥ `running_min` (NULL: none). The partial index on
    // running entries wrote an index page into both commits of every command (a third of
    // their page writes) for recovery, which now reads the sessions rows and, of the few
    // with running entries, their history from `running_min` on.
    "ALTER TABLE sessions ADD COLUMN running_min INTEGER;
    UPDATE sessions SET running_min = (SELECT min(h.seq) FROM history h
        WHERE h.session_id = sessions.id AND h.outcome = 'running');
    DROP INDEX history_running;",
];

/// Refuse a file that is not ours before anything is written to it: not an SQLite file,
/// another program's database, or a newer schema. An empty or missing file is fine.
pub fn check_header(path: &Path, store: &StoreLocation) -> Result<(), StoreError> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Unreachable {
                store: store.clone(),
                detail: format!("the file cannot be read: {e}"),
            });
        }
    };
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => {
                return Err(StoreError::Unreachable {
                    store: store.clone(),
                    detail: format!("the file cannot be read: {e}"),
                });
            }
        }
    }
    if read == 0 {
        return Ok(());
    }
    if read < head.len() || &head != SQLITE_HEADER {
        return Err(StoreError::NotADatabase {
            store: store.clone(),
            detail: "the file does not start with the SQLite header".into(),
        });
    }
    Ok(())
}

/// Set the connection up and bring the schema to [`SCHEMA_VERSION`]; refuses (writing
/// nothing) a newer schema or another program's database.
pub fn prepare(conn: &mut Connection, store: &StoreLocation) -> Result<(), StoreError> {
    let fail = |what: &'static str| {
        let store = store.clone();
        move |e: rusqlite::Error| super::map_error(&store, what, e)
    };
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(fail("setting the busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(64);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail("reading the schema version"))?;
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(fail("reading the application id"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            store: store.clone(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(fail("reading the schema"))?;
    if (version > 0 && app != APPLICATION_ID) || (version == 0 && tables > 0) {
        return Err(StoreError::NotADatabase {
            store: store.clone(),
            detail: "it is an SQLite database of another program".into(),
        });
    }
    // WAL: readers never block the writer, and several processes share the file.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(fail("switching to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!("{store}: journal mode is {mode}, not WAL");
    }
    // NORMAL in WAL mode: a commit survives a crash of the process (kill -9); only a power
    // loss may lose the last commits. FULL would add an fsync to every command.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(fail("setting the connection up"))?;
    if version < SCHEMA_VERSION {
        migrate(conn, store, version)?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection, store: &StoreLocation, from: i64) -> Result<(), StoreError> {
    let fail = |e| super::map_error(store, "migrating the schema", e);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(fail)?;
    // Another process may have migrated while we waited for the write lock.
    let now: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    if now >= SCHEMA_VERSION {
        return Ok(());
    }
    let start = usize::try_from(now.max(from)).unwrap_or(0);
    for step in &MIGRATIONS[start..] {
        tx.execute_batch(step).map_err(fail)?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(fail)?;
    tx.commit().map_err(fail)
}
