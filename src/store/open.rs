//! Choosing and opening a store from the command line's `--store` value: `sqlite` (the
//! default), `memory`, or a `redis://` / `rediss://` URL.

use std::path::PathBuf;
use std::sync::Arc;

use super::memory::MemoryStore;
use super::redis::{RedisConfig, RedisStore};
use super::sqlite::{SqliteStore, default_path};
use super::{SessionStore, StoreError, StoreKind, StoreLocation, StoreResult};

/// Which store `--store` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// An SQLite file (the default).
    Sqlite,
    /// This process's memory.
    Memory,
    /// A Redis server at this URL.
    Redis(String),
}

impl std::str::FromStr for StoreChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("sqlite") {
            Ok(StoreChoice::Sqlite)
        } else if t.eq_ignore_ascii_case("memory") {
            Ok(StoreChoice::Memory)
        } else if t.starts_with("redis://") || t.starts_with("rediss://") {
            Ok(StoreChoice::Redis(t.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not a store: use sqlite, memory, or a redis:// or rediss:// URL"
            ))
        }
    }
}

/// The task opening a deferred store ([`StoreConfig::open_deferred`]): the opened store, or
/// why it could not be opened.
pub type OpeningTask = tokio::task::JoinHandle<StoreResult<Arc<dyn SessionStore>>>;

/// Everything needed to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Which store.
    pub choice: StoreChoice,
    /// The SQLite file (default: [`default_path`]).
    pub path: Option<PathBuf>,
    /// The key prefix on Redis.
    pub prefix: String,
    /// History entries kept per session.
    pub history_limit: usize,
}

/// A Redis URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(an unparsable URL)".into(),
    }
}

impl StoreConfig {
    /// The SQLite file this names: `--store-path`, or the default.
    fn sqlite_path(&self) -> StoreResult<PathBuf> {
        match &self.path {
            Some(p) => Ok(p.clone()),
            None => default_path().ok_or_else(|| StoreError::Unreachable {
                store: StoreLocation::new(StoreKind::Sqlite, "(default path)"),
                detail: "no home directory to put the default store file in; pass --store-path"
                    .into(),
            }),
        }
    }

    /// Which store this opens and where, as the opened store names itself.
    pub fn location(&self) -> StoreResult<StoreLocation> {
        Ok(match &self.choice {
            StoreChoice::Memory => StoreLocation::new(StoreKind::Memory, ""),
            StoreChoice::Sqlite => {
                StoreLocation::new(StoreKind::Sqlite, self.sqlite_path()?.display().to_string())
            }
            StoreChoice::Redis(url) => StoreLocation::new(
                StoreKind::Redis,
                format!("{} (prefix {})", redacted(url), self.prefix),
            ),
        })
    }

    /// The store, opening in the background: calls on it wait until it is open. The task
    /// ends with the opened store, or with the error that kept it from opening (which every
    /// waiting call also gets).
    pub fn open_deferred(&self) -> StoreResult<(Arc<dyn SessionStore>, OpeningTask)> {
        let (store, opening) = super::deferred::Deferred::new(self.location()?);
        let config = self.clone();
        let task = tokio::spawn(async move { opening.finish(config.open().await) });
        Ok((Arc::new(store), task))
    }

    /// Open the store.
    pub async fn open(&self) -> StoreResult<Arc<dyn SessionStore>> {
        match &self.choice {
            StoreChoice::Memory => Ok(Arc::new(MemoryStore::new(self.history_limit))),
            StoreChoice::Sqlite => {
                let path = self.sqlite_path()?;
                let limit = self.history_limit;
                // Opening reads and may migrate the file: off the executor.
                let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path, limit))
                    .await
                    .map_err(|e| StoreError::Failed {
                        store: StoreLocation::new(StoreKind::Sqlite, "?"),
                        what: "opening the store",
                        detail: e.to_string(),
                    })??;
                Ok(Arc::new(opened))
            }
            StoreChoice::Redis(url) => open_redis(url, &self.prefix, self.history_limit).await,
        }
    }
}

/// What `check` says about the store: kind, where, sessions stored, writable. `Err` (with
/// the same kind of text) when it cannot be opened or written.
pub async fn report(config: &StoreConfig) -> Result<String, String> {
    let store = config.open().await.map_err(|e| e.to_string())?;
    let stats = store.stats().await.map_err(|e| e.to_string())?;
    let text = format!(
        "{}: {} open and {} closed session(s) stored, {}",
        store.location(),
        stats.open,
        stats.closed,
        if stats.writable {
            "writable"
        } else {
            "NOT writable"
        }
    );
    if stats.writable { Ok(text) } else { Err(text) }
}

/// How long one Redis store call may take, connecting included; well within the default
/// command timeout, so a Redis that is down or hangs fails the command before Blender is asked.
pub const REDIS_OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The Redis store at `url`, keys under `prefix`.
async fn open_redis(
    url: &str,
    prefix: &str,
    history_limit: usize,
) -> StoreResult<Arc<dyn SessionStore>> {
    let store = RedisStore::open(RedisConfig {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        history_limit,
        op_timeout: REDIS_OP_TIMEOUT,
    })
    .await?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_choices_parse() {
        assert_eq!("sqlite".parse(), Ok(StoreChoice::Sqlite));
        assert_eq!("MEMORY".parse(), Ok(StoreChoice::Memory));
        assert_eq!(
            "redis://127.0.0.1:6379/0".parse(),
            Ok(StoreChoice::Redis("redis://127.0.0.1:6379/0".into()))
        );
        assert!("rediss://h".parse::<StoreChoice>().is_ok());
        assert!("postgres://x".parse::<StoreChoice>().is_err());
        assert_eq!(redacted("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
    }
}
