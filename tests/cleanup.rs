//! Idle cleanup under paused tokio time: idle sessions are closed (and their connections
//! closed on Blender's side), a session with a command in flight is never reaped.

mod support;

use std::time::Duration;

use blender_session_mcp::session::{Call, Registry};
use support::{FakeAddon, config};

#[tokio::test]
async fn periodic_cleanup_reaps_idle_sessions_and_keeps_busy_ones() {
    let mut fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.idle_timeout = Duration::from_secs(300);
    cfg.cleanup_interval = Duration::from_secs(300);
    cfg.command_timeout = Duration::from_secs(24 * 3600);
    let reg = Registry::new(cfg);
    let idle_a = reg.create_session(None).await.expect("a");
    let idle_b = reg.create_session(None).await.expect("b");
    let busy = reg.create_session(None).await.expect("busy");
    fake.wait_count("accepted", 3).await;

    // A command that stays in flight until we release it (it waits for a file).
    let gate = std::env::temp_dir().join(format!("bsm-gate-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let code = format!(
        "import os, time\nwhile not os.path.exists({:?}):\n    time.sleep(0.01)\nprint('done')",
        gate.to_string_lossy()
    );
    let running = {
        let reg = reg.clone();
        let busy = busy.clone();
        tokio::spawn(async move { reg.execute_code(&busy, &code, &Call::new("t")).await })
    };
    fake.wait_count("request", 1).await;

    let mut sweeps = reg.sweeps();
    let cleanup = reg.spawn_cleanup();
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(301)).await;
    sweeps.wait_for(|n| *n >= 1).await.expect("a sweep ran");
    tokio::time::resume();

    let alive: Vec<String> = reg
        .list_sessions()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(
        alive,
        vec![busy.clone()],
        "idle sessions reaped, busy one kept"
    );
    for id in [&idle_a, &idle_b] {
        let info = reg
            .get_session_info(id)
            .await
            .expect("closed sessions stay readable");
        assert_eq!(info.status, blender_session_mcp::store::Status::Closed);
    }
    // Blender saw the two idle connections close.
    fake.wait_count("closed", 2).await;

    std::fs::write(&gate, b"go").expect("gate");
    let out = running
        .await
        .expect("task")
        .expect("busy command completes");
    assert_eq!(out.stdout, "done\n");
    let _ = std::fs::remove_file(&gate);
    reg.shutdown().await;
    cleanup.await.expect("cleanup task stops at shutdown");
    fake.wait_count("closed", 3).await;
}

#[tokio::test]
async fn cleanup_idle_sessions_uses_the_given_timeout() {
    let fake = FakeAddon::start().await;
    let reg = Registry::new(config(fake.target()));
    let id = reg.create_session(None).await.expect("session");
    assert!(
        reg.cleanup_idle_sessions(Duration::from_secs(60))
            .await
            .is_empty()
    );
    assert_eq!(reg.cleanup_idle_sessions(Duration::ZERO).await, vec![id]);
    assert!(reg.is_empty());
}
