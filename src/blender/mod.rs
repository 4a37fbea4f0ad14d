//! Everything that talks to the BlenderMCP addon: the wire codec ([`protocol`]), one
//! keep-alive connection ([`connection`]) and the Python programs this server sends through
//! `execute_code` ([`script`]). Nothing here knows about sessions or MCP.

pub mod connection;
pub mod protocol;
pub mod script;

pub use connection::{Connection, ConnectionError, IdleState, Target};
pub use protocol::{ProtocolError, Reply, encode_request, in_band_error};
pub use script::Snapshot;
