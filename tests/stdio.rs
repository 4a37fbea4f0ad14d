//! End to end over stdio: the real binary, raw JSON-RPC lines in, and proof that every line
//! on stdout is JSON-RPC while the logs go to stderr.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::FakeAddon;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_blender-session-mcp");

#[tokio::test]
async fn stdout_carries_only_json_rpc_and_logs_go_to_stderr() {
    let mut fake = FakeAddon::start().await;
    let mut child = Command::new(BIN)
        .args(["--blender-port", &fake.port.to_string()])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");

    let mut lines: Vec<String> = Vec::new();
    // Send one request and read stdout lines until its response arrives.
    async fn exchange(
        stdin: &mut tokio::process::ChildStdin,
        stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        lines: &mut Vec<String>,
        message: Value,
    ) -> Value {
        let id = message.get("id").cloned();
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .expect("write");
        let id = id.expect("a request");
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
                .await
                .expect("answer in time")
                .expect("read")
                .expect("stdout open");
            lines.push(line.clone());
            let v: Value = serde_json::from_str(&line).expect("stdout line is JSON");
            if v.get("id") == Some(&id) {
                return v;
            }
        }
    }

    let init = exchange(
        &mut stdin,
        &mut stdout,
        &mut lines,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"}}}),
    )
    .await;
    assert_eq!(init["result"]["serverInfo"]["name"], "blender-session-mcp");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .expect("write");
    let tools = exchange(
        &mut stdin,
        &mut stdout,
        &mut lines,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(
        tools["result"]["tools"].as_array().expect("tools").len(),
        10
    );
    let code = exchange(
        &mut stdin,
        &mut stdout,
        &mut lines,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "execute_blender_code", "arguments": {"code": "print('立方体')"}}}),
    )
    .await;
    assert_eq!(code["result"]["isError"], false);
    assert_eq!(code["result"]["content"][0]["text"], "立方体\n");
    let scene = exchange(
        &mut stdin,
        &mut stdout,
        &mut lines,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "get_scene_info", "arguments": {}}}),
    )
    .await;
    assert_eq!(scene["result"]["structuredContent"]["object_count"], 3);

    // stdin EOF ends the server, which closes its Blender connection and exits 0.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after stdin EOF")
        .expect("status");
    assert!(status.success(), "{status:?}");
    while let Some(line) = stdout.next_line().await.expect("read") {
        lines.push(line);
    }
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).await.expect("stderr");

    assert!(lines.len() >= 4);
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("non-JSON on stdout ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC: {line}");
    }
    for expected in [
        "SessionManager initialized (Blender: 127.0.0.1:",
        "✓ Session created: scene-",
        "✓ Blender connected for session scene-",
        "→ Command sent: execute_code (session: scene-",
        "← Response: success (",
        "✓ Session closed (shutdown): scene-",
    ] {
        assert!(
            logs.contains(expected),
            "stderr lacks {expected:?}:\n{logs}"
        );
    }
    fake.wait_count("closed", 1).await;
}

#[tokio::test]
async fn json_log_format_writes_json_lines_to_stderr() {
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--blender-port", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    drop(child.stdin.take());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    assert!(out.stdout.is_empty(), "nothing on stdout without a client");
    let logs = String::from_utf8_lossy(&out.stderr);
    let first = logs.lines().next().expect("a log line");
    let v: Value = serde_json::from_str(first).expect("JSON log line");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("SessionManager initialized")
    );
}

#[tokio::test]
async fn help_explains_every_flag() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--blender-host",
        "--blender-port",
        "--connect-timeout",
        "--command-timeout",
        "--max-reply-bytes",
        "--max-request-bytes",
        "--log-format",
        "--no-track-state",
        "--history-limit",
        "--cleanup-interval",
        "--idle-timeout",
        "--max-sessions",
        "BLENDER_HOST",
        "BLENDER_PORT",
        "--spawn-blender",
        "--blender <PATH>",
        "--blend-file",
        "--startup-timeout",
        "check",
        "blender",
        "demo",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[tokio::test]
async fn check_reports_what_it_found_or_how_to_fix_it() {
    let fake = FakeAddon::start_with(&["--protocol", "14"]).await;
    let out = Command::new(BIN)
        .args(["check", "--blender-port", &fake.port.to_string()])
        .output()
        .await
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("protocol 14"), "{text}");
    assert!(text.contains("3 object(s)"), "{text}");
    assert!(text.contains("round trip"), "{text}");

    let port = support::closed_port();
    let out = Command::new(BIN)
        .args(["check", "--blender-port", &port.to_string()])
        .output()
        .await
        .expect("check");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Troubleshooting"), "{text}");
    assert!(text.contains("Connect to MCP server"), "{text}");
}

#[tokio::test]
async fn demo_without_blender_says_how_to_install_it() {
    let port = support::closed_port();
    let out = Command::new(BIN)
        .args(["demo", "--blender-port", &port.to_string()])
        .env("PATH", "/nonexistent")
        .env_remove("BLENDER_PATH")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Blender is not installed"), "{text}");
    assert!(
        text.contains("apt-get install --no-install-recommends blender"),
        "{text}"
    );

    let out = Command::new(BIN)
        .args([
            "demo",
            "--blender",
            "/nonexistent/blender",
            "--blender-port",
            &port.to_string(),
        ])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("could not start /nonexistent/blender"),
        "{text}"
    );
}
