//! # blender-session-mcp
//!
//! An MCP server that lets AI clients (Claude Desktop, the MCP Inspector, Ollama bridges)
//! drive a running Blender through **sessions**: each session keeps one keep-alive connection
//! to the BlenderMCP addon, tracks Blender's state (objects, selection, last command and
//! result) and records a bounded history of every command.
//!
//! ## Layout
//!
//! Data flows one way, from the MCP layer down to the bytes on the wire:
//!
//! * [`chat`] — on top of everything: a natural-language front end that sends the
//!   conversation to a local LLM (Ollama or an OpenAI-compatible server) and runs the tool
//!   calls it makes through an in-process MCP client of [`mcp`].
//! * [`mcp`] — the rmcp `ServerHandler`: tools, their parameter and result types, and the
//!   mapping of session errors to `isError` tool results.
//! * [`session`] — the [`session::Registry`] (a cheap `Clone` handle), sessions with their
//!   state and history, and the periodic idle cleanup.
//! * [`blender`] — one keep-alive [`blender::Connection`] per session, the wire codec
//!   ([`blender::protocol`]) and the Python programs sent through `execute_code`.
//! * [`headless`] — starting, watching and stopping a headless Blender that runs this
//!   project's BlenderMCP-compatible server script (`blender/bsm_server.py`).
//! * [`demo`] — the design's "hello cube", the whole chain in one command.
//! * [`cli`] — command-line flags and the `check` command; `main.rs` only parses and runs.

pub mod blender;
pub mod chat;
pub mod cli;
pub mod demo;
pub mod headless;
pub mod mcp;
pub mod session;
