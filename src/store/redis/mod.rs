//! The Redis store (`--store redis://…` or `rediss://…`): session records in a Redis 6+
//! server shared by server processes on any number of machines.
//!
//! It talks through the `redis` crate's tokio connection manager: one multiplexed connection,
//! replaced by itself when it breaks. Every trait method is one round trip — one Lua script
//! for each multi-key change (atomic on the server), a `MULTI` for a consistent read — under
//! a timeout (`op_timeout`, within the command timeout), so a Redis that is down or hangs
//! fails the call within that time with an error naming the store, and the command is not
//! sent. When Redis is back, the next call connects again.
//!
//! - [`keys`]: the key layout under the prefix.
//! - [`record`]: a record as the fields of its hash.
//! - `ops`: the [`SessionStore`](super::SessionStore) methods; `recover`: interrupted entries;
//!   `events`: the event log.
//! - `lua/*.lua`: the scripts.

mod events;
pub mod keys;
mod listing;
mod ops;
pub mod record;
mod recover;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::open::redacted;
use super::{StoreError, StoreKind, StoreLocation, StoreResult};

pub use keys::{DEFAULT_PREFIX, Keys, SCHEMA_VERSION};

/// Settings of a Redis store.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS).
    pub url: String,
    /// The prefix of every key (`--store-prefix`).
    pub prefix: String,
    /// History entries kept per session (`--history-limit`).
    pub history_limit: usize,
    /// The most one store call may take, connecting included.
    pub op_timeout: Duration,
}

/// The scripts, loaded by Redis on first use (EVALSHA, EVAL's body on `NOSCRIPT`, so a
/// restarted Redis loads them again by itself).
#[derive(Debug)]
struct Scripts {
    create: Script,
    append: Script,
    finish: Script,
    lease: Script,
    set_state: Script,
    close: Script,
    idle: Script,
    prune: Script,
    interrupt: Script,
    migrate: Script,
    share: Script,
    append_events: Script,
    events_after: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            create: Script::new(include_str!("lua/create.lua")),
            append: Script::new(include_str!("lua/append.lua")),
            finish: Script::new(include_str!("lua/finish.lua")),
            lease: Script::new(include_str!("lua/lease.lua")),
            set_state: Script::new(include_str!("lua/set_state.lua")),
            close: Script::new(include_str!("lua/close.lua")),
            idle: Script::new(include_str!("lua/idle.lua")),
            prune: Script::new(include_str!("lua/prune.lua")),
            interrupt: Script::new(include_str!("lua/interrupt.lua")),
            migrate: Script::new(include_str!("lua/migrate.lua")),
            share: Script::new(include_str!("lua/share.lua")),
            append_events: Script::new(include_str!("lua/append_events.lua")),
            events_after: Script::new(include_str!("lua/events_after.lua")),
        }
    }
}

/// Session records in Redis.
pub struct RedisStore {
    location: StoreLocation,
    keys: Keys,
    con: ConnectionManager,
    scripts: Scripts,
    history_limit: usize,
    op_timeout: Duration,
    /// For the pub/sub connection of event wake-ups.
    client: redis::Client,
    wakeups: std::sync::Mutex<Option<tokio::sync::watch::Receiver<u64>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("location", &self.location)
            .field("history_limit", &self.history_limit)
            .finish()
    }
}

impl RedisStore {
    /// Connect to the Redis at `config.url` and check (or write, on an empty database) the
    /// layout version under the prefix, bringing an older layout to this one. Fails, naming
    /// the store, when Redis cannot be reached within `op_timeout`, when the URL is not a
    /// Redis URL, or when the prefix holds a layout this program does not know.
    pub async fn open(config: RedisConfig) -> StoreResult<Self> {
        let location = StoreLocation::new(
            StoreKind::Redis,
            format!("{} (prefix {})", redacted(&config.url), config.prefix),
        );
        let client =
            redis::Client::open(config.url.as_str()).map_err(|e| StoreError::Unsupported {
                store: location.clone(),
                detail: format!("not a Redis URL (redis://host:port/db or rediss://…): {e}"),
            })?;
        // One connection attempt per reconnect, each bounded: a Redis that is down fails a
        // call at once (and the next call tries again) instead of queueing it behind retries.
        let manager = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(config.op_timeout))
            .set_response_timeout(Some(config.op_timeout));
        let con =
            ConnectionManager::new_lazy_with_config(client.clone(), manager).map_err(|e| {
                StoreError::Unreachable {
                    store: location.clone(),
                    detail: e.to_string(),
                }
            })?;
        let store = RedisStore {
            location,
            keys: Keys::new(config.prefix),
            con,
            scripts: Scripts::new(),
            history_limit: config.history_limit,
            op_timeout: config.op_timeout,
            client,
            wakeups: std::sync::Mutex::new(None),
        };
        store.check_schema().await?;
        Ok(store)
    }

    /// The key layout in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let key = self.keys.schema();
        let found: Option<String> = self
            .run("reading the layout version", |mut con| {
                let key = key.clone();
                async move {
                    // Write it when absent (an empty prefix), then read what is there.
                    let (v,): (Option<String>,) = redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg(&key)
                        .arg(SCHEMA_VERSION)
                        .arg("NX")
                        .ignore()
                        .get(&key)
                        .query_async(&mut con)
                        .await?;
                    Ok(v)
                }
            })
            .await?;
        let found = match found.as_deref() {
            Some("1") => self.migrate().await?,
            _ => found,
        };
        let Some(found) = found else {
            return Err(self.failed("reading the layout version", "it vanished".into()));
        };
        match found.parse::<i64>() {
            Ok(v) if v == SCHEMA_VERSION => Ok(()),
            Ok(v) if v > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                store: self.location.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            _ => Err(StoreError::NotADatabase {
                store: self.location.clone(),
                detail: format!(
                    "the key {key} holds {found:?}, not a layout version of this program; choose another --store-prefix"
                ),
            }),
        }
    }

    /// Bring layout 1 to this one ([`keys`]); returns the version found after.
    async fn migrate(&self) -> StoreResult<Option<String>> {
        let k = &self.keys;
        let keys = [k.schema(), k.names_v1(), k.open()];
        self.run("migrating the layout", |mut con| {
            let mut inv = self.scripts.migrate.prepare_invoke();
            inv.key(&keys[..]).arg(k.prefix()).arg(SCHEMA_VERSION);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
    }

    /// Run one store call: `call` gets a handle on the shared connection. A call refused
    /// before anything was sent (the manager's last connection attempt had failed) is tried
    /// once more, on the connection the manager opens now; nothing sent is ever re-sent.
    /// The whole is bounded by `op_timeout`.
    async fn run<T, F, Fut>(&self, what: &'static str, call: F) -> StoreResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            match call(self.con.clone()).await {
                Err(e) if not_sent(&e) => call(self.con.clone()).await,
                other => other,
            }
        };
        match tokio::time::timeout(self.op_timeout, attempt).await {
            Err(_) => Err(StoreError::TimedOut {
                store: self.location.clone(),
                what,
                waited_ms: u64::try_from(self.op_timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            Ok(Err(e)) => Err(self.error(what, e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// A Redis error as a store error: connection trouble is `Unreachable`, the rest
    /// (a read-only replica, out of memory, a key of another type) is `Failed`.
    fn error(&self, what: &'static str, e: RedisError) -> StoreError {
        if e.is_timeout() {
            StoreError::TimedOut {
                store: self.location.clone(),
                what,
                waited_ms: u64::try_from(self.op_timeout.as_millis()).unwrap_or(u64::MAX),
            }
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            StoreError::Unreachable {
                store: self.location.clone(),
                detail: format!("{what}: {e}"),
            }
        } else {
            self.failed(what, e.to_string())
        }
    }

    fn failed(&self, what: &'static str, detail: String) -> StoreError {
        StoreError::Failed {
            store: self.location.clone(),
            what,
            detail,
        }
    }

    fn corrupt(&self, what: &'static str, detail: String) -> StoreError {
        StoreError::Corrupt {
            store: self.location.clone(),
            what,
            detail,
        }
    }
}

/// Whether `e` says the request never left this process: the connection could not be made.
fn not_sent(e: &RedisError) -> bool {
    e.is_connection_refusal()
}
