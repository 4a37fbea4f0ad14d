//! Sessions: ids, per-session state and history, the registry that owns them, and idle
//! cleanup. This layer sits between the MCP tools and the Blender connection.

pub mod error;
pub mod history;
pub mod registry;
#[allow(clippy::module_inception)]
pub mod session;

pub use error::SessionError;
pub use history::{HistoryEntry, Outcome};
pub use registry::{Call, CodeOutput, Registry, RegistryConfig, Screenshot};
pub use session::{Selection, Session, SessionHistory, SessionInfo, SessionState};
