//! Ways to drive the server under test: bare TCP round trips against the twin (the floors,
//! blocking and tokio), the server binary spawned with an rmcp client on its stdio, and an
//! in-process registry.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::{Registry, RegistryConfig};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::MB;

const BIN: &str = env!("CARGO_BIN_EXE_blender-session-mcp");

/// A bare blocking TCP round trip: write the request, read until the reply parses.
fn bare_round_trip(sock: &mut std::net::TcpStream, request: &[u8], buf: &mut Vec<u8>) {
    sock.write_all(request).expect("write");
    buf.clear();
    let mut chunk = [0u8; 65536];
    loop {
        let n = sock.read(&mut chunk).expect("read");
        assert!(n > 0, "twin closed");
        buf.extend_from_slice(&chunk[..n]);
        if serde_json::from_slice::<serde::de::IgnoredAny>(buf).is_ok() {
            return;
        }
    }
}

pub(crate) fn bare_samples(port: u16, request: &[u8], warmup: usize, n: usize) -> Vec<Duration> {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::new();
    for _ in 0..warmup {
        bare_round_trip(&mut sock, request, &mut buf);
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            bare_round_trip(&mut sock, request, &mut buf);
            t.elapsed()
        })
        .collect()
}

/// The same bare round trip on a tokio socket: the floor for our (async) code paths.
pub(crate) async fn async_samples(
    port: u16,
    request: &[u8],
    warmup: usize,
    n: usize,
) -> Vec<Duration> {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let t0 = Instant::now();
        sock.write_all(request).await.expect("write");
        buf.clear();
        loop {
            let got = sock.read(&mut chunk).await.expect("read");
            assert!(got > 0, "twin closed");
            buf.extend_from_slice(&chunk[..got]);
            if serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok() {
                break;
            }
        }
        if i >= warmup {
            samples.push(t0.elapsed());
        }
    }
    samples
}

pub(crate) type Client = RunningService<RoleClient, ()>;

/// Spawn the server binary and connect an rmcp client to it (with a line limit large enough
/// for 100 MB results).
pub(crate) async fn spawn_server(port: u16) -> (Client, tokio::process::Child, Instant) {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--blender-port",
            &port.to_string(),
            "--max-reply-bytes",
            "512MiB",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let transport =
        AsyncRwTransport::<RoleClient, _, _>::new(stdout, stdin).with_max_line_length(1 << 30);
    let client = ().serve(transport).await.expect("initialize");
    (client, child, started)
}

pub(crate) async fn call(
    client: &rmcp::Peer<RoleClient>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    let Value::Object(map) = args else {
        panic!("object")
    };
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
        .expect("answered");
    assert_eq!(r.is_error, Some(false), "{tool} failed: {r:?}");
    r
}

pub(crate) fn registry(target: Target, max_sessions: usize) -> Registry {
    Registry::new(RegistryConfig {
        default_target: target,
        max_sessions,
        max_reply_bytes: 512 * MB,
        ..RegistryConfig::default()
    })
}
