//! Keep-alive: one connection per session, reused for every command; reconnection when
//! Blender was unreachable or restarted.

mod support;

use blender_session_mcp::backend::Target;
use blender_session_mcp::mcp::error_text;
use blender_session_mcp::session::{Outcome, Registry};
use support::{FakeAddon, closed_port, config, registry};

#[tokio::test]
async fn hundred_commands_in_one_session_use_one_connection() {
    let mut fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    for i in 0..100 {
        let r = reg
            .send_command(&id, "get_scene_info", None)
            .await
            .expect("command");
        assert_eq!(r["name"], "Scene", "command {i}");
    }
    fake.wait_count("executed", 100).await;
    assert_eq!(fake.count("accepted").await, 1);
    let info = reg.get_session_info(&id).await.expect("info");
    assert!(info.blender.connected);
    assert_eq!(info.blender.connections_opened, 1);
    assert_eq!(info.command_count, 100);
}

#[tokio::test]
async fn two_sessions_use_two_connections() {
    let mut fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let a = reg.create_session(None).await.expect("a");
    let b = reg.create_session(None).await.expect("b");
    assert_ne!(a, b);
    for _ in 0..5 {
        reg.send_command(&a, "get_scene_info", None)
            .await
            .expect("a");
        reg.send_command(&b, "get_scene_info", None)
            .await
            .expect("b");
    }
    fake.wait_count("executed", 10).await;
    assert_eq!(fake.count("accepted").await, 2);
}

#[tokio::test]
async fn session_created_while_blender_is_down_reports_why_and_reconnects_later() {
    let port = closed_port();
    let reg = Registry::new(config(Target::new("127.0.0.1", port)));
    let id = reg
        .create_session(None)
        .await
        .expect("session exists anyway");
    let info = reg.get_session_info(&id).await.expect("info");
    assert!(!info.blender.connected);
    let reason = info.blender.last_error.expect("reason");
    assert!(reason.contains("Failed to connect to Blender"), "{reason}");

    let err = reg
        .send_command(&id, "get_scene_info", None)
        .await
        .expect_err("still down");
    let text = error_text(&err);
    assert!(text.contains("Connect to MCP server"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert_eq!(err.outcome(), Outcome::Unreachable);

    // Blender comes up on that port: the same session works without being recreated.
    let mut fake = FakeAddon::start_with(&["--port", &port.to_string()]).await;
    let r = reg
        .send_command(&id, "get_scene_info", None)
        .await
        .expect("reconnected");
    assert_eq!(r["object_count"], 3);
    fake.wait_count("executed", 1).await;
    assert_eq!(
        fake.count("request").await,
        1,
        "sent once, when Blender was up"
    );
    let info = reg.get_session_info(&id).await.expect("info");
    assert!(info.blender.connected);
    let history = reg.get_session_history(&id, None).await.expect("history");
    let outcomes: Vec<Outcome> = history.entries.iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Unreachable, Outcome::Success]);
}

#[tokio::test]
async fn blender_restarted_between_commands_is_replaced_silently_and_runs_once() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    reg.send_command(&id, "get_scene_info", None)
        .await
        .expect("first");
    fake.kill().await;
    drop(fake);
    // A new Blender on the same port; the session's idle socket is now closed by the peer.
    let mut fake = FakeAddon::start_with(&["--port", &port.to_string()]).await;
    let r = reg
        .send_command(&id, "get_scene_info", None)
        .await
        .expect("the caller sees no error");
    assert_eq!(r["name"], "Scene");
    fake.wait_count("executed", 1).await;
    assert_eq!(
        fake.count("request").await,
        1,
        "the command ran exactly once"
    );
    let info = reg.get_session_info(&id).await.expect("info");
    assert_eq!(info.blender.connections_opened, 2);
}

#[tokio::test]
async fn close_session_closes_its_connection() {
    let mut fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    fake.wait_count("accepted", 1).await;
    let info = reg.close_session(&id).await.expect("closed");
    assert_eq!(info.session_id, id);
    fake.wait_count("closed", 1).await;
    // Closed sessions stay readable until pruned; commands on them are refused.
    let info = reg.get_session_info(&id).await.expect("readable");
    assert_eq!(info.status, blender_session_mcp::store::Status::Closed);
    assert!(!info.blender.connected);
    let err = reg
        .send_command(&id, "get_scene_info", None)
        .await
        .expect_err("closed");
    assert!(error_text(&err).starts_with(&format!("Session {id} is closed")));
    assert!(error_text(&err).contains("get_session_history"));
    let err = reg
        .get_session_info("no-such-session")
        .await
        .expect_err("gone");
    assert!(error_text(&err).starts_with("Session not found: no-such-session"));
    assert!(error_text(&err).contains("list_sessions"));
}
