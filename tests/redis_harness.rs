//! The test harness's redis-server itself: it starts on a free port, keeps its data across a
//! stop and a start (SHUTDOWN SAVE), refuses connections while stopped, and hangs while
//! paused. The Redis store's tests rely on each of these.

mod support;

use std::time::Duration;

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

#[tokio::test]
async fn data_survives_a_stop_and_a_start_on_the_same_port() {
    let Some(mut redis) = server("data_survives_a_stop_and_a_start_on_the_same_port").await else {
        return;
    };
    let mut con = redis.connection().await;
    let () = ::redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .expect("SET");
    redis.stop().await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", redis.port)).await;
    assert!(refused.is_err(), "a stopped server refuses connections");
    redis.start_again().await;
    let mut con = redis.connection().await;
    let v: String = ::redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(v, "v");
}

#[cfg(unix)]
#[tokio::test]
async fn a_paused_server_answers_nothing_until_resumed() {
    let Some(redis) = server("a_paused_server_answers_nothing_until_resumed").await else {
        return;
    };
    let mut con = redis.connection().await;
    redis.pause();
    let cmd = ::redis::cmd("PING");
    let ping = cmd.query_async::<String>(&mut con);
    let pending = tokio::time::timeout(Duration::from_millis(300), ping).await;
    assert!(pending.is_err(), "a paused server does not answer");
    redis.resume();
    let pong: String = ::redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING after resume");
    assert_eq!(pong, "PONG");
}
