//! State tracking: the snapshot travels with the user's code (one request on the wire), the
//! user's stdout comes back unchanged, and a raising script returns its traceback and the
//! output printed before it. The fake addon really runs the Python we send.

mod support;

use blender_session_mcp::backend::BackendError;
use blender_session_mcp::session::{Call, Outcome, Registry, SessionError};
use support::{FakeAddon, config, registry};

#[tokio::test]
async fn execute_code_that_adds_a_cube_updates_state_in_one_request() {
    let mut fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    let code = "bpy.ops.mesh.primitive_cube_add(location=(1, 2, 3))\n\
                obj = bpy.context.active_object\n\
                print('added', obj.name)";
    let out = reg
        .execute_code(&id, code, &Call::new("execute_blender_code"))
        .await
        .expect("runs");
    assert_eq!(out.stdout, "added Cube.001\n");
    fake.wait_count("executed", 1).await;
    assert_eq!(
        fake.count("request").await,
        1,
        "state came back in the same request"
    );

    let info = reg.get_session_info(&id).await.expect("info");
    assert_eq!(
        info.state.objects,
        vec!["Cube", "Camera", "Light", "Cube.001"]
    );
    assert_eq!(info.state.selection.active.as_deref(), Some("Cube.001"));
    assert_eq!(info.state.selection.selected, vec!["Cube.001"]);
    assert_eq!(info.state.last_command.as_deref(), Some("execute_code"));
    assert_eq!(info.command_count, 1);
    assert!(info.blender.last_heartbeat.is_some());

    let history = reg.get_session_history(&id, None).await.expect("history");
    let entry = &history.entries[0];
    assert_eq!(entry.seq, 1);
    assert_eq!(entry.command, "execute_code");
    assert_eq!(entry.tool, "execute_blender_code");
    assert_eq!(
        entry.arguments["code"], code,
        "history shows the user's code, not the wrapper"
    );
    assert_eq!(entry.outcome, Outcome::Success);
    assert_eq!(
        entry.result.as_ref().expect("result")["stdout"],
        "added Cube.001\n"
    );
    assert!(entry.duration > 0.0);
}

#[tokio::test]
async fn stdout_comes_back_unchanged() {
    let fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    let code = "import sys\nsys.stdout.write('no newline')\nprint()\nprint('  spaced  ', end='')";
    let out = reg
        .execute_code(&id, code, &Call::new("t"))
        .await
        .expect("runs");
    assert_eq!(out.stdout, "no newline\n  spaced  ");
}

#[tokio::test]
async fn a_raising_script_returns_traceback_and_earlier_stdout_and_still_refreshes_state() {
    let fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    let code = "print('before the error')\n\
                bpy.ops.mesh.primitive_uv_sphere_add()\n\
                def inner():\n    raise ValueError('boom')\n\
                inner()";
    let err = reg
        .execute_code(&id, code, &Call::new("t"))
        .await
        .expect_err("raises");
    let SessionError::Backend(BackendError::CodeFailed { traceback, stdout }) = &err else {
        panic!("expected CodeFailed, got {err:?}");
    };
    assert_eq!(stdout, "before the error\n");
    assert!(
        traceback.starts_with("Traceback (most recent call last):"),
        "{traceback}"
    );
    assert!(traceback.contains("line 5, in <module>"), "{traceback}");
    assert!(traceback.contains("in inner"), "{traceback}");
    assert!(
        traceback.trim_end().ends_with("ValueError: boom"),
        "{traceback}"
    );
    assert!(
        !traceback.contains("_bsm_run"),
        "wrapper frame hidden: {traceback}"
    );
    let text = err.to_string();
    assert!(text.contains("ValueError: boom") && text.contains("before the error"));

    let info = reg.get_session_info(&id).await.expect("info");
    assert!(
        info.state.objects.contains(&"Sphere".to_string()),
        "state refreshed"
    );
    let history = reg.get_session_history(&id, None).await.expect("history");
    assert_eq!(history.entries[0].outcome, Outcome::Error);
    assert!(
        history.entries[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("ValueError: boom")
    );
}

#[tokio::test]
async fn syntax_errors_are_reported_with_their_location() {
    let fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    let err = reg
        .execute_code(&id, "print('ok')\nif True print(1)", &Call::new("t"))
        .await
        .expect_err("syntax error");
    let text = err.to_string();
    assert!(text.contains("SyntaxError"), "{text}");
    assert!(text.contains("line 2"), "{text}");
}

#[tokio::test]
async fn code_runs_in_a_fresh_namespace_with_bpy() {
    let fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    let call = Call::new("t");
    reg.execute_code(&id, "x = 41", &call)
        .await
        .expect("define");
    let out = reg
        .execute_code(
            &id,
            "print('x' in globals(), sorted(k for k in globals() if not k.startswith('__')))",
            &call,
        )
        .await
        .expect("check");
    assert_eq!(out.stdout, "False ['bpy']\n");
}

#[tokio::test]
async fn non_ascii_round_trips_in_both_directions() {
    let fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    // 20 000 multi-byte characters: the request straddles the addon's 8 KiB reads many
    // times, which kills the classic addon unless everything is escaped.
    let long = "立方体カメラ".repeat(3334);
    let code = format!(
        "bpy.context.active_object.name = '立方体'\nprint('カメラ')\ns = '{long}'\nprint(len(s))\nprint(s)"
    );
    let out = reg
        .execute_code(&id, &code, &Call::new("t"))
        .await
        .expect("runs");
    assert_eq!(
        out.stdout,
        format!("カメラ\n{}\n{long}\n", long.chars().count())
    );
    let info = reg.get_session_info(&id).await.expect("info");
    assert_eq!(info.state.objects[0], "立方体");
    assert_eq!(info.state.selection.active.as_deref(), Some("立方体"));
}

#[tokio::test]
async fn scene_info_lists_every_object_not_just_ten() {
    let fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    reg.execute_code(
        &id,
        "for i in range(12):\n    bpy.ops.mesh.primitive_cube_add(location=(i, 0, 0))",
        &Call::new("t"),
    )
    .await
    .expect("adds");
    let scene = reg
        .scene_info(
            &id,
            &Call::new("get_scene_info"),
            blender_session_mcp::backend::SceneQuery::default(),
        )
        .await
        .expect("scene");
    assert_eq!(scene.object_count, 15);
    assert_eq!(scene.objects.len(), 15);
    assert_eq!(scene.objects[14].name, "Cube.012");
    assert_eq!(scene.objects[14].location, vec![11.0, 0.0, 0.0]);
    assert_eq!(scene.selection.active.as_deref(), Some("Cube.012"));
    assert_eq!(scene.materials_count, 1);
    let info = reg.get_session_info(&id).await.expect("info");
    assert_eq!(info.state.objects.len(), 15);
}

#[tokio::test]
async fn no_track_state_still_returns_tracebacks_but_leaves_state_alone() {
    let fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.track_state = false;
    let reg = Registry::new(cfg);
    let id = reg.create_session(None).await.expect("session");
    let out = reg
        .execute_code(
            &id,
            "bpy.ops.mesh.primitive_cube_add()\nprint('hi')",
            &Call::new("t"),
        )
        .await
        .expect("runs");
    assert_eq!(out.stdout, "hi\n");
    assert!(
        reg.get_session_info(&id)
            .await
            .expect("info")
            .state
            .objects
            .is_empty()
    );
    let err = reg
        .execute_code(&id, "print('a')\n1/0", &Call::new("t"))
        .await
        .expect_err("raises");
    assert!(err.to_string().contains("ZeroDivisionError"));
}

#[tokio::test]
async fn both_error_layers_are_errors_and_keep_the_connection() {
    let mut fake = FakeAddon::start().await;
    let reg = registry(&fake);
    let id = reg.create_session(None).await.expect("session");
    let err = reg
        .send_command(
            &id,
            "get_object_info",
            Some(serde_json::json!({"name": "Nope"})),
        )
        .await
        .expect_err("status error");
    assert_eq!(
        err.to_string(),
        "Blender reported an error: Object not found: Nope"
    );
    let err = reg
        .send_command(&id, "no_such_command", None)
        .await
        .expect_err("unknown");
    assert!(
        err.to_string()
            .contains("Unknown command type: no_such_command")
    );
    let err = reg
        .send_command(
            &id,
            "get_polyhaven_categories",
            Some(serde_json::json!({"asset_type": "hdris"})),
        )
        .await
        .expect_err("in-band error");
    assert!(err.to_string().contains("API request failed"), "{err}");
    let err = reg
        .send_command(
            &id,
            "import_generated_asset",
            Some(serde_json::json!({"name": "x"})),
        )
        .await
        .expect_err("in-band succeed=false");
    assert!(
        err.to_string().contains("Generation task not found"),
        "{err}"
    );
    reg.send_command(&id, "get_scene_info", None)
        .await
        .expect("still fine");
    fake.wait_count("executed", 5).await;
    assert_eq!(
        fake.count("accepted").await,
        1,
        "errors did not drop the connection"
    );
    let history = reg.get_session_history(&id, None).await.expect("history");
    let outcomes: Vec<Outcome> = history.entries.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Error,
            Outcome::Error,
            Outcome::Error,
            Outcome::Error,
            Outcome::Success
        ]
    );
}
