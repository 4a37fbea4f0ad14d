//! The live event stream end to end against the binary: a command run through MCP on one
//! server process reaches SSE and WebSocket watchers of another process on the same Redis
//! store (real Blender); a change made in Blender through another connection reaches a
//! watcher within two watch intervals (real Blender); a dropped stream resumes with exactly
//! the missed events; a user never sees events of a session not shared with them; 100
//! watchers keep up with 50 commands a second.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};
use support::FakeAddon;
use support::blender::{blender_or_skip, raw_execute};
use support::http::{HttpServe, client, users_file};
use support::redis::RedisServer;
use support::stream::{Sse, Ws, base, ticket, within};

const TOKEN: &str = "events-token-0123456789abcdef";

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or(""))
        .collect()
}

fn session_of(r: &rmcp::model::CallToolResult) -> String {
    support::structured(support::ok(r))["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned()
}

/// Events from `next` until one satisfies `done`, or the deadline.
macro_rules! read_until {
    ($stream:expr, $deadline:expr, $done:expr) => {{
        let mut seen: Vec<Value> = Vec::new();
        while let Some(e) = $stream.next_by($deadline).await {
            let stop = ($done)(&e);
            seen.push(e);
            if stop {
                break;
            }
        }
        seen
    }};
}

/// A server with a token on a fresh fake addon (kept alive with it).
async fn fake_server() -> (FakeAddon, HttpServe) {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let server = HttpServe::start_on(
        "127.0.0.1:0",
        &["--blender-port", &port],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await;
    (fake, server)
}

/// Whether `e` is a `state_changed` that added `name`.
fn added(e: &Value, name: &str) -> bool {
    e["event"] == "state_changed"
        && e["added"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == name))
}

const ADD_CUBE: &str = "import bpy\nm = bpy.data.meshes.new('EvMesh')\no = bpy.data.objects.new('EvCube', m)\nbpy.context.scene.collection.objects.link(o)\nprint('made', o.name)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_sse_and_websocket_watchers_of_another_process_on_redis_within_200_ms() {
    let test =
        "a_command_reaches_sse_and_websocket_watchers_of_another_process_on_redis_within_200_ms";
    if !blender_or_skip(test) {
        return;
    }
    let redis = match RedisServer::start().await {
        Ok(r) => r,
        Err(e) => {
            support::skip(test, &e);
            return;
        }
    };
    let port = support::closed_port();
    let _blender = support::blender::start_blender(port).await;
    let (port_s, url) = (port.to_string(), redis.url());
    let args = ["--blender-port", port_s.as_str(), "--store", url.as_str()];
    let env = [("BSM_AUTH_TOKEN", TOKEN)];
    let runner = HttpServe::start_on("127.0.0.1:0", &args, &env).await;
    let watched = HttpServe::start_on("127.0.0.1:0", &args, &env).await;
    let b = base(&watched.url);
    let mut sse = Sse::open(&b, TOKEN, "", None).await;
    let mut ws = Ws::open(&b, &format!("ticket={}", ticket(&b, TOKEN).await)).await;

    let c = client(&runner.url, Some(TOKEN), ProtocolVersion::V_2025_06_18).await;
    let r = support::call(&c, "create_session", json!({})).await;
    let id = session_of(&r);
    let r = support::call(
        &c,
        "execute_blender_code",
        json!({"code": ADD_CUBE, "session_id": id}),
    )
    .await;
    assert!(support::text(support::ok(&r)).contains("made EvCube"));
    let answered = Instant::now();
    let deadline = answered + Duration::from_millis(200);

    let finished_and_state = |seen: &[Value]| {
        seen.iter().any(|e| e["event"] == "command_finished")
            && seen.iter().any(|e| added(e, "EvCube"))
    };
    let mut by_sse: Vec<Value> = Vec::new();
    while !finished_and_state(&by_sse) {
        match sse.next_by(deadline).await {
            Some(e) => by_sse.push(e),
            None => break,
        }
    }
    let mut by_ws: Vec<Value> = Vec::new();
    while !finished_and_state(&by_ws) {
        match ws.next_by(deadline).await {
            Some(e) => by_ws.push(e),
            None => break,
        }
    }
    for (name, seen) in [("SSE", &by_sse), ("WebSocket", &by_ws)] {
        let of_session: Vec<&Value> = seen.iter().filter(|e| e["session_id"] == id).collect();
        let ks: Vec<&str> = of_session
            .iter()
            .map(|e| e["event"].as_str().unwrap_or(""))
            .collect();
        for want in ["command_started", "command_finished", "state_changed"] {
            assert!(
                ks.contains(&want),
                "{name}: no {want} within 200 ms of the answer: {seen:?}"
            );
        }
        let started = of_session
            .iter()
            .find(|e| e["event"] == "command_started" && e["tool"] == "execute_blender_code")
            .expect("the code's command_started");
        assert_eq!(started["command"], "execute_code");
        assert!(
            started["arguments_preview"]
                .as_str()
                .unwrap()
                .contains("EvCube")
        );
        let finished = of_session
            .iter()
            .find(|e| {
                e["event"] == "command_finished" && e["entry"]["tool"] == "execute_blender_code"
            })
            .expect("the code's command_finished");
        assert_eq!(finished["entry"]["outcome"], "success");
        assert!(finished["entry"]["seq"].as_u64().unwrap() >= 1);
        let ids: Vec<u64> = seen.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{name}: ids increase: {ids:?}"
        );
    }
    let _ = c.cancel().await;
    runner.stop().await;
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_another_connection_reaches_a_watcher_within_two_watch_intervals() {
    if !blender_or_skip(
        "a_change_made_through_another_connection_reaches_a_watcher_within_two_watch_intervals",
    ) {
        return;
    }
    let port = support::closed_port();
    let _blender = support::blender::start_blender(port).await;
    let port_s = port.to_string();
    let server = HttpServe::start_on(
        "127.0.0.1:0",
        &["--blender-port", &port_s, "--watch-interval", "500ms"],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await;
    let c = client(&server.url, Some(TOKEN), ProtocolVersion::V_2025_06_18).await;
    let r = support::call(&c, "create_session", json!({})).await;
    let id = session_of(&r);
    support::ok(
        &support::call(
            &c,
            "execute_blender_code",
            json!({"code": "x = 1", "session_id": id}),
        )
        .await,
    );
    let b = base(&server.url);
    let mut sse = Sse::open(&b, TOKEN, &format!("session={id}"), None).await;

    let code = "import bpy\no = bpy.data.objects.new('Behind', None)\nbpy.context.scene.collection.objects.link(o)";
    let reply = raw_execute(port, code).await;
    assert_eq!(reply["status"], "success", "{reply}");
    let changed = Instant::now();
    let seen = read_until!(sse, changed + Duration::from_millis(1000), |e: &Value| {
        added(e, "Behind")
    });
    assert!(
        seen.iter().any(|e| added(e, "Behind")),
        "no state_changed adding Behind within 2 x 500 ms: {seen:?}"
    );
    assert!(seen.iter().all(|e| e["session_id"] == id), "{seen:?}");
    // The poll wrote no history entry: only the one command is there.
    let r = support::call(&c, "get_session_history", json!({"session_id": id})).await;
    let entries = support::structured(support::ok(&r))["entries"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let _ = c.cancel().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_with_exactly_the_missed_events_on_sse_and_websocket() {
    let (_fake, server) = fake_server().await;
    let b = base(&server.url);
    let mut whole = Sse::open(&b, TOKEN, "", None).await;
    let mut first = Sse::open(&b, TOKEN, "", None).await;
    let c = client(&server.url, Some(TOKEN), ProtocolVersion::V_2025_06_18).await;
    let run = |n: usize| {
        let c = &c;
        async move {
            let r = support::call(
                c,
                "execute_blender_code",
                json!({"code": format!("print({n})")}),
            )
            .await;
            support::ok(&r);
        }
    };
    let finished =
        |seq: u64| move |e: &Value| e["event"] == "command_finished" && e["entry"]["seq"] == seq;
    run(1).await;
    let before = read_until!(first, within(Duration::from_secs(5)), finished(1));
    let last = before.last().expect("events of the first command")["id"]
        .as_u64()
        .unwrap();
    drop(first);
    run(2).await;
    run(3).await;
    let all = read_until!(whole, within(Duration::from_secs(5)), finished(3));
    let missed: Vec<Value> = all
        .iter()
        .filter(|e| e["id"].as_u64().unwrap() > last)
        .cloned()
        .collect();
    assert!(kinds(&missed).contains(&"command_finished"), "{all:?}");

    let mut again = Sse::open(&b, TOKEN, "", Some(last)).await;
    let replayed = read_until!(again, within(Duration::from_secs(5)), finished(3));
    assert_eq!(
        replayed, missed,
        "SSE Last-Event-ID replays exactly the missed events"
    );
    let mut ws = Ws::open(
        &b,
        &format!("since={last}&ticket={}", ticket(&b, TOKEN).await),
    )
    .await;
    let replayed = read_until!(ws, within(Duration::from_secs(5)), finished(3));
    assert_eq!(
        replayed, missed,
        "WebSocket since= replays exactly the missed events"
    );
    // Nothing more is sent: the replay stopped at what happened.
    assert!(
        again
            .next_by(within(Duration::from_millis(300)))
            .await
            .is_none()
    );

    // Further back than the log keeps: a resync marker, not a silent gap. (A fresh server on
    // its own store: nothing before id 1 exists, so since=0 replays everything, no marker.)
    let mut from_start = Sse::open(&b, TOKEN, "since=0", None).await;
    let e = from_start
        .next_by(within(Duration::from_secs(5)))
        .await
        .expect("an event");
    assert_eq!(e["id"], 1, "since=0 starts at the first event: {e}");
    let _ = c.cancel().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_never_receives_events_of_a_session_not_shared_with_them() {
    let fake = FakeAddon::start().await;
    let port = fake.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (file, tokens) = users_file(dir.path(), &[("alice", "exec"), ("bob", "exec")]).await;
    let server = HttpServe::start(&["--blender-port", &port, "--auth-file", &file]).await;
    let b = base(&server.url);
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let a = client(&server.url, Some(alice), ProtocolVersion::V_2025_06_18).await;
    let r = support::call(&a, "create_session", json!({"name": "alices"})).await;
    let id = session_of(&r);
    let mut bob_all = Sse::open(&b, bob, "", None).await;
    let mut bob_one = Ws::open(
        &b,
        &format!("session={id}&ticket={}", ticket(&b, bob).await),
    )
    .await;
    let mut alice_all = Sse::open(&b, alice, "", None).await;
    support::ok(
        &support::call(
            &a,
            "execute_blender_code",
            json!({"code": "print('secret')", "session_id": id}),
        )
        .await,
    );
    let mine = read_until!(
        alice_all,
        within(Duration::from_secs(5)),
        |e: &Value| e["event"] == "command_finished"
    );
    assert!(
        mine.iter().any(|e| e["session_id"] == id),
        "the owner sees it: {mine:?}"
    );
    // Bob's own session's command: a signal that bob's stream has delivered up to here.
    let bc = client(&server.url, Some(bob), ProtocolVersion::V_2025_06_18).await;
    support::ok(&support::call(&bc, "execute_blender_code", json!({"code": "print('bob')"})).await);
    let bobs = read_until!(
        bob_all,
        within(Duration::from_secs(5)),
        |e: &Value| e["event"] == "command_finished"
    );
    assert!(!bobs.is_empty(), "bob sees his own session");
    assert!(
        bobs.iter().all(|e| e["session_id"] != id),
        "bob saw alice's session: {bobs:?}"
    );
    assert!(
        bob_one
            .next_by(within(Duration::from_millis(300)))
            .await
            .is_none(),
        "asking for alice's session by id shows bob nothing"
    );

    support::ok(
        &support::call(
            &a,
            "share_session",
            json!({"session_id": id, "user": "bob", "access": "read"}),
        )
        .await,
    );
    // Visibility checks are cached for up to 1 s: the share is seen by the next command after it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    support::ok(
        &support::call(
            &a,
            "execute_blender_code",
            json!({"code": "print('shared')", "session_id": id}),
        )
        .await,
    );
    let shared = read_until!(
        bob_all,
        within(Duration::from_secs(5)),
        |e: &Value| e["event"] == "command_finished" && e["session_id"] == id
    );
    assert!(
        shared
            .iter()
            .any(|e| e["event"] == "command_finished" && e["session_id"] == id),
        "after the share bob sees alice's session: {shared:?}"
    );
    let _ = (a.cancel().await, bc.cancel().await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_watchers_keep_up_with_fifty_commands_a_second() {
    let (_fake, server) = fake_server().await;
    let b = base(&server.url);
    let mut watchers = Vec::new();
    for _ in 0..100 {
        watchers.push(Sse::open(&b, TOKEN, "", None).await);
    }
    let c = client(&server.url, Some(TOKEN), ProtocolVersion::V_2025_06_18).await;
    const COMMANDS: u64 = 100;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let started = Instant::now();
    for n in 0..COMMANDS {
        tick.tick().await;
        support::ok(
            &support::call(
                &c,
                "execute_blender_code",
                json!({"code": format!("x = {n}")}),
            )
            .await,
        );
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "50 commands/s were not reached: {elapsed:?}"
    );
    let done = Instant::now();
    let reads = watchers.into_iter().map(|mut w| async move {
        let mut seqs = HashSet::new();
        let deadline = done + Duration::from_secs(1);
        while seqs.len() < COMMANDS as usize {
            match w.next_by(deadline).await {
                Some(e) if e["event"] == "command_finished" => {
                    seqs.insert(e["entry"]["seq"].as_u64().unwrap());
                }
                Some(_) => {}
                None => break,
            }
        }
        seqs.len()
    });
    let counts = futures::future::join_all(reads).await;
    assert!(
        counts.iter().all(|&n| n == COMMANDS as usize),
        "every watcher got all {COMMANDS} command_finished within 1 s of the last: {counts:?}"
    );
    let _ = c.cancel().await;
    server.stop().await;
}
