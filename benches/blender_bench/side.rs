//! Side by side on one real headless Blender, in one run: per-call p50/p99 of
//! `execute_blender_code "x = 1"` and `get_scene_info` at growing scene sizes for the bare
//! socket (a raw request to the addon), ours with state tracked, ours `--no-track-state`,
//! and a peer server (`BENCH_PEER_CMD`, told the port through `BLENDER_HOST` /
//! `BLENDER_PORT` as JLFN/blender-mcp-rs reads them), all MCP servers driven by the same
//! plain JSON-RPC client ([`crate::rpc`]); the cold start of ours and the peer's; the
//! issue's targets, printed and checked (`BENCH_STRICT=1` makes a missed target fail).
//! `BENCH_OURS_ARGS` adds flags to ours (`--store memory`: without the durable store).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use blender_session_mcp::backend::classic::protocol::encode_request;
use serde_json::json;

use crate::drive::async_samples;
use crate::real::{BenchBlender, bare_once};
use crate::report::fmt_d;
use crate::rpc::RpcServer;

const BIN: &str = env!("CARGO_BIN_EXE_blender-session-mcp");

/// Who answers a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Driver {
    Bare,
    Tracked,
    Untracked,
    Peer,
}

/// The two calls measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Exec,
    Scene,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Exec => "`execute_blender_code \"x = 1\"`",
            Kind::Scene => "`get_scene_info`",
        }
    }
}

/// Samples of one (size, call, driver) and the answer's size (what the model reads).
struct Figure {
    samples: Vec<Duration>,
    answer_bytes: usize,
}

impl Figure {
    fn quantile(&self, q: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[((s.len() as f64 - 1.0) * q).round() as usize]
    }
}

/// Sizes and call counts of the side-by-side run.
pub(crate) struct SideScale {
    pub(crate) sizes: Vec<usize>,
    pub(crate) smoke: bool,
    pub(crate) spawns: usize,
}

impl SideScale {
    /// Warm-up calls and measured calls of each figure at `size` objects.
    fn calls(&self, size: usize) -> (usize, usize) {
        match (self.smoke, size) {
            (true, _) => (3, 20),
            (false, s) if s <= 10 => (20, 1000),
            (false, s) if s <= 1_000 => (10, 200),
            (false, s) if s <= 10_000 => (5, 60),
            _ => (3, 25),
        }
    }
}

struct Servers {
    tracked: RpcServer,
    untracked: RpcServer,
    peer: Option<RpcServer>,
}

/// Ours on the default store kind (an SQLite file) at `store`, never the user's own file.
fn ours(port: u16, track: bool, store: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.args(["serve", "--blender-port", &port.to_string()])
        .arg("--store-path")
        .arg(store)
        .args(["--max-reply-bytes", "512MiB"])
        .env("RUST_LOG", "warn");
    if !track {
        c.arg("--no-track-state");
    }
    // Extra flags for ours (e.g. `--store memory` to see what the durable store costs).
    if let Ok(extra) = std::env::var("BENCH_OURS_ARGS") {
        c.args(extra.split_whitespace());
    }
    c
}

/// The peer's command from `BENCH_PEER_CMD` (words split on whitespace), told the port the
/// way JLFN/blender-mcp-rs reads it.
fn peer(port: u16) -> Option<tokio::process::Command> {
    let cmd = std::env::var("BENCH_PEER_CMD").ok()?;
    let mut words = cmd.split_whitespace();
    let mut c = tokio::process::Command::new(words.next()?);
    c.args(words)
        .env("BLENDER_HOST", "127.0.0.1")
        .env("BLENDER_PORT", port.to_string())
        .env("RUST_LOG", "warn");
    Some(c)
}

async fn measure(
    server: &mut RpcServer,
    kind: Kind,
    warmup: usize,
    n: usize,
) -> Result<Figure, String> {
    let (tool, args) = match kind {
        Kind::Exec => ("execute_blender_code", json!({"code": "x = 1"})),
        Kind::Scene => ("get_scene_info", json!({})),
    };
    let mut samples = Vec::with_capacity(n);
    let mut answer_bytes = 0;
    for i in 0..warmup + n {
        let a = server.call_tool(tool, args.clone()).await?;
        answer_bytes = a.text_bytes;
        if i >= warmup {
            samples.push(a.took);
        }
    }
    Ok(Figure {
        samples,
        answer_bytes,
    })
}

async fn measure_bare(port: u16, kind: Kind, warmup: usize, n: usize) -> Result<Figure, String> {
    let request = match kind {
        Kind::Exec => encode_request("execute_code", Some(&json!({"code": "x = 1"})), usize::MAX),
        Kind::Scene => encode_request("get_scene_info", None, usize::MAX),
    }
    .map_err(|e| e.to_string())?;
    let answer_bytes = bare_once(port, &request).await?.len();
    Ok(Figure {
        samples: async_samples(port, &request, warmup, n).await,
        answer_bytes,
    })
}

/// Run the side-by-side comparison and return its report (Markdown), or why it could not
/// run.
pub(crate) async fn side_by_side(scale: &SideScale) -> String {
    match run(scale).await {
        Ok(report) => report,
        Err(e) => format!("\nSide by side on real Blender: not run ({e}).\n"),
    }
}

async fn run(scale: &SideScale) -> Result<String, String> {
    let blender = BenchBlender::start().await?;
    let port = blender.port;
    eprintln!(
        "  side by side: Blender {} serving {}",
        blender.version, blender.serving
    );
    let stores = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let mut servers = Servers {
        tracked: RpcServer::start(ours(port, true, &stores.path().join("tracked.db")))
            .await?
            .0,
        untracked: RpcServer::start(ours(port, false, &stores.path().join("untracked.db")))
            .await?
            .0,
        peer: match peer(port) {
            Some(cmd) => Some(RpcServer::start(cmd).await?.0),
            None => None,
        },
    };
    let mut figures: BTreeMap<(usize, Kind, Driver), Figure> = BTreeMap::new();
    let mut built = Vec::new();
    for &size in &scale.sizes {
        let took = blender.grow_scene(size).await?;
        built.push(format!("{size} in {}", fmt_d(took)));
        eprintln!(
            "  side by side: scene of {size} objects built in {}",
            fmt_d(took)
        );
        let (warmup, n) = scale.calls(size);
        // In rounds, each driver a slice of the calls in turn: a machine that gets slower
        // or faster during the run (another process, the VM's neighbours) moves every
        // column alike instead of the one measured then, so the ratios hold.
        let rounds = if scale.smoke { 1 } else { ROUNDS };
        let per = n.div_ceil(rounds);
        for kind in [Kind::Exec, Kind::Scene] {
            for round in 0..rounds {
                let warmup = if round == 0 { warmup } else { 0 };
                let bare = measure_bare(port, kind, warmup, per).await?;
                add(&mut figures, (size, kind, Driver::Bare), bare);
                for (driver, server) in [
                    (Driver::Tracked, Some(&mut servers.tracked)),
                    (Driver::Untracked, Some(&mut servers.untracked)),
                    (Driver::Peer, servers.peer.as_mut()),
                ] {
                    if let Some(server) = server {
                        let figure = measure(server, kind, warmup, per).await?;
                        add(&mut figures, (size, kind, driver), figure);
                    }
                }
            }
            eprintln!("  measured: side by side, {size} objects, {}", kind.label());
        }
    }
    servers.tracked.stop().await;
    servers.untracked.stop().await;
    if let Some(p) = servers.peer {
        p.stop().await;
    }
    let cold = cold_starts(port, scale.spawns, &stores.path().join("cold.db")).await?;
    Ok(render(scale, &blender, &built, &figures, &cold))
}

/// How many rounds the calls of one figure are split into.
const ROUNDS: usize = 10;

/// Add a round's samples to a figure.
fn add(
    figures: &mut BTreeMap<(usize, Kind, Driver), Figure>,
    key: (usize, Kind, Driver),
    more: Figure,
) {
    match figures.get_mut(&key) {
        Some(f) => {
            f.samples.extend(more.samples);
            f.answer_bytes = more.answer_bytes;
        }
        None => {
            figures.insert(key, more);
        }
    }
}

/// Spawn → `initialize` answered, for ours and the peer, one of each in turn.
async fn cold_starts(
    port: u16,
    spawns: usize,
    store: &std::path::Path,
) -> Result<BTreeMap<Driver, Figure>, String> {
    let mut samples: BTreeMap<Driver, Vec<Duration>> = BTreeMap::new();
    for _ in 0..spawns {
        for driver in [Driver::Tracked, Driver::Peer] {
            let cmd = match driver {
                Driver::Peer => match peer(port) {
                    Some(cmd) => cmd,
                    None => continue,
                },
                _ => ours(port, true, store),
            };
            let (server, ready) = RpcServer::start(cmd).await?;
            samples.entry(driver).or_default().push(ready);
            server.stop().await;
        }
    }
    Ok(samples
        .into_iter()
        .map(|(driver, samples)| {
            (
                driver,
                Figure {
                    samples,
                    answer_bytes: 0,
                },
            )
        })
        .collect())
}

fn cell(f: Option<&Figure>) -> String {
    match f {
        Some(f) => format!("{} / {}", fmt_d(f.quantile(0.5)), fmt_d(f.quantile(0.99))),
        None => "—".into(),
    }
}

fn ratio(a: Option<&Figure>, b: Option<&Figure>) -> Option<f64> {
    Some(a?.quantile(0.5).as_secs_f64() / b?.quantile(0.5).as_secs_f64())
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "—".into())
}

fn kib(bytes: usize) -> String {
    if bytes < 10 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

fn render(
    scale: &SideScale,
    blender: &BenchBlender,
    built: &[String],
    figures: &BTreeMap<(usize, Kind, Driver), Figure>,
    cold: &BTreeMap<Driver, Figure>,
) -> String {
    let peer =
        std::env::var("BENCH_PEER_CMD").unwrap_or_else(|_| "not set (BENCH_PEER_CMD)".into());
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nSide by side on headless Blender {} (`blender -b`), one run",
        blender.version
    );
    let _ = writeln!(o, "- Blender side: {}", blender.serving);
    let _ = writeln!(o, "- peer: {peer}");
    let _ = writeln!(o, "- scenes built (objects in time): {}", built.join(", "));
    let _ = writeln!(
        o,
        "- cells: p50 / p99 per call; answer = bytes of text the model reads (the bare socket: the reply's bytes)\n"
    );
    let _ = writeln!(
        o,
        "| objects | call | bare socket | ours, tracked | ours, --no-track-state | peer | tracked ÷ bare | tracked ÷ peer | answer: addon / ours / peer |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for &size in &scale.sizes {
        for kind in [Kind::Exec, Kind::Scene] {
            let f = |d| figures.get(&(size, kind, d));
            let bytes = |d| {
                f(d).map(|x: &Figure| kib(x.answer_bytes))
                    .unwrap_or_else(|| "—".into())
            };
            let _ = writeln!(
                o,
                "| {size} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
                kind.label(),
                cell(f(Driver::Bare)),
                cell(f(Driver::Tracked)),
                cell(f(Driver::Untracked)),
                cell(f(Driver::Peer)),
                fmt_ratio(ratio(f(Driver::Tracked), f(Driver::Bare))),
                fmt_ratio(ratio(f(Driver::Tracked), f(Driver::Peer))),
                bytes(Driver::Bare),
                bytes(Driver::Tracked),
                bytes(Driver::Peer),
            );
        }
    }
    let _ = writeln!(
        o,
        "| — | cold start (spawn → initialize answered) | — | {} | — | {} | — | {} | — |",
        cell(cold.get(&Driver::Tracked)),
        cell(cold.get(&Driver::Peer)),
        fmt_ratio(ratio(cold.get(&Driver::Tracked), cold.get(&Driver::Peer))),
    );
    let (lines, missed) = targets(scale, figures, cold);
    let _ = writeln!(o, "\nTargets (issue 11):");
    for line in lines {
        let _ = writeln!(o, "{line}");
    }
    if missed > 0 && std::env::var("BENCH_STRICT").as_deref() == Ok("1") {
        print!("{o}");
        eprintln!("BENCH_STRICT=1: {missed} target(s) missed");
        std::process::exit(1);
    }
    o
}

/// The targets: each line says ✓, ✗ or why it was not measured; returns the lines
/// and how many were missed.
fn targets(
    scale: &SideScale,
    figures: &BTreeMap<(usize, Kind, Driver), Figure>,
    cold: &BTreeMap<Driver, Figure>,
) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut missed = 0;
    let mut check = |name: String, value: Option<(f64, String)>, limit: f64| {
        let line = match value {
            Some((v, shown)) if v <= limit => format!("- ✓ {name}: {shown}"),
            Some((_, shown)) => {
                missed += 1;
                format!("- ✗ {name}: {shown}")
            }
            None => format!("- · {name}: not measured in this run"),
        };
        lines.push(line);
    };
    let small = scale.sizes.first().copied().unwrap_or(3);
    let big = 50_000;
    let get = |size, kind, d| figures.get(&(size, kind, d));
    for kind in [Kind::Exec, Kind::Scene] {
        let r = ratio(
            get(small, kind, Driver::Tracked),
            get(small, kind, Driver::Peer),
        );
        check(
            format!(
                "{small} objects, {} tracked p50 ≤ 1.1× the peer's",
                kind.label()
            ),
            r.map(|r| (r, format!("{r:.2}×"))),
            1.1,
        );
    }
    let r = ratio(
        get(big, Kind::Exec, Driver::Tracked),
        get(small, Kind::Exec, Driver::Tracked),
    );
    check(
        format!("{big} objects, tracked exec p50 ≤ 1.5× its {small}-object p50"),
        r.map(|r| (r, format!("{r:.2}×"))),
        1.5,
    );
    let scene = get(big, Kind::Scene, Driver::Tracked);
    check(
        format!("{big} objects, `get_scene_info` answer ≤ 64 KiB"),
        scene.map(|f| (f.answer_bytes as f64, kib(f.answer_bytes))),
        64.0 * 1024.0,
    );
    let r = ratio(scene, get(big, Kind::Scene, Driver::Bare));
    check(
        format!("{big} objects, `get_scene_info` p50 ≤ 3× the addon's own"),
        r.map(|r| (r, format!("{r:.2}×"))),
        3.0,
    );
    let r = ratio(cold.get(&Driver::Tracked), cold.get(&Driver::Peer));
    check(
        "cold start p50 ≤ the peer's".into(),
        r.map(|r| (r, format!("{r:.2}×"))),
        1.0,
    );
    (lines, missed)
}
