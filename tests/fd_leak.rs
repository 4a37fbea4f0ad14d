//! Ten thousand sessions created and closed leak no file descriptor and no task.
//!
//! This binary holds this one test only: it counts the whole process's open descriptors
//! (`/proc/self/fd`) and the runtime's alive tasks, so nothing else may run in the process
//! while it does (sibling tests open and close pipes and sockets of their own).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::Registry;
use support::config;

const SESSIONS: usize = 10_000;

/// How long descriptors and tasks may take to be released once every close was seen (a
/// peer task still finishing, say). A leak never settles.
const SETTLE: Duration = Duration::from_secs(10);

/// The process's open descriptors, each with what it points at (but for the one reading
/// them).
fn open_fds() -> BTreeMap<String, String> {
    let listing = format!("/proc/{}/fd", std::process::id());
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable (Linux)")
        .filter_map(Result::ok)
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .filter(|(_, target)| *target != listing)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_created_and_closed_leak_no_fds_or_tasks() {
    // A minimal listener standing in for Blender: it holds each connection until EOF, then
    // closes its end and only then reports the close.
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
                drop(sock);
                let _ = tx.send(());
            });
        }
    });
    let mut cfg = config(Target::new("127.0.0.1", port));
    cfg.max_sessions = SESSIONS;
    let reg = Registry::new(cfg);
    let metrics = tokio::runtime::Handle::current().metrics();
    // Warm up once so lazily created runtime resources are not counted as leaks.
    let id = reg.create_session(None).await.expect("warm-up");
    reg.close_session(&id).await.expect("close");
    closed_rx.recv().await.expect("closed");
    let (fds_before, tasks_before) = settled(|| (open_fds(), metrics.num_alive_tasks())).await;

    for _ in 0..SESSIONS {
        let id = reg.create_session(None).await.expect("create");
        reg.close_session(&id).await.expect("close");
    }
    for n in 0..SESSIONS {
        tokio::time::timeout(SETTLE, closed_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the peer saw only {n} of {SESSIONS} closes"))
            .expect("the peer saw every close");
    }
    assert!(reg.is_empty());

    // Whatever is still being released settles within SETTLE; a leak does not.
    let deadline = tokio::time::Instant::now() + SETTLE;
    let (fds_after, tasks_after) = loop {
        let (fds, tasks) = (open_fds(), metrics.num_alive_tasks());
        if (fds.len() <= fds_before.len() && tasks <= tasks_before)
            || tokio::time::Instant::now() >= deadline
        {
            break (fds, tasks);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let leaked: Vec<_> = fds_after
        .iter()
        .filter(|(fd, target)| fds_before.get(*fd) != Some(*target))
        .collect();
    assert!(
        fds_after.len() <= fds_before.len(),
        "file descriptors leaked: {} before, {} after; new: {leaked:?}",
        fds_before.len(),
        fds_after.len()
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks leaked: {tasks_before} before, {tasks_after} after"
    );
}

/// The value of `sample` once two samples 50 ms apart agree in size (the warm-up's last
/// releases done), or the last sample after `SETTLE`.
async fn settled(
    sample: impl Fn() -> (BTreeMap<String, String>, usize),
) -> (BTreeMap<String, String>, usize) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut last = sample();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = sample();
        if (next.0.len(), next.1) == (last.0.len(), last.1)
            || tokio::time::Instant::now() >= deadline
        {
            return next;
        }
        last = next;
    }
}
