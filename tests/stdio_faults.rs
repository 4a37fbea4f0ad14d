//! Faults at the MCP edge, against the real binary over stdio: malformed JSON-RPC, unknown
//! tools, wrong argument types, a 100 MB `code` string, hostile session ids, and stdin EOF or
//! SIGTERM with a command in flight. The server answers each with a JSON-RPC error or an
//! `isError` result and keeps serving; at EOF or SIGTERM it closes every Blender connection,
//! records the in-flight command and exits 0 within 1 s.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{FakeAddon, RawServer};

#[tokio::test]
async fn bad_input_never_stops_the_server() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let mut server = RawServer::start(&["--blender-port", &port]).await;

    // Malformed JSON-RPC: a parse error (or nothing), never a crash.
    server.send_line("{this is not json").await;
    server.send_line("[1, 2, 3]").await;
    server
        .send_line(r#"{"jsonrpc":"2.0","id":"x","method":"no/such/method"}"#)
        .await;
    let r = loop {
        let v = server.next_message().await.expect("open");
        if v["id"] == "x" {
            break v;
        }
    };
    assert!(r["error"]["code"].is_i64(), "{r}");

    // Unknown tool: a JSON-RPC error (the request cannot be routed).
    let r = server.call_tool(1, "no_such_tool", json!({})).await;
    assert!(r["error"]["code"].is_i64(), "{r}");

    // Wrong argument types: an isError result the model can read.
    let r = server
        .call_tool(2, "execute_blender_code", json!({"code": 42}))
        .await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    let r = server
        .call_tool(3, "get_session_history", json!({"limit": "many"}))
        .await;
    assert_eq!(r["result"]["isError"], true, "{r}");

    // Hostile session ids.
    for (i, id) in [
        "",
        "../../etc",
        "scene-\u{0}\u{1b}[2J",
        &"z".repeat(100_000),
    ]
    .iter()
    .enumerate()
    {
        let r = server
            .call_tool(10 + i as u64, "get_session_info", json!({"session_id": id}))
            .await;
        if id.is_empty() {
            assert_eq!(
                r["result"]["isError"], false,
                "empty means the default session"
            );
        } else {
            assert_eq!(r["result"]["isError"], true, "{r}");
            let text = r["result"]["content"][0]["text"].as_str().unwrap_or("");
            assert!(text.starts_with("Session not found"), "{text}");
            assert!(text.len() < 1000);
        }
    }

    // A 100 MB code string: refused with a clear message, nothing sent to Blender.
    let huge = format!("x = '{}'", "a".repeat(100 << 20));
    let r = server
        .call_tool(20, "execute_blender_code", json!({"code": huge}))
        .await;
    assert_eq!(r["result"]["isError"], true);
    let text = r["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("--max-request-bytes"), "{text}");
    drop(huge);

    // Still serving.
    let r = server
        .call_tool(
            21,
            "execute_blender_code",
            json!({"code": "print('alive')"}),
        )
        .await;
    assert_eq!(r["result"]["content"][0]["text"], "alive\n");
    server.close_stdin();
    let (status, _, _) = server.finish().await;
    assert!(status.success());
}

async fn command_in_flight(fake: &mut FakeAddon, server: &mut RawServer) {
    fake.arm(json!({"kind": "never_answer"})).await;
    server
        .send_line(
            &json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {
                "name": "execute_blender_code", "arguments": {"code": "print('pending')"}}})
            .to_string(),
        )
        .await;
    fake.wait_count("request", 1).await;
}

#[tokio::test]
async fn stdin_eof_with_a_command_in_flight_closes_everything_and_exits_promptly() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let mut server = RawServer::start(&["--blender-port", &port]).await;
    let r = server.call_tool(1, "create_session", json!({})).await;
    assert_eq!(r["result"]["isError"], false);
    command_in_flight(&mut fake, &mut server).await;
    assert_eq!(fake.count("accepted").await, 2);

    let closed_at = Instant::now();
    server.close_stdin();
    let (status, logs, _) = server.finish().await;
    let took = closed_at.elapsed();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(
        took < Duration::from_secs(1),
        "exited {took:?} after stdin EOF"
    );
    fake.wait_count("closed", 2).await;
    assert!(
        logs.contains("← Response: cancelled"),
        "the in-flight command is recorded:\n{logs}"
    );
    assert!(logs.contains("✓ Session closed (shutdown)"), "{logs}");
}

#[tokio::test]
async fn sigterm_with_a_command_in_flight_closes_everything_and_exits_zero() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let mut server = RawServer::start(&["--blender-port", &port]).await;
    command_in_flight(&mut fake, &mut server).await;

    let signalled_at = Instant::now();
    let pid = server.child.id().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let (status, logs, _) = server.finish().await;
    let took = signalled_at.elapsed();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(
        took < Duration::from_secs(1),
        "exited {took:?} after SIGTERM"
    );
    fake.wait_count("closed", 1).await;
    assert!(logs.contains("← Response: cancelled"), "{logs}");
}
