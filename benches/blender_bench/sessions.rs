//! Session figures: sessions at scale in process (create with and without a connection,
//! memory per live session, `list_sessions`, idle cleanup, file descriptors left), many
//! sessions calling in parallel (zero-delay and Blender-like serialized twins), and a
//! session at its history limit.

use std::time::{Duration, Instant};

use blender_session_mcp::session::{Call, Registry, RegistryConfig};

use crate::alloc::live_heap;
use crate::drive::registry;
use crate::report::{Table, fmt_d, open_fds, rss_kib};
use crate::twin::Twin;
use crate::{MB, Scale};

/// 5: sessions at scale, in process, each with its live keep-alive connection.
pub(crate) async fn at_scale(t: &mut Table, twin: &Twin, scale: &Scale) {
    // 5. Sessions at scale, in process, each with its live keep-alive connection.
    let fds_before = open_fds();
    let lazy = Registry::new(RegistryConfig {
        default_target: twin.target(),
        max_sessions: scale.sessions + 1,
        connect_on_create: false,
        ..RegistryConfig::default()
    });
    let mut s = Vec::with_capacity(scale.sessions);
    for _ in 0..scale.sessions {
        let t0 = Instant::now();
        lazy.create_session(None).await.expect("create");
        s.push(t0.elapsed());
    }
    t.timings(
        "session create, registry only (no connection)",
        &mut s,
        "≤ 10 µs",
    );
    lazy.shutdown().await;
    drop(lazy);
    let heap_before = live_heap();
    let reg = registry(twin.target(), scale.sessions + 1);
    let mut s = Vec::with_capacity(scale.sessions);
    for _ in 0..scale.sessions {
        let t0 = Instant::now();
        reg.create_session(None).await.expect("create");
        s.push(t0.elapsed());
    }
    t.timings(
        &format!(
            "session create with its loopback connection ({} sessions)",
            scale.sessions
        ),
        &mut s,
        "≤ 200 µs",
    );
    let rss_after = rss_kib(None, "VmRSS:");
    let heap = live_heap().saturating_sub(heap_before);
    t.value(
        &format!(
            "memory per live session ({} sessions: heap +{:.1} MiB, process RSS {:.0} MiB)",
            scale.sessions,
            heap as f64 / MB as f64,
            rss_after as f64 / 1024.0
        ),
        format!(
            "{:.1} KiB heap",
            heap as f64 / 1024.0 / scale.sessions as f64
        ),
        "10 000 sessions ≤ 200 MB",
    );
    let mut s = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let all = reg.list_sessions().await.expect("list");
        s.push(t0.elapsed());
        assert_eq!(all.len(), scale.sessions);
    }
    t.timings(
        &format!("`list_sessions` with {} sessions", scale.sessions),
        &mut s,
        "—",
    );
    let t0 = Instant::now();
    let closed = reg.cleanup_idle_sessions(Duration::ZERO).await;
    let took = t0.elapsed();
    assert_eq!(closed.len(), scale.sessions);
    t.value(
        &format!("idle cleanup closing all {} sessions", scale.sessions),
        fmt_d(took),
        "≤ 1 s",
    );
    drop(reg);
    let fds_after = open_fds();
    t.value(
        "file descriptors left after cleanup",
        format!("{}", fds_after.saturating_sub(fds_before)),
        "0",
    );
}

/// 6: parallel sessions, many sessions × many calls at once.
pub(crate) async fn parallel(t: &mut Table, twin: &Twin, scale: &Scale) {
    // 6. Parallel sessions: many sessions × many calls at once.
    for delay_ms in [0u64, 5] {
        let fake = if delay_ms == 0 {
            None
        } else {
            Some(Twin::start(delay_ms))
        };
        let target = fake
            .as_ref()
            .map(Twin::target)
            .unwrap_or_else(|| twin.target());
        let reg = registry(target, scale.par_sessions + 1);
        let mut ids = Vec::new();
        for _ in 0..scale.par_sessions {
            ids.push(reg.create_session(None).await.expect("create"));
        }
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
            let reg = reg.clone();
            let calls = scale.par_calls;
            tasks.spawn(async move {
                let mut lat = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let t = Instant::now();
                    reg.execute_code(&id, "print(1)", &Call::new("bench"))
                        .await
                        .expect("exec");
                    lat.push(t.elapsed());
                }
                lat
            });
        }
        let mut all = Vec::new();
        while let Some(lat) = tasks.join_next().await {
            all.extend(lat.expect("task"));
        }
        let wall = t0.elapsed();
        let n = all.len();
        t.timings(
            &format!(
                "{} sessions × {} calls, {} fake: {:.0} calls/s",
                scale.par_sessions,
                scale.par_calls,
                if delay_ms == 0 {
                    "zero-delay".to_string()
                } else {
                    format!("{delay_ms} ms serialized")
                },
                n as f64 / wall.as_secs_f64()
            ),
            &mut all,
            if delay_ms == 0 {
                "—"
            } else {
                "≈ 200 calls/s (Blender-bound)"
            },
        );
        reg.shutdown().await;
    }
}

/// 7: a session's history at its limit.
pub(crate) async fn history(t: &mut Table, twin: &Twin, scale: &Scale) {
    // 7. History at its limit.
    let reg = Registry::new(RegistryConfig {
        default_target: twin.target(),
        history_limit: scale.history,
        ..RegistryConfig::default()
    });
    let id = reg.create_session(None).await.expect("session");
    reg.execute_code(&id, "print(0)", &Call::new("bench"))
        .await
        .expect("exec");
    let before = live_heap();
    for i in 0..scale.history {
        reg.execute_code(
            &id,
            &format!("print({i})  # a typical short snippet of code"),
            &Call::new("bench"),
        )
        .await
        .expect("exec");
    }
    let after = live_heap();
    let json_size = serde_json::to_vec(&reg.get_session_history(&id, None).await.expect("history"))
        .expect("json")
        .len();
    t.value(
        &format!(
            "session memory at the history limit ({} entries; JSON {:.0} KiB)",
            scale.history,
            json_size as f64 / 1024.0
        ),
        format!(
            "{:.0} KiB heap",
            after.saturating_sub(before) as f64 / 1024.0
        ),
        "bounded",
    );
    let mut s = Vec::new();
    for _ in 0..50 {
        let t0 = Instant::now();
        let h = reg.get_session_history(&id, None).await.expect("history");
        let _ = serde_json::to_vec(&h).expect("json");
        s.push(t0.elapsed());
    }
    t.timings(
        &format!("`get_session_history` ({} entries, as JSON)", scale.history),
        &mut s,
        "—",
    );
}
