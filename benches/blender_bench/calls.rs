//! Per-call figures: the floors (bare TCP round trips against the twin, no MCP), the
//! overhead of a call over its floor in process (the registry) and through the binary over
//! stdio, the server's RSS after those calls, and cold start (spawn → initialize →
//! tools/list).

use std::time::{Duration, Instant};

use blender_session_mcp::backend::SceneQuery;
use blender_session_mcp::backend::classic::protocol::encode_request;
use blender_session_mcp::backend::classic::script;
use blender_session_mcp::session::Call;
use serde_json::json;

use crate::Scale;
use crate::drive::{async_samples, bare_samples, call, registry, spawn_server};
use crate::report::{Table, fmt_d, p50, rss_kib};
use crate::twin::Twin;

/// 1 and 2: the floors, then the overhead over them in process and over stdio.
pub(crate) async fn overhead(t: &mut Table, twin: &Twin, scale: &Scale) {
    // 1. Floor: bare TCP against the twin, no MCP. The blocking client is the classic
    // floor; the tokio one is the fair floor for our async code (same reactor wake-ups).
    let get_scene = encode_request("get_scene_info", None, usize::MAX).expect("encode");
    let mut floor = bare_samples(twin.port, &get_scene, scale.warmup, scale.calls);
    t.timings(
        "floor: bare TCP `get_scene_info` (blocking client)",
        &mut floor,
        "—",
    );
    let mut floor = async_samples(twin.port, &get_scene, scale.warmup, scale.calls).await;
    t.timings(
        "floor: bare TCP `get_scene_info` (tokio client)",
        &mut floor,
        "—",
    );
    // The helper is installed once (as a session's first request does), then called.
    let scene_call = script::Request::scene(&SceneQuery::default(), true, None);
    let install = encode_request(
        "execute_code",
        Some(&json!({"code": scene_call.install_and_call()})),
        usize::MAX,
    )
    .expect("encode");
    async_samples(twin.port, &install, 0, 1).await;
    let scene_req = encode_request(
        "execute_code",
        Some(&json!({"code": scene_call.call()})),
        usize::MAX,
    )
    .expect("encode");
    let mut floor = async_samples(twin.port, &scene_req, scale.warmup, scale.calls).await;
    let floor_scene = p50(&mut floor);
    t.timings(
        "floor: the scene program our `get_scene_info` sends (tokio client)",
        &mut floor,
        "—",
    );
    let exec_call = script::Request::run("print(1)", true, None);
    let exec_req = encode_request(
        "execute_code",
        Some(&json!({"code": exec_call.call()})),
        usize::MAX,
    )
    .expect("encode");
    let mut floor = async_samples(twin.port, &exec_req, scale.warmup, scale.calls).await;
    let floor_exec = p50(&mut floor);
    t.timings(
        "floor: the wrapped `execute_code` our tool sends (tokio client)",
        &mut floor,
        "—",
    );

    // 2a. In process: the registry (session lookup, wrapper, codec, state, history).
    let reg = registry(twin.target(), 10);
    let id = reg.create_session(None).await.expect("session");
    let call_ = Call::new("bench");
    for _ in 0..scale.warmup {
        reg.scene_info(&id, &call_, SceneQuery::default())
            .await
            .expect("scene");
    }
    let mut s: Vec<Duration> = Vec::with_capacity(scale.calls);
    for _ in 0..scale.calls {
        let t0 = Instant::now();
        reg.scene_info(&id, &call_, SceneQuery::default())
            .await
            .expect("scene");
        s.push(t0.elapsed());
    }
    let over = p50(&mut s).saturating_sub(floor_scene);
    t.timings(
        &format!(
            "in-process registry `get_scene_info` (p50 overhead over its floor: {})",
            fmt_d(over)
        ),
        &mut s,
        "overhead ≤ 50 µs",
    );
    let mut s: Vec<Duration> = Vec::with_capacity(scale.calls);
    for _ in 0..scale.calls {
        let t0 = Instant::now();
        reg.execute_code(&id, "print(1)", &call_)
            .await
            .expect("exec");
        s.push(t0.elapsed());
    }
    let over = p50(&mut s).saturating_sub(floor_exec);
    t.timings(
        &format!(
            "in-process registry `execute_code` (p50 overhead over its floor: {})",
            fmt_d(over)
        ),
        &mut s,
        "overhead ≤ 50 µs",
    );
    reg.shutdown().await;

    // 2b. Through the real binary over stdio, driven by an rmcp client.
    let (client, child, _) = spawn_server(twin.port).await;
    for _ in 0..scale.warmup {
        call(&client, "get_scene_info", json!({})).await;
        call(&client, "execute_blender_code", json!({"code": "print(1)"})).await;
    }
    for (tool, args, floor) in [
        ("get_scene_info", json!({}), floor_scene),
        (
            "execute_blender_code",
            json!({"code": "print(1)"}),
            floor_exec,
        ),
    ] {
        let mut s: Vec<Duration> = Vec::with_capacity(scale.calls);
        for _ in 0..scale.calls {
            let t0 = Instant::now();
            call(&client, tool, args.clone()).await;
            s.push(t0.elapsed());
        }
        let over = p50(&mut s).saturating_sub(floor);
        t.timings(
            &format!(
                "stdio tool call `{tool}` (p50 overhead over its floor: {})",
                fmt_d(over)
            ),
            &mut s,
            "overhead ≤ 150 µs",
        );
    }
    let server_rss = rss_kib(child.id(), "VmRSS:");
    t.value(
        "server RSS after those calls",
        format!("{:.1} MiB", server_rss as f64 / 1024.0),
        "—",
    );
    client.cancel().await.ok();
}

/// 4: cold start, spawn → initialize answered → tools/list answered.
pub(crate) async fn cold_start(t: &mut Table, twin: &Twin, scale: &Scale) {
    // 4. Cold start: spawn → initialize answered → tools/list answered.
    let mut init = Vec::new();
    let mut listed = Vec::new();
    for _ in 0..scale.spawns {
        let (client, _child, started) = spawn_server(twin.port).await;
        init.push(started.elapsed());
        client.list_all_tools().await.expect("tools");
        listed.push(started.elapsed());
        client.cancel().await.ok();
    }
    t.timings("cold start: spawn → initialize answered", &mut init, "—");
    t.timings(
        "cold start: spawn → tools/list answered",
        &mut listed,
        "≤ 10 ms",
    );
}
