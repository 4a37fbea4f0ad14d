//! The server binary over Streamable HTTP: started on a free loopback port (the address is
//! read from its `MCP over HTTP at URL` stderr line), an rmcp HTTP client for it, and raw
//! JSON-RPC POSTs for checks below the SDKs (status codes, headers, protocol revisions).

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{BIN, TempStore};

/// An rmcp client over HTTP.
pub type Client = RunningService<rmcp::RoleClient, ClientConfig>;

/// A server process serving MCP over HTTP.
pub struct HttpServe {
    /// The process.
    pub child: Child,
    /// Its MCP endpoint, e.g. `http://127.0.0.1:40123/mcp`.
    pub url: String,
    /// Its session store.
    pub store: TempStore,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl HttpServe {
    /// Start `serve --http 127.0.0.1:0` with `args` after it, on its own store.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", args, &[]).await
    }

    /// Start `serve --http ADDR ARGS…` with extra environment variables.
    pub async fn start_on(addr: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with_store(addr, args, env, TempStore::new()).await
    }

    /// [`HttpServe::start_on`] on a given store.
    pub async fn start_with_store(
        addr: &str,
        args: &[&str],
        env: &[(&str, &str)],
        store: TempStore,
    ) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--http", addr])
            .args(args)
            .env("BSM_STORE_PATH", &store.path)
            .env_remove("BSM_AUTH_TOKEN")
            .env_remove("BSM_AUTH_FILE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the server");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = String::new();
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the server says where it listens")
                .expect("read stderr");
            let Some(line) = line else {
                panic!("the server exited before listening:\n{seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(url) = line.strip_prefix("MCP over HTTP at ") {
                break url.trim().to_owned();
            }
        };
        let stderr = tokio::spawn(async move {
            let mut rest = seen;
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        HttpServe {
            child,
            url,
            store,
            stderr: Some(stderr),
        }
    }

    /// `host:port` it listens on.
    pub fn authority(&self) -> String {
        self.url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_owned()
    }

    /// Its store, kept past [`HttpServe::stop`] (a fresh one is left in its place).
    pub fn take_store(&mut self) -> TempStore {
        std::mem::take(&mut self.store)
    }

    /// Stop it with SIGTERM; its exit status and whole stderr.
    pub async fn stop(mut self) -> (std::process::ExitStatus, String) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .expect("status");
        let stderr = match self.stderr.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => String::new(),
        };
        (status, stderr)
    }
}

/// An rmcp client over HTTP with `token` (if any), speaking `version` (e.g.
/// [`ProtocolVersion::V_2025_06_18`] for a client with an MCP session, the latest for a
/// sessionless one).
pub async fn client(url: &str, token: Option<&str>, version: ProtocolVersion) -> Client {
    try_client(url, token, version)
        .await
        .expect("MCP over HTTP initializes")
}

/// [`client`], or why it failed.
pub async fn try_client(
    url: &str,
    token: Option<&str>,
    version: ProtocolVersion,
) -> Result<Client, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(t) = token {
        config = config.auth_header(t.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let mut info = ClientConfig::default();
    info.protocol_version = version;
    info.client_info = Implementation::new("http-test", "0");
    info.serve(transport).await.map_err(|e| e.to_string())
}

/// The `Authorization` header's value for `token`.
pub fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

/// A raw JSON-RPC POST to `url` with these headers; the status, the headers and the body
/// (the first `data:` of an SSE body, parsed, when it is one).
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("POST");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let value = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("data:")
                .map(str::trim)
                .filter(|d| !d.is_empty())
        })
        .and_then(|d| serde_json::from_str(d).ok())
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or(Value::String(text));
    (status, headers, value)
}

/// An `initialize` request body on `version`.
pub fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "raw-http-test", "version": "0"}}})
}

/// A `tools/call` the 2026-07-28 way: no `initialize`, no MCP session, the protocol version
/// and client capabilities in the request's `_meta` and headers. Returns the HTTP status and
/// the JSON-RPC answer.
pub async fn stateless_call(
    url: &str,
    token: Option<&str>,
    tool: &str,
    args: Value,
) -> (u16, Value) {
    stateless_call_with(url, token, tool, args, &[]).await
}

/// [`stateless_call`] with more headers (e.g. a stray `mcp-session-id`).
pub async fn stateless_call_with(
    url: &str,
    token: Option<&str>,
    tool: &str,
    args: Value,
    more: &[(&str, &str)],
) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": tool, "arguments": args,
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-stateless", "version": "0"}
    }}});
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    headers.extend_from_slice(more);
    let (status, _, value) = post(url, &headers, &body).await;
    (status, value)
}

/// An auth file in `dir` with these users and rights (`token add`); its path and the
/// users' tokens.
pub async fn users_file(dir: &std::path::Path, users: &[(&str, &str)]) -> (String, Vec<String>) {
    let file = dir.join("auth.json").display().to_string();
    let mut tokens = Vec::new();
    for (user, rights) in users {
        let out = tokio::process::Command::new(super::BIN)
            .args([
                "token",
                "add",
                user,
                "--rights",
                rights,
                "--auth-file",
                &file,
            ])
            .output()
            .await
            .expect("token add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokens.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
    }
    (file, tokens)
}
