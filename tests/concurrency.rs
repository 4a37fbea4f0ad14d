//! Concurrency: commands within a session are serialized on its one connection, sessions
//! run in parallel, and every reply reaches its own caller.

mod support;

use blender_session_mcp::session::Call;
use support::{FakeAddon, config};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sessions_times_twenty_concurrent_commands_without_cross_talk() {
    let mut fake = FakeAddon::start().await;
    let mut cfg = config(fake.target());
    cfg.max_sessions = 100;
    let reg = blender_session_mcp::session::Registry::new(cfg);
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(reg.create_session(None).await.expect("session"));
    }
    let mut tasks = JoinSet::new();
    for (s, id) in ids.iter().enumerate() {
        for c in 0..20 {
            let reg = reg.clone();
            let id = id.clone();
            tasks.spawn(async move {
                let token = format!("session {s} command {c}");
                let out = reg
                    .execute_code(&id, &format!("print({token:?})"), &Call::new("t"))
                    .await
                    .expect("command");
                (token, out.stdout)
            });
        }
    }
    let mut n = 0;
    while let Some(joined) = tasks.join_next().await {
        let (token, stdout) = joined.expect("task");
        assert_eq!(stdout, format!("{token}\n"), "reply reached its own caller");
        n += 1;
    }
    assert_eq!(n, 1000);
    fake.wait_count("executed", 1000).await;
    assert_eq!(
        fake.count("accepted").await,
        50,
        "one connection per session"
    );
    for id in &ids {
        let info = reg.get_session_info(id).await.expect("info");
        assert_eq!(info.command_count, 20);
        assert_eq!(info.blender.connections_opened, 1);
    }
}
