//! Errors of the stores: each names the store (kind and where) and says what failed. What
//! to do about it is the MCP layer's to add (`mcp::errors`).

use std::fmt;

use serde::Serialize;

/// The kinds of store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// This process's memory.
    Memory,
    /// An SQLite file.
    Sqlite,
    /// A Redis server.
    Redis,
}

impl StoreKind {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Redis => "redis",
        }
    }
}

/// Which store, and where: shown in every store error and by `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreLocation {
    /// The kind.
    pub kind: StoreKind,
    /// Where it is: a file path, a Redis URL without its password (and its key prefix), or
    /// empty for memory.
    pub location: String,
}

impl StoreLocation {
    /// A location of `kind` at `location`.
    pub fn new(kind: StoreKind, location: impl Into<String>) -> Self {
        StoreLocation {
            kind,
            location: location.into(),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StoreKind::Memory => write!(f, "the memory store"),
            StoreKind::Sqlite => write!(f, "the SQLite store {}", self.location),
            StoreKind::Redis => write!(f, "the Redis store {}", self.location),
        }
    }
}

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store call failed. Nothing was sent to Blender for a command whose store call
/// failed before it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or opened (Redis down, a directory that cannot be
    /// created, a file that cannot be opened).
    #[error("{store} cannot be reached: {detail}")]
    Unreachable {
        /// Which store.
        store: StoreLocation,
        /// What the system said.
        detail: String,
    },
    /// The store is locked by another process for longer than the busy timeout.
    #[error("{store} is locked by another process (still after {waited_ms} ms): {what}")]
    Locked {
        /// Which store.
        store: StoreLocation,
        /// What was being done.
        what: &'static str,
        /// How long it waited.
        waited_ms: u64,
    },
    /// A read or write failed (disk full, read-only file, an I/O error).
    #[error("{store}: {what} failed: {detail}")]
    Failed {
        /// Which store.
        store: StoreLocation,
        /// What was being done (e.g. "writing a history entry").
        what: &'static str,
        /// What the store said.
        detail: String,
    },
    /// The file is not a database of this program (or is damaged); it was left untouched.
    #[error("{store} is not a session database (left untouched): {detail}")]
    NotADatabase {
        /// Which store.
        store: StoreLocation,
        /// What was found.
        detail: String,
    },
    /// The store was written by a newer version of this program; it was left untouched.
    #[error(
        "{store} has schema version {found}, newer than this program's {supported} (written by a newer blender-session-mcp); it was left untouched"
    )]
    NewerSchema {
        /// Which store.
        store: StoreLocation,
        /// The version found.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// A stored value could not be read back.
    #[error("{store}: a stored {what} could not be decoded: {detail}")]
    Corrupt {
        /// Which store.
        store: StoreLocation,
        /// What (e.g. "history entry").
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// This kind of store is not available in this build.
    #[error("{store}: {detail}")]
    Unsupported {
        /// Which store.
        store: StoreLocation,
        /// Why.
        detail: String,
    },
    /// The store did not answer within the time the command had.
    #[error("{store} did not answer within {waited_ms} ms ({what})")]
    TimedOut {
        /// Which store.
        store: StoreLocation,
        /// What was being done.
        what: &'static str,
        /// How long it waited.
        waited_ms: u64,
    },
}

impl StoreError {
    /// The store the error is about.
    pub fn store(&self) -> &StoreLocation {
        match self {
            StoreError::Unreachable { store, .. }
            | StoreError::Locked { store, .. }
            | StoreError::Failed { store, .. }
            | StoreError::NotADatabase { store, .. }
            | StoreError::NewerSchema { store, .. }
            | StoreError::Corrupt { store, .. }
            | StoreError::Unsupported { store, .. }
            | StoreError::TimedOut { store, .. } => store,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_store_and_what_failed() {
        let store = StoreLocation::new(StoreKind::Sqlite, "/tmp/x.db");
        let e = StoreError::Failed {
            store: store.clone(),
            what: "writing a history entry",
            detail: "database or disk is full".into(),
        };
        let text = e.to_string();
        assert!(text.contains("SQLite store /tmp/x.db"), "{text}");
        assert!(text.contains("writing a history entry"), "{text}");
        assert_eq!(e.store(), &store);
    }
}
