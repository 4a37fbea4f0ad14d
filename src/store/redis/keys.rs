//! The Redis store's key layout: every key under one prefix (`--store-prefix`, default
//! `bsm:`), so several deployments can share a Redis database and `redis-cli --scan
//! --pattern 'bsm:*'` shows everything one of them keeps.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}schema` | string | the layout version ([`SCHEMA_VERSION`]) |
//! | `{p}sessions` | sorted set | every stored session id, scored by `created_at` (listing order) |
//! | `{p}open` | sorted set | open session ids, scored by `last_activity` (idle listing) |
//! | `{p}closed` | sorted set | closed session ids, scored by `closed_at` (pruning) |
//! | `{p}names:{owner}` | hash | name → id of the owner's open session of that name |
//! | `{p}owned:{owner}` | set | ids of the owner's open sessions |
//! | `{p}running` | set | ids of sessions with entries written as running and not finished |
//! | `{p}session:{id}` | hash | the record (fields in [`super::record`]) |
//! | `{p}history:{id}` | list | history entries as JSON, oldest first, the newest `--history-limit` |
//! | `{p}running:{id}` | hash | seq → lease holder of each entry still running |
//! | `{p}shares:{id}` | hash | user (or `*`, everyone) → `read` or `write`: who else may use it |
//! | `{p}events` | stream | the event log: entry `<id>-0` with field `body`, about the newest [`EVENT_LOG_KEEP`](crate::store::EVENT_LOG_KEEP) |
//! | `{p}events:seq` | string | the newest event id ever assigned |
//!
//! Names are unique per owner, so each owner has a names hash of its own (an owner or a
//! name may hold any character: the key is never parsed back). A session's owner never
//! changes; the names and owned entries of a session are removed when it is closed, its
//! shares (kept with a closed session) when it is pruned.
//!
//! Multi-key changes are Lua scripts (`lua/*.lua`), atomic on one Redis server. The scripts
//! that walk several sessions (idle listing, pruning, reusing a name) or reach an owner's
//! keys from a session (closing) build key names from the prefix, so the layout is for one
//! Redis server or primary, not Redis Cluster.
//!
//! Layout 1 (one `{p}names` hash for every owner, no owned sets) is brought to layout 2 when
//! a store opens it (`lua/migrate.lua`, one script).
//!
//! The event log's keys came after layout 2 without a new version: nothing existing changed
//! meaning, a prefix without them is simply an empty log (ids start at 1), and a program that
//! does not know them never reads or deletes them. A bump would only make such a program
//! refuse the prefix (a newer layout) for keys it can ignore.

/// The version of this layout, kept in `{p}schema`.
pub const SCHEMA_VERSION: i64 = 2;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "bsm:";

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself (the scripts that walk sessions build names from it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn of(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// `{p}schema`.
    pub fn schema(&self) -> String {
        self.key("schema")
    }

    /// `{p}sessions`.
    pub fn sessions(&self) -> String {
        self.key("sessions")
    }

    /// `{p}open`.
    pub fn open(&self) -> String {
        self.key("open")
    }

    /// `{p}closed`.
    pub fn closed(&self) -> String {
        self.key("closed")
    }

    /// `{p}names:{owner}`.
    pub fn names(&self, owner: &str) -> String {
        self.of("names", owner)
    }

    /// `{p}owned:{owner}`.
    pub fn owned(&self, owner: &str) -> String {
        self.of("owned", owner)
    }

    /// `{p}names`: layout 1's names of every owner (read only by the migration).
    pub fn names_v1(&self) -> String {
        self.key("names")
    }

    /// `{p}running`.
    pub fn running_sessions(&self) -> String {
        self.key("running")
    }

    /// `{p}session:{id}`.
    pub fn session(&self, id: &str) -> String {
        self.of("session", id)
    }

    /// `{p}history:{id}`.
    pub fn history(&self, id: &str) -> String {
        self.of("history", id)
    }

    /// `{p}running:{id}`.
    pub fn running(&self, id: &str) -> String {
        self.of("running", id)
    }

    /// `{p}shares:{id}`.
    pub fn shares(&self, id: &str) -> String {
        self.of("shares", id)
    }

    /// `{p}events`.
    pub fn events(&self) -> String {
        self.key("events")
    }

    /// The pub/sub channel an append publishes the newest event id on (a channel, not a key).
    pub fn events_channel(&self) -> String {
        self.key("events:new")
    }

    /// `{p}events:seq`.
    pub fn events_seq(&self) -> String {
        self.key("events:seq")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix() {
        let k = Keys::new("t:");
        for key in [
            k.schema(),
            k.sessions(),
            k.open(),
            k.closed(),
            k.names("local"),
            k.owned("local"),
            k.names_v1(),
            k.running_sessions(),
            k.session("s-1"),
            k.history("s-1"),
            k.running("s-1"),
            k.shares("s-1"),
            k.events(),
            k.events_seq(),
        ] {
            assert!(key.starts_with("t:"), "{key}");
        }
        assert_eq!(k.session("s-1"), "t:session:s-1");
        assert_eq!(k.history("s-1"), "t:history:s-1");
    }
}
