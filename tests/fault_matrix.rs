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

async fn outcomes(reg: &Registry, id: &str) -> Vec<Outcome> {
    reg.get_session_history(id, None)
        .await
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
    assert_eq!(outcomes(&reg, &id).await, vec![Outcome::ConnectionLost]);

    let mut fake = FakeAddon::start_with(&["--port", &port.to_string()]).await;
    still_serving(&reg, &id, &mut fake).await;
    assert_eq!(
        fake.count("request").await,
        1,
        "the lost command was not re-sent"
    );
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
    assert_eq!(fake.count("request").await, 2);
    fake.assert_nothing_sent_twice().await;
    assert_eq!(
        outcomes(&reg, &id).await,
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
            fake.count("executed").await,
            1,
            "{kind}: only the second command ran"
        );
        fake.assert_nothing_sent_twice().await;
        assert_eq!(
            outcomes(&reg, &id).await,
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
    fake.assert_nothing_sent_twice().await;
    assert_eq!(fake.count("accepted").await, 2);
    assert_eq!(
        outcomes(&reg, &id).await,
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
    fake.assert_nothing_sent_twice().await;
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
    assert_eq!(
        fake.count("accepted").await,
        1,
        "the connection stayed healthy"
    );
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
        fake.count("accepted").await,
        2,
        "the garbage connection was dropped"
    );
    fake.assert_nothing_sent_twice().await;
    assert_eq!(
        outcomes(&reg, &id).await,
        vec![Outcome::Error, Outcome::Success]
    );
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
    assert_eq!(fake.count("accepted").await, 2);
    assert_eq!(
        outcomes(&reg, &id).await,
        vec![Outcome::Error, Outcome::Success]
    );
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
    let h = reg.get_session_history(&id, None).await.expect("history");
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
    assert_eq!(fake.count("request").await, 1);
    assert_eq!(outcomes(&reg, &id).await, vec![Outcome::Success]);
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
    const CALLS: usize = 1000;
    let mut fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.command_timeout = Duration::from_secs(120);
    cfg.history_limit = CALLS;
    let reg = Registry::new(cfg);
    let id = reg.create_session(None).await.expect("session");
    let code = |i: usize| format!("print('call {i}')");
    let mut tasks = JoinSet::new();
    for i in 0..CALLS {
        let (reg, id, code) = (reg.clone(), id.clone(), code(i));
        tasks.spawn(async move {
            let out = reg
                .execute_code(&id, &code, &Call::new("t"))
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
    fake.wait_count("executed", CALLS).await;
    assert_eq!(fake.count("accepted").await, 1);
    fake.assert_nothing_sent_twice().await;
    let mut executed = fake.of("executed").await;
    executed.sort_by_key(|e| e["seq"].as_u64().expect("seq"));
    let digests: Vec<&str> = executed
        .iter()
        .map(|e| e["digest"].as_str().expect("digest"))
        .collect();
    assert_eq!(
        digests,
        fake.request_digests().await,
        "executed in the order received"
    );

    // The wire order: which code Blender ran first, second, ... (the fake logs the start of
    // what each command printed; each code prints its own number, then the wrapper's report).
    let wire: Vec<String> = executed
        .iter()
        .map(|e| {
            let printed = e["stdout"]
                .as_str()
                .expect("the fake logs what the code printed");
            let line = printed.split('\n').next().unwrap_or_default();
            let i: usize = line
                .strip_prefix("call ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not one of this test's calls: {printed:?}"));
            code(i)
        })
        .collect();
    // The history in `seq` order must be that same order, code for code.
    let history = reg.get_session_history(&id, None).await.expect("history");
    assert_eq!(history.total, CALLS as u64);
    assert_eq!(history.dropped, 0);
    assert!(
        history
            .entries
            .iter()
            .all(|e| e.outcome == Outcome::Success)
    );
    let mut entries = history.entries;
    entries.sort_by_key(|e| e.seq);
    let recorded: Vec<String> = entries
        .iter()
        .map(|e| {
            e.arguments["code"]
                .as_str()
                .expect("the code is recorded")
                .to_owned()
        })
        .collect();
    assert_eq!(recorded.len(), wire.len());
    if let Some(at) = (0..wire.len()).find(|&k| recorded[k] != wire[k]) {
        panic!(
            "history seq order differs from the wire order at position {at}: the history \
             has {:?} (seq {}), Blender ran {:?}; history {:?}, wire {:?}",
            recorded[at],
            entries[at].seq,
            wire[at],
            &recorded[at.saturating_sub(2)..(at + 3).min(recorded.len())],
            &wire[at.saturating_sub(2)..(at + 3).min(wire.len())],
        );
    }
}
