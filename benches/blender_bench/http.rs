//! HTTP against stdio on the same backend (the twin): the per-call p50 of one client over
//! Streamable HTTP, with an MCP session (2025-11-25) and without (2026-07-28), as a ratio of
//! the same call over stdio; and the throughput of 100 concurrent HTTP clients, each in its
//! own default session.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{ClientConfig, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::Scale;
use crate::drive::{call, spawn_server};

type Client = RunningService<rmcp::RoleClient, ClientConfig>;
use crate::report::{Table, fmt_d, p50};
use crate::twin::Twin;

const BIN: &str = env!("CARGO_BIN_EXE_blender-session-mcp");

/// The binary serving HTTP on a free port, and its MCP URL.
async fn spawn_http(port: u16, max_clients: usize) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--blender-port",
            &port.to_string(),
        ])
        .args(["--max-clients", &max_clients.to_string()])
        .env("RUST_LOG", "warn")
        .env_remove("BSM_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the HTTP server");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .expect("stderr")
            .expect("the server says where it listens");
        if let Some(url) = line.strip_prefix("MCP over HTTP at ") {
            break url.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

async fn http_client(url: &str, version: ProtocolVersion) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
    );
    let mut info = ClientConfig::default();
    info.protocol_version = version;
    info.serve(transport).await.expect("initialize over HTTP")
}

async fn samples(client: &rmcp::Peer<rmcp::RoleClient>, warmup: usize, n: usize) -> Vec<Duration> {
    let args = json!({"code": "print(1)"});
    for _ in 0..warmup {
        call(client, "execute_blender_code", args.clone()).await;
    }
    let mut s = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        call(client, "execute_blender_code", args.clone()).await;
        s.push(t0.elapsed());
    }
    s
}

/// The HTTP rows.
pub(crate) async fn http_vs_stdio(t: &mut Table, twin: &Twin, scale: &Scale) {
    let (stdio, _child, _) = spawn_server(twin.port).await;
    let mut s = samples(&stdio, scale.warmup, scale.calls).await;
    let stdio_p50 = p50(&mut s);
    t.timings("stdio `execute_blender_code` (the reference)", &mut s, "—");
    stdio.cancel().await.ok();

    let (_server, url) = spawn_http(twin.port, 1024).await;
    for (label, version) in [
        (
            "with an MCP session, 2025-11-25",
            ProtocolVersion::V_2025_11_25,
        ),
        ("sessionless, 2026-07-28", ProtocolVersion::V_2026_07_28),
    ] {
        let client = http_client(&url, version).await;
        let mut s = samples(&client, scale.warmup, scale.calls).await;
        let ratio = p50(&mut s).as_secs_f64() / stdio_p50.as_secs_f64().max(1e-9);
        t.timings(
            &format!("HTTP `execute_blender_code` ({label}): {ratio:.2}× stdio"),
            &mut s,
            "≤ 1.5× stdio",
        );
        client.cancel().await.ok();
    }

    // Throughput: many clients at once, each in its own session (its own connection to
    // the twin), every call checked.
    let clients = scale.http_clients;
    let calls = scale.http_calls;
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(http_client(&url, ProtocolVersion::V_2025_11_25).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in connected {
        tasks.push(tokio::spawn(async move {
            let mut s = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t0 = Instant::now();
                call(&client, "execute_blender_code", json!({"code": "print(1)"})).await;
                s.push(t0.elapsed());
            }
            client.cancel().await.ok();
            s
        }));
    }
    let mut all = Vec::with_capacity(clients * calls);
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    let rate = (clients * calls) as f64 / elapsed.as_secs_f64();
    t.timings(
        &format!(
            "{clients} concurrent HTTP clients × {calls} calls: {rate:.0} calls/s in {}",
            fmt_d(elapsed)
        ),
        &mut all,
        "—",
    );
}
