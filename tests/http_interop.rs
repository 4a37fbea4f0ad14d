//! Interop over Streamable HTTP with clients nobody here wrote, against the binary
//! (`serve --http 127.0.0.1:0`, the token in `BSM_AUTH_TOKEN`, a fake addon behind it):
//!
//! - the official Python SDK (PyPI `mcp` 2.x, `tests/interop/python_sdk_http_client.py`) on
//!   its default negotiation (2026-07-28, sessionless) and on initialize handshakes at
//!   2025-11-25 and 2025-06-18 (with an `Mcp-Session-Id`);
//! - the official TypeScript SDK (`@modelcontextprotocol/sdk` 1.x, 2025-11-25,
//!   `tests/interop/ts/http_client.mjs`);
//! - the MCP Inspector's CLI (`--transport http --header "Authorization: Bearer …"`).
//!
//! Each client process runs once per client; a client with an MCP session gets its own
//! default Blender session (and connection), sessionless clients of one user share theirs,
//! and no token or a wrong one is a 401. Skipped where a client is not installed (a
//! `SKIPPED <test>: <reason>` line on stderr, counted by `.ci/run`); required in CI (`CI`
//! set), where `.ci/run` installs them.

mod support;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use blender_session_mcp::mcp::names;
use serde_json::Value;
use support::FakeAddon;
use support::http::HttpServe;
use tokio::process::Command;

const TOKEN: &str = "interop-token-0123456789abcdef";

/// One client process's whole run (connect, three calls, two refused connects).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// What the clients' `execute_blender_code` prints (see the scripts).
const PY_PRINTED: &str = "hello from the Python SDK\n";
const TS_PRINTED: &str = "hello from the TypeScript SDK\n";

// ---- prerequisites

/// The Python SDK with what the script uses: 2.x's `Client` and its httpx2-based streamable
/// HTTP client.
fn python_sdk() -> Result<(), String> {
    let probe = std::process::Command::new("python3")
        .args([
            "-c",
            "from mcp import Client, ClientSession\n\
             from mcp.client.streamable_http import streamable_http_client\n\
             import httpx2",
        ])
        .output()
        .map_err(|e| format!("python3 does not run ({e})"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the Python MCP SDK 2.x is not installed (pip install mcp): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ))
    }
}

// ---- running things

/// The server over HTTP on a free loopback port, Blender at `fake`, the token from the
/// environment.
async fn serve(fake: &FakeAddon) -> HttpServe {
    let port = fake.port.to_string();
    HttpServe::start_on(
        "127.0.0.1:0",
        &["--blender-port", &port],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await
}

/// Run `cmd` to the end within [`CLIENT_TIMEOUT`].
async fn run(what: &str, cmd: &mut Command) -> Output {
    tokio::time::timeout(CLIENT_TIMEOUT, cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("run {what}: {e}"))
}

/// The JSON report a client printed as its last stdout line; it must have exited 0.
fn report(what: &str, out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
            panic!(
                "{what} printed no report ({e}); {}:\n{stdout}\n{stderr}",
                out.status
            )
        });
    assert!(
        out.status.success(),
        "{what} failed ({}): {report:#}\nstderr:\n{stderr}",
        out.status
    );
    report
}

/// `tests/interop/python_sdk_http_client.py URL TOKEN PROTOCOL`'s report.
async fn python(url: &str, protocol: &str) -> Value {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_sdk_http_client.py");
    let what = format!("the Python SDK client ({protocol})");
    let out = run(
        &what,
        Command::new("python3")
            .arg(script)
            .args([url, TOKEN, protocol]),
    )
    .await;
    report(&what, &out)
}

/// `tests/interop/ts/http_client.mjs URL TOKEN`'s report.
async fn typescript(url: &str) -> Value {
    let script = support::node::ts_dir().join("http_client.mjs");
    let what = "the TypeScript SDK client";
    let out = run(what, Command::new("node").arg(script).args([url, TOKEN])).await;
    report(what, &out)
}

/// `mcp-inspector --cli URL --transport http [--header H] --method METHOD EXTRA…`.
async fn inspector(url: &str, header: Option<&str>, method: &str, extra: &[&str]) -> Output {
    let bin = support::node::ts_dir().join("node_modules/.bin/mcp-inspector");
    let mut cmd = Command::new(&bin);
    cmd.args(["--cli", url, "--transport", "http"]);
    if let Some(h) = header {
        cmd.args(["--header", h]);
    }
    cmd.args(["--method", method]).args(extra);
    run(&format!("the Inspector's {method}"), &mut cmd).await
}

/// The JSON document a successful Inspector run printed.
fn inspector_json(method: &str, out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Inspector's {method} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("the Inspector's {method} printed no JSON ({e}):\n{stdout}\n{stderr}")
    })
}

// ---- what the reports must say

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The client with the token listed every tool, ran the code and read its session.
fn assert_worked(report: &Value, printed: &str) {
    let tools = strings(&report["tools"]);
    for name in names::ALL {
        assert!(
            tools.iter().any(|t| t == name),
            "tools/list lacks {name}: {report:#}"
        );
    }
    assert_eq!(report["code_is_error"], false, "{report:#}");
    assert_eq!(report["code_text"], printed, "{report:#}");
    assert!(
        report["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{report:#}"
    );
}

/// The Python client's connects without the token and with a wrong one failed, and every
/// HTTP response they got was a 401 with a `Bearer` challenge.
fn assert_python_refused(report: &Value) {
    for case in ["no_token", "wrong_token"] {
        let r = &report[case];
        assert_eq!(r["failed"], true, "{case} connected: {report:#}");
        let statuses = r["statuses"].as_array().cloned().unwrap_or_default();
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| s == 401),
            "{case}: not all 401: {report:#}"
        );
        let challenges = strings(&r["www_authenticate"]);
        assert!(
            !challenges.is_empty() && challenges.iter().all(|c| c.starts_with("Bearer")),
            "{case}: no Bearer challenge: {report:#}"
        );
    }
}

/// The TypeScript client's connects without the token and with a wrong one failed with a
/// `StreamableHTTPError` of code 401.
fn assert_typescript_refused(report: &Value) {
    for case in ["no_token", "wrong_token"] {
        let r = &report[case];
        assert_eq!(r["failed"], true, "{case} connected: {report:#}");
        assert_eq!(r["status"], 401, "{case}: {report:#}");
    }
}

/// Wait until the fake ran `n` execute_code commands that printed `printed` first; the
/// connections they ran on, in order.
async fn code_connections(fake: &mut FakeAddon, printed: &str, n: usize) -> Vec<u64> {
    let ran = |events: &[Value]| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e["event"] == "executed" && e["type"] == "execute_code")
            // What the code printed, then the server's own trailer.
            .filter(|e| e["stdout"].as_str().is_some_and(|s| s.starts_with(printed)))
            .filter_map(|e| e["conn"].as_u64())
            .collect()
    };
    fake.wait_for(|ev| ran(ev).len() >= n).await;
    ran(&fake.events())
}

fn session_id(report: &Value) -> String {
    report["session_id"].as_str().unwrap_or_default().to_owned()
}

// ---- the Python SDK

#[tokio::test]
async fn two_python_sdk_clients_on_2025_06_18_get_two_sessions_and_two_blender_connections() {
    const TEST: &str =
        "two_python_sdk_clients_on_2025_06_18_get_two_sessions_and_two_blender_connections";
    if !support::require(TEST, python_sdk()) {
        return;
    }
    let mut fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    // At once: two MCP sessions alive together.
    let (a, b) = tokio::join!(
        python(&server.url, "2025-06-18"),
        python(&server.url, "2025-06-18")
    );
    for r in [&a, &b] {
        assert_eq!(r["protocol"], "2025-06-18", "{r:#}");
        assert_eq!(r["server"], "blender-session-mcp", "{r:#}");
        assert_eq!(
            strings(&r["mcp_session_ids"]).len(),
            1,
            "one Mcp-Session-Id: {r:#}"
        );
        assert_worked(r, PY_PRINTED);
    }
    assert_ne!(a["mcp_session_ids"], b["mcp_session_ids"]);
    assert_ne!(
        session_id(&a),
        session_id(&b),
        "two MCP sessions, two default sessions"
    );
    assert_eq!(a["owner"], b["owner"], "one user (the token's)");
    let conns = code_connections(&mut fake, PY_PRINTED, 2).await;
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_ne!(
        conns[0], conns[1],
        "each session's code on its own Blender connection"
    );
    assert_eq!(fake.count("accepted").await, 2, "{:?}", fake.events());
    server.stop().await;
}

#[tokio::test]
async fn two_sessionless_python_sdk_clients_share_one_session_and_one_blender_connection() {
    const TEST: &str =
        "two_sessionless_python_sdk_clients_share_one_session_and_one_blender_connection";
    if !support::require(TEST, python_sdk()) {
        return;
    }
    let mut fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    let (a, b) = tokio::join!(
        python(&server.url, "default"),
        python(&server.url, "default")
    );
    for r in [&a, &b] {
        // The SDK's default negotiation reached the sessionless revision (no fallback to
        // a handshake), so no Mcp-Session-Id.
        assert_eq!(r["protocol"], "2026-07-28", "{r:#}");
        assert_eq!(
            strings(&r["mcp_session_ids"]),
            Vec::<String>::new(),
            "{r:#}"
        );
        assert_worked(r, PY_PRINTED);
    }
    assert_eq!(
        session_id(&a),
        session_id(&b),
        "one user, one default session"
    );
    let conns = code_connections(&mut fake, PY_PRINTED, 2).await;
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(
        conns[0], conns[1],
        "both clients' code on the one connection"
    );
    assert_eq!(fake.count("accepted").await, 1, "{:?}", fake.events());
    server.stop().await;
}

#[tokio::test]
async fn the_python_sdk_gets_401_without_the_token_or_with_a_wrong_one_and_works_with_it() {
    const TEST: &str =
        "the_python_sdk_gets_401_without_the_token_or_with_a_wrong_one_and_works_with_it";
    if !support::require(TEST, python_sdk()) {
        return;
    }
    let fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    for (protocol, negotiated) in [
        ("default", "2026-07-28"),
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
    ] {
        let r = python(&server.url, protocol).await;
        assert_eq!(r["protocol"], negotiated, "{r:#}");
        assert_worked(&r, PY_PRINTED);
        assert_python_refused(&r);
    }
    server.stop().await;
}

// ---- the TypeScript SDK

#[tokio::test]
async fn two_typescript_sdk_clients_get_two_sessions_and_connections_and_401_without_the_token() {
    const TEST: &str =
        "two_typescript_sdk_clients_get_two_sessions_and_connections_and_401_without_the_token";
    if !support::require(TEST, support::node::prerequisites()) {
        return;
    }
    let mut fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    let (a, b) = tokio::join!(typescript(&server.url), typescript(&server.url));
    for r in [&a, &b] {
        assert_eq!(r["protocol"], "2025-11-25", "{r:#}");
        assert_eq!(r["server"], "blender-session-mcp", "{r:#}");
        assert!(
            r["mcp_session_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{r:#}"
        );
        assert_worked(r, TS_PRINTED);
        assert_typescript_refused(r);
    }
    assert_ne!(a["mcp_session_id"], b["mcp_session_id"]);
    assert_ne!(
        session_id(&a),
        session_id(&b),
        "two MCP sessions, two default sessions"
    );
    let conns = code_connections(&mut fake, TS_PRINTED, 2).await;
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_ne!(
        conns[0], conns[1],
        "each session's code on its own Blender connection"
    );
    assert_eq!(fake.count("accepted").await, 2, "{:?}", fake.events());
    server.stop().await;
}

// ---- the MCP Inspector's CLI

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

#[tokio::test]
async fn the_inspector_lists_tools_over_http_with_the_bearer_header() {
    const TEST: &str = "the_inspector_lists_tools_over_http_with_the_bearer_header";
    if !support::require(TEST, support::node::prerequisites()) {
        return;
    }
    let fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    let out = inspector(&server.url, Some(&bearer()), "tools/list", &[]).await;
    let listed = inspector_json("tools/list", &out);
    let tools: Vec<String> = listed["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {listed:#}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    for name in names::ALL {
        assert!(tools.iter().any(|t| t == name), "{tools:?} lacks {name}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_inspector_calls_execute_blender_code_over_http_with_the_bearer_header() {
    const TEST: &str = "the_inspector_calls_execute_blender_code_over_http_with_the_bearer_header";
    if !support::require(TEST, support::node::prerequisites()) {
        return;
    }
    let mut fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    let out = inspector(
        &server.url,
        Some(&bearer()),
        "tools/call",
        &[
            "--tool-name",
            names::EXECUTE_BLENDER_CODE,
            "--tool-arg",
            "code=print('hello from the Inspector')",
        ],
    )
    .await;
    let result = inspector_json("tools/call", &out);
    assert_eq!(result["isError"], false, "{result:#}");
    assert_eq!(
        result["content"][0]["text"], "hello from the Inspector\n",
        "{result:#}"
    );
    let conns = code_connections(&mut fake, "hello from the Inspector\n", 1).await;
    assert_eq!(conns.len(), 1, "the code ran in Blender once: {conns:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_inspector_fails_over_http_without_the_header_or_with_a_wrong_token() {
    const TEST: &str = "the_inspector_fails_over_http_without_the_header_or_with_a_wrong_token";
    if !support::require(TEST, support::node::prerequisites()) {
        return;
    }
    let mut fake = FakeAddon::start().await;
    let server = serve(&fake).await;
    let wrong = format!("Authorization: Bearer wrong-{TOKEN}");
    for header in [None, Some(wrong.as_str())] {
        let out = inspector(&server.url, header, "tools/list", &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{header:?}: the Inspector listed tools:\n{stdout}\n{stderr}"
        );
        // The Inspector prints the SDK's error, which carries the body of the server's 401
        // (not its status): `Failed to connect to MCP server: Streamable HTTP error: Error
        // POSTing to endpoint: {"error":"this server needs a bearer token: …"}` (or "the
        // bearer token is not valid: …").
        let said = format!("{stdout}{stderr}");
        assert!(
            said.contains("Failed to connect") && said.contains("bearer token"),
            "{header:?}: not the 401's message:\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(!stdout.contains("\"tools\""), "{header:?}: {stdout}");
    }
    assert_eq!(fake.count("accepted").await, 0, "nothing reached Blender");
    server.stop().await;
}
