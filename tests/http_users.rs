//! Users over Streamable HTTP, end to end against the binary: sessionless requests share
//! their user's default session (a stray `Mcp-Session-Id` included), another user's session
//! reads as unknown until it is shared, a read share cannot run code and a write share can,
//! and read-only users and `--disable-code-exec` lose the code tools.

mod support;

use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};
use support::FakeAddon;
use support::http::{
    HttpServe, auth, client, initialize, post, stateless_call, stateless_call_with, users_file,
};

#[tokio::test]
async fn sessionless_requests_of_one_user_share_its_default_session_and_keep_their_user() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (file, tokens) = users_file(dir.path(), &[("alice", "exec"), ("bob", "exec")]).await;
    let server = HttpServe::start(&["--blender-port", &port, "--auth-file", &file]).await;
    // 2026-07-28 has no MCP session: every request stands alone, under its user.
    let (status, r) = stateless_call(
        &server.url,
        Some(&tokens[0]),
        "execute_blender_code",
        json!({"code": "print(1)"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "1\n", "{r}");
    let info = |r: &Value| r["result"]["structuredContent"].clone();
    let (_, a1) =
        stateless_call(&server.url, Some(&tokens[0]), "get_session_info", json!({})).await;
    let (_, a2) =
        stateless_call(&server.url, Some(&tokens[0]), "get_session_info", json!({})).await;
    let (_, b1) =
        stateless_call(&server.url, Some(&tokens[1]), "get_session_info", json!({})).await;
    // A 2026-07-28 request is served without an MCP session even when it carries an
    // `Mcp-Session-Id` (a client that also did a legacy `initialize`): it still gets its
    // user's default session, not a new one per request.
    let (_, h, _) = post(
        &server.url,
        &[("authorization", &auth(&tokens[0]))],
        &initialize("2025-11-25"),
    )
    .await;
    let stray = h["mcp-session-id"].to_str().unwrap().to_owned();
    let (_, a3) = stateless_call_with(
        &server.url,
        Some(&tokens[0]),
        "get_session_info",
        json!({}),
        &[("mcp-session-id", &stray)],
    )
    .await;
    assert_eq!(info(&a3)["session_id"], info(&a1)["session_id"], "{a3}");
    assert_eq!(
        info(&a1)["session_id"],
        info(&a2)["session_id"],
        "{a1} {a2}"
    );
    assert_eq!(info(&a1)["command_count"], 1, "{a1}");
    assert_eq!(info(&a1)["owner"], "alice", "{a1}");
    assert_eq!(info(&b1)["owner"], "bob", "{b1}");
    assert_ne!(info(&a1)["session_id"], info(&b1)["session_id"]);
    let (status, _) = stateless_call(
        &server.url,
        Some("wrong-token-xxxxxxxx"),
        "get_session_info",
        json!({}),
    )
    .await;
    assert_eq!(status, 401);
    server.stop().await;
}

fn session_id_of(r: &rmcp::model::CallToolResult) -> String {
    support::structured(support::ok(r))["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn another_users_session_is_unknown_until_shared_read_cannot_run_code_write_can() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (file, tokens) = users_file(dir.path(), &[("alice", "exec"), ("bob", "exec")]).await;
    let server = HttpServe::start(&["--blender-port", &port, "--auth-file", &file]).await;
    let alice = client(&server.url, Some(&tokens[0]), ProtocolVersion::V_2025_06_18).await;
    let bob = client(&server.url, Some(&tokens[1]), ProtocolVersion::V_2025_06_18).await;

    let mine = session_id_of(&support::call(&alice, "create_session", json!({})).await);
    let code = json!({"code": "print('in alice')", "session_id": mine});
    let unknown = support::err(
        &support::call(
            &bob,
            "get_session_info",
            json!({"session_id": "scene-nope"}),
        )
        .await,
    );
    let hidden =
        support::err(&support::call(&bob, "get_session_info", json!({"session_id": mine})).await);
    assert_eq!(
        hidden.replace(&mine, "ID"),
        unknown.replace("scene-nope", "ID"),
        "another user's session reads exactly like an unknown one"
    );
    support::err(&support::call(&bob, "execute_blender_code", code.clone()).await);
    let listed = support::structured(support::ok(
        &support::call(&bob, "list_sessions", json!({})).await,
    ));
    assert!(!listed.to_string().contains(&mine), "{listed}");

    // Only the owner shares.
    let e = support::err(
        &support::call(
            &bob,
            "share_session",
            json!({"session_id": mine, "user": "bob", "access": "write"}),
        )
        .await,
    );
    assert!(e.contains("not found"), "{e}");
    support::ok(
        &support::call(
            &alice,
            "share_session",
            json!({"session_id": mine, "user": "bob", "access": "read"}),
        )
        .await,
    );
    let info = support::structured(support::ok(
        &support::call(&bob, "get_session_info", json!({"session_id": mine})).await,
    ));
    assert_eq!(info["session_id"], mine.as_str());
    let e = support::err(&support::call(&bob, "execute_blender_code", code.clone()).await);
    assert!(e.contains("read-only"), "{e}");
    let listed = support::structured(support::ok(
        &support::call(&bob, "list_sessions", json!({})).await,
    ));
    assert!(
        listed.to_string().contains(&mine),
        "a shared session is listed: {listed}"
    );

    support::ok(
        &support::call(
            &alice,
            "share_session",
            json!({"session_id": mine, "user": "bob", "access": "write"}),
        )
        .await,
    );
    let r = support::call(&bob, "execute_blender_code", code.clone()).await;
    assert_eq!(support::text(support::ok(&r)), "in alice\n");
    let e = support::err(&support::call(&bob, "close_session", json!({"session_id": mine})).await);
    assert!(e.contains("owner"), "closing is the owner's: {e}");

    support::ok(
        &support::call(
            &alice,
            "unshare_session",
            json!({"session_id": mine, "user": "bob"}),
        )
        .await,
    );
    let e = support::err(&support::call(&bob, "execute_blender_code", code).await);
    assert!(e.contains("not found"), "{e}");
    let _ = alice.cancel().await;
    let _ = bob.cancel().await;
    server.stop().await;
}

#[tokio::test]
async fn a_read_user_cannot_run_code_and_disable_code_exec_removes_the_code_tools() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (file, tokens) = users_file(dir.path(), &[("viewer", "read")]).await;
    let server = HttpServe::start(&["--blender-port", &port, "--auth-file", &file]).await;
    let viewer = client(&server.url, Some(&tokens[0]), ProtocolVersion::V_2025_06_18).await;
    let e = support::err(
        &support::call(&viewer, "execute_blender_code", json!({"code": "print(1)"})).await,
    );
    assert!(e.contains("read rights"), "{e}");
    support::ok(&support::call(&viewer, "get_scene_info", json!({})).await);
    let _ = viewer.cancel().await;
    server.stop().await;

    let server = HttpServe::start(&["--blender-port", &port, "--disable-code-exec"]).await;
    let c = client(&server.url, None, ProtocolVersion::V_2025_06_18).await;
    let names: Vec<String> = c
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "execute_blender_code" || n == "blender_command"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "get_scene_info"));
    let _ = c.cancel().await;
    server.stop().await;
}
