//! Sessions over the Redis store, through the real binary (`serve --store redis://…`) and a
//! real redis-server: a restart keeps sessions, state and history; two server processes
//! share a named session, one command at a time; a server killed mid-command leaves an
//! `interrupted` entry; Redis stopped during a run fails commands before anything is sent
//! and the server recovers when Redis returns, nothing lost; two processes reaping at once
//! close each idle session once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use blender_session_mcp::session::Registry;
use blender_session_mcp::store::redis::{RedisConfig, RedisStore};
use serde_json::{Value, json};
use support::redis::RedisServer;
use support::{FakeAddon, RawServer, store_suite};

async fn redis(test: &str) -> Option<RedisServer> {
    match RedisServer::start().await {
        Ok(server) => Some(server),
        Err(e) => {
            support::skip(test, &e);
            None
        }
    }
}

fn structured(r: &Value) -> &Value {
    assert_eq!(r["result"]["isError"], false, "{r}");
    &r["result"]["structuredContent"]
}

async fn serve(fake: &FakeAddon, redis: &RedisServer, extra: &[&str]) -> RawServer {
    let port = fake.port.to_string();
    let url = redis.url();
    let mut args = vec!["serve", "--blender-port", &port, "--store", &url];
    args.extend_from_slice(extra);
    RawServer::start(&args).await
}

async fn stop(mut server: RawServer) {
    server.close_stdin();
    let (status, stderr, _) = server.finish().await;
    assert!(status.success(), "{stderr}");
}

fn seqs(history: &Value) -> Vec<u64> {
    history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect()
}

#[tokio::test]
async fn a_restart_keeps_sessions_state_and_history_over_redis() {
    let Some(redis) = redis("a_restart_keeps_sessions_state_and_history_over_redis").await else {
        return;
    };
    let url = redis.url();
    store_suite::a_restart_keeps_sessions_state_and_history(&["--store", &url]).await;
}

#[tokio::test]
async fn two_servers_share_a_named_session_over_redis_one_command_at_a_time() {
    let Some(redis) =
        redis("two_servers_share_a_named_session_over_redis_one_command_at_a_time").await
    else {
        return;
    };
    let url = redis.url();
    store_suite::two_servers_share_a_named_session_one_command_at_a_time(&["--store", &url]).await;
}

#[tokio::test]
async fn a_server_killed_mid_command_leaves_an_interrupted_entry_in_redis() {
    let Some(redis) =
        redis("a_server_killed_mid_command_leaves_an_interrupted_entry_in_redis").await
    else {
        return;
    };
    let url = redis.url();
    store_suite::a_server_killed_mid_command_leaves_an_interrupted_entry(&["--store", &url]).await;
}

#[tokio::test]
async fn list_sessions_pages_the_open_sessions_over_redis() {
    let Some(redis) = redis("list_sessions_pages_the_open_sessions_over_redis").await else {
        return;
    };
    let url = redis.url();
    store_suite::list_sessions_pages_the_open_sessions(&["--store", &url]).await;
}

#[tokio::test]
async fn redis_stopped_during_a_run_fails_commands_before_sending_then_recovers_nothing_lost() {
    let Some(mut redis) = redis(
        "redis_stopped_during_a_run_fails_commands_before_sending_then_recovers_nothing_lost",
    )
    .await
    else {
        return;
    };
    let mut fake = FakeAddon::start().await;
    let mut server = serve(&fake, &redis, &[]).await;
    let r = server.call_tool(1, "create_session", json!({})).await;
    let id = structured(&r)["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = server
        .call_tool(
            2,
            "execute_blender_code",
            json!({"session_id": id, "code": "print('before')"}),
        )
        .await;
    structured(&r);
    let sent_before = fake.count("request").await;

    redis.stop().await;
    for (n, tool) in [(3, "execute_blender_code"), (4, "get_scene_info")] {
        let r = server
            .call_tool(
                n,
                tool,
                json!({"session_id": id, "code": "print('during')"}),
            )
            .await;
        assert_eq!(r["result"]["isError"], true, "{r}");
        let text = r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            text.contains(&format!("Redis store redis://127.0.0.1:{}/", redis.port)),
            "names the store: {text}"
        );
        assert!(text.contains("nothing was sent to Blender"), "{text}");
        assert!(
            text.contains("Redis server runs"),
            "says what to do: {text}"
        );
    }
    assert_eq!(
        fake.count("request").await,
        sent_before,
        "no command was sent"
    );

    redis.start_again().await;
    let r = server
        .call_tool(
            5,
            "execute_blender_code",
            json!({"session_id": id, "code": "print('after')"}),
        )
        .await;
    structured(&r);
    let r = server
        .call_tool(6, "get_session_history", json!({"session_id": id}))
        .await;
    let h = structured(&r).clone();
    assert_eq!(seqs(&h), [1, 2], "nothing lost, nothing half-written: {h}");
    assert_eq!(h["entries"][1]["outcome"], "success");
    stop(server).await;
}

#[tokio::test]
async fn two_processes_reaping_at_once_close_each_idle_session_once_over_redis() {
    let Some(redis) =
        redis("two_processes_reaping_at_once_close_each_idle_session_once_over_redis").await
    else {
        return;
    };
    let fake = FakeAddon::start().await;
    let registry = || async {
        let store = RedisStore::open(RedisConfig {
            url: redis.url(),
            prefix: "reap:".into(),
            history_limit: 10,
            op_timeout: Duration::from_secs(5),
        })
        .await
        .expect("store");
        let mut cfg = support::config(fake.target());
        cfg.connect_on_create = false;
        let backend = Arc::new(cfg.classic_backend());
        Registry::with_store(cfg, backend, Arc::new(store))
    };
    let (a, b) = (registry().await, registry().await);
    let mut made = Vec::new();
    for _ in 0..10 {
        made.push(a.create_session(None).await.expect("session"));
    }
    // Both see them all (one store), and both reap at once.
    assert_eq!(b.list_sessions().await.expect("list").len(), 10);
    let (ra, rb) = tokio::join!(
        a.cleanup_idle_sessions(Duration::ZERO),
        b.cleanup_idle_sessions(Duration::ZERO)
    );
    let mut closed: Vec<String> = ra.into_iter().chain(rb).collect();
    closed.sort();
    made.sort();
    assert_eq!(closed, made, "each session closed exactly once");
    a.shutdown().await;
    b.shutdown().await;
}
