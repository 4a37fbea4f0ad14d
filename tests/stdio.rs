//! End to end over stdio: the real binary, raw JSON-RPC lines in, and proof that every line
//! on stdout is JSON-RPC while the logs go to stderr.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::{FakeAddon, RawServer};
use tokio::process::Command;

use support::BIN;

#[tokio::test]
async fn stdout_carries_only_json_rpc_and_logs_go_to_stderr() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    // RawServer checks that every stdout line is JSON-RPC as it reads it.
    let mut server =
        RawServer::start_env(&["--blender-port", &port], &[("RUST_LOG", "debug")]).await;
    let tools = server
        .request(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    assert_eq!(
        tools["result"]["tools"].as_array().expect("tools").len(),
        12
    );
    let code = server
        .call_tool(
            3,
            "execute_blender_code",
            json!({"code": "print('立方体')"}),
        )
        .await;
    assert_eq!(code["result"]["isError"], false);
    assert_eq!(code["result"]["content"][0]["text"], "立方体\n");
    let scene = server.call_tool(4, "get_scene_info", json!({})).await;
    assert_eq!(scene["result"]["structuredContent"]["object_count"], 3);

    // stdin EOF ends the server, which closes its Blender connection and exits 0.
    server.close_stdin();
    let (status, logs, lines) = server.finish().await;
    assert!(status.success(), "{status:?}");
    assert!(lines.len() >= 4, "{lines:?}");
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
    let store = support::TempStore::new();
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--blender-port", "1"])
        .env("BSM_STORE_PATH", &store.path)
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
    let store = support::TempStore::new();
    let out = Command::new(BIN)
        .args(["check", "--blender-port", &fake.port.to_string()])
        .env("BSM_STORE_PATH", &store.path)
        .output()
        .await
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("protocol 14"), "{text}");
    assert!(text.contains("3 object(s)"), "{text}");
    assert!(text.contains("round trip"), "{text}");

    let port = support::closed_port();
    let store = support::TempStore::new();
    let out = Command::new(BIN)
        .args(["check", "--blender-port", &port.to_string()])
        .env("BSM_STORE_PATH", &store.path)
        .output()
        .await
        .expect("check");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Troubleshooting"), "{text}");
    assert!(text.contains("Connect to MCP server"), "{text}");
}

/// `check` against `port`, bounded by the test; returns (exit code, stdout, stderr, elapsed).
async fn check_port(port: u16) -> (Option<i32>, String, String, Duration) {
    let started = std::time::Instant::now();
    let store = support::TempStore::new();
    let run = Command::new(BIN)
        .args(["check", "--blender-port", &port.to_string()])
        .env("BSM_STORE_PATH", &store.path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("check ends")
        .expect("check runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn check_names_a_silent_listener_within_seconds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accept every connection and hold it open without a word.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let (code, stdout, stderr, elapsed) = check_port(port).await;
    holder.abort();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("✓ connected to 127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("get_addon_info: waiting up to 5 s"),
        "{stdout}"
    );
    let expected = format!(
        "nothing answered within 5 s: something accepts connections on 127.0.0.1:{port} but does not speak the BlenderMCP protocol"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("Troubleshooting"), "{stderr}");
}

#[tokio::test]
async fn check_names_an_http_server_within_seconds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Whatever arrives gets a 400, then the server closes its side.
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {
                    let _ = socket
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = socket.shutdown().await;
                    // Read on until the client closes, so the close is a FIN, not a reset.
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    let (code, stdout, stderr, elapsed) = check_port(port).await;
    server.abort();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "an HTTP server answered (HTTP/1.1 400 Bad Request): this port belongs to a web server, not the BlenderMCP addon"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Troubleshooting"), "{stderr}");
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
