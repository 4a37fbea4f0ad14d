//! Large-reply figures: megabytes of stdout end to end through the binary (time,
//! throughput, the server's peak RSS), the same in process through the registry (its heap
//! peak), and the reply decoder alone (linear in size).

use std::sync::atomic::Ordering;
use std::time::Instant;

use blender_session_mcp::backend::classic::protocol::ReplyDecoder;
use blender_session_mcp::session::Call;
use serde_json::json;

use crate::alloc::{PEAK_BYTES, reset_peak};
use crate::drive::{call, registry, spawn_server};
use crate::report::{Table, rss_kib};
use crate::twin::Twin;
use crate::{MB, Scale};

/// 3: large replies through the binary, in process, and through the decoder alone.
pub(crate) async fn replies(t: &mut Table, twin: &Twin, scale: &Scale) {
    // 3. Large replies through the binary: time, throughput, server peak RSS.
    for &mb in &scale.large_mb {
        let (client, child, _) = spawn_server(twin.port).await;
        call(&client, "execute_blender_code", json!({"code": "print(1)"})).await;
        let code = format!("#bench-stdout {}", mb * MB);
        let mut s = Vec::new();
        for _ in 0..scale.large_n {
            let t0 = Instant::now();
            let r = call(&client, "execute_blender_code", json!({"code": code})).await;
            s.push(t0.elapsed());
            let len = r.content[0].as_text().map(|t| t.text.len()).unwrap_or(0);
            assert_eq!(len, mb * MB, "complete stdout");
        }
        let peak = rss_kib(child.id(), "VmHWM:") as f64 / 1024.0;
        let best = s.iter().min().copied().unwrap_or_default();
        let rate = mb as f64 / best.as_secs_f64();
        t.timings(
            &format!(
                "{mb} MB stdout end to end ({rate:.0} MB/s; server peak RSS {peak:.0} MiB = {:.1}× the reply)",
                peak / mb as f64
            ),
            &mut s,
            if mb == 20 { "≤ 150 ms, peak ≤ 3× reply" } else { "linear" },
        );
        client.cancel().await.ok();
    }
    // The same in process (registry only, no MCP): how much of the above is ours.
    let reg = registry(twin.target(), 10);
    let id = reg.create_session(None).await.expect("session");
    for &mb in &scale.large_mb {
        let code = format!("#bench-stdout {}", mb * MB);
        let mut s = Vec::new();
        let base = reset_peak();
        for _ in 0..scale.large_n {
            let t0 = Instant::now();
            let out = reg
                .execute_code(&id, &code, &Call::new("bench"))
                .await
                .expect("exec");
            s.push(t0.elapsed());
            assert_eq!(out.stdout.len(), mb * MB);
        }
        let peak = PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(base);
        let best = s.iter().min().copied().unwrap_or_default();
        t.timings(
            &format!(
                "{mb} MB stdout in process, registry only ({:.0} MB/s; heap peak {:.1}× the reply)",
                mb as f64 / best.as_secs_f64(),
                peak as f64 / (mb * MB) as f64
            ),
            &mut s,
            "—",
        );
    }
    reg.shutdown().await;
    // The decoder alone: linear in size.
    for &mb in &scale.large_mb {
        let reply = serde_json::to_vec(&json!({"status": "success", "result": {"executed": true, "result": "x".repeat(mb * MB)}}))
            .expect("json");
        let mut s = Vec::new();
        for _ in 0..scale.large_n {
            let t0 = Instant::now();
            let mut d = ReplyDecoder::new(usize::MAX);
            let mut got = None;
            for piece in reply.chunks(64 * 1024) {
                if let Some(r) = d.feed(piece).expect("valid") {
                    got = Some(r);
                }
            }
            assert!(got.is_some());
            s.push(t0.elapsed());
        }
        let best = s.iter().min().copied().unwrap_or_default();
        t.timings(
            &format!(
                "decoder alone, {mb} MB in 64 KiB reads ({:.0} MB/s)",
                mb as f64 / best.as_secs_f64()
            ),
            &mut s,
            "linear (same MB/s at every size)",
        );
    }
}
