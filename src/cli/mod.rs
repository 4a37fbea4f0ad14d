//! Command-line interface: flags (each with its environment variable where users expect
//! one), value parsers for durations and byte sizes, and the mapping of flags onto the plain
//! config structs the other modules take (`RegistryConfig`, `ChatConfig`, `SpawnConfig`).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod http;
pub mod values;
pub use http::{HttpArgs, TokenArgs};
pub use values::{parse_bytes, parse_duration};

use crate::backend::Target;
use crate::chat::ChatConfig;
use crate::chat::llm::Api;
use crate::headless::SpawnConfig;
use crate::session::RegistryConfig;
pub use crate::sessions::{SessionsAction, SessionsArgs};
use crate::store::open::{StoreChoice, StoreConfig};

/// blender-session-mcp: an MCP server that drives a running Blender through sessions.
///
/// It speaks MCP over stdio (configure it in Claude Desktop, the MCP Inspector or an Ollama
/// bridge) and talks to the BlenderMCP addon inside Blender over TCP. Each session keeps one
/// keep-alive connection to Blender, tracks its state and records its history. Logs go to
/// stderr; stdout carries only MCP messages.
#[derive(Debug, Parser)]
#[command(
    name = "blender-session-mcp",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand name.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the MCP server on stdio (the default), or over Streamable HTTP with --http.
    Serve(ServeArgs),
    /// Connect to Blender once, print what was found (addon protocol, scene, round-trip
    /// time) and exit; exits non-zero with troubleshooting steps when Blender is unreachable.
    Check(CheckArgs),
    /// Start a headless Blender (`blender -b`, or with --python a Python that has the `bpy`
    /// module) running this project's BlenderMCP-compatible server, forward its output to
    /// stderr, and stop it cleanly on Ctrl-C / SIGTERM.
    Blender(BlenderRunArgs),
    /// The design's "hello cube": use the Blender on the target port (or start a headless
    /// one), create a session, add a cube, read the scene, print the session info and history,
    /// close the session and stop what was started.
    Demo(DemoArgs),
    /// Look at and manage the sessions in the store (`list`, `show ID`, `history ID`,
    /// `close ID`, `prune`), with the same store flags as `serve`.
    Sessions(SessionsArgs),
    /// Talk to Blender in plain language through a local LLM (Ollama, or any
    /// OpenAI-compatible server): the model calls this server's tools in its own session,
    /// and you approve each piece of Python it wants to run (unless --yes).
    Chat(ChatArgs),
    /// Manage the bearer tokens of HTTP users (`add USER`, `list`, `remove USER`) in the
    /// auth file that `serve --http --auth-file` reads.
    Token(TokenArgs),
}

/// Where to find Blender when this program has to start it.
#[derive(Debug, Clone, Args)]
pub struct SpawnArgs {
    /// Blender executable to start (default: $BLENDER_PATH, else `blender` on PATH).
    #[arg(long, value_name = "PATH")]
    pub blender: Option<std::path::PathBuf>,
    /// Start the server in this Python instead of a Blender executable: one that can
    /// `import bpy` (Blender as a Python module, e.g. `pip install bpy` in a Python 3.13
    /// venv), for machines without a Blender install. --blender wins when both are given.
    #[arg(long, env = "BSM_BLENDER_PYTHON", value_name = "PATH")]
    pub blender_python: Option<std::path::PathBuf>,
    /// A .blend file for the started Blender to open.
    #[arg(long, value_name = "FILE")]
    pub blend_file: Option<std::path::PathBuf>,
    /// How long to wait for a started Blender's server to answer (`60s`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub startup_timeout: Duration,
}

impl SpawnArgs {
    /// The spawn settings these flags describe.
    pub fn config(&self) -> SpawnConfig {
        SpawnConfig {
            blender: self.blender.clone(),
            python: self.blender_python.clone(),
            blend_file: self.blend_file.clone(),
            startup_timeout: self.startup_timeout,
        }
    }
}

/// Flags of `blender`.
#[derive(Debug, Clone, Args)]
pub struct BlenderRunArgs {
    /// Address the server inside Blender listens on (IPv4).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port the server inside Blender listens on.
    #[arg(long, env = "BLENDER_PORT", default_value_t = 9876)]
    pub port: u16,
    /// Blender executable (default: $BLENDER_PATH, else `blender` on PATH).
    #[arg(long, value_name = "PATH")]
    pub blender: Option<std::path::PathBuf>,
    /// Run the server in this Python instead of a Blender executable: one that can
    /// `import bpy` (Blender as a Python module, e.g. `pip install bpy` in a Python 3.13
    /// venv), for machines without a Blender install. --blender wins when both are given.
    #[arg(
        long,
        visible_alias = "blender-python",
        env = "BSM_BLENDER_PYTHON",
        value_name = "PATH"
    )]
    pub python: Option<std::path::PathBuf>,
    /// How long to wait for the server to answer (`60s`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub startup_timeout: Duration,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A .blend file to open.
    #[arg(value_name = "FILE.blend")]
    pub file: Option<std::path::PathBuf>,
}

/// Flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub blender: BlenderArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub spawn: SpawnArgs,
}

/// Flags of `chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// What to do, e.g. `add a red cube on top of the plane` (quoted or not; flags may come
    /// before or after it). Without it, chat reads one request per line from stdin (an
    /// interactive conversation in a terminal).
    #[arg(value_name = "PROMPT")]
    pub prompt: Vec<String>,
    /// Which HTTP API the LLM server speaks: Ollama's native /api/chat, or an
    /// OpenAI-compatible /v1/chat/completions (llama.cpp server, LM Studio, vLLM, Ollama /v1).
    #[arg(long, value_enum, default_value_t = Api::Ollama)]
    pub api: Api,
    /// Ollama's address, read as Ollama reads OLLAMA_HOST: `host`, `host:port`, `0.0.0.0`
    /// or a URL (without a scheme the port defaults to 11434, with `http://` to 80).
    #[arg(long, env = "OLLAMA_HOST", default_value = "http://127.0.0.1:11434")]
    pub ollama_url: String,
    /// Base URL of an OpenAI-compatible server, up to and including `/v1` (--api openai).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "http://127.0.0.1:11434/v1"
    )]
    pub base_url: String,
    /// Bearer token for an OpenAI-compatible server that wants one (--api openai).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Model to use, e.g. `qwen2.5:7b`; it must support tool calling. With --api openai it
    /// may be omitted when the server serves a single model.
    #[arg(long, env = "OLLAMA_MODEL")]
    pub model: Option<String>,
    /// Context window asked of Ollama (`options.num_ctx`). Ollama's default (4096 or less)
    /// cuts the tool list off first; a warning is printed when the conversation nears it.
    #[arg(long, default_value_t = 8192)]
    pub num_ctx: u32,
    /// Let a thinking model think (sends `think: true`); by default thinking is turned off
    /// for speed.
    #[arg(long)]
    pub think: bool,
    /// Sampling temperature (default: the model's own).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Tools offered to the model, comma-separated, or `all`. Small models choose better
    /// among few tools.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "get_scene_info,execute_blender_code,get_object_info"
    )]
    pub tools: Vec<String>,
    /// Most model requests per prompt before the chat stops the model.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_rounds: u16,
    /// Run the model's Python code without asking. Without it, each script is shown and you
    /// answer yes / no / all / quit; when stdin is not a terminal, no code runs.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Append the whole exchange (messages, replies, tool calls with results and durations)
    /// to this file as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<std::path::PathBuf>,
    /// Longest wait for the LLM server's next bytes (`300s`, `10m`); loading a big model can
    /// take a while.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub llm_timeout: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub blender: BlenderArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// Work in the session of this name (created if missing, reused otherwise): a server
    /// started with the same --session on the same store works in the same session.
    #[arg(long, env = "BSM_SESSION")]
    pub session: Option<String>,
    /// When nothing listens on --blender-host:--blender-port, start a headless Blender there
    /// for the chat's lifetime.
    #[arg(long)]
    pub spawn_blender: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub spawn: SpawnArgs,
}

impl ChatArgs {
    /// The chat settings these flags describe.
    pub fn config(&self) -> ChatConfig {
        ChatConfig {
            prompt: self.prompt.clone(),
            api: self.api,
            llm: self.llm_settings(),
            tools: self.tools.clone(),
            max_rounds: self.max_rounds,
            yes: self.yes,
            transcript: self.transcript.clone(),
            registry: RegistryConfig {
                retain_closed: self.store.retain_closed,
                session_name: self.session.clone(),
                ..self.blender.registry_config()
            },
            store: self.store.config(RegistryConfig::default().history_limit),
            spawn: self.spawn_blender.then(|| self.spawn.config()),
        }
    }

    /// The LLM request settings.
    fn llm_settings(&self) -> crate::chat::llm::Settings {
        crate::chat::llm::Settings {
            base_url: match self.api {
                Api::Ollama => crate::chat::ollama::normalize_url(&self.ollama_url),
                Api::Openai => self.base_url.trim_end_matches('/').to_owned(),
            },
            model: self.model.clone().unwrap_or_default(),
            api_key: self.api_key.clone(),
            num_ctx: self.num_ctx.max(512),
            think: self.think,
            temperature: self.temperature,
            idle_timeout: self.llm_timeout,
        }
    }
}

/// Where sessions are kept (the same flags for serve, chat, check and sessions).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where sessions are kept: `sqlite` (a file on this machine, shared by every server
    /// process using it; the default), `memory` (nothing kept: sessions end with the
    /// process), or a `redis://…` / `rediss://…` URL (shared by servers on several machines).
    #[arg(long, env = "BSM_STORE", default_value = "sqlite", value_parser = clap::value_parser!(StoreChoice))]
    pub store: StoreChoice,
    /// The SQLite file (default: $XDG_STATE_HOME/blender-session-mcp/sessions.db, i.e.
    /// ~/.local/state/…; the local app-data directory on macOS and Windows). Created 0600.
    #[arg(long, env = "BSM_STORE_PATH", value_name = "FILE")]
    pub store_path: Option<std::path::PathBuf>,
    /// Key prefix on Redis: servers with the same prefix share sessions.
    #[arg(long, default_value = "bsm:")]
    pub store_prefix: String,
    /// How long closed sessions stay readable (get_session_info, get_session_history)
    /// before idle cleanup deletes them (`7d`, `12h`).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub retain_closed: Duration,
}

impl StoreArgs {
    /// The store these flags name, keeping `history_limit` entries per session.
    pub fn config(&self, history_limit: usize) -> StoreConfig {
        StoreConfig {
            choice: self.store.clone(),
            path: self.store_path.clone(),
            prefix: self.store_prefix.clone(),
            history_limit,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How to reach Blender.
#[derive(Debug, Clone, Args)]
pub struct BlenderArgs {
    /// Host of the BlenderMCP addon. The addon listens on IPv4 only, so prefer 127.0.0.1.
    #[arg(long, env = "BLENDER_HOST", default_value = "127.0.0.1")]
    pub blender_host: String,
    /// TCP port of the BlenderMCP addon (set in the addon's sidebar panel).
    #[arg(long, env = "BLENDER_PORT", default_value_t = 9876)]
    pub blender_port: u16,
    /// Limit for opening a connection to Blender: seconds (`5`) or with a unit (`500ms`, `2s`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Limit for one command's reply (`180`, `180s`, `3m`). On expiry the connection is
    /// dropped and the command is not re-sent (it may still be running in Blender).
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Largest reply accepted from Blender, in bytes with an optional unit (`256MiB`, `1GiB`).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub max_reply_bytes: usize,
    /// Largest request sent to Blender (`8MiB`). The addon parses requests in quadratic time,
    /// so very large code is refused with an error instead of freezing Blender.
    #[arg(long, default_value = "8MiB", value_parser = parse_bytes)]
    pub max_request_bytes: usize,
    /// Largest tool result given to the model (`64KiB`): get_scene_info lists fewer objects
    /// to stay under it, and says how to ask for the rest.
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes)]
    pub max_result_bytes: usize,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub blender: BlenderArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// Every client's default session is the session of this name (created if missing,
    /// reused otherwise): Claude Desktop and `chat` started with the same --session on the
    /// same store work in one session with one history.
    #[arg(long, env = "BSM_SESSION")]
    pub session: Option<String>,
    /// Do not track objects and selection after each command (tracebacks and stdout are
    /// still returned).
    #[arg(long)]
    pub no_track_state: bool,
    /// History entries kept per session; older ones are dropped and counted.
    #[arg(long, default_value_t = 1000)]
    pub history_limit: usize,
    /// How often the idle-cleanup task runs (`300`, `5m`).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub cleanup_interval: Duration,
    /// Sessions idle (no command) longer than this are closed by the cleanup task (`300`, `5m`).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Most sessions alive at once; creating one more is an error.
    #[arg(long, default_value_t = 1000)]
    pub max_sessions: usize,
    /// Largest MCP message accepted on stdin (`256MiB`). rmcp drops longer lines unanswered;
    /// shorter ones that carry too much code get a clear error (--max-request-bytes).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub max_message_bytes: usize,
    /// When nothing listens on --blender-host:--blender-port, start a headless Blender there
    /// for the server's lifetime (a running GUI Blender on that port is left alone).
    #[arg(long)]
    pub spawn_blender: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub spawn: SpawnArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
}

/// Flags of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub blender: BlenderArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
}

impl BlenderArgs {
    /// The addon address these flags name.
    pub fn target(&self) -> Target {
        Target::new(self.blender_host.clone(), self.blender_port)
    }

    /// Registry settings with these connection flags and every other setting at its default.
    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            default_target: self.target(),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            max_reply_bytes: self.max_reply_bytes,
            max_request_bytes: self.max_request_bytes,
            max_result_bytes: self.max_result_bytes.max(4096),
            ..RegistryConfig::default()
        }
    }
}

impl ServeArgs {
    /// The registry settings these flags describe.
    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            history_limit: self.history_limit,
            idle_timeout: self.idle_timeout,
            cleanup_interval: self.cleanup_interval,
            max_sessions: self.max_sessions.max(1),
            track_state: !self.no_track_state,
            connect_on_create: true,
            retain_closed: self.store.retain_closed,
            session_name: self.session.clone(),
            max_sessions_per_user: Some(self.http.max_sessions_per_user.max(1)),
            ..self.blender.registry_config()
        }
    }

    /// The store these flags name.
    pub fn store_config(&self) -> StoreConfig {
        self.store.config(self.history_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let cli = Cli::try_parse_from(["blender-session-mcp"]).expect("parses");
        let cfg = cli.serve.registry_config();
        assert_eq!(cfg.default_target, Target::new("127.0.0.1", 9876));
        assert_eq!(cfg.command_timeout, Duration::from_secs(180));
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.max_reply_bytes, 256 << 20);
        assert_eq!(cfg.idle_timeout, Duration::from_secs(300));
        assert_eq!(cfg.cleanup_interval, Duration::from_secs(300));
        assert_eq!(cfg.history_limit, 1000);
        assert_eq!(cfg.max_sessions, 1000);
        assert!(cfg.track_state);
        assert_eq!(cli.serve.store.store, StoreChoice::Sqlite);
        assert_eq!(cli.serve.store.store_prefix, "bsm:");
        assert_eq!(cfg.retain_closed, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn a_bpy_python_is_a_flag_of_blender_and_of_every_spawning_command() {
        let cli = Cli::try_parse_from(["bsm", "blender", "--python", "/v/bin/python"]).unwrap();
        let Some(Command::Blender(args)) = cli.command else {
            panic!("blender")
        };
        assert_eq!(args.python.as_deref(), Some("/v/bin/python".as_ref()));
        for sub in ["serve", "demo", "chat"] {
            let cli =
                Cli::try_parse_from(["bsm", sub, "--blender-python", "/v/bin/python"]).unwrap();
            let spawn = match cli.command {
                Some(Command::Serve(a)) => a.spawn,
                Some(Command::Demo(a)) => a.spawn,
                Some(Command::Chat(a)) => a.spawn,
                _ => panic!("{sub}"),
            };
            assert_eq!(
                spawn.config().python.as_deref(),
                Some("/v/bin/python".as_ref())
            );
        }
    }
}
