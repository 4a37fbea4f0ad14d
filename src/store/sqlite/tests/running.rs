//! Where a session's running entries are (`sessions.running_min`, schema 5): recovery finds
//! a dead holder's entry after another holder took the session over and finished its own,
//! and in a file migrated from schema 4 with an entry left running.

use super::*;
use crate::session::Outcome;
use crate::store::{BeginCommand, Begun, FinishCommand, SessionStore};

async fn begin(store: &SqliteStore, holder: &str, now: f64) -> u64 {
    let begin = BeginCommand {
        holder: holder.into(),
        now,
        lease_until: now + 30.0,
        entry: entry(Outcome::Running),
    };
    match store.begin_command("s", begin).await.expect("begin") {
        Begun::Started { seq, .. } => seq,
        other => panic!("{holder} could not start: {other:?}"),
    }
}

async fn finish(store: &SqliteStore, holder: &str, seq: u64, now: f64) {
    let finish = FinishCommand {
        holder: holder.into(),
        seq,
        now,
        entry: entry(Outcome::Success),
        last_command: "execute_code".into(),
        last_result: serde_json::json!({"status": "success"}),
        state: None,
    };
    store.finish_command("s", finish).await.expect("finish");
}

fn running_min(path: &Path) -> Option<i64> {
    rusqlite::Connection::open(path)
        .expect("open")
        .query_row("SELECT running_min FROM sessions WHERE id = 's'", [], |r| {
            r.get(0)
        })
        .expect("the row")
}

async fn outcomes(store: &SqliteStore) -> Vec<Outcome> {
    let page = store.history("s", None).await.expect("read").expect("kept");
    page.entries.iter().map(|e| e.outcome).collect()
}

#[tokio::test]
async fn a_dead_holders_entry_is_recovered_after_another_holder_took_over_and_finished() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, 10).expect("opens");
    session(&store, "s").await;
    let first = begin(&store, "dead", 2.0).await;
    assert_eq!(running_min(&path), Some(first as i64));
    // The dead holder's lease runs out; "alive" takes over, runs and finishes a command.
    let second = begin(&store, "alive", 40.0).await;
    finish(&store, "alive", second, 40.5).await;
    assert_eq!(
        running_min(&path),
        Some(first as i64),
        "the older entry still runs"
    );
    assert_eq!(outcomes(&store).await, [Outcome::Running, Outcome::Success]);
    let gone = |h: &str| h == "dead";
    assert_eq!(store.recover(None, 41.0, &gone).await.expect("recover"), 1);
    assert_eq!(
        outcomes(&store).await,
        [Outcome::Interrupted, Outcome::Success]
    );
    assert_eq!(running_min(&path), None, "nothing runs any more");
    // A command after it leaves no bound behind.
    let third = begin(&store, "alive", 42.0).await;
    assert_eq!(running_min(&path), Some(third as i64));
    finish(&store, "alive", third, 42.5).await;
    assert_eq!(running_min(&path), None);
}

#[tokio::test]
async fn a_version_4_file_with_an_entry_left_running_migrates_and_recovers_it() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        for step in &schema::MIGRATIONS[..4] {
            conn.execute_batch(step).expect("v4 schema");
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 4;
             INSERT INTO sessions (id, owner, host, port, created_at, last_activity, status,
                                   command_count, history_kept, lease_holder, lease_until)
             VALUES ('s', 'local', '127.0.0.1', 9876, 1.0, 2.0, 'open', 2, 2, 'dead', 32.0);
             INSERT INTO history (session_id, seq, outcome, holder, entry) VALUES
               ('s', 1, 'success', NULL, '{{\"seq\":1,\"timestamp\":1.0,\"command\":\"execute_code\",\"tool\":\"t\",\"arguments\":{{}},\"outcome\":\"success\",\"duration\":0.0}}'),
               ('s', 2, 'running', 'dead', '{{\"seq\":2,\"timestamp\":1.0,\"command\":\"execute_code\",\"tool\":\"t\",\"arguments\":{{}},\"outcome\":\"running\",\"duration\":0.0}}');",
            schema::APPLICATION_ID
        ))
        .expect("a v4 session with a running entry");
    }
    let store = SqliteStore::open(&path, 10).expect("opens and migrates");
    assert_eq!(running_min(&path), Some(2), "the migration finds it");
    let gone = |h: &str| h == "dead";
    assert_eq!(store.recover(None, 3.0, &gone).await.expect("recover"), 1);
    assert_eq!(
        outcomes(&store).await,
        [Outcome::Success, Outcome::Interrupted]
    );
    assert_eq!(running_min(&path), None);
    let index: i64 = rusqlite::Connection::open(&path)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'history_running'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert_eq!(index, 0, "the index on running entries is gone");
}

#[test]
fn recovery_reads_the_history_of_sessions_with_running_entries_only() {
    let (_dir, path) = temp();
    drop(SqliteStore::open(&path, 10).expect("opens"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    for sql in [
        super::super::upkeep::RUNNING_HOLDERS,
        super::super::upkeep::STALE_RUNNING,
    ] {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let now = 1.0;
        let params: &[&dyn rusqlite::ToSql] = match stmt.parameter_count() {
            1 => &[&None::<String>],
            _ => &[&None::<String>, &now],
        };
        let plan: Vec<String> = stmt
            .query_map(params, |r| r.get(3))
            .expect("plan rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|s| s.starts_with("SEARCH h USING PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|s| s == "SCAN h"), "{plan:?}");
    }
}
