//! One suite of session-store behaviour through the real binary, run on every persistent
//! store (`tests/store.rs` on an SQLite file, `tests/redis_sessions.rs` on a real Redis):
//! each function takes the flags that choose the store (`--store-path FILE`,
//! `--store redis://…`) and asserts what every store promises.

use serde_json::{Value, json};

use super::{FakeAddon, RawServer};

/// The structured result of a call that must have succeeded.
pub fn structured(r: &Value) -> &Value {
    assert_eq!(r["result"]["isError"], false, "{r}");
    &r["result"]["structuredContent"]
}

/// `serve` on the fake addon with the store flags and `extra`.
pub async fn serve(fake: &FakeAddon, store: &[&str], extra: &[&str]) -> RawServer {
    let port = fake.port.to_string();
    let mut args = vec!["serve", "--blender-port", &port];
    args.extend_from_slice(store);
    args.extend_from_slice(extra);
    RawServer::start(&args).await
}

/// Close a server's stdin and expect a clean exit.
pub async fn stop(mut server: RawServer) {
    server.close_stdin();
    let (status, stderr, _) = server.finish().await;
    assert!(status.success(), "{stderr}");
}

/// A restart keeps sessions (listed, not connected until used), their state and history
/// (seq numbers continue); closed sessions stay readable.
pub async fn a_restart_keeps_sessions_state_and_history(store: &[&str]) {
    let fake = FakeAddon::start().await;
    let mut first = serve(&fake, store, &[]).await;
    let r = first.call_tool(1, "create_session", json!({})).await;
    let id = structured(&r)["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let code = "import bpy\nbpy.ops.mesh.primitive_cube_add()\nprint('made')";
    let r = first
        .call_tool(
            2,
            "execute_blender_code",
            json!({"session_id": id, "code": code}),
        )
        .await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    stop(first).await;

    let mut second = serve(&fake, store, &[]).await;
    let r = second.call_tool(1, "list_sessions", json!({})).await;
    let listed = &structured(&r)["sessions"];
    let session = listed
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["session_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is listed after the restart: {listed}"));
    assert_eq!(
        session["blender"]["connected"], false,
        "not connected until used"
    );
    assert_eq!(session["status"], "open");
    let objects = session["state"]["objects"].to_string();
    assert!(objects.contains("Cube"), "the state survived: {objects}");
    let r = second
        .call_tool(2, "get_session_history", json!({"session_id": id}))
        .await;
    let h = structured(&r);
    assert_eq!(h["total"], 1);
    assert_eq!(h["entries"][0]["outcome"], "success");
    assert_eq!(h["entries"][0]["arguments"]["code"], code);
    // Its id is accepted and the next command reconnects.
    let r = second
        .call_tool(
            3,
            "execute_blender_code",
            json!({"session_id": id, "code": "print(2)"}),
        )
        .await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    let r = second
        .call_tool(4, "get_session_history", json!({"session_id": id}))
        .await;
    let seqs: Vec<u64> = structured(&r)["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [1, 2], "seq numbers continue across the restart");
    // Closed sessions stay readable.
    let r = second
        .call_tool(5, "close_session", json!({"session_id": id}))
        .await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    let r = second
        .call_tool(6, "get_session_info", json!({"session_id": id}))
        .await;
    assert_eq!(structured(&r)["status"], "closed");
    stop(second).await;
}

/// Run `each` commands printing `who` and their index on `server` (in its default session),
/// each sleeping 50 ms in Blender, expecting success; the server back.
async fn run_each(mut server: RawServer, who: &str, each: usize) -> RawServer {
    for i in 0..each {
        let code = format!("import time\ntime.sleep(0.05)\nprint('{who}{i}')");
        let r = server
            .call_tool(10 + i as u64, "execute_blender_code", json!({"code": code}))
            .await;
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    server
}

/// Two server processes on one store share a named session: Blender sees one command at a
/// time from them, and one history holds every command in execution order.
pub async fn two_servers_share_a_named_session_one_command_at_a_time(store: &[&str]) {
    let mut fake = FakeAddon::start().await;
    let a = serve(&fake, store, &["--session", "shared"]).await;
    let b = serve(&fake, store, &["--session", "shared"]).await;
    const EACH: usize = 4;
    let (mut a, b) = tokio::join!(run_each(a, "a", EACH), run_each(b, "b", EACH));
    // The fake logs `executed` before it replies, but its event lines reach this process on
    // their own pipe: settle the log rather than read one that may lag the replies.
    fake.settle().await;

    // Blender saw one command at a time: every request was executed before the next one
    // was read.
    let wire: Vec<String> = fake
        .events()
        .iter()
        .filter(|e| {
            (e["event"] == "request" || e["event"] == "executed") && e["type"] == "execute_code"
        })
        .map(|e| e["event"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(wire.len(), 4 * EACH, "{wire:?}");
    for pair in wire.chunks(2) {
        assert_eq!(
            pair,
            ["request", "executed"],
            "overlapping commands: {wire:?}"
        );
    }
    // One session, one history with every command, in execution order.
    let r = a.call_tool(50, "get_session_info", json!({})).await;
    let info = structured(&r).clone();
    assert_eq!(info["name"], "shared");
    let r = a.call_tool(51, "get_session_history", json!({})).await;
    let entries = structured(&r)["entries"]
        .as_array()
        .expect("entries")
        .clone();
    assert_eq!(entries.len(), 2 * EACH, "{entries:?}");
    let printed: Vec<String> = entries.iter().map(|e| e["result"].to_string()).collect();
    let executed: Vec<String> = fake
        .events()
        .iter()
        .filter(|e| e["event"] == "executed" && e["type"] == "execute_code")
        .map(|e| {
            e["stdout"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    for (entry, ran) in printed.iter().zip(&executed) {
        assert!(
            entry.contains(ran.as_str()),
            "history order {printed:?} vs wire order {executed:?}"
        );
    }
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=2 * EACH as u64).collect::<Vec<_>>());
    stop(a).await;
    stop(b).await;
}

/// `kill -9` of a server mid-command: the entry reads `interrupted` after the restart, and
/// the session is usable at once.
pub async fn a_server_killed_mid_command_leaves_an_interrupted_entry(store: &[&str]) {
    let mut fake = FakeAddon::start().await;
    let mut first = serve(&fake, store, &[]).await;
    let r = first.call_tool(1, "create_session", json!({})).await;
    let id = structured(&r)["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    first
        .send_line(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "execute_blender_code",
                "arguments": {"session_id": id, "code": "import time\ntime.sleep(3)"}}})
            .to_string(),
        )
        .await;
    fake.wait_for(|ev| {
        ev.iter()
            .any(|e| e["event"] == "request" && e["type"] == "execute_code")
    })
    .await;
    first.child.kill().await.expect("kill -9");

    let mut second = serve(&fake, store, &[]).await;
    let r = second
        .call_tool(1, "get_session_history", json!({"session_id": id}))
        .await;
    let entries = structured(&r)["entries"]
        .as_array()
        .expect("entries")
        .clone();
    let last = entries.last().expect("the entry is there");
    assert_eq!(last["outcome"], "interrupted", "{entries:?}");
    assert!(
        last["message"]
            .as_str()
            .unwrap_or("")
            .contains("Blender may or may not have run it"),
        "{last}"
    );
    assert_eq!(last["arguments"]["code"], "import time\ntime.sleep(3)");
    // The session is usable at once (the dead server's lease does not hold it).
    let r = second
        .call_tool(
            2,
            "execute_blender_code",
            json!({"session_id": id, "code": "print(1)"}),
        )
        .await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    stop(second).await;
}

/// `list_sessions` shows one page of the open sessions, oldest first, with the count of all
/// and the offset of the next page; a closed session is not listed.
pub async fn list_sessions_pages_the_open_sessions(store: &[&str]) {
    let fake = FakeAddon::start().await;
    let mut server = serve(&fake, store, &[]).await;
    let mut ids = Vec::new();
    for i in 0..4u64 {
        let r = server
            .call_tool(
                1 + i,
                "create_session",
                json!({"name": format!("page-{i}")}),
            )
            .await;
        ids.push(
            structured(&r)["session_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let r = server
        .call_tool(10, "close_session", json!({"session_id": ids[1]}))
        .await;
    structured(&r);
    let page = |v: &Value| -> Vec<String> {
        v["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .filter_map(|s| s["session_id"].as_str().map(str::to_owned))
            .collect()
    };
    let r = server
        .call_tool(11, "list_sessions", json!({"limit": 2}))
        .await;
    let first = structured(&r).clone();
    assert_eq!(first["count"], 3, "{first}");
    assert_eq!(page(&first), [ids[0].clone(), ids[2].clone()], "{first}");
    assert_eq!(first["next_offset"], 2, "{first}");
    let r = server
        .call_tool(12, "list_sessions", json!({"limit": 2, "offset": 2}))
        .await;
    let second = structured(&r).clone();
    assert_eq!(page(&second), [ids[3].clone()], "{second}");
    assert!(second["next_offset"].is_null(), "the last page: {second}");
    stop(server).await;
}
