//! The Redis store's event wake-ups: an append on one store (one server process) wakes the
//! readers of another on the same prefix through pub/sub, with the newest id, and again
//! after Redis restarts (the subscriber reconnects and says so, so nothing published while
//! it was away is missed: readers read the log after a wake-up).

mod support;

use std::time::Duration;

use blender_session_mcp::store::SessionStore;
use blender_session_mcp::store::redis::{RedisConfig, RedisStore};
use support::redis::RedisServer;
use tokio::sync::watch;

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::open(RedisConfig {
        url: redis.url(),
        prefix: "wake:".into(),
        history_limit: 10,
        op_timeout: Duration::from_secs(5),
    })
    .await
    .expect("the store opens")
}

async fn changed(rx: &mut watch::Receiver<u64>, what: &str) -> u64 {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .unwrap_or_else(|_| panic!("no wake-up: {what}"))
        .expect("the subscriber runs");
    *rx.borrow_and_update()
}

#[tokio::test]
async fn an_append_on_one_store_wakes_the_other_with_the_newest_id_also_after_a_restart() {
    let test = "an_append_on_one_store_wakes_the_other_with_the_newest_id_also_after_a_restart";
    let mut redis = match RedisServer::start().await {
        Ok(r) => r,
        Err(e) => {
            support::skip(test, &e);
            return;
        }
    };
    let (writer, reader) = (store(&redis).await, store(&redis).await);
    let mut rx = reader.event_wakeups().expect("Redis pushes wake-ups");
    changed(&mut rx, "subscribed").await;
    let ids = writer
        .append_events(&["{}".into(), "{}".into()])
        .await
        .expect("append");
    assert_eq!(changed(&mut rx, "after an append").await, ids[1]);

    redis.stop().await;
    redis.start_again().await;
    changed(&mut rx, "subscribed again after the restart").await;
    // The writer's first call after the restart finds its old connection broken (it fails
    // at once, nothing written; the next call reconnects), as every store call does.
    let mut ids = writer.append_events(&["{}".into()]).await;
    if ids.is_err() {
        ids = writer.append_events(&["{}".into()]).await;
    }
    let ids = ids.expect("append after the restart");
    assert_eq!(changed(&mut rx, "after the restart").await, ids[0]);
}
