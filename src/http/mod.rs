//! The Streamable HTTP transport: rmcp's streamable HTTP service at `/mcp` inside an axum
//! router, behind our guard ([`guard`]: `Host` and `Origin` checks, bearer-token
//! authentication, the client cap), over plain TCP or TLS ([`tls`]). The web dashboard's
//! page and assets ([`dashboard`]) are served at `/` from the same router.
//!
//! Every MCP session (protocol revisions up to 2025-11-25, with `Mcp-Session-Id`) gets its
//! own [`BlenderServer`]; a request on the 2026-07-28 revision, which has no protocol
//! session, gets a fresh one per request whose default Blender session is its user's. The
//! caller's [`crate::auth::User`] rides on each HTTP request into the handler.
//!
//! Beside MCP: the event stream ([`stream`]: `/events`, `/ws`) and the dashboard's JSON API
//! ([`api`]: `/api/…`), behind the same guard.

pub mod api;
pub mod cancel;
pub mod dashboard;
pub mod guard;
pub mod stream;
pub mod ticket;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::events::EventHub;
use crate::mcp::BlenderServer;

pub use guard::{ClientSlots, Guard};

/// The path MCP is served at.
pub const MCP_PATH: &str = "/mcp";

/// The default `--http` address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8765";

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything the HTTP transport needs.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Who may call; `None` serves everyone as the `local` user (loopback only, unless
    /// `insecure_no_auth`).
    pub auth: Option<Authenticator>,
    /// Allow a non-loopback bind without authentication.
    pub insecure_no_auth: bool,
    /// Serve TLS with these files.
    pub tls: Option<TlsFiles>,
    /// Browser origins allowed besides the server's own (`https://app.example.com`).
    pub allowed_origins: Vec<String>,
    /// `Host` names allowed besides loopback names, the bound address and this machine's
    /// host name.
    pub allowed_hosts: Vec<String>,
    /// Most MCP clients served at once.
    pub max_clients: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long an MCP session (with `Mcp-Session-Id`) lives without a request.
    pub session_keep_alive: Duration,
}

/// Why the HTTP transport could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A bind another host can reach, without authentication.
    #[error(
        "refusing to listen on {addr} without authentication: anyone who can reach it could run any code as the Blender user. Give --auth-token / BSM_AUTH_TOKEN or --auth-file (see `blender-session-mcp token add --help`), bind to 127.0.0.1, or pass --insecure-no-auth if a proxy in front authenticates"
    )]
    NoAuthOffLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS files are unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl HttpConfig {
    /// The settings with `addr` and every other setting at its default: no auth, no TLS.
    pub fn new(addr: SocketAddr) -> Self {
        HttpConfig {
            addr,
            auth: None,
            insecure_no_auth: false,
            tls: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_clients: 256,
            max_body_bytes: 16 * 1024 * 1024,
            session_keep_alive: Duration::from_secs(300),
        }
    }

    /// Refuse what is unsafe (an unauthenticated non-loopback bind) and warn about what is
    /// risky (tokens and code in clear text off this machine).
    pub fn check(&self) -> Result<(), HttpError> {
        let loopback = self.addr.ip().is_loopback();
        if !loopback && self.auth.is_none() && !self.insecure_no_auth {
            return Err(HttpError::NoAuthOffLoopback { addr: self.addr });
        }
        if !loopback && self.tls.is_none() {
            tracing::warn!(
                "listening on {} without TLS: tokens and code travel in clear text. Give --tls-cert and --tls-key, or put a TLS reverse proxy in front and bind to 127.0.0.1",
                self.addr
            );
        }
        if !loopback && self.auth.is_none() {
            tracing::warn!(
                "--insecure-no-auth: anyone who can reach {} can run any code as the Blender user",
                self.addr
            );
        }
        Ok(())
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// A running HTTP transport.
#[derive(Debug)]
pub struct HttpServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    /// The URL of its MCP endpoint.
    pub url: String,
    task: tokio::task::JoinHandle<Result<(), HttpError>>,
    stop: CancellationToken,
}

/// How long connections may take to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(5);

impl HttpServer {
    /// Wait until it stops (after `stop` fires: in-flight requests get [`DRAIN`] to end,
    /// then their connections are closed).
    pub async fn wait(self) -> Result<(), HttpError> {
        let mut task = self.task;
        let drained = async {
            self.stop.cancelled().await;
            tokio::time::sleep(DRAIN).await;
        };
        tokio::select! {
            r = &mut task => match r {
                Ok(r) => r,
                Err(e) => Err(HttpError::Serve(std::io::Error::other(e))),
            },
            _ = drained => {
                tracing::warn!("HTTP connections still open {DRAIN:?} after shutdown: closing them");
                task.abort();
                Ok(())
            }
        }
    }
}

/// Bind and start serving MCP over HTTP with handlers made from `prototype` (one per MCP
/// client, sharing its registry), the event stream of `events` and the dashboard's API,
/// until `stop` fires.
pub async fn start(
    config: HttpConfig,
    prototype: BlenderServer,
    events: EventHub,
    stop: CancellationToken,
) -> Result<HttpServer, HttpError> {
    config.check()?;
    let tls = match &config.tls {
        Some(files) => Some(tls::acceptor(files)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: config.addr,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(HttpError::Serve)?;
    let url = format!("{}://{}{MCP_PATH}", config.scheme(), local_addr);

    let slots = ClientSlots::new(config.max_clients);
    let guard = Arc::new(Guard::new(&config, local_addr, slots.clone()));
    let factory_slots = slots.clone();
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(config.session_keep_alive);
    let mcp = StreamableHttpService::new(
        move || Ok(prototype.for_http_client(factory_slots.take())),
        Arc::new(sessions),
        // Host and Origin are checked by our guard, for every route alike.
        StreamableHttpServerConfig::default()
            .with_json_response(true)
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_max_request_body_bytes(config.max_body_bytes)
            .with_cancellation_token(stop.child_token()),
    );
    let cancel = Arc::new(cancel::CancelState {
        mcp: mcp.clone(),
        max_body_bytes: config.max_body_bytes,
    });
    let api = api::ApiState {
        hub: events,
        tickets: guard.tickets.clone(),
        stop: stop.clone(),
    };
    let app = axum::Router::new()
        .merge(api::routes(api.clone()))
        .merge(stream::routes(api))
        .nest_service(MCP_PATH, mcp)
        .merge(dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            cancel,
            cancel::cancel_on_disconnect,
        ))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check));

    let shutdown = {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    };
    let task = match tls {
        None => tokio::spawn(async move {
            // Answers go out as small SSE writes: without TCP_NODELAY, Nagle holds them.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(HttpError::Serve)
        }),
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor, stop.clone());
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(HttpError::Serve)
            })
        }
    };
    tracing::info!("MCP over HTTP at {url}");
    Ok(HttpServer {
        local_addr,
        url,
        task,
        stop,
    })
}
