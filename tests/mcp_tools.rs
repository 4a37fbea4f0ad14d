//! The MCP layer in process: every tool over a real rmcp client/server pair, and every error
//! a model should read coming back as an `isError` result with an actionable message.

mod support;

use std::time::Duration;

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::Registry;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use support::{Client, FakeAddon, call, closed_port, config, err, ok, text};

async fn connect(reg: Registry) -> Client {
    let client_io = support::serve_in_process(reg);
    ().serve(client_io).await.expect("client initializes")
}

#[tokio::test]
async fn server_identity_instructions_and_tool_list() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server.name, "blender-session-mcp");
    assert_eq!(server.version, env!("CARGO_PKG_VERSION"));
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("default session")
    );

    let tools = client.list_all_tools().await.expect("tools");
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "blender_command",
            "close_session",
            "create_session",
            "execute_blender_code",
            "get_object_info",
            "get_scene_info",
            "get_session_history",
            "get_session_info",
            "get_viewport_screenshot",
            "list_sessions",
            "share_session",
            "unshare_session",
        ]
    );
    for tool in &tools {
        assert!(
            tool.description.as_deref().unwrap_or("").len() > 40,
            "{} needs a real description",
            tool.name
        );
        let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
        let expected = matches!(
            tool.name.as_ref(),
            "get_scene_info"
                | "get_object_info"
                | "get_viewport_screenshot"
                | "list_sessions"
                | "get_session_info"
                | "get_session_history"
        );
        assert_eq!(read_only, Some(expected), "read-only hint of {}", tool.name);
    }
    let exec = tools
        .iter()
        .find(|t| t.name == "execute_blender_code")
        .expect("exec");
    let schema = serde_json::to_value(&exec.input_schema).expect("schema");
    assert_eq!(schema["required"], json!(["code"]));
    assert!(
        schema["properties"]["session_id"]["description"]
            .as_str()
            .unwrap_or("")
            .contains("default session")
    );
}

#[tokio::test]
async fn execute_code_uses_one_default_session_and_one_connection() {
    let mut fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(
        &client,
        "execute_blender_code",
        json!({"code": "print('hello')"}),
    )
    .await;
    assert_eq!(text(ok(&r)), "hello\n");
    let r = call(
        &client,
        "execute_blender_code",
        json!({"code": "bpy.ops.mesh.primitive_cube_add()"}),
    )
    .await;
    assert_eq!(text(ok(&r)), "(the code ran and printed nothing)");
    let r = call(&client, "list_sessions", json!({})).await;
    let listed = ok(&r).structured_content.clone().expect("structured");
    assert_eq!(listed["count"], 1);
    assert_eq!(
        listed["default_session"],
        listed["sessions"][0]["session_id"]
    );
    assert_eq!(
        listed["sessions"][0]["state"]["selection"]["active"],
        "Cube.001"
    );
    fake.wait_count("executed", 2).await;
    assert_eq!(fake.count("accepted").await, 1);
}

#[tokio::test]
async fn python_exceptions_are_tool_errors_with_traceback_and_output() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(
        &client,
        "execute_blender_code",
        json!({"code": "print('step 1')\nbpy.data.objects['Missing']"}),
    )
    .await;
    let message = err(&r);
    assert!(
        message.contains("Traceback (most recent call last)"),
        "{message}"
    );
    assert!(message.contains("KeyError"), "{message}");
    assert!(
        message.contains("Output printed before the exception:\nstep 1"),
        "{message}"
    );
}

#[tokio::test]
async fn scene_and_object_info() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(&client, "get_scene_info", json!({})).await;
    let scene = ok(&r).structured_content.clone().expect("structured");
    assert_eq!(scene["object_count"], 3);
    assert_eq!(scene["selection"]["active"], "Cube");
    assert!(
        scene["session_id"]
            .as_str()
            .unwrap_or("")
            .starts_with("scene-")
    );
    let r = call(&client, "get_object_info", json!({"name": "Cube"})).await;
    let cube = ok(&r).structured_content.clone().expect("structured");
    assert_eq!(cube["mesh"]["vertices"], 8);
    assert_eq!(cube["materials"], json!(["Material"]));
    let r = call(&client, "get_object_info", json!({"name": "Nope"})).await;
    assert!(err(&r).contains("Object not found: Nope"));
}

#[tokio::test]
async fn screenshot_through_a_local_file_with_the_classic_addon() {
    let mut fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(&client, "get_viewport_screenshot", json!({"max_size": 400})).await;
    let image = ok(&r).content[0].as_image().expect("image content").clone();
    assert_eq!(image.mime_type, "image/png");
    assert!(image.data.starts_with("iVBORw0KGgo"), "a PNG");
    fake.wait_count("executed", 2).await;
    let types: Vec<Value> = fake
        .of("request")
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![json!("get_addon_info"), json!("get_viewport_screenshot")]
    );
}

#[tokio::test]
async fn screenshot_with_return_data_on_protocol_14() {
    let mut fake = FakeAddon::start_with(&["--protocol", "14"]).await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(&client, "get_viewport_screenshot", json!({})).await;
    let image = ok(&r).content[0].as_image().expect("image content").clone();
    assert!(image.data.starts_with("iVBORw0KGgo"));
    // A second screenshot reuses the cached addon info.
    ok(&call(&client, "get_viewport_screenshot", json!({})).await);
    fake.wait_count("executed", 3).await;
    assert_eq!(fake.count("request").await, 3);
}

#[tokio::test]
async fn raw_blender_command_and_its_errors() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(
        &client,
        "blender_command",
        json!({"type": "get_polyhaven_status"}),
    )
    .await;
    assert_eq!(
        ok(&r).structured_content.clone().expect("json")["enabled"],
        false
    );
    let r = call(&client, "blender_command", json!({"type": "warp_drive"})).await;
    assert!(err(&r).contains("Unknown command type: warp_drive"));
    let r = call(
        &client,
        "blender_command",
        json!({"type": "get_polyhaven_categories", "params": {"asset_type": "hdris"}}),
    )
    .await;
    assert!(err(&r).contains("API request failed"));
}

#[tokio::test]
async fn session_tools_lifecycle() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(
        &client,
        "create_session",
        json!({"blender_port": fake.port}),
    )
    .await;
    let info = ok(&r).structured_content.clone().expect("info");
    let id = info["session_id"].as_str().expect("id").to_owned();
    assert_eq!(info["blender"]["connected"], true);
    assert_eq!(info["blender"]["port"], fake.port);

    for i in 0..3 {
        let r = call(
            &client,
            "execute_blender_code",
            json!({"code": format!("print({i})"), "session_id": id}),
        )
        .await;
        assert_eq!(text(ok(&r)), format!("{i}\n"));
    }
    let r = call(
        &client,
        "get_session_history",
        json!({"session_id": id, "limit": 2}),
    )
    .await;
    let history = ok(&r).structured_content.clone().expect("history");
    assert_eq!(history["total"], 3);
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["seq"], 2);
    assert_eq!(entries[1]["arguments"]["code"], "print(2)");
    assert_eq!(entries[1]["tool"], "execute_blender_code");
    assert_eq!(entries[1]["command"], "execute_code");
    assert_eq!(entries[1]["outcome"], "success");

    let r = call(&client, "get_session_info", json!({"session_id": id})).await;
    let info = ok(&r).structured_content.clone().expect("info");
    assert_eq!(info["command_count"], 3);
    assert_eq!(info["state"]["last_command"], "execute_code");
    assert_eq!(info["state"]["objects"], json!(["Cube", "Camera", "Light"]));

    let r = call(&client, "close_session", json!({"session_id": id})).await;
    assert_eq!(
        ok(&r).structured_content.clone().expect("closed")["closed"],
        true
    );
    // A closed session stays readable until pruned; commands on it are refused.
    let r = call(&client, "get_session_info", json!({"session_id": id})).await;
    let info = ok(&r).structured_content.clone().expect("info");
    assert_eq!(info["status"], "closed");
    assert!(info["closed_at"].is_number());
    let r = call(
        &client,
        "execute_blender_code",
        json!({"session_id": id, "code": "print(1)"}),
    )
    .await;
    let message = err(&r);
    assert!(
        message.starts_with(&format!("Session {id} is closed")),
        "{message}"
    );
    assert!(message.contains("get_session_history"), "{message}");
}

#[tokio::test]
async fn unknown_session_ids_are_tool_errors_for_every_session_tool() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let bogus = "scene-20000101-000000-deadbeef";
    for (tool, args) in [
        (
            "execute_blender_code",
            json!({"code": "print(1)", "session_id": bogus}),
        ),
        ("get_scene_info", json!({"session_id": bogus})),
        (
            "get_object_info",
            json!({"name": "Cube", "session_id": bogus}),
        ),
        ("get_viewport_screenshot", json!({"session_id": bogus})),
        (
            "blender_command",
            json!({"type": "ping", "session_id": bogus}),
        ),
        ("get_session_info", json!({"session_id": bogus})),
        ("get_session_history", json!({"session_id": bogus})),
        ("close_session", json!({"session_id": bogus})),
    ] {
        let r = call(&client, tool, args).await;
        assert!(
            err(&r).starts_with(&format!("Session not found: {bogus}")),
            "{tool}: {}",
            text(&r)
        );
    }
}

#[tokio::test]
async fn hostile_session_ids_are_tool_errors_that_do_not_echo_megabytes() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    for id in [
        "../../etc/passwd",
        "'; DROP TABLE sessions; --",
        "\u{0}\u{1b}[2J",
        "立方体",
    ] {
        let r = call(&client, "get_session_info", json!({"session_id": id})).await;
        assert!(err(&r).starts_with("Session not found: "), "{id}");
    }
    let huge = "x".repeat(1 << 20);
    let r = call(
        &client,
        "execute_blender_code",
        json!({"code": "print(1)", "session_id": huge}),
    )
    .await;
    let message = err(&r);
    assert!(
        message.len() < 1000,
        "the message stays short: {} bytes",
        message.len()
    );
    assert!(message.contains("1048576 bytes"), "{message}");
    ok(&call(&client, "list_sessions", json!({})).await);
}

#[tokio::test]
async fn blender_unreachable_is_an_actionable_tool_error() {
    let port = closed_port();
    let client = connect(Registry::new(config(Target::new("127.0.0.1", port)))).await;
    let r = call(&client, "get_scene_info", json!({})).await;
    let message = err(&r);
    assert!(
        message.contains("Failed to connect to Blender"),
        "{message}"
    );
    assert!(message.contains("Connect to MCP server"), "{message}");
    assert!(message.contains(&port.to_string()), "{message}");
    // The session still exists and says why it is not connected.
    let r = call(&client, "get_session_info", json!({})).await;
    let info = ok(&r).structured_content.clone().expect("info");
    assert_eq!(info["blender"]["connected"], false);
    assert!(
        info["blender"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("refused")
    );
}

#[tokio::test]
async fn timeouts_are_tool_errors_that_say_the_command_may_still_run() {
    let fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.command_timeout = Duration::from_millis(200);
    let client = connect(Registry::new(cfg)).await;
    let r = call(
        &client,
        "execute_blender_code",
        json!({"code": "import time\ntime.sleep(0.6)"}),
    )
    .await;
    let message = err(&r);
    assert!(
        message.contains("Timeout waiting for Blender response"),
        "{message}"
    );
    assert!(message.contains("may still be running"), "{message}");
}

#[tokio::test]
async fn bad_arguments_are_tool_errors_and_unknown_tools_are_protocol_errors() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(&client, "execute_blender_code", json!({"code": 42})).await;
    assert_eq!(r.is_error, Some(true));
    let r = call(&client, "get_object_info", json!({})).await;
    assert_eq!(r.is_error, Some(true));
    let e = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await
        .expect_err("unknown tool");
    assert!(e.to_string().contains("tool"), "{e}");
    // Still serving.
    ok(&call(&client, "list_sessions", json!({})).await);
}

#[tokio::test]
async fn a_cancelled_call_is_recorded_and_the_session_keeps_working() {
    let mut fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    ok(&call(&client, "get_session_info", json!({})).await);
    // The script runs until the test lets it finish: the cancel always reaches the server
    // while Blender is still running it.
    let go = Release::new();
    let peer = client.peer().clone();
    let code = go.script();
    let pending = tokio::spawn(async move {
        let Value::Object(map) = json!({ "code": code }) else {
            unreachable!()
        };
        peer.call_tool(CallToolRequestParams::new("execute_blender_code").with_arguments(map))
            .await
    });
    fake.wait_count("request", 1).await;
    // Dropping an rmcp call sends notifications/cancelled.
    pending.abort();
    let _ = pending.await;
    assert_eq!(
        first_outcome_becomes(&client, "cancelled").await,
        "cancelled"
    );
    go.release();
    fake.wait_count("executed", 1).await;
    let r = call(
        &client,
        "execute_blender_code",
        json!({"code": "print('next')"}),
    )
    .await;
    assert_eq!(text(ok(&r)), "next\n");
    let r = call(&client, "get_session_history", json!({})).await;
    let history = ok(&r).structured_content.clone().expect("history");
    let outcomes: Vec<&str> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, vec!["cancelled", "success"]);
}

/// A file whose creation lets a script sent to the fake addon finish (it waits for it, 60 s
/// at most): a signal instead of a script that sleeps and a race against its end.
struct Release {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Release {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("go");
        Release { _dir: dir, path }
    }

    /// Python that returns once the file exists.
    fn script(&self) -> String {
        let path = serde_json::to_string(&self.path.display().to_string()).expect("a path");
        format!(
            "import os, time\nend = time.time() + 60\nwhile not os.path.exists({path}) and time.time() < end:\n    time.sleep(0.005)"
        )
    }

    fn release(&self) {
        std::fs::write(&self.path, b"go").expect("write the release file");
    }
}

/// Poll the session's history until its first entry's outcome is `want` (10 s at most);
/// the outcome it last read.
async fn first_outcome_becomes(client: &Client, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = call(client, "get_session_history", json!({})).await;
        let history = ok(&r).structured_content.clone().expect("history");
        let outcome = history["entries"][0]["outcome"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if outcome == want || std::time::Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_call_after_a_cancelled_script_says_how_long_it_waited_for_blender() {
    let mut fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    ok(&call(&client, "get_session_info", json!({})).await);
    let go = Release::new();
    let peer = client.peer().clone();
    let code = go.script();
    let pending = tokio::spawn(async move {
        let Value::Object(map) = json!({ "code": code }) else {
            unreachable!()
        };
        peer.call_tool(CallToolRequestParams::new("execute_blender_code").with_arguments(map))
            .await
    });
    fake.wait_count("request", 1).await;
    pending.abort();
    let _ = pending.await;
    assert_eq!(
        first_outcome_becomes(&client, "cancelled").await,
        "cancelled"
    );
    // Blender is still running the cancelled script: this call waits for it there, until
    // the script is let go HOLD after the call was made.
    const HOLD: Duration = Duration::from_millis(1500);
    let asked = std::time::Instant::now();
    let next = {
        let peer = client.peer().clone();
        tokio::spawn(async move {
            call(
                &peer,
                "execute_blender_code",
                json!({"code": "print('next')"}),
            )
            .await
        })
    };
    tokio::time::sleep(HOLD).await;
    go.release();
    let r = next.await.expect("the next call");
    let elapsed = asked.elapsed().as_secs_f64();
    let blocks: Vec<String> = ok(&r)
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(blocks[0], "next\n", "the output itself is untouched");
    let note = blocks.get(1).expect("a note about the wait");
    assert!(
        note.contains("still running the cancelled command"),
        "{note}"
    );
    let waited: f64 = note
        .split("waited ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the wait in seconds");
    // It waited for the release (made HOLD after the call; the wait began once the server
    // had the call) and no longer than the call took (the note rounds to 0.1 s).
    assert!(
        waited >= HOLD.as_secs_f64() - 0.5 && waited <= elapsed + 0.05,
        "waited {waited} s of a call of {elapsed:.2} s: {note}"
    );
    let r = call(&client, "get_session_history", json!({})).await;
    let history = ok(&r).structured_content.clone().expect("history");
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries[0]["outcome"], "cancelled");
    assert!(
        entries[1]["note"]
            .as_str()
            .is_some_and(|n| n.contains("waited")),
        "{entries:?}"
    );
}
