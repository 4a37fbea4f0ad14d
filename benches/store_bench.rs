//! The session-store benchmark (issue 13): what each store costs the registry.
//!
//! Per store (memory; SQLite on a temporary file; Redis when `BENCH_REDIS_URL` is set or a
//! `redis-server` is on PATH, started here on a free loopback port and stopped at the end):
//! - per command: the store calls one command makes (`begin_command`: lease + running
//!   entry; `finish_command`: entry completed, activity, no state change), p50/p99, and the
//!   ratio against memory;
//! - list: what `list_sessions` reads (one page of 20 open sessions and their count), with
//!   10 000 stored sessions of 100 history entries each; list all: every open session at
//!   once (what `sessions list` reads; no target);
//! - start: open the store and recover interrupted entries (what `serve` does first), on
//!   the same data.
//!
//! `cargo bench --bench store_bench`; `BENCH_SCALE=smoke` for tiny sizes (CI).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::{HistoryEntry, Outcome};
use blender_session_mcp::store::open::{StoreChoice, StoreConfig};
use blender_session_mcp::store::{
    BeginCommand, Begun, FinishCommand, NewSession, SessionStore, holder_gone,
};
use futures::StreamExt;
use serde_json::json;

/// Sizes of one run.
struct Scale {
    commands: usize,
    sessions: usize,
    entries: usize,
    lists: usize,
    starts: usize,
}

const HOLDER: &str = "bench:1:holder";
const HISTORY_LIMIT: usize = 1000;
/// `list_sessions`' default page.
const LIST_PAGE: usize = 20;

/// One row of the table.
struct Row {
    store: &'static str,
    what: &'static str,
    p50: f64,
    p99: f64,
    ratio: Option<f64>,
    target: Option<f64>,
}

type Failure = Box<dyn std::error::Error>;

fn quantiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn entry(outcome: Outcome) -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        timestamp: 1.0,
        command: "execute_code".into(),
        tool: "execute_blender_code".into(),
        arguments: json!({"code": "import bpy\nbpy.ops.mesh.primitive_cube_add()"}),
        result: (outcome == Outcome::Success)
            .then(|| json!({"executed": true, "result": "made\n"})),
        outcome,
        message: None,
        duration: 0.004,
        note: None,
    }
}

fn new_session(id: String, now: f64) -> NewSession {
    NewSession {
        id,
        name: None,
        owner: "local".into(),
        target: Target::new("127.0.0.1", 9876),
        now,
    }
}

/// What one command costs the store, as the registry calls it (`Registry::run`).
async fn per_command(store: &dyn SessionStore, n: usize) -> Result<Vec<f64>, Failure> {
    let id = "bench-commands".to_owned();
    store.create(new_session(id.clone(), 1.0)).await?;
    let mut times = Vec::with_capacity(n);
    // A few unmeasured commands first: caches, the lease's first take.
    for i in 0..(n + 20) {
        let now = 2.0 + i as f64 * 0.01;
        let started = Instant::now();
        let begun = store
            .begin_command(
                &id,
                BeginCommand {
                    holder: HOLDER.into(),
                    now,
                    lease_until: now + 30.0,
                    entry: entry(Outcome::Running),
                },
            )
            .await?;
        let Begun::Started { seq, .. } = begun else {
            return Err(format!("begin_command: {begun:?}").into());
        };
        store
            .finish_command(
                &id,
                FinishCommand {
                    holder: HOLDER.into(),
                    seq,
                    now,
                    entry: entry(Outcome::Success),
                    last_command: "execute_code".into(),
                    last_result: json!({"status": "success", "result": {"executed": true}}),
                    state: None,
                },
            )
            .await?;
        if i >= 20 {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

/// Seed through the trait, many sessions at once (memory, Redis).
async fn seed_via_trait(store: &dyn SessionStore, scale: &Scale) -> Result<(), Failure> {
    let results: Vec<Result<(), Failure>> = futures::stream::iter(0..scale.sessions)
        .map(|i| async move {
            let id = format!("seed-{i:05}");
            store.create(new_session(id.clone(), 1.0)).await?;
            for _ in 0..scale.entries {
                store
                    .record_entry(&id, 1.0, entry(Outcome::Success))
                    .await?;
            }
            Ok(())
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Seed an SQLite file fast: one template session through the trait, then copies of its
/// rows in one transaction (only the `id` / `session_id` column names are assumed).
async fn seed_sqlite(path: &Path, scale: &Scale) -> Result<(), Failure> {
    {
        let store = sqlite_config(path).open().await?;
        let one = Scale {
            sessions: 1,
            ..*scale
        };
        seed_via_trait(store.as_ref(), &one).await?;
    }
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TEMP TABLE s AS SELECT * FROM sessions WHERE id = 'seed-00000';
         CREATE TEMP TABLE h AS SELECT * FROM history WHERE session_id = 'seed-00000';",
    )?;
    for i in 1..scale.sessions {
        let id = format!("seed-{i:05}");
        tx.execute("UPDATE temp.s SET id = ?1", [&id])?;
        tx.execute("UPDATE temp.h SET session_id = ?1", [&id])?;
        tx.execute_batch(
            "INSERT INTO main.sessions SELECT * FROM temp.s;
             INSERT INTO main.history SELECT * FROM temp.h;",
        )?;
    }
    tx.execute_batch("DROP TABLE temp.s; DROP TABLE temp.h;")?;
    tx.commit()?;
    Ok(())
}

fn sqlite_config(path: &Path) -> StoreConfig {
    StoreConfig {
        choice: StoreChoice::Sqlite,
        path: Some(path.to_owned()),
        prefix: "bsm:".into(),
        history_limit: HISTORY_LIMIT,
    }
}

/// `list` and `start` on a seeded store; `open` opens it afresh as `serve` does.
async fn list_and_start(
    name: &'static str,
    store: &dyn SessionStore,
    config: &StoreConfig,
    scale: &Scale,
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    // What `list_sessions` reads: one page (its default size) and the count.
    let mut pages = Vec::new();
    for _ in 0..scale.lists {
        let started = Instant::now();
        let page = store.list_page(0, LIST_PAGE, None).await?;
        pages.push(started.elapsed().as_secs_f64() * 1e3);
        if page.total < scale.sessions as u64 || page.sessions.len() < LIST_PAGE.min(scale.sessions)
        {
            return Err(format!(
                "{name}: a page of {} sessions, {} counted, of {}",
                page.sessions.len(),
                page.total,
                scale.sessions
            )
            .into());
        }
    }
    let (p50, p99) = quantiles(pages);
    rows.push(Row {
        store: name,
        what: "list",
        p50,
        p99,
        ratio: None,
        target: Some(20.0),
    });
    // Every open session at once (`sessions list` in a shell): no target.
    let mut lists = Vec::new();
    for _ in 0..scale.lists {
        let started = Instant::now();
        let open = store.list(false).await?;
        lists.push(started.elapsed().as_secs_f64() * 1e3);
        if open.len() < scale.sessions {
            return Err(format!(
                "{name}: listed {} of {} sessions",
                open.len(),
                scale.sessions
            )
            .into());
        }
    }
    let (p50, p99) = quantiles(lists);
    rows.push(Row {
        store: name,
        what: "list all",
        p50,
        p99,
        ratio: None,
        target: None,
    });
    if config.choice == StoreChoice::Memory {
        return Ok(()); // a memory store starts empty: nothing to open or recover
    }
    let mut starts = Vec::new();
    for _ in 0..scale.starts {
        let started = Instant::now();
        let opened = config.open().await?;
        opened.recover(None, 1e9, &holder_gone).await?;
        starts.push(started.elapsed().as_secs_f64() * 1e3);
        drop(opened);
    }
    let (p50, p99) = quantiles(starts);
    rows.push(Row {
        store: name,
        what: "start",
        p50,
        p99,
        ratio: None,
        target: Some(50.0),
    });
    Ok(())
}

/// A redis-server of ours, stopped on drop.
struct RedisServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis URL to bench on: `BENCH_REDIS_URL`, or a redis-server started here; the reason
/// otherwise.
fn redis() -> Result<(String, Option<RedisServer>), String> {
    if let Ok(url) = std::env::var("BENCH_REDIS_URL") {
        return Ok((url, None));
    }
    let binary = which::which("redis-server")
        .map_err(|_| "no BENCH_REDIS_URL and no redis-server on PATH".to_owned())?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
    let child = Command::new(binary)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server did not start: {e}"))?;
    let server = RedisServer { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((format!("redis://127.0.0.1:{port}/"), Some(server)))
}

fn print(rows: &[Row], skipped: &[String], scale_name: &str, scale: &Scale) {
    println!(
        "store_bench ({scale_name}): {} commands per store; list/start over {} sessions x {} entries",
        scale.commands, scale.sessions, scale.entries
    );
    println!(
        "| {:<7} | {:<11} | {:>9} | {:>9} | {:>9} | {:>9} | {:<4} |",
        "store", "measure", "p50 ms", "p99 ms", "vs memory", "target", ""
    );
    println!("|---------|-------------|-----------|-----------|-----------|-----------|------|");
    for r in rows {
        let ratio = r.ratio.map_or("-".to_owned(), |x| format!("{x:.1}x"));
        let (target, verdict) = match r.target {
            Some(t) => (format!("<= {t}"), if r.p50 <= t { "PASS" } else { "MISS" }),
            None => ("-".to_owned(), ""),
        };
        println!(
            "| {:<7} | {:<11} | {:>9.3} | {:>9.3} | {:>9} | {:>9} | {:<4} |",
            r.store, r.what, r.p50, r.p99, ratio, target, verdict
        );
    }
    for s in skipped {
        println!("{s}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let scale_name = std::env::var("BENCH_SCALE").unwrap_or_else(|_| "full".into());
    let scale = if scale_name == "smoke" {
        Scale {
            commands: 200,
            sessions: 100,
            entries: 5,
            lists: 5,
            starts: 3,
        }
    } else {
        Scale {
            commands: 3000,
            sessions: 10_000,
            entries: 100,
            lists: 20,
            starts: 5,
        }
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();

    // memory: the baseline.
    let memory_config = StoreConfig {
        choice: StoreChoice::Memory,
        path: None,
        prefix: "bsm:".into(),
        history_limit: HISTORY_LIMIT,
    };
    let memory = memory_config.open().await?;
    let (m50, m99) = quantiles(per_command(memory.as_ref(), scale.commands).await?);
    rows.push(Row {
        store: "memory",
        what: "per command",
        p50: m50,
        p99: m99,
        ratio: Some(1.0),
        target: None,
    });
    seed_via_trait(memory.as_ref(), &scale).await?;
    list_and_start("memory", memory.as_ref(), &memory_config, &scale, &mut rows).await?;
    drop(memory);

    // SQLite on a temporary file.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let config = sqlite_config(&path);
    seed_sqlite(&path, &scale).await?;
    let sqlite: Arc<dyn SessionStore> = config.open().await?;
    let (p50, p99) = quantiles(per_command(sqlite.as_ref(), scale.commands).await?);
    rows.push(Row {
        store: "sqlite",
        what: "per command",
        p50,
        p99,
        ratio: Some(p50 / m50),
        target: Some(0.15),
    });
    list_and_start("sqlite", sqlite.as_ref(), &config, &scale, &mut rows).await?;
    drop(sqlite);

    // Redis on loopback.
    match redis() {
        Err(why) => skipped.push(format!("redis: skipped: {why}")),
        Ok((url, server)) => {
            let config = StoreConfig {
                choice: StoreChoice::Redis(url),
                // A prefix of our own: BENCH_REDIS_URL may point at a shared server.
                prefix: format!("bsm-bench-{}:", std::process::id()),
                path: None,
                history_limit: HISTORY_LIMIT,
            };
            match config.open().await {
                Err(e) => skipped.push(format!("redis: skipped: the store does not open: {e}")),
                Ok(redis) => {
                    let (p50, p99) = quantiles(per_command(redis.as_ref(), scale.commands).await?);
                    rows.push(Row {
                        store: "redis",
                        what: "per command",
                        p50,
                        p99,
                        ratio: Some(p50 / m50),
                        target: Some(0.3),
                    });
                    seed_via_trait(redis.as_ref(), &scale).await?;
                    list_and_start("redis", redis.as_ref(), &config, &scale, &mut rows).await?;
                }
            }
            drop(server);
        }
    }
    print(&rows, &skipped, &scale_name, &scale);
    Ok(())
}
