//! MCP over Streamable HTTP, end to end against the binary: authentication (401 with
//! `WWW-Authenticate`), `Origin` and `Host` checks (403), default sessions per client on both
//! protocol generations, the client cap, the refused unauthenticated non-loopback bind, TLS,
//! many concurrent clients, a client disconnecting mid-call, and a clean shutdown. Users and
//! sharing are in `http_users.rs`.

mod support;

use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};
use support::FakeAddon;
use support::http::{HttpServe, auth, client, initialize, post};

const TOKEN: &str = "test-token-0123456789abcdef";

#[tokio::test]
async fn no_token_or_a_wrong_one_is_401_with_a_bearer_challenge_and_the_right_one_works() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let server = HttpServe::start_on(
        "127.0.0.1:0",
        &["--blender-port", &port],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await;
    let init = initialize("2025-06-18");
    let (status, headers, body) = post(&server.url, &[], &init).await;
    assert_eq!(status, 401, "{body}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );

    let (status, headers, body) =
        post(&server.url, &[("authorization", &auth("nope"))], &init).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    let (status, _, body) = post(&server.url, &[("authorization", &auth(TOKEN))], &init).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "blender-session-mcp");

    let c = client(&server.url, Some(TOKEN), ProtocolVersion::V_2025_06_18).await;
    let r = support::call(&c, "execute_blender_code", json!({"code": "print('hi')"})).await;
    assert_eq!(support::text(support::ok(&r)), "hi\n");
    let _ = c.cancel().await;
    let (_, stderr) = server.stop().await;
    assert!(
        !stderr.contains(TOKEN),
        "the token is never logged:\n{stderr}"
    );
}

#[tokio::test]
async fn an_evil_origin_or_host_is_403_and_an_allowed_origin_passes() {
    let server = HttpServe::start_on(
        "127.0.0.1:0",
        &["--allowed-origin", "https://tools.example.com"],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await;
    let init = initialize("2025-06-18");
    let bearer = auth(TOKEN);
    let (status, _, body) = post(
        &server.url,
        &[
            ("authorization", &bearer),
            ("origin", "http://evil.example"),
        ],
        &init,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--allowed-origin"),
        "{body}"
    );
    let (status, _, body) = post(
        &server.url,
        &[("authorization", &bearer), ("host", "evil.example:80")],
        &init,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    for origin in [
        "https://tools.example.com",
        &format!("http://{}", server.authority()),
    ] {
        let (status, _, body) = post(
            &server.url,
            &[("authorization", &bearer), ("origin", origin)],
            &init,
        )
        .await;
        assert_eq!(status, 200, "{origin}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn two_clients_get_two_default_sessions_and_two_connections_on_both_protocol_generations() {
    for version in [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25] {
        let mut fake = FakeAddon::start().await;
        let port = fake.port.to_string();
        let server = HttpServe::start(&["--blender-port", &port]).await;
        let a = client(&server.url, None, version.clone()).await;
        let b = client(&server.url, None, version.clone()).await;
        let ra = support::call(&a, "execute_blender_code", json!({"code": "print('a')"})).await;
        let rb = support::call(&b, "execute_blender_code", json!({"code": "print('b')"})).await;
        assert_eq!(support::text(support::ok(&ra)), "a\n");
        assert_eq!(support::text(support::ok(&rb)), "b\n");
        let ia = support::structured(support::ok(
            &support::call(&a, "get_session_info", json!({})).await,
        ));
        let ib = support::structured(support::ok(
            &support::call(&b, "get_session_info", json!({})).await,
        ));
        assert_ne!(ia["session_id"], ib["session_id"], "{version:?}");
        fake.wait_count("accepted", 2).await;
        assert_eq!(
            fake.count("accepted").await,
            2,
            "one connection per session"
        );
        let _ = a.cancel().await;
        let _ = b.cancel().await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_non_loopback_bind_without_auth_is_refused_with_a_message() {
    let out = tokio::process::Command::new(support::BIN)
        .args(["serve", "--http", "0.0.0.0:0"])
        .env_remove("BSM_AUTH_TOKEN")
        .env_remove("BSM_AUTH_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without authentication") && stderr.contains("--auth-token"),
        "{stderr}"
    );
}

#[tokio::test]
async fn over_the_client_cap_a_new_client_gets_503_and_a_big_body_413() {
    let server = HttpServe::start(&["--max-clients", "1", "--max-body-bytes", "64KiB"]).await;
    let first = client(&server.url, None, ProtocolVersion::V_2025_06_18).await;
    let (status, headers, body) = post(&server.url, &[], &initialize("2025-06-18")).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body["error"].as_str().unwrap().contains("--max-clients"),
        "{body}"
    );
    let _ = first.cancel().await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": "x".repeat(200_000)}});
    // The first client's MCP session may take a moment to be dropped: retry until it is.
    let mut status = 0;
    for _ in 0..100 {
        status = post(&server.url, &[], &big).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 413);
    server.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_clients_times_twenty_calls_see_no_cross_talk() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let server = HttpServe::start(&["--blender-port", &port]).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let version = if i % 2 == 0 {
                ProtocolVersion::V_2025_06_18
            } else {
                ProtocolVersion::V_2025_11_25
            };
            let c = client(&url, None, version).await;
            for j in 0..20 {
                let r = support::call(
                    &c,
                    "execute_blender_code",
                    json!({"code": format!("print('{i}-{j}')")}),
                )
                .await;
                assert_eq!(support::text(support::ok(&r)), format!("{i}-{j}\n"));
            }
            let info = support::structured(support::ok(
                &support::call(&c, "get_session_info", json!({})).await,
            ));
            assert_eq!(info["command_count"], 20, "client {i}");
            let _ = c.cancel().await;
            info["session_id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("client task"));
    }
    assert_eq!(ids.len(), 50, "each client its own default session");
    server.stop().await;
}

#[tokio::test]
async fn a_client_disconnecting_mid_call_is_recorded_cancelled() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let server = HttpServe::start(&["--blender-port", &port]).await;
    let watcher = client(&server.url, None, ProtocolVersion::V_2025_06_18).await;
    let id = session_id_of(&support::call(&watcher, "create_session", json!({})).await);
    fake.arm(json!({"kind": "delay", "seconds": 3})).await;
    // A raw client: initialize, then a tools/call whose response it drops mid-way.
    let (status, headers, _) = post(&server.url, &[], &initialize("2025-06-18")).await;
    assert_eq!(status, 200);
    let mcp_session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let common = [
        ("mcp-session-id", mcp_session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    post(
        &server.url,
        &common,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let url = server.url.clone();
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "execute_blender_code", "arguments": {"code": "print('slow')", "session_id": id}}});
    let (sid, body) = (mcp_session.clone(), call.to_string());
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-06-18")
            .body(body)
            .send()
            .await?
            // Headers come first; the answer streams after them, until this task is aborted.
            .bytes()
            .await
    });
    let mut request = request;
    tokio::select! {
        r = &mut request => panic!("the call ended before it reached Blender: {r:?}"),
        _ = fake.wait_count("request", 1) => {}
    }
    request.abort();
    let _ = request.await;
    // The client just vanished: no `notifications/cancelled`, no DELETE of its MCP session.
    let history = loop {
        let h = support::structured(support::ok(
            &support::call(&watcher, "get_session_history", json!({"session_id": id})).await,
        ));
        if h["entries"][0]["outcome"] != "running" {
            break h;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(history["entries"][0]["outcome"], "cancelled", "{history}");
    let _ = watcher.cancel().await;
    server.stop().await;
}

#[tokio::test]
async fn a_shutdown_with_http_clients_connected_ends_every_session_cleanly() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let mut server = HttpServe::start(&["--blender-port", &port]).await;
    let a = client(&server.url, None, ProtocolVersion::V_2025_06_18).await;
    let b = client(&server.url, None, ProtocolVersion::V_2025_11_25).await;
    support::ok(&support::call(&b, "execute_blender_code", json!({"code": "print(2)"})).await);
    let id = session_id_of(&support::call(&a, "get_session_info", json!({})).await);
    // The fake's "main thread" notices the closed connection once this delay is over.
    fake.arm(json!({"kind": "delay", "seconds": 3})).await;
    let slow = tokio::spawn(async move {
        let r = a
            .call_tool(
                rmcp::model::CallToolRequestParams::new("execute_blender_code").with_arguments(
                    json!({"code": "print('slow')"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            )
            .await;
        (a, r.is_ok())
    });
    fake.wait_count("request", 2).await;
    let store = server.take_store();
    let started = std::time::Instant::now();
    let (status, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{stderr}"
    );
    // Both Blender connections were closed, not left to time out.
    fake.wait_count("closed", 2).await;
    let out = tokio::process::Command::new(support::BIN)
        .args([
            "sessions",
            "--json",
            "--store-path",
            &store.path,
            "history",
            &id,
        ])
        .output()
        .await
        .expect("sessions history");
    let history: Value = serde_json::from_slice(&out.stdout).expect("sessions history --json");
    let last = history["entries"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        last["outcome"], "cancelled",
        "the command in flight ends as cancelled: {history}"
    );
    // The client's own end (it may retry a vanished server for a while) is not under test.
    slow.abort();
    drop(b);
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate_works_for_a_client_that_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = HttpServe::start_on(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &cert_path.display().to_string(),
            "--tls-key",
            &key_path.display().to_string(),
        ],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = trusted
        .post(&server.url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize("2025-06-18").to_string())
        .send()
        .await
        .expect("HTTPS with a trusted certificate");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("blender-session-mcp")
    );
    let untrusting = reqwest::Client::new()
        .post(&server.url)
        .body(initialize("2025-06-18").to_string())
        .send()
        .await;
    assert!(
        untrusting.is_err(),
        "a client that does not trust it is refused"
    );
    server.stop().await;
    let _: Value = json!(null);
}

fn session_id_of(r: &rmcp::model::CallToolResult) -> String {
    support::structured(support::ok(r))["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}
