//! The Redis store against a real redis-server (started per test by `support::redis`): the
//! conformance check every store passes, the documented key layout, what two stores on one
//! Redis see of each other's races (and of the event log they share), and what a Redis that is stopped, restarted or hung does
//! to a store call (an error naming the store within the call's timeout, then recovery).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::events::CloseReason;
use blender_session_mcp::session::{HistoryEntry, Outcome};
use blender_session_mcp::store::redis::{RedisConfig, RedisStore};
use blender_session_mcp::store::{
    Access, BeginCommand, Begun, Created, FinishCommand, NewSession, SessionStore, StoreError,
};
use serde_json::json;
use support::redis::RedisServer;

async fn server(test: &str) -> Option<RedisServer> {
    match RedisServer::start().await {
        Ok(server) => Some(server),
        Err(e) => {
            support::skip(test, &e);
            None
        }
    }
}

fn config(redis: &RedisServer, prefix: &str, op_timeout: Duration) -> RedisConfig {
    RedisConfig {
        url: redis.url(),
        prefix: prefix.into(),
        history_limit: 3,
        op_timeout,
    }
}

async fn store(redis: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::open(config(redis, prefix, Duration::from_secs(5)))
        .await
        .expect("the store opens")
}

fn new(id: &str, name: Option<&str>) -> NewSession {
    NewSession {
        id: id.into(),
        name: name.map(str::to_owned),
        owner: "local".into(),
        target: Target::new("127.0.0.1", 9876),
        now: 1_764_585_600.25,
    }
}

fn entry() -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        timestamp: 1_764_585_600.123_456,
        command: "execute_code".into(),
        tool: "execute_blender_code".into(),
        arguments: json!({"code": "print('é')"}),
        outcome: Outcome::Success,
        result: None,
        message: None,
        duration: 0.0,
        note: None,
    }
}

fn begin(holder: &str, now: f64) -> BeginCommand {
    BeginCommand {
        holder: holder.into(),
        now,
        lease_until: now + 30.0,
        entry: entry(),
    }
}

#[tokio::test]
async fn the_redis_store_passes_the_conformance_check() {
    let Some(redis) = server("the_redis_store_passes_the_conformance_check").await else {
        return;
    };
    let store = store(&redis, "conf:").await;
    blender_session_mcp::store::conformance::check(&store).await;
}

#[tokio::test]
async fn shares_and_names_survive_reopening_the_store() {
    let Some(redis) = server("shares_and_names_survive_reopening_the_store").await else {
        return;
    };
    let store = store(&redis, "reopen:").await;
    blender_session_mcp::store::conformance::shares_before_reopen(&store).await;
    drop(store);
    let store = self::store(&redis, "reopen:").await;
    blender_session_mcp::store::conformance::shares_after_reopen(&store).await;
}

#[tokio::test]
async fn two_stores_on_one_prefix_share_the_event_log_in_its_documented_keys() {
    let Some(redis) =
        server("two_stores_on_one_prefix_share_the_event_log_in_its_documented_keys").await
    else {
        return;
    };
    let (a, b) = (store(&redis, "ev:").await, store(&redis, "ev:").await);
    blender_session_mcp::store::conformance::events_shared(&a, &b).await;
    let newest = a.events_after(0, 0).await.expect("bounds").newest;
    let mut con = redis.connection().await;
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("ev:*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    keys.sort();
    assert_eq!(keys, ["ev:events", "ev:events:seq", "ev:schema"]);
    let first: Vec<(String, Vec<String>)> = ::redis::cmd("XRANGE")
        .arg("ev:events")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    assert_eq!(first[0].0, "1-0", "the stream entry's id is the event id");
    assert_eq!(first[0].1[0], "body");
    let seq: u64 = ::redis::cmd("GET")
        .arg("ev:events:seq")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(seq, newest);
    // A lost counter: the ids go on from the stream's last entry.
    let () = ::redis::cmd("DEL")
        .arg("ev:events:seq")
        .query_async(&mut con)
        .await
        .expect("DEL");
    let next = b.append_events(&["{}".to_owned()]).await.expect("append");
    assert_eq!(next, [newest + 1]);
}

#[tokio::test]
async fn the_keys_are_the_documented_layout_under_the_prefix() {
    let Some(redis) = server("the_keys_are_the_documented_layout_under_the_prefix").await else {
        return;
    };
    let store = store(&redis, "doc:").await;
    store
        .create(new("s-1", Some("shared")))
        .await
        .expect("create");
    assert!(
        store
            .share("s-1", "bob", Some(Access::Read))
            .await
            .expect("share")
    );
    let Begun::Started { seq, .. } = store
        .begin_command("s-1", begin("me", 2e9))
        .await
        .expect("begin")
    else {
        panic!("free lease");
    };
    let mut con = redis.connection().await;
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    keys.sort();
    assert_eq!(
        keys,
        [
            "doc:history:s-1",
            "doc:names:local",
            "doc:open",
            "doc:owned:local",
            "doc:running",
            "doc:running:s-1",
            "doc:schema",
            "doc:session:s-1",
            "doc:sessions",
            "doc:shares:s-1"
        ]
    );
    let stored: String = ::redis::cmd("LINDEX")
        .arg("doc:history:s-1")
        .arg(0)
        .query_async(&mut con)
        .await
        .expect("LINDEX");
    assert!(
        stored.starts_with(r#"{"seq":1,"#),
        "the seq is the entry's first field: {stored}"
    );
    let back: HistoryEntry = serde_json::from_str(&stored).expect("an entry");
    assert_eq!(back.outcome, Outcome::Running);
    assert_eq!(
        back.timestamp, 1_764_585_600.123_456,
        "times round-trip exactly"
    );
    assert_eq!(back.arguments, json!({"code": "print('é')"}));
    store
        .finish_command(
            "s-1",
            FinishCommand {
                holder: "me".into(),
                seq,
                now: 2e9 + 1.0,
                entry: entry(),
                last_command: "execute_code".into(),
                last_result: json!({"status": "success"}),
                state: None,
            },
        )
        .await
        .expect("finish");
    let running: bool = ::redis::cmd("EXISTS")
        .arg("doc:running:s-1")
        .query_async(&mut con)
        .await
        .expect("EXISTS");
    assert!(!running, "a finished entry leaves no running mark");
    store
        .close("s-1", CloseReason::Closed, 2e9 + 2.0)
        .await
        .expect("close");
    assert_eq!(store.prune(2e9 + 2.0).await.expect("prune"), 1);
    let mut left: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    left.sort();
    assert_eq!(
        left,
        ["doc:schema"],
        "pruning leaves nothing of the session"
    );
}

#[tokio::test]
async fn a_layout_1_prefix_is_migrated_to_names_per_owner_keeping_its_sessions() {
    let Some(redis) =
        server("a_layout_1_prefix_is_migrated_to_names_per_owner_keeping_its_sessions").await
    else {
        return;
    };
    let mut con = redis.connection().await;
    // Layout 1: one names hash for everyone, no owned sets.
    let () = ::redis::pipe()
        .set("mig:schema", 1)
        .ignore()
        .hset_multiple(
            "mig:session:old",
            &[
                ("id", "old"),
                ("name", "main"),
                ("owner", "local"),
                ("host", "127.0.0.1"),
                ("port", "9876"),
                ("created_at", "1.5"),
                ("last_activity", "2"),
                ("status", "open"),
                ("state_version", "0"),
                ("seq", "0"),
                ("kept", "0"),
            ],
        )
        .ignore()
        .zadd("mig:sessions", "old", 1.5)
        .ignore()
        .zadd("mig:open", "old", 2.0)
        .ignore()
        .hset("mig:names", "main", "old")
        .ignore()
        .query_async(&mut con)
        .await
        .expect("a layout 1 prefix");
    let store = store(&redis, "mig:").await;
    let old = store
        .get_by_name("local", "main")
        .await
        .expect("by name")
        .expect("kept under its owner");
    assert_eq!(old.id, "old");
    assert_eq!(store.count_owned("local").await.expect("count"), 1);
    match store
        .create(new("again", Some("main")))
        .await
        .expect("create")
    {
        Created::Existing(s) => assert_eq!(s.id, "old"),
        other => panic!("the owner's main is reused, got {other:?}"),
    }
    let alice = NewSession {
        owner: "alice".into(),
        ..new("alices", Some("main"))
    };
    assert!(matches!(
        store.create(alice).await.expect("create"),
        Created::New(_)
    ));
    let (version, names_v1): (String, bool) = ::redis::pipe()
        .get("mig:schema")
        .exists("mig:names")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(
        version,
        blender_session_mcp::store::redis::SCHEMA_VERSION.to_string()
    );
    assert!(!names_v1, "layout 1's names hash is gone");
    drop(store);
    // Opened again: nothing left to migrate, the same sessions.
    let store = self::store(&redis, "mig:").await;
    assert_eq!(store.count_owned("local").await.expect("count"), 1);
    assert_eq!(store.count_owned("alice").await.expect("count"), 1);
}

#[tokio::test]
async fn two_stores_on_one_redis_race_for_a_lease_a_name_and_a_close_and_one_wins_each() {
    let Some(redis) =
        server("two_stores_on_one_redis_race_for_a_lease_a_name_and_a_close_and_one_wins_each")
            .await
    else {
        return;
    };
    let a = Arc::new(store(&redis, "race:").await);
    let b = Arc::new(store(&redis, "race:").await);
    for round in 0..20 {
        let name = format!("n{round}");
        let (ca, cb) = tokio::join!(
            a.create(new(&format!("a{round}"), Some(&name))),
            b.create(new(&format!("b{round}"), Some(&name)))
        );
        let (ca, cb) = (ca.expect("create"), cb.expect("create"));
        let id = match (&ca, &cb) {
            (Created::New(s), Created::Existing(e)) | (Created::Existing(e), Created::New(s)) => {
                assert_eq!(s.id, e.id, "the loser gets the winner's session");
                s.id.clone()
            }
            other => panic!("one name, one session: {other:?}"),
        };
        let (ba, bb) = tokio::join!(
            a.begin_command(&id, begin("A", 100.0)),
            b.begin_command(&id, begin("B", 100.0))
        );
        let outcomes = [ba.expect("begin"), bb.expect("begin")];
        let started = outcomes
            .iter()
            .filter(|o| matches!(o, Begun::Started { .. }))
            .count();
        let leased = outcomes
            .iter()
            .filter(|o| matches!(o, Begun::Leased(_)))
            .count();
        assert_eq!((started, leased), (1, 1), "{outcomes:?}");
        let (xa, xb) = tokio::join!(
            a.close(&id, CloseReason::Idle, 200.0),
            b.close(&id, CloseReason::Idle, 200.0)
        );
        let closed = [xa.expect("close"), xb.expect("close")]
            .iter()
            .filter(|c| c.is_some())
            .count();
        assert_eq!(closed, 1, "closed exactly once");
    }
}

#[tokio::test]
async fn redis_stopped_fails_each_call_naming_the_store_and_the_next_call_after_it_returns_works() {
    let Some(mut redis) = server(
        "redis_stopped_fails_each_call_naming_the_store_and_the_next_call_after_it_returns_works",
    )
    .await
    else {
        return;
    };
    let store = store(&redis, "down:").await;
    store.create(new("s-1", None)).await.expect("create");
    redis.stop().await;
    let started = Instant::now();
    let e = store
        .begin_command("s-1", begin("me", 10.0))
        .await
        .expect_err("Redis is down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails at once, not after the timeout"
    );
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("Redis store redis://127.0.0.1:{}/", redis.port)),
        "{text}"
    );
    assert!(text.contains("writing a history entry"), "{text}");
    // Again: still down, still a clear error (the manager tries to reconnect each time).
    assert!(store.get("s-1").await.is_err());
    redis.start_again().await;
    // The first call after Redis is back works, and nothing written before is lost.
    let s = store
        .get("s-1")
        .await
        .expect("Redis is back")
        .expect("kept");
    assert_eq!(s.id, "s-1");
    let Begun::Started { seq, .. } = store
        .begin_command("s-1", begin("me", 11.0))
        .await
        .expect("begin")
    else {
        panic!("free lease");
    };
    assert_eq!(seq, 1, "the refused command left no entry");
}

#[cfg(unix)]
#[tokio::test]
async fn a_hung_redis_times_a_call_out_within_its_timeout() {
    let Some(redis) = server("a_hung_redis_times_a_call_out_within_its_timeout").await else {
        return;
    };
    let store = RedisStore::open(config(&redis, "hung:", Duration::from_millis(300)))
        .await
        .expect("open");
    store.create(new("s-1", None)).await.expect("create");
    redis.pause();
    let started = Instant::now();
    let e = store.get("s-1").await.expect_err("Redis hangs");
    let took = started.elapsed();
    redis.resume();
    assert!(matches!(e, StoreError::TimedOut { .. }), "{e:?}");
    assert!(
        took < Duration::from_secs(2),
        "bounded by the timeout: {took:?}"
    );
    assert!(e.to_string().contains("Redis store"), "{e}");
}

#[tokio::test]
async fn a_prefix_holding_something_else_or_a_newer_layout_is_refused_and_left_alone() {
    let Some(redis) =
        server("a_prefix_holding_something_else_or_a_newer_layout_is_refused_and_left_alone").await
    else {
        return;
    };
    let mut con = redis.connection().await;
    let () = ::redis::cmd("SET")
        .arg("other:schema")
        .arg("not ours")
        .query_async(&mut con)
        .await
        .expect("SET");
    let () = ::redis::cmd("SET")
        .arg("newer:schema")
        .arg(99)
        .query_async(&mut con)
        .await
        .expect("SET");
    let e = RedisStore::open(config(&redis, "other:", Duration::from_secs(5)))
        .await
        .expect_err("not ours");
    assert!(matches!(e, StoreError::NotADatabase { .. }), "{e:?}");
    assert!(e.to_string().contains("--store-prefix"), "{e}");
    let e = RedisStore::open(config(&redis, "newer:", Duration::from_secs(5)))
        .await
        .expect_err("newer");
    assert!(
        matches!(e, StoreError::NewerSchema { found: 99, .. }),
        "{e:?}"
    );
    let (a, b): (String, String) = ::redis::pipe()
        .get("other:schema")
        .get("newer:schema")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("not ours", "99"),
        "left untouched"
    );
}
