//! What every HTTP request passes before it reaches MCP: the `Host` check (DNS rebinding),
//! the `Origin` check (a web page the user visits must not drive Blender), bearer-token
//! authentication, and the cap on clients served at once. A request that passes carries
//! its [`User`] in its extensions. The dashboard's files ([`super::dashboard`]) pass the
//! `Host` and `Origin` checks without a token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{Authenticator, User};

use super::HttpConfig;
use super::ticket::Tickets;

/// Counts the MCP clients being served (one per MCP session, one per in-flight request of a
/// client without a session).
#[derive(Debug, Clone)]
pub struct ClientSlots {
    live: Arc<AtomicUsize>,
    max: usize,
}

/// One client's place in [`ClientSlots`], given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ClientSlots {
    /// Room for `max` clients.
    pub fn new(max: usize) -> Self {
        ClientSlots {
            live: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
        }
    }

    /// Count one more client until the slot is dropped.
    pub fn take(&self) -> Slot {
        self.live.fetch_add(1, Ordering::SeqCst);
        Slot(self.live.clone())
    }

    /// Whether no new client fits.
    pub fn full(&self) -> bool {
        self.live.load(Ordering::SeqCst) >= self.max
    }

    /// Clients served now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// The checks, built once from the config.
#[derive(Debug)]
pub struct Guard {
    auth: Option<Authenticator>,
    origins: Vec<url::Origin>,
    hosts: Vec<String>,
    slots: ClientSlots,
    max_clients: usize,
    /// Tickets for the event stream (see [`super::ticket`]).
    pub tickets: Tickets,
}

/// Paths that take a ticket (`?ticket=`) instead of a bearer token.
fn ticket_path(path: &str) -> bool {
    matches!(path, "/ws" | "/events")
}

/// The `ticket` query parameter.
fn ticket_of(uri: &axum::http::Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
}

/// The origins a page of this server itself has: the bound address and, on loopback, the
/// loopback names, with this server's scheme and port.
fn own_origins(scheme: &str, bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    let mut hosts = vec![match bound.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }];
    if bound.ip().is_loopback() || bound.ip().is_unspecified() {
        hosts.extend(["localhost".into(), "127.0.0.1".into(), "[::1]".into()]);
    }
    hosts
        .into_iter()
        .map(|h| format!("{scheme}://{h}:{port}"))
        .collect()
}

impl Guard {
    /// The guard for `config`, serving on `bound`.
    pub fn new(config: &HttpConfig, bound: SocketAddr, slots: ClientSlots) -> Self {
        let mut origins: Vec<url::Origin> = own_origins(config.scheme(), bound)
            .iter()
            .chain(config.allowed_origins.iter())
            .filter_map(|o| match url::Url::parse(o) {
                Ok(u) => Some(u.origin()),
                Err(e) => {
                    tracing::warn!("--allowed-origin {o:?} is not an origin ({e}); ignored");
                    None
                }
            })
            .collect();
        origins.dedup();
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        if !bound.ip().is_unspecified() {
            hosts.push(bound.ip().to_string());
        }
        if let Ok(name) = nix_hostname() {
            hosts.push(name.to_ascii_lowercase());
        }
        hosts.extend(
            config
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase()),
        );
        Guard {
            auth: config.auth.clone(),
            origins,
            hosts,
            slots,
            max_clients: config.max_clients,
            tickets: Tickets::default(),
        }
    }

    /// Whether `host` (a `Host` header: a name or address, maybe with a port) is ours.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = if let Some(rest) = host.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default().to_owned()
        } else {
            host.rsplit_once(':')
                .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
                .map(|(name, _)| name.to_owned())
                .unwrap_or(host)
        };
        self.hosts.contains(&name)
    }

    /// Whether a present `Origin` is allowed.
    fn origin_allowed(&self, origin: &str) -> bool {
        match url::Url::parse(origin.trim()) {
            Ok(u) => self.origins.contains(&u.origin()),
            Err(_) => false,
        }
    }
}

#[cfg(unix)]
fn nix_hostname() -> Result<String, ()> {
    nix::unistd::gethostname()
        .map_err(|_| ())
        .and_then(|h| h.into_string().map_err(|_| ()))
}

#[cfg(not(unix))]
fn nix_hostname() -> Result<String, ()> {
    std::env::var("COMPUTERNAME").map_err(|_| ())
}

/// A JSON error response.
fn refuse(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The middleware: refuse or let through with the caller's [`User`].
pub async fn check(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if guard.host_allowed(&h) => {}
        Some(h) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {h:?} is not served here (DNS rebinding protection). Start the server with --allowed-host {} to allow it.",
                    h.split(':').next().unwrap_or(&h)
                ),
            );
        }
        None => {
            return refuse(
                StatusCode::FORBIDDEN,
                "the request has no Host header".into(),
            );
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or("(not text)");
        if !guard.origin_allowed(text) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Origin {text:?} may not call this server. If that web page should, start the server with --allowed-origin {text}."
                ),
            );
        }
    }
    // The dashboard's page and assets hold no data: the page asks for the token itself.
    if super::dashboard::is_public(req.uri().path())
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        return next.run(req).await;
    }
    let path = req.uri().path().to_owned();
    let ticket = ticket_path(&path)
        .then(|| ticket_of(req.uri()))
        .flatten()
        .filter(|_| !req.headers().contains_key(header::AUTHORIZATION));
    let user = match &guard.auth {
        None => User::local(),
        Some(_) if ticket.is_some() => {
            match ticket.as_deref().and_then(|t| guard.tickets.redeem(t)) {
                Some(user) => user,
                None => {
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        "the ticket is not valid: tickets work once, for 30 s; get a new one with POST /api/ticket".into(),
                    );
                }
            }
        }
        Some(auth) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match given.and_then(|v| auth.user_of_header(v)) {
                Some(user) => user,
                None => {
                    let (challenge, message) = match given {
                        None => (
                            "Bearer realm=\"blender-session-mcp\"",
                            "this server needs a bearer token: send the header `Authorization: Bearer <token>` (an admin makes one with `blender-session-mcp token add USER`)",
                        ),
                        Some(_) => (
                            "Bearer realm=\"blender-session-mcp\", error=\"invalid_token\"",
                            "the bearer token is not valid: check it, or ask for a new one (`blender-session-mcp token add USER`)",
                        ),
                    };
                    let mut r = refuse(StatusCode::UNAUTHORIZED, message.into());
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    );
                    return r;
                }
            }
        }
    };
    let new_client = req.method() == Method::POST && !req.headers().contains_key("mcp-session-id");
    if new_client && guard.slots.full() {
        let mut r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server already serves {} clients (--max-clients {}); try again shortly",
                guard.slots.live(),
                guard.max_clients
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(addr: &str, origins: &[&str]) -> Guard {
        let mut c = HttpConfig::new(addr.parse().unwrap());
        c.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
        c.allowed_hosts = vec!["blender.example.com".into()];
        Guard::new(&c, c.addr, ClientSlots::new(4))
    }

    #[test]
    fn hosts_are_matched_by_name_with_or_without_a_port() {
        let g = guard("127.0.0.1:8765", &[]);
        for ok in [
            "127.0.0.1:8765",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8765",
            "blender.example.com",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.2",
            "blender.example.com.evil:80",
            "",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins_are_the_servers_own_and_the_allowed_ones() {
        let g = guard("127.0.0.1:8765", &["https://app.example.com"]);
        for ok in [
            "http://127.0.0.1:8765",
            "http://localhost:8765",
            "https://app.example.com",
            "https://app.example.com:443",
        ] {
            assert!(g.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost:9999",
            "https://127.0.0.1:8765",
            "null",
            "http://app.example.com",
        ] {
            assert!(!g.origin_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn slots_count_and_free() {
        let s = ClientSlots::new(2);
        let a = s.take();
        assert!(!s.full());
        let b = s.take();
        assert!(s.full());
        drop(a);
        assert!(!s.full());
        drop(b);
        assert_eq!(s.live(), 0);
    }
}
