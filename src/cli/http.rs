//! Flags of the HTTP transport (`serve --http`) and the `token` subcommand, mapped onto
//! [`HttpConfig`] and the auth file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::parse_bytes;
use crate::auth::{AuthError, AuthFile, Authenticator, Rights};
use crate::http::{HttpConfig, TlsFiles};

/// Flags of the HTTP transport.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Serve MCP over Streamable HTTP at ADDR (default 127.0.0.1:8765), path /mcp, instead
    /// of stdio. Several clients and users can then share this server.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::http::DEFAULT_ADDR)]
    pub http: Option<SocketAddr>,
    /// With --http, serve stdio as well (as the `local` user).
    #[arg(long)]
    pub stdio: bool,
    /// The one bearer token HTTP clients must send (`Authorization: Bearer TOKEN`), for a
    /// single user named `user` with every right. Prefer the environment variable: flags
    /// are visible to other users of the machine.
    #[arg(
        long,
        env = "BSM_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub auth_token: Option<String>,
    /// Users and their token hashes (made with `blender-session-mcp token add USER`).
    #[arg(long, env = "BSM_AUTH_FILE", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication (only behind a proxy that
    /// authenticates: anyone who reaches the server can run any code as the Blender user).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// TLS certificate chain (PEM) for HTTPS; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for HTTPS; needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A browser origin allowed to call the server besides its own, e.g.
    /// https://tools.example.com (repeatable). Requests from other origins get 403.
    #[arg(long, value_name = "ORIGIN")]
    pub allowed_origin: Vec<String>,
    /// A Host name the server answers to besides loopback names, its address and this
    /// machine's name, e.g. blender.example.com behind a proxy (repeatable).
    #[arg(long, value_name = "HOST")]
    pub allowed_host: Vec<String>,
    /// Most HTTP clients served at once (an MCP session, or a request of a sessionless
    /// client, each counts one); more get 503.
    #[arg(long, default_value_t = 256)]
    pub max_clients: usize,
    /// Most open sessions one user may own at once.
    #[arg(long, default_value_t = 32)]
    pub max_sessions_per_user: usize,
    /// Largest HTTP request body accepted (`16MiB`); larger ones get 413.
    #[arg(long, default_value = "16MiB", value_parser = parse_bytes)]
    pub max_body_bytes: usize,
    /// Remove execute_blender_code and blender_command, for deployments that only inspect.
    #[arg(long)]
    pub disable_code_exec: bool,
    /// While someone watches a session on the event stream (`/events`, `/ws`, the
    /// dashboard), ask its Blender this often for changes made outside the server (its UI,
    /// another connection) and publish them (`1s`, `500ms`). Nothing is polled unwatched.
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub watch_interval: std::time::Duration,
}

/// Why the HTTP flags do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum HttpArgsError {
    /// The auth file is unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The auth file has no users.
    #[error(
        "the auth file {0} has no users: add one with `blender-session-mcp token add USER --auth-file {0}`"
    )]
    NoUsers(String),
    /// Both ways of authenticating were given.
    #[error("give --auth-token or --auth-file, not both")]
    Both,
    /// An empty token.
    #[error("--auth-token / BSM_AUTH_TOKEN is empty: give a token of at least 16 characters")]
    ShortToken,
}

impl HttpArgs {
    /// The HTTP settings these flags describe, when `--http` is given.
    pub fn config(&self) -> Result<Option<HttpConfig>, HttpArgsError> {
        let Some(addr) = self.http else {
            return Ok(None);
        };
        let token = self
            .auth_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let auth = match (token, &self.auth_file) {
            (Some(_), Some(_)) => return Err(HttpArgsError::Both),
            (Some(t), None) if t.len() < 16 => return Err(HttpArgsError::ShortToken),
            (Some(t), None) => Some(Authenticator::single(t)),
            (None, Some(path)) => {
                let auth = Authenticator::from_file(&AuthFile::load(path)?);
                if auth.is_empty() {
                    return Err(HttpArgsError::NoUsers(path.display().to_string()));
                }
                Some(auth)
            }
            (None, None) => None,
        };
        let mut config = HttpConfig::new(addr);
        config.auth = auth;
        config.insecure_no_auth = self.insecure_no_auth;
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        config.allowed_origins.clone_from(&self.allowed_origin);
        config.allowed_hosts.clone_from(&self.allowed_host);
        config.max_clients = self.max_clients.max(1);
        config.max_body_bytes = self.max_body_bytes.max(64 * 1024);
        Ok(Some(config))
    }
}

/// Flags of `token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TokenAction,
    /// The auth file (default: auth.json in this program's configuration directory).
    #[arg(long, env = "BSM_AUTH_FILE", value_name = "FILE", global = true)]
    pub auth_file: Option<PathBuf>,
}

/// `token` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Make a new token for USER (replacing any it had), print it once, store its hash.
    Add {
        /// The user name (letters, digits, '-', '_', '.', '@').
        user: String,
        /// `exec` (everything, the default) or `read` (read-only tools and resources).
        #[arg(long, default_value = "exec")]
        rights: Rights,
    },
    /// List the users (never their tokens).
    List,
    /// Remove USER and its token.
    Remove {
        /// The user name.
        user: String,
    },
}

/// Run `token`: what to print on stdout.
pub fn run_token(args: &TokenArgs) -> Result<String, AuthError> {
    let path = match &args.auth_file {
        Some(p) => p.clone(),
        None => crate::auth::file::default_path()?,
    };
    match &args.action {
        TokenAction::Add { user, rights } => {
            let mut file = AuthFile::load_or_default(&path)?;
            let token = file.add(user, *rights)?;
            file.save(&path)?;
            eprintln!(
                "Token for {user} ({}) saved (as a hash) in {}. It is shown once: give it to {user} now.",
                rights.as_str(),
                path.display()
            );
            Ok(format!("{token}\n"))
        }
        TokenAction::List => {
            let file = AuthFile::load_or_default(&path)?;
            if file.users.is_empty() {
                return Ok(format!(
                    "no users in {} (add one with `token add USER`)\n",
                    path.display()
                ));
            }
            let mut out = String::new();
            for u in &file.users {
                out.push_str(&format!(
                    "{}\t{}\t{}\n",
                    u.user,
                    u.rights.as_str(),
                    u.created_at
                ));
            }
            Ok(out)
        }
        TokenAction::Remove { user } => {
            let mut file = AuthFile::load_or_default(&path)?;
            if file.remove(user) {
                file.save(&path)?;
                Ok(format!("removed {user} from {}\n", path.display()))
            } else {
                Ok(format!("no user {user} in {}\n", path.display()))
            }
        }
    }
}
