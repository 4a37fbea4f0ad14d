//! The SQLite session store through the real binary: a restart keeps sessions, state and
//! history; two server processes share a named session without their commands
//! overlapping; a server killed mid-command leaves an `interrupted` entry; `sessions`
//! shows the store; `--store memory` keeps nothing.

mod support;

use serde_json::{Value, json};
use support::{FakeAddon, RawServer, TempStore, store_suite};

fn structured(r: &Value) -> &Value {
    assert_eq!(r["result"]["isError"], false, "{r}");
    &r["result"]["structuredContent"]
}

async fn serve(fake: &FakeAddon, store: &TempStore, extra: &[&str]) -> RawServer {
    let port = fake.port.to_string();
    let mut args = vec![
        "serve",
        "--blender-port",
        &port,
        "--store-path",
        &store.path,
    ];
    args.extend_from_slice(extra);
    RawServer::start_env(&args, &[("BSM_STORE_PATH", &store.path)]).await
}

async fn stop(mut server: RawServer) {
    server.close_stdin();
    let (status, stderr, _) = server.finish().await;
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn a_restart_keeps_sessions_state_and_history() {
    let store = TempStore::new();
    store_suite::a_restart_keeps_sessions_state_and_history(&["--store-path", &store.path]).await;
}

#[tokio::test]
async fn two_servers_share_a_named_session_one_command_at_a_time() {
    let store = TempStore::new();
    store_suite::two_servers_share_a_named_session_one_command_at_a_time(&[
        "--store-path",
        &store.path,
    ])
    .await;
}

#[tokio::test]
async fn a_server_killed_mid_command_leaves_an_interrupted_entry() {
    let store = TempStore::new();
    store_suite::a_server_killed_mid_command_leaves_an_interrupted_entry(&[
        "--store-path",
        &store.path,
    ])
    .await;
}

#[tokio::test]
async fn list_sessions_pages_the_open_sessions() {
    let store = TempStore::new();
    store_suite::list_sessions_pages_the_open_sessions(&["--store-path", &store.path]).await;
}

#[tokio::test]
async fn the_sessions_command_shows_the_store_and_memory_keeps_nothing() {
    let fake = FakeAddon::start().await;
    let store = TempStore::new();
    let mut server = serve(&fake, &store, &[]).await;
    let r = server
        .call_tool(1, "create_session", json!({"name": "cli"}))
        .await;
    let id = structured(&r)["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    stop(server).await;

    let run = |args: &[&str]| {
        std::process::Command::new(support::BIN)
            .args(["sessions", "--store-path", &store.path])
            .args(args)
            .output()
            .expect("runs")
    };
    let out = run(&["list"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{table}");
    assert!(table.contains(&id) && table.contains("cli"), "{table}");
    let out = run(&["list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed["count"], 1);
    let out = run(&["close", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["show", &id, "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["status"], "closed");
    let out = run(&["list"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&id));

    // --store memory: nothing survives the process.
    let port = fake.port.to_string();
    let mut mem = RawServer::start(&["--blender-port", &port, "--store", "memory"]).await;
    mem.call_tool(1, "create_session", json!({})).await;
    stop(mem).await;
    let mut mem = RawServer::start(&["--blender-port", &port, "--store", "memory"]).await;
    let r = mem.call_tool(1, "list_sessions", json!({})).await;
    assert_eq!(structured(&r)["count"], 0);
    stop(mem).await;
}

#[tokio::test]
async fn a_locked_store_fails_the_command_before_sending_and_recovers() {
    use blender_session_mcp::session::{Call, Registry, SessionError};
    use blender_session_mcp::store::sqlite::SqliteStore;
    let mut fake = FakeAddon::start().await;
    let store = TempStore::new();
    let path = std::path::PathBuf::from(&store.path);
    let sqlite = SqliteStore::open(&path, 100).expect("opens");
    let cfg = support::config(fake.target());
    let backend = std::sync::Arc::new(cfg.classic_backend());
    let reg = Registry::with_store(cfg, backend, std::sync::Arc::new(sqlite));
    let id = reg.create_session(None).await.expect("session");
    // Another process holds the write lock past the busy timeout.
    let holder = rusqlite::Connection::open(&path).expect("second connection");
    holder.execute_batch("BEGIN EXCLUSIVE").expect("locks");
    let err = reg
        .execute_code(&id, "print(1)", &Call::new("t"))
        .await
        .expect_err("the store is locked");
    assert!(matches!(err, SessionError::Store(_)), "{err}");
    let text = blender_session_mcp::mcp::errors::error_text(&err);
    assert!(text.contains(&store.path), "names the store: {text}");
    assert!(text.contains("nothing was sent to Blender"), "{text}");
    assert!(text.contains("retry"), "says what to do: {text}");
    assert_eq!(fake.count("request").await, 0, "nothing was sent");
    holder.execute_batch("ROLLBACK").expect("unlocks");
    let out = reg
        .execute_code(&id, "print(2)", &Call::new("t"))
        .await
        .expect("recovers when the store is back");
    assert_eq!(out.stdout, "2\n");
    let h = reg.get_session_history(&id, None).await.expect("history");
    assert_eq!(
        h.entries.len(),
        1,
        "the failed command could not be recorded; the next one is"
    );
    reg.shutdown().await;
}
