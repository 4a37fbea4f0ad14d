//! # blender-session-mcp
//!
//! An MCP server that lets AI clients (Claude Desktop, the MCP Inspector, Ollama bridges)
//! drive a running Blender through **sessions**: each session keeps one keep-alive connection
//! to Blender, tracks Blender's state (objects, selection, last command and result) and
//! records a bounded history of every command.
//!
//! ## Layout
//!
//! Data flows one way, from the transports down to the bytes on the wire; events flow back up
//! through one channel ([`session::events`]).
//!
//! | module | owns |
//! |---|---|
//! | [`mcp`] | the rmcp `ServerHandler`, one per client ([`mcp::BlenderServer`]): tools ([`mcp::names`], [`mcp::params`]), the advice added to errors ([`mcp::errors`]), the stdio transport ([`mcp::stdio`]) |
//! | [`session`] | the [`session::Registry`] (a cheap `Clone` handle): lifecycle and idle cleanup ([`session::registry`]), the one command path ([`session::command`]), records and the one place their changes go through ([`session::store`], [`session::record`]), history, events, the activity clock |
//! | [`backend`] | the [`backend::Backend`] / [`backend::Link`] traits, typed operations and results ([`backend::ops`]), the [`backend::Target`]; the classic BlenderMCP protocol in [`backend::classic`] (codec, connection, the Python it sends, the headless server script) |
//! | [`headless`] | starting, watching and stopping a headless Blender running [`backend::classic::HEADLESS_SERVER`] |
//! | [`chat`] | on top of everything: plain language → a local LLM → an in-process MCP client of [`mcp`] |
//! | [`demo`] | the design's "hello cube", the whole chain in one command |
//! | [`check`] | the `check` command: what answers on the Blender port |
//! | [`cli`] | flags, mapped onto the plain config structs the modules above take; `main.rs` only parses and runs |
//! | [`store`] | where session records and the shared event log live: the [`store::SessionStore`] seam, the memory, SQLite and Redis stores |
//! | [`http`] | the Streamable HTTP transport: rmcp's service behind the `Host`/`Origin`/token guard, TLS |
//! | [`auth`] | users, rights and bearer tokens; the auth file and the `token` subcommand's operations |
//! | [`preview`] | bounded previews of large values, for history and events |
//!
//! ## Adding a backend
//!
//! A second Blender-side protocol (for example an addon with `\0`-framed messages and request
//! ids) is a new module beside [`backend::classic`], not a change to the session layer:
//!
//! 1. A type implementing [`backend::Backend`]: `connect` opens a link to a
//!    [`backend::Target`] (nothing of any operation sent yet), `admit` refuses what can never
//!    be sent (size caps), `command_name` names an operation for history and logs.
//! 2. A link implementing [`backend::Link`]: `call` turns each [`backend::Operation`] into
//!    its own requests and its replies into an [`backend::Answer`] (a typed
//!    [`backend::Output`], or the failure Blender reported; the recorded preview; the state
//!    snapshot if it read one). `Err` from `call` means the link cannot be trusted any more;
//!    `probe_idle` tells whether an idle link is still fit.
//! 3. `Registry::with_backend(config, Arc::new(YourBackend))`. The registry's settings that
//!    shape the classic wire (`max_reply_bytes`, `max_request_bytes`, `track_state`) reach
//!    only [`session::RegistryConfig::classic_backend`]: another backend takes its own.
//!
//! What a link must get right: `call`'s future may be dropped at any await (timeout,
//! cancellation), so cleanup belongs in `Drop` guards, not after an await; an operation
//! that may change the scene without reporting the state sets `Answer::read_state`, and the
//! command path then calls `Link::read_state` under its own timeout; `close` ends the link
//! cleanly; `Backend::arguments` says what the history records of each operation.
//!
//! The command path keeps its guarantees for any backend: one operation per link at a time,
//! a link whose reply is unaccounted for (timeout, cancellation, broken stream) is dropped,
//! and an operation is never re-sent.

pub mod auth;
pub mod backend;
pub mod chat;
pub mod check;
pub mod cli;
pub mod demo;
pub mod events;
pub mod headless;
pub mod http;
pub mod mcp;
pub mod preview;
pub mod session;
pub mod sessions;
pub mod store;
