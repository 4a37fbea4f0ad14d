//! Benchmarks: per-call overhead, large replies, cold start, sessions at scale, parallel
//! sessions, history, and a side-by-side run on real headless Blender against the bare
//! socket and a peer server. Run with `cargo bench --bench blender_bench` (a few minutes on
//! 2 cores); `BENCH_SCALE=smoke` runs every figure with tiny sizes (CI does, so it cannot
//! rot); `BENCH_ONLY=twin` or `BENCH_ONLY=blender` runs one of the two parts, `BENCH_ONLY=http`
//! only the HTTP-against-stdio rows; `BENCH_SIDE_SIZES=3,1000` limits the scene sizes of the
//! side-by-side part.
//!
//! The first part starts its own zero-delay fake addon, a Rust twin of the BlenderMCP addon
//! ([`twin`]), and fills one table ([`report`]) with the figures of [`calls`], [`large`] and
//! [`sessions`] and [`http`] (HTTP against stdio), driving the server as [`drive`] says, memory counted by [`alloc`]. The
//! second ([`side`]) runs on a real Blender ([`real`]: `BENCH_ADDON_PY` = the unmodified
//! classic addon's `addon.py`, run through `addon_shim.py`; without it our headless server),
//! drives ours and the peer (`BENCH_PEER_CMD`) with one plain JSON-RPC client ([`rpc`]), and
//! prints its own table and the targets. This file owns the sizes (`BENCH_SCALE`), the
//! order of the figures and the command line.

mod alloc;
mod calls;
mod drive;
mod http;
mod large;
mod real;
mod report;
mod rpc;
mod sessions;
mod side;
mod twin;

use std::time::Instant;

use report::Table;
use twin::{Twin, run_twin};

const MB: usize = 1 << 20;

struct Scale {
    calls: usize,
    warmup: usize,
    large_mb: Vec<usize>,
    large_n: usize,
    spawns: usize,
    sessions: usize,
    par_sessions: usize,
    par_calls: usize,
    history: usize,
    http_clients: usize,
    http_calls: usize,
    side: side::SideScale,
}

impl Scale {
    /// The sizes from `BENCH_SCALE`; `BENCH_SIDE_SIZES=3,1000` runs the side-by-side part
    /// at those scene sizes only.
    fn from_env() -> Scale {
        let mut scale = Self::named();
        if let Ok(sizes) = std::env::var("BENCH_SIDE_SIZES") {
            scale.side.sizes = sizes
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
        }
        scale
    }

    fn named() -> Scale {
        if std::env::var("BENCH_SCALE").as_deref() == Ok("smoke") {
            Scale {
                calls: 50,
                warmup: 10,
                large_mb: vec![1],
                large_n: 1,
                spawns: 2,
                sessions: 100,
                par_sessions: 4,
                par_calls: 5,
                history: 50,
                http_clients: 4,
                http_calls: 5,
                side: side::SideScale {
                    sizes: vec![3, 1_000],
                    smoke: true,
                    spawns: 2,
                },
            }
        } else {
            Scale {
                calls: 2000,
                warmup: 200,
                large_mb: vec![1, 20, 100],
                large_n: 3,
                spawns: 20,
                sessions: 10_000,
                par_sessions: 100,
                par_calls: 100,
                history: 1000,
                http_clients: 100,
                http_calls: 50,
                side: side::SideScale {
                    sizes: vec![3, 1_000, 10_000, 50_000],
                    smoke: false,
                    spawns: 20,
                },
            }
        }
    }
}

async fn bench(scale: Scale) -> (Table, String) {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "http" {
        let mut t = Table::new();
        let twin = Twin::start(0);
        http::http_vs_stdio(&mut t, &twin, &scale).await;
        return (t, String::new());
    }
    let side = if only == "twin" {
        String::new()
    } else {
        side::side_by_side(&scale.side).await
    };
    let mut t = Table::new();
    if only == "blender" {
        return (t, side);
    }
    let twin = Twin::start(0);
    calls::overhead(&mut t, &twin, &scale).await;
    large::replies(&mut t, &twin, &scale).await;
    http::http_vs_stdio(&mut t, &twin, &scale).await;
    calls::cold_start(&mut t, &twin, &scale).await;
    sessions::at_scale(&mut t, &twin, &scale).await;
    sessions::parallel(&mut t, &twin, &scale).await;
    sessions::history(&mut t, &twin, &scale).await;
    (t, side)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--twin") {
        let delay = args
            .iter()
            .position(|a| a == "--delay-ms")
            .and_then(|i| args.get(i + 1))
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        run_twin(delay);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo bench -- --list` (and cargo's own probing): nothing to list.
        return;
    }
    let scale = Scale::from_env();
    // Every server this bench spawns stores its sessions in a temporary SQLite file (the
    // default store kind), never the user's own; the directory goes when the bench ends.
    let stores = tempfile::tempdir().expect("a temporary directory");
    // SAFETY: set before the runtime (or any other thread) starts: nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("BSM_STORE_PATH", stores.path().join("sessions.db")) };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let (table, side) = rt.block_on(bench(scale));
    println!(
        "\nblender-session-mcp benchmarks ({} cores, {}), {:.0} s\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::env::var("BENCH_SCALE").unwrap_or_else(|_| "full".into()),
        started.elapsed().as_secs_f64()
    );
    if std::env::var("BENCH_ONLY").as_deref() != Ok("blender") {
        table.print();
    }
    print!("{side}");
    drop(stores);
}
