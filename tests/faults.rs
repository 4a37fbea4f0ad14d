//! Timeouts, cancellation and closing races: a connection whose reply is unaccounted for is
//! dropped, nothing is re-sent, and history records what happened.

mod support;

use std::time::Duration;

use blender_session_mcp::mcp::error_text;
use blender_session_mcp::session::{Call, Outcome, Registry, SessionError};
use support::{FakeAddon, config};
use tokio_util::sync::CancellationToken;

fn short_timeout_registry(fake: &FakeAddon, timeout: Duration) -> Registry {
    let mut cfg = config(fake.target());
    cfg.command_timeout = timeout;
    Registry::new(cfg)
}

#[tokio::test]
async fn a_late_reply_never_reaches_the_next_command_and_nothing_is_resent() {
    let mut fake = FakeAddon::start().await;
    let reg = short_timeout_registry(&fake, Duration::from_millis(300));
    let id = reg.create_session(None).await.expect("session");
    let call = Call::new("execute_blender_code");
    let err = reg
        .execute_code(&id, "import time\ntime.sleep(1.0)\nprint('late')", &call)
        .await
        .expect_err("times out");
    assert!(matches!(err, SessionError::Timeout { .. }), "{err:?}");
    let text = error_text(&err);
    assert!(text.contains("may still be running"), "{text}");
    assert!(text.contains("--command-timeout"), "{text}");

    // Let the slow command finish in Blender (its reply goes to the dropped connection).
    fake.wait_count("executed", 1).await;
    let out = reg
        .execute_code(&id, "print('second')", &call)
        .await
        .expect("next command works");
    assert_eq!(out.stdout, "second\n", "the late reply was not returned");
    fake.wait_count("executed", 2).await;
    assert_eq!(
        fake.count("request").await,
        2,
        "the timed-out command was not re-sent"
    );
    assert_eq!(
        fake.count("accepted").await,
        2,
        "a fresh connection after the timeout"
    );

    let history = reg.get_session_history(&id, None).await.expect("history");
    let outcomes: Vec<Outcome> = history.entries.iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Timeout, Outcome::Success]);
    assert!(
        history.entries[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("Timeout")
    );
}

#[tokio::test]
async fn cancelling_mid_command_drops_the_connection_and_records_cancelled() {
    let mut fake = FakeAddon::start().await;
    let reg = short_timeout_registry(&fake, Duration::from_secs(60));
    let id = reg.create_session(None).await.expect("session");
    let cancel = CancellationToken::new();
    let call = Call::new("execute_blender_code").with_cancel(cancel.clone());
    let running = {
        let reg = reg.clone();
        let id = id.clone();
        tokio::spawn(async move {
            reg.execute_code(&id, "import time\ntime.sleep(0.5)\nprint('slow')", &call)
                .await
        })
    };
    fake.wait_count("request", 1).await;
    cancel.cancel();
    let err = running.await.expect("task").expect_err("cancelled");
    assert!(
        matches!(err, SessionError::Cancelled { sent: true }),
        "{err:?}"
    );
    assert!(error_text(&err).contains("may still run"));

    fake.wait_count("executed", 1).await;
    let out = reg
        .execute_code(&id, "print('after')", &Call::new("execute_blender_code"))
        .await
        .expect("works after cancel");
    assert_eq!(out.stdout, "after\n");
    fake.wait_count("executed", 2).await;
    assert_eq!(fake.count("accepted").await, 2);
    assert_eq!(fake.count("request").await, 2);
    let outcomes: Vec<Outcome> = reg
        .get_session_history(&id, None)
        .await
        .expect("history")
        .entries
        .iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, vec![Outcome::Cancelled, Outcome::Success]);
}

#[tokio::test]
async fn closing_a_session_with_a_command_in_flight_gives_the_caller_a_clear_result() {
    let mut fake = FakeAddon::start().await;
    let reg = short_timeout_registry(&fake, Duration::from_secs(60));
    let id = reg.create_session(None).await.expect("session");
    let running = {
        let reg = reg.clone();
        let id = id.clone();
        tokio::spawn(async move {
            reg.execute_code(&id, "import time\ntime.sleep(0.5)", &Call::new("t"))
                .await
        })
    };
    fake.wait_count("request", 1).await;
    let info = reg.close_session(&id).await.expect("closed");
    assert_eq!(info.session_id, id);
    let err = running.await.expect("task").expect_err("closed under it");
    assert!(
        matches!(err, SessionError::SessionClosed { sent: true, .. }),
        "{err:?}"
    );
    assert!(error_text(&err).contains("was closed"));
    fake.wait_count("closed", 1).await;
    assert!(reg.is_empty());
}

#[tokio::test]
async fn oversized_requests_are_refused_before_sending() {
    let mut fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.max_request_bytes = 64 * 1024;
    let reg = Registry::new(cfg);
    let id = reg.create_session(None).await.expect("session");
    let code = format!("x = '{}'", "a".repeat(100_000));
    let err = reg
        .execute_code(&id, &code, &Call::new("t"))
        .await
        .expect_err("too large");
    assert!(error_text(&err).contains("--max-request-bytes"), "{err}");
    assert!(error_text(&err).contains("nothing was sent"), "{err}");
    reg.execute_code(&id, "print(1)", &Call::new("t"))
        .await
        .expect("still works");
    fake.wait_count("executed", 1).await;
    assert_eq!(fake.count("request").await, 1);
    let h = reg.get_session_history(&id, None).await.expect("history");
    assert_eq!(h.entries[0].outcome, Outcome::Error);
    assert!(
        h.entries[0].arguments.to_string().len() < 40_000,
        "history stays bounded"
    );
}

#[tokio::test]
async fn over_cap_reply_is_an_error_and_drops_the_connection() {
    let mut fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.max_reply_bytes = 64 * 1024;
    let reg = Registry::new(cfg);
    let id = reg.create_session(None).await.expect("session");
    let err = reg
        .execute_code(&id, "print('x' * 200000)", &Call::new("t"))
        .await
        .expect_err("too large");
    assert!(error_text(&err).contains("--max-reply-bytes"), "{err}");
    let out = reg
        .execute_code(&id, "print('small')", &Call::new("t"))
        .await
        .expect("works on a new connection");
    assert_eq!(out.stdout, "small\n");
    fake.wait_count("executed", 2).await;
    assert_eq!(fake.count("accepted").await, 2);
}

#[tokio::test]
async fn max_sessions_is_enforced_with_a_clear_error() {
    let fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.max_sessions = 2;
    let reg = Registry::new(cfg);
    let a = reg.create_session(None).await.expect("a");
    reg.create_session(None).await.expect("b");
    let err = reg.create_session(None).await.expect_err("full");
    assert!(error_text(&err).contains("--max-sessions"), "{err}");
    reg.close_session(&a).await.expect("close");
    reg.create_session(None).await.expect("room again");
}
