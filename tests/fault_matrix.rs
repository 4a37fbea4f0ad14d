//! The fault matrix: for each fault the fake addon can inject, the caller's result, the
//! history entry's outcome, that the server keeps serving afterwards, and that no command was
//! sent twice. (Faults covered elsewhere: Blender down at start — keepalive.rs; restarted
//! between commands — keepalive.rs; reply slower than the timeout, over-cap reply, close
//! racing a command — faults.rs; MCP cancellation — mcp_tools.rs and faults.rs; stdio-level
//! faults — stdio_faults.rs.)

mod support;

use std::time::Duration;

use blender_session_mcp::backend::BackendError;
use blender_session_mcp::mcp::error_text;
use blender_session_mcp::session::{Call, Outcome, Registry, SessionError};
use serde_json::json;
use support::{FakeAddon, config};
use tokio::task::JoinSet;

fn registry_with_timeout(fake: &FakeAddon, timeout: Duration) -> Registry {
    let mut cfg = config(fake.target());
    cfg.command_timeout = timeout;
    Registry::new(cfg)
}

fn outcomes(reg: &Registry, id: &str) -> Vec<Outcome> {
    reg.get_session_history(id, None)
        .expect("history")
        .entries
        .iter()
        .map(|e| e.outcome)
        .collect()
}

/// After a fault: the next command on the same session works, on a fresh connection.
async fn still_serving(reg: &Registry, id: &str, fake: &mut FakeAddon) {
    let out = reg
        .execute_code(id, "print('still serving')", &Call::new("t"))
        .await
        .expect("the session keeps working");
    assert_eq!(out.stdout, "still serving\n");
    fake.wait_for(|ev| {
        ev.iter()
            .any(|e| e["event"] == "executed" && e["type"] == "execute_code")
    })
    .await;
}

#[tokio::test]
async fn blender_killed_mid_command_reports_connection_lost() {
    let mut fake = FakeAddon::start().await;
    let port = fake.port;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    let running = {
        let (reg, id) = (reg.clone(), id.clone());
        tokio::spawn(async move {
            reg.execute_code(&id, "import time\ntime.sleep(5)", &Call::new("t"))
                .await
        })
    };
    fake.wait_count("request", 1).await;
    fake.kill().await;
    let err = running.await.expect("task").expect_err("lost");
    assert!(
        matches!(
            err,
            SessionError::Backend(BackendError::ConnectionLost { .. })
        ),
        "{err:?}"
    );
    assert!(
        error_text(&err).contains("may or may not have run"),
        "{err}"
    );
    assert_eq!(outcomes(&reg, &id), vec![Outcome::ConnectionLost]);

    let mut fake = FakeAddon::start_with(&["--port", &port.to_string()]).await;
    still_serving(&reg, &id, &mut fake).await;
    assert_eq!(fake.count("request"), 1, "the lost command was not re-sent");
}

#[tokio::test]
async fn connection_closed_after_the_command_ran_reports_connection_lost() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "close_before_reply"})).await;
    let err = reg
        .execute_code(&id, "print('ran')", &Call::new("t"))
        .await
        .expect_err("lost");
    assert!(
        matches!(
            err,
            SessionError::Backend(BackendError::ConnectionLost { .. })
        ),
        "{err:?}"
    );
    assert!(error_text(&err).contains("before replying"), "{err}");
    still_serving(&reg, &id, &mut fake).await;
    fake.wait_count("executed", 2).await;
    assert_eq!(fake.count("request"), 2);
    fake.assert_nothing_sent_twice();
    assert_eq!(
        outcomes(&reg, &id),
        vec![Outcome::ConnectionLost, Outcome::Success]
    );
}

#[tokio::test]
async fn connection_closed_or_reset_before_running_reports_connection_lost() {
    for kind in ["close_after_read", "reset_after_read"] {
        let mut fake = FakeAddon::start().await;
        let reg = registry_with_timeout(&fake, Duration::from_secs(30));
        let id = reg.create_session(None).await.expect("session");
        fake.arm(json!({"kind": kind})).await;
        let err = reg
            .execute_code(&id, "print('never runs')", &Call::new("t"))
            .await
            .expect_err(kind);
        assert!(
            matches!(
                err,
                SessionError::Backend(BackendError::ConnectionLost { .. })
            ),
            "{kind}: {err:?}"
        );
        still_serving(&reg, &id, &mut fake).await;
        assert_eq!(
            fake.count("executed"),
            1,
            "{kind}: only the second command ran"
        );
        fake.assert_nothing_sent_twice();
        assert_eq!(
            outcomes(&reg, &id),
            vec![Outcome::ConnectionLost, Outcome::Success]
        );
    }
}

#[tokio::test]
async fn accept_but_never_answer_times_out_and_the_late_reply_cannot_arrive() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_millis(300));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "never_answer"})).await;
    let err = reg
        .execute_code(&id, "print('x')", &Call::new("t"))
        .await
        .expect_err("timeout");
    assert!(matches!(err, SessionError::Timeout { .. }), "{err:?}");
    still_serving(&reg, &id, &mut fake).await;
    fake.assert_nothing_sent_twice();
    assert_eq!(fake.count("accepted"), 2);
    assert_eq!(
        outcomes(&reg, &id),
        vec![Outcome::Timeout, Outcome::Success]
    );
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_never_reaches_a_later_call() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_millis(300));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "slow_reply", "seconds": 0.8}))
        .await;
    let err = reg
        .execute_code(&id, "print('first')", &Call::new("t"))
        .await
        .expect_err("timeout");
    assert!(matches!(err, SessionError::Timeout { .. }), "{err:?}");
    let out = reg
        .execute_code(&id, "print('second')", &Call::new("t"))
        .await
        .expect("second");
    assert_eq!(out.stdout, "second\n", "not the late 'first' reply");
    fake.assert_nothing_sent_twice();
}

#[tokio::test]
async fn a_reply_sent_byte_by_byte_decodes_once() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "byte_by_byte"})).await;
    let out = reg
        .execute_code(&id, "print('立方体 one byte at a time')", &Call::new("t"))
        .await
        .expect("decodes");
    assert_eq!(out.stdout, "立方体 one byte at a time\n");
    still_serving(&reg, &id, &mut fake).await;
    fake.wait_count("executed", 2).await;
    assert_eq!(fake.count("accepted"), 1, "the connection stayed healthy");
}

#[tokio::test]
async fn garbage_replies_are_errors_and_drop_the_connection() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "garbage", "bytes": "HTTP/1.1 400 Bad Request\r\n\r\n"}))
        .await;
    let err = reg
        .execute_code(&id, "print(1)", &Call::new("t"))
        .await
        .expect_err("garbage");
    assert!(
        matches!(err, SessionError::Backend(BackendError::Protocol { .. })),
        "{err:?}"
    );
    assert!(error_text(&err).contains("not a valid reply"), "{err}");
    still_serving(&reg, &id, &mut fake).await;
    assert_eq!(
        fake.count("accepted"),
        2,
        "the garbage connection was dropped"
    );
    fake.assert_nothing_sent_twice();
    assert_eq!(outcomes(&reg, &id), vec![Outcome::Error, Outcome::Success]);
}

#[tokio::test]
async fn trailing_extra_json_is_a_desync_that_drops_the_connection() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "trailing"})).await;
    let err = reg
        .send_command(&id, "get_scene_info", None)
        .await
        .expect_err("desync");
    assert!(
        matches!(err, SessionError::Backend(BackendError::Protocol { .. })),
        "{err:?}"
    );
    assert!(error_text(&err).contains("out of sync"), "{err}");
    // The unrequested reply never reaches the next command.
    still_serving(&reg, &id, &mut fake).await;
    assert_eq!(fake.count("accepted"), 2);
    assert_eq!(outcomes(&reg, &id), vec![Outcome::Error, Outcome::Success]);
}

#[tokio::test]
async fn an_over_cap_reply_is_cut_off_and_memory_stays_bounded() {
    let mut fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.max_reply_bytes = 1 << 20;
    let reg = Registry::new(cfg);
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "oversize", "size": 8 << 20})).await;
    let err = reg
        .send_command(&id, "get_scene_info", None)
        .await
        .expect_err("too large");
    assert!(error_text(&err).contains("--max-reply-bytes"), "{err}");
    still_serving(&reg, &id, &mut fake).await;
    let h = reg.get_session_history(&id, None).expect("history");
    assert!(
        serde_json::to_string(&h).expect("json").len() < 64 * 1024,
        "history keeps no copy of the reply"
    );
}

#[tokio::test]
async fn a_connection_closed_at_accept_is_replaced_without_an_error() {
    let mut fake = FakeAddon::start().await;
    fake.arm(json!({"kind": "close_on_accept"})).await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    fake.wait_count("closed", 1).await;
    let out = reg
        .execute_code(&id, "print('ok')", &Call::new("t"))
        .await
        .expect("the stale socket is replaced silently");
    assert_eq!(out.stdout, "ok\n");
    fake.wait_count("executed", 1).await;
    assert_eq!(fake.count("request"), 1);
    assert_eq!(outcomes(&reg, &id), vec![Outcome::Success]);
}

#[tokio::test]
async fn idle_cleanup_racing_a_command_in_flight_never_reaps_it() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(30));
    let id = reg.create_session(None).await.expect("session");
    fake.arm(json!({"kind": "delay", "seconds": 0.5})).await;
    let running = {
        let (reg, id) = (reg.clone(), id.clone());
        tokio::spawn(async move {
            reg.execute_code(&id, "print('slow')", &Call::new("t"))
                .await
        })
    };
    fake.wait_count("request", 1).await;
    assert!(reg.cleanup_idle_sessions(Duration::ZERO).await.is_empty());
    let out = running.await.expect("task").expect("completes");
    assert_eq!(out.stdout, "slow\n");
    assert_eq!(reg.len(), 1);
    // Once idle, it goes.
    assert_eq!(reg.cleanup_idle_sessions(Duration::ZERO).await, vec![id]);
    fake.wait_count("closed", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_on_one_session_are_answered_in_wire_order() {
    let mut fake = FakeAddon::start().await;
    let reg = registry_with_timeout(&fake, Duration::from_secs(120));
    let id = reg.create_session(None).await.expect("session");
    let mut tasks = JoinSet::new();
    for i in 0..1000 {
        let (reg, id) = (reg.clone(), id.clone());
        tasks.spawn(async move {
            let out = reg
                .execute_code(&id, &format!("print('call {i}')"), &Call::new("t"))
                .await
                .expect("answered");
            (i, out.stdout)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, stdout) = joined.expect("task");
        assert_eq!(
            stdout,
            format!("call {i}\n"),
            "no reply reached the wrong caller"
        );
    }
    fake.wait_count("executed", 1000).await;
    assert_eq!(fake.count("accepted"), 1);
    fake.assert_nothing_sent_twice();
    // History order equals the order Blender executed them (one request on the wire at a time).
    let wire: Vec<String> = fake
        .of("executed")
        .iter()
        .filter_map(|e| e["digest"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        wire,
        fake.request_digests(),
        "executed in the order received"
    );
    let history = reg.get_session_history(&id, None).expect("history");
    assert_eq!(history.total, 1000);
    assert!(
        history
            .entries
            .iter()
            .all(|e| e.outcome == Outcome::Success)
    );
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_created_and_closed_leak_no_fds_or_tasks() {
    // A minimal listener standing in for Blender: it holds each connection until EOF.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while matches!(tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await, Ok(n) if n > 0)
                {
                }
                let _ = tx.send(());
            });
        }
    });
    let mut cfg = config(blender_session_mcp::backend::Target::new("127.0.0.1", port));
    cfg.max_sessions = 10_000;
    let reg = Registry::new(cfg);
    let metrics = tokio::runtime::Handle::current().metrics();
    // Warm up once so lazily created runtime resources are not counted as leaks.
    let id = reg.create_session(None).await.expect("warm-up");
    reg.close_session(&id).await.expect("close");
    closed_rx.recv().await.expect("closed");
    let fds_before = open_fds();
    let tasks_before = metrics.num_alive_tasks();

    for _ in 0..10_000 {
        let id = reg.create_session(None).await.expect("create");
        reg.close_session(&id).await.expect("close");
    }
    for _ in 0..10_000 {
        closed_rx.recv().await.expect("the peer saw every close");
    }
    assert!(reg.is_empty());
    let fds_after = open_fds();
    let tasks_after = metrics.num_alive_tasks();
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} before, {fds_after} after"
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks leaked: {tasks_before} before, {tasks_after} after"
    );
}
