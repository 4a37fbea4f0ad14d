//! Where session records live: the [`SessionStore`] seam and its stores.
//!
//! A store keeps what a session *is* (id, optional name unique per owner, owner, who else
//! it is shared with ([`Share`], [`Access`]), target, times, status, the tracked state as an
//! opaque JSON blob, counts, the history with its sequence numbers, the per-session lease);
//! what a process holds for a session (its link to Blender, the command in flight) stays in
//! that process, keyed by session id (`session::live`).
//!
//! - [`memory`]: one process's memory, nothing on disk (`--store memory`).
//! - `sqlite`: a file shared by the processes of one machine (the default).
//! - `redis`: Redis, for processes on several machines.
//!
//! Beside the records, each store keeps the event log every process on it publishes to
//! ([`SessionStore::append_events`], [`SessionStore::events_after`]): the store assigns the
//! ids, so a watcher of any process resumes with "the events after id N".
//!
//! Every method is one atomic step of the store (one transaction, one script): two processes
//! on one store may call any of them at once. The command path costs two steps per command:
//! [`SessionStore::begin_command`] (take the lease, write the entry as `running`) and
//! [`SessionStore::finish_command`] (complete the entry, the activity, the state when it
//! changed, give the lease back).

#[doc(hidden)]
pub mod conformance;
pub mod deferred;
pub mod error;
pub mod memory;
pub mod open;
pub mod redis;
mod share;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::Target;
use crate::session::HistoryEntry;
use crate::session::events::CloseReason;

pub use error::{StoreError, StoreKind, StoreLocation, StoreResult};
pub use memory::MemoryStore;
pub use share::{Access, EVERYONE, Share, UnknownAccess};

/// What a history entry of a command that was in flight when its server died says.
pub const INTERRUPTED_MESSAGE: &str =
    "the server stopped while this command was in flight; Blender may or may not have run it";

/// The owner of sessions made over stdio (the only kind of client so far).
pub const LOCAL_OWNER: &str = "local";

/// The tracked state, as JSON text the store keeps without reading it.
pub type StateBlob = std::sync::Arc<str>;

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its id (unique; made by the caller).
    pub id: String,
    /// Its name, when it has one: at most one open session of an owner has a given name
    /// (two owners may each have one of the same name).
    pub name: Option<String>,
    /// Who owns it (`local` for stdio clients).
    pub owner: String,
    /// Its Blender.
    pub target: Target,
    /// Now (Unix seconds).
    pub now: f64,
}

/// Whether a session is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Usable.
    Open,
    /// Closed; readable until pruned.
    Closed,
}

impl Status {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Closed => "closed",
        }
    }
}

/// Who may run a session's next command, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The holder ([`holder_id`] of a process).
    pub holder: String,
    /// When it expires unless renewed (Unix seconds).
    pub until: f64,
}

/// A session as the store keeps it (its history apart: [`SessionStore::history`]).
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// The session id.
    pub id: String,
    /// Its name, if any.
    pub name: Option<String>,
    /// Who owns it.
    pub owner: String,
    /// Its Blender.
    pub target: Target,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last command start or end (Unix seconds).
    pub last_activity: f64,
    /// Open or closed.
    pub status: Status,
    /// When it was closed, and why.
    pub closed: Option<(f64, CloseReason)>,
    /// The tracked state last written, `None` before the first.
    pub state: Option<StateBlob>,
    /// Bumped by every state write: a process whose copy is older writes its next state
    /// whatever it compares equal to.
    pub state_version: u64,
    /// The last command sent and its result (kept apart from the state blob: they change
    /// with every command, the state rarely).
    pub last_command: Option<String>,
    /// See `last_command`.
    pub last_result: Option<Value>,
    /// Commands ever recorded (the last sequence number).
    pub command_count: u64,
    /// Entries kept.
    pub history_kept: u64,
    /// The lease, when one is held (it may have expired).
    pub lease: Option<Lease>,
    /// Who else may use it, sorted by user; empty for a new session
    /// ([`StoredSession::access_of`], [`SessionStore::share`]).
    pub shares: Vec<Share>,
}

impl StoredSession {
    /// A fresh open session.
    pub fn new(s: NewSession) -> Self {
        StoredSession {
            id: s.id,
            name: s.name,
            owner: s.owner,
            target: s.target,
            created_at: s.now,
            last_activity: s.now,
            status: Status::Open,
            closed: None,
            state: None,
            state_version: 0,
            last_command: None,
            last_result: None,
            command_count: 0,
            history_kept: 0,
            lease: None,
            shares: Vec::new(),
        }
    }

    /// Entries dropped to respect the history limit.
    pub fn history_dropped(&self) -> u64 {
        self.command_count.saturating_sub(self.history_kept)
    }

    /// Whether `holder` may not run a command now: someone else holds an unexpired lease.
    pub fn leased_to_other(&self, holder: &str, now: f64) -> Option<&Lease> {
        self.lease
            .as_ref()
            .filter(|l| l.holder != holder && l.until > now)
    }
}

/// What [`SessionStore::create`] did.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new session.
    New(StoredSession),
    /// An open session of the same owner with the name asked for existed: it is reused.
    Existing(StoredSession),
}

/// A command about to be sent.
#[derive(Debug, Clone)]
pub struct BeginCommand {
    /// The process asking ([`holder_id`]).
    pub holder: String,
    /// Now (Unix seconds).
    pub now: f64,
    /// When the lease expires unless renewed.
    pub lease_until: f64,
    /// The entry, written as `running` (its `seq` and `outcome` are set by the store).
    pub entry: HistoryEntry,
}

/// What [`SessionStore::begin_command`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The lease is taken and the entry written: send the command.
    Started {
        /// The entry's sequence number.
        seq: u64,
        /// The state version now stored.
        state_version: u64,
    },
    /// Another holder has the lease: nothing was written; try again later.
    Leased(Lease),
    /// The session is closed.
    Closed,
    /// No such session.
    Missing,
}

/// A command ended.
#[derive(Debug, Clone)]
pub struct FinishCommand {
    /// The holder that began it.
    pub holder: String,
    /// Its entry's sequence number.
    pub seq: u64,
    /// Now (Unix seconds): the session's last activity.
    pub now: f64,
    /// The completed entry (its `seq` is ignored).
    pub entry: HistoryEntry,
    /// The last command and result to keep.
    pub last_command: String,
    /// See `last_command`.
    pub last_result: Value,
    /// The new state, only when the command changed it.
    pub state: Option<StateBlob>,
}

/// A page of a session's history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// Entries, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Commands ever recorded.
    pub total: u64,
    /// Entries dropped to respect the history limit.
    pub dropped: u64,
}

/// One page of the open sessions (those a viewer sees, with one), oldest first, and how
/// many there are.
#[derive(Debug, Clone)]
pub struct SessionPage {
    /// The sessions from `offset`, at most `limit`.
    pub sessions: Vec<StoredSession>,
    /// Open sessions in the store, or with a viewer those it sees (on every page).
    pub total: u64,
}

/// What `check` and `sessions` report about a store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    /// Open sessions.
    pub open: u64,
    /// Closed sessions not yet pruned.
    pub closed: u64,
    /// Whether a write went through.
    pub writable: bool,
}

/// How many events a store keeps (older ones are dropped): at least this many of the newest,
/// and at most a few hundred more (SQLite trims when an append passes a multiple of 256 ids,
/// Redis trims its stream approximately, by whole nodes of 100 entries).
pub const EVENT_LOG_KEEP: u64 = 10_000;

/// One event as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Assigned by the store: increasing across every process on it, starting at 1.
    pub id: u64,
    /// The event's JSON body as the publisher gave it (without the id).
    pub body: String,
}

/// A read of the event log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// Events with an id above the one asked for, oldest first (at most the limit).
    pub events: Vec<StoredEvent>,
    /// The smallest id still kept (None: the log is empty). A reader whose `after + 1` is
    /// below this lost events.
    pub oldest: Option<u64>,
    /// The newest id ever assigned (0: none yet).
    pub newest: u64,
}

/// Tells whether a lease holder is known to be gone (a process of this machine that no
/// longer runs); a store breaks such a holder's leases and interrupts its running entries.
pub type HolderGone = dyn Fn(&str) -> bool + Send + Sync;

/// Where session records live. Object-safe: the registry holds an `Arc<dyn SessionStore>`.
///
/// Each method is atomic with respect to every other call, from this process or another.
/// Errors name the store and say what failed ([`StoreError`]); a session that does not
/// exist is not an error (`None`, `false`, [`Begun::Missing`]).
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Which store this is and where.
    fn location(&self) -> &StoreLocation;

    /// Create a session. With a name, an open session of the same owner and name is reused
    /// instead (atomically: two processes creating one name get one session); another
    /// owner's session of that name is not.
    async fn create(&self, new: NewSession) -> StoreResult<Created>;

    /// A session by id, open or closed, with its shares.
    async fn get(&self, id: &str) -> StoreResult<Option<StoredSession>>;

    /// The open session `owner` has named `name`.
    async fn get_by_name(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSession>>;

    /// Every open session (and the closed ones not yet pruned when `closed`), oldest first.
    async fn list(&self, closed: bool) -> StoreResult<Vec<StoredSession>>;

    /// The open sessions from `offset` (at most `limit`, oldest first, the order of
    /// [`SessionStore::list`]) and how many are open: what `list_sessions` shows a model.
    /// With `None`, every open session, at a cost that grows with the page, not with the
    /// store. With `viewer`, only the open sessions it owns or that are shared with it or
    /// with [`EVERYONE`] (at either access), and `total` counts exactly those (SQLite finds
    /// them by index, at a cost that grows with what the viewer sees; Redis walks every
    /// stored session to count them).
    async fn list_page(
        &self,
        offset: usize,
        limit: usize,
        viewer: Option<&str>,
    ) -> StoreResult<SessionPage>;

    /// How many open sessions `owner` owns.
    async fn count_owned(&self, owner: &str) -> StoreResult<u64>;

    /// Share the open session `id` with `user` (or [`EVERYONE`]): `Some` sets its access,
    /// replacing the share it had; `None` removes its share. `false` when there is no open
    /// session `id`. A closed session keeps its shares until it is pruned.
    async fn share(&self, id: &str, user: &str, access: Option<Access>) -> StoreResult<bool>;

    /// Take the session's lease for `holder` (free, expired, or already its own) and append
    /// the entry as `running` with the next sequence number, as one step; also the
    /// session's last activity. Nothing is written unless the lease is taken.
    async fn begin_command(&self, id: &str, begin: BeginCommand) -> StoreResult<Begun>;

    /// Extend `holder`'s lease to `until`. `false` when it no longer holds it.
    async fn renew_lease(&self, id: &str, holder: &str, until: f64) -> StoreResult<bool>;

    /// Give `holder`'s lease back (nothing when it does not hold it).
    async fn release_lease(&self, id: &str, holder: &str) -> StoreResult<()>;

    /// Complete the entry `finish.seq`, set the last activity, last command and result, the
    /// state when given (bumping its version), and give the lease back, as one step.
    async fn finish_command(&self, id: &str, finish: FinishCommand) -> StoreResult<()>;

    /// Append an already completed entry (a command refused before anything was sent) and
    /// set the last activity, as one step. Returns its sequence number, `None` when the
    /// session does not exist or is closed.
    async fn record_entry(
        &self,
        id: &str,
        now: f64,
        entry: HistoryEntry,
    ) -> StoreResult<Option<u64>>;

    /// Overwrite the tracked state (`update_state`). `false` when there is no open session.
    async fn set_state(&self, id: &str, state: StateBlob, now: f64) -> StoreResult<bool>;

    /// The newest `limit` entries (all kept when `None`), oldest first.
    async fn history(&self, id: &str, limit: Option<usize>) -> StoreResult<Option<HistoryPage>>;

    /// Close a session if it is open: exactly one caller, across processes, gets the closed
    /// session back; everyone else gets `None`.
    async fn close(
        &self,
        id: &str,
        reason: CloseReason,
        now: f64,
    ) -> StoreResult<Option<StoredSession>>;

    /// [`SessionStore::close`] with reason idle, only if the session is still idle: open,
    /// last active at or before `idle_before`, its lease free or expired at `now`, checked
    /// in the same atomic step as the close (a command begun since the session was listed
    /// idle, here or in another process, keeps it open).
    async fn close_idle(
        &self,
        id: &str,
        idle_before: f64,
        now: f64,
    ) -> StoreResult<Option<StoredSession>>;

    /// Ids of open sessions whose last activity is at or before `idle_before` and whose
    /// lease is free or expired at `now`.
    async fn list_idle(&self, idle_before: f64, now: f64) -> StoreResult<Vec<String>>;

    /// Delete the sessions closed at or before `closed_before`, with their history and
    /// shares.
    /// Returns how many.
    async fn prune(&self, closed_before: f64) -> StoreResult<u64>;

    /// Mark `interrupted` (with [`INTERRUPTED_MESSAGE`]) every running entry whose holder
    /// holds no unexpired lease on its session or is `gone`, and drop the leases of gone
    /// holders; in one session, or all when `id` is `None`. Returns how many entries.
    async fn recover(&self, id: Option<&str>, now: f64, gone: &HolderGone) -> StoreResult<u64>;

    /// Counts, and whether the store takes a write now.
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// Append events in order, as one step; returns their ids (increasing, one per body,
    /// consecutive: no other process's event comes between two of one call). Keeps about
    /// the newest [`EVENT_LOG_KEEP`]. An empty `bodies` returns an empty Vec without
    /// touching the store.
    async fn append_events(&self, bodies: &[String]) -> StoreResult<Vec<u64>>;

    /// Events with id > `after`, oldest first, at most `limit`, with the log's bounds, read
    /// as one consistent step.
    async fn events_after(&self, after: u64, limit: usize) -> StoreResult<EventPage>;

    /// Changes when any process appends events (its value: the newest id, or just a
    /// change), for a store that pushes; `None` when readers must poll.
    fn event_wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// This process's lease holder id: `host:pid:random`, so a process on the same machine can
/// tell that a holder's process is gone.
pub fn holder_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", host_name(), std::process::id(), &random[..8])
}

fn host_name() -> String {
    #[cfg(unix)]
    {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "?".into())
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_else(|_| "?".into())
    }
}

/// Whether `holder` is a process of this machine, other than this one, that no longer
/// runs. Unknown (another machine, Windows) is `false`: its lease then simply expires.
pub fn holder_gone(holder: &str) -> bool {
    let mut parts = holder.splitn(3, ':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if host != host_name() || pid == std::process::id() {
        return false;
    }
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(Errno::ESRCH)
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_of_this_process_is_not_gone_and_a_dead_pid_is() {
        let me = holder_id();
        assert!(!holder_gone(&me));
        assert!(!holder_gone("elsewhere:1:abc"));
        assert!(!holder_gone("garbage"));
        #[cfg(unix)]
        {
            let mut child = std::process::Command::new("true").spawn().expect("spawns");
            let pid = child.id();
            child.wait().expect("waits");
            assert!(holder_gone(&format!("{}:{pid}:x", host_name())));
        }
    }
}
