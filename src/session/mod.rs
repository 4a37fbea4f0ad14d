//! Sessions: records (what a store keeps) apart from this process's live links, the one
//! command path, history, the event stream, and the registry that owns them with its idle
//! cleanup. This layer sits between the MCP tools and the backend.
//!
//! - [`registry`]: lifecycle, lookup, typed operations, idle cleanup.
//! - [`command`]: the command path every operation takes.
//! - [`store`]: the records and the one place their changes go through ([`events`]).
//! - [`record`]: the serializable record and the views tools show of it.
//! - [`live`]: what only this process holds (the link, the in-flight count).
//! - [`lease`]: the per-session lease in the session store (`crate::store`), so commands of
//!   one session never overlap even from two processes; `stored`: the views read from the
//!   session store, closing and idle cleanup on it.
//! - [`history`], [`clock`], [`error`].

pub mod clock;
pub mod command;
pub mod error;
pub mod events;
pub mod history;
pub mod lease;
pub(crate) mod live;
mod owners;
pub mod record;
pub mod registry;
pub mod store;
mod stored;
pub mod tracked;
mod watch;

pub use crate::backend::{CodeOutput, Screenshot, Selection};
pub use command::Call;
pub use error::SessionError;
pub use events::{CloseReason, Event, EventKind};
pub use history::{HistoryEntry, Outcome};
pub use record::{SessionHistory, SessionInfo, SessionRecord, SessionState, StateView};
pub use registry::{Registry, RegistryConfig};
pub use store::Subscription;
