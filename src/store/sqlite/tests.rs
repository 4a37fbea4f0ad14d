use super::*;

mod events;
mod running;

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state").join("sessions.db");
    (dir, path)
}

#[tokio::test]
async fn the_sqlite_store_keeps_every_promise() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, 3).expect("opens");
    crate::store::conformance::check(&store).await;
}

#[cfg(unix)]
#[test]
fn the_file_is_private_and_its_directory_made() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp();
    SqliteStore::open(&path, 3).expect("opens");
    let mode = std::fs::metadata(&path).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = std::fs::metadata(path.parent().expect("dir")).expect("dir");
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
}

fn refused(bytes: &[u8]) -> (StoreError, Vec<u8>) {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    std::fs::write(&path, bytes).expect("written");
    let e = SqliteStore::open(&path, 3).expect_err("refused");
    (e, std::fs::read(&path).expect("still there"))
}

#[test]
fn a_file_that_is_not_a_database_is_refused_untouched() {
    let junk = b"this is not a database, it is someone's notes\n".repeat(100);
    let (e, after) = refused(&junk);
    assert!(matches!(e, StoreError::NotADatabase { .. }), "{e}");
    assert!(e.to_string().contains("not a session database"), "{e}");
    assert_eq!(after, junk, "the file is untouched");
    // A damaged database: the header, then garbage.
    let mut damaged = b"SQLite format 3\0".to_vec();
    damaged.extend(std::iter::repeat_n(0xA5u8, 8192));
    let (e, after) = refused(&damaged);
    assert!(
        matches!(
            e,
            StoreError::NotADatabase { .. } | StoreError::Failed { .. }
        ),
        "{e}"
    );
    assert_eq!(after, damaged, "the file is untouched");
}

fn database(setup: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("other.db");
    let conn = Connection::open(&path).expect("opens");
    conn.execute_batch(setup).expect("set up");
    drop(conn);
    std::fs::read(&path).expect("read")
}

#[test]
fn a_newer_schema_or_another_programs_database_is_refused_untouched() {
    let newer = database("PRAGMA user_version = 99; CREATE TABLE t (x);");
    let (e, after) = refused(&newer);
    assert!(
        matches!(
            e,
            StoreError::NewerSchema {
                found: 99,
                supported: schema::SCHEMA_VERSION,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("newer"), "{e}");
    assert_eq!(after, newer);
    let other = database("CREATE TABLE notes (text);");
    let (e, after) = refused(&other);
    assert!(e.to_string().contains("another program"), "{e}");
    assert_eq!(after, other);
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_is_refused_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp();
    SqliteStore::open(&path, 3).expect("opens");
    let before = std::fs::read(&path).expect("read");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::File::open(&path).is_ok() {
        // root reads any file: a directory where the file should be is unreadable as one.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let (_dir, path) = temp();
        std::fs::create_dir_all(&path).expect("dir");
        let e = SqliteStore::open(&path, 3).expect_err("refused");
        assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
        assert!(path.is_dir(), "left as it was");
        return;
    }
    let e = SqliteStore::open(&path, 3).expect_err("refused");
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[tokio::test]
async fn a_reopened_file_keeps_sessions_and_two_stores_share_one_file() {
    use crate::store::{NewSession, SessionStore};
    let (_dir, path) = temp();
    let a = SqliteStore::open(&path, 3).expect("opens");
    let b = SqliteStore::open(&path, 3).expect("opens twice");
    a.create(NewSession {
        id: "s1".into(),
        name: None,
        owner: "local".into(),
        target: crate::backend::Target::new("127.0.0.1", 9876),
        now: 1.0,
    })
    .await
    .expect("create");
    assert!(
        b.get("s1").await.expect("get").is_some(),
        "the other store sees it"
    );
    drop((a, b));
    let c = SqliteStore::open(&path, 3).expect("reopens");
    assert_eq!(c.list(false).await.expect("list").len(), 1);
}

#[tokio::test]
async fn shares_and_names_survive_reopening_the_file_and_go_with_a_pruned_session() {
    use crate::session::events::CloseReason;
    use crate::store::{SessionStore, conformance};
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, 3).expect("opens");
    conformance::shares_before_reopen(&store).await;
    drop(store);
    let store = SqliteStore::open(&path, 3).expect("reopens");
    conformance::shares_after_reopen(&store).await;
    store
        .close("k-1", CloseReason::Closed, 5.0)
        .await
        .expect("close")
        .expect("open");
    assert_eq!(store.prune(5.0).await.expect("prune"), 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let left: i64 = conn
        .query_row("SELECT count(*) FROM shares", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 0, "a pruned session's shares are deleted with it");
}

#[tokio::test]
async fn two_processes_reaping_at_once_close_a_session_once() {
    use crate::session::events::CloseReason;
    use crate::store::{NewSession, SessionStore};
    let (_dir, path) = temp();
    let stores: Vec<std::sync::Arc<SqliteStore>> = (0..4)
        .map(|_| std::sync::Arc::new(SqliteStore::open(&path, 3).expect("opens")))
        .collect();
    for i in 0..20 {
        stores[0]
            .create(NewSession {
                id: format!("s{i}"),
                name: None,
                owner: "local".into(),
                target: crate::backend::Target::new("127.0.0.1", 9876),
                now: 1.0,
            })
            .await
            .expect("create");
    }
    // Every store (a connection of its own, as another process has) reaps every idle
    // session at once.
    let mut reapers = tokio::task::JoinSet::new();
    for store in &stores {
        let store = store.clone();
        reapers.spawn(async move {
            let idle = store.list_idle(5.0, 10.0).await.expect("idle");
            let mut closed = Vec::new();
            for id in idle {
                if store
                    .close(&id, CloseReason::Idle, 10.0)
                    .await
                    .expect("close")
                    .is_some()
                {
                    closed.push(id);
                }
            }
            closed
        });
    }
    let mut all: Vec<String> = reapers.join_all().await.into_iter().flatten().collect();
    all.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "each session closed exactly once");
}

#[tokio::test]
async fn a_version_1_file_migrates_keeping_its_sessions_and_their_state() {
    use crate::store::SessionStore;
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(schema::MIGRATIONS[0])
            .expect("v1 schema");
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1;
             INSERT INTO sessions (id, owner, host, port, created_at, last_activity, status, state, state_version)
             VALUES ('old', 'local', '127.0.0.1', 9876, 1.0, 2.0, 'open', '{{\"objects\":[\"Cube\"]}}', 3);",
            schema::APPLICATION_ID
        ))
        .expect("a v1 session");
    }
    let store = SqliteStore::open(&path, 3).expect("opens and migrates");
    let old = store.get("old").await.expect("get").expect("kept");
    assert_eq!(old.state.as_deref(), Some("{\"objects\":[\"Cube\"]}"));
    assert_eq!(old.state_version, 3);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::SCHEMA_VERSION);
    let inline: Option<String> = conn
        .query_row("SELECT state FROM sessions WHERE id = 'old'", [], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(inline, None, "the state moved out of the session row");
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("the event log is made on the way");
    assert_eq!(events, 0);
}

#[tokio::test]
async fn a_version_2_file_migrates_to_names_per_owner_and_shares() {
    use crate::store::SessionStore;
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(schema::MIGRATIONS[0])
            .expect("v1 schema");
        conn.execute_batch(schema::MIGRATIONS[1])
            .expect("v2 schema");
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 2;
             INSERT INTO sessions (id, name, owner, host, port, created_at, last_activity, status)
             VALUES ('old', 'main', 'local', '127.0.0.1', 9876, 1.0, 2.0, 'open');
             INSERT INTO states (session_id, state) VALUES ('old', '{{\"objects\":[]}}');",
            schema::APPLICATION_ID
        ))
        .expect("a v2 session");
    }
    let store = SqliteStore::open(&path, 3).expect("opens and migrates");
    let old = store.get("old").await.expect("get").expect("kept");
    assert_eq!(old.name.as_deref(), Some("main"));
    assert_eq!(old.state.as_deref(), Some("{\"objects\":[]}"));
    assert!(old.shares.is_empty());
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::SCHEMA_VERSION);
    // A name is unique per owner now: another owner's "main" goes in, a second of local's
    // does not.
    let insert = |id: &str, owner: &str| {
        conn.execute(
            "INSERT INTO sessions (id, name, owner, host, port, created_at, last_activity, status)
             VALUES (?1, 'main', ?2, '127.0.0.1', 9876, 3.0, 3.0, 'open')",
            [id, owner],
        )
    };
    insert("alices", "alice").expect("another owner's main");
    assert!(insert("again", "local").is_err(), "one open main per owner");
    conn.execute(
        "INSERT INTO shares (session_id, user, access) VALUES ('old', 'bob', 'read')",
        [],
    )
    .expect("a share");
    assert!(
        conn.execute(
            "INSERT INTO shares (session_id, user, access) VALUES ('old', 'carl', 'admin')",
            [],
        )
        .is_err(),
        "read or write only"
    );
}

/// A history entry of `x = 1` as the registry writes it.
pub(super) fn entry(outcome: crate::session::Outcome) -> crate::session::HistoryEntry {
    crate::session::HistoryEntry {
        seq: 0,
        timestamp: 1.0,
        command: "execute_code".into(),
        tool: "execute_blender_code".into(),
        arguments: serde_json::json!({"code": "x = 1"}),
        outcome,
        result: None,
        message: None,
        duration: 0.001,
        note: None,
    }
}

/// `n` commands of session `id` as the registry makes them (running entry, then completed).
async fn commands(store: &SqliteStore, id: &str, n: usize) {
    use crate::session::Outcome;
    use crate::store::{BeginCommand, Begun, FinishCommand, SessionStore};
    for i in 0..n {
        let now = 2.0 + i as f64 * 0.001;
        let begin = BeginCommand {
            holder: "me".into(),
            now,
            lease_until: now + 30.0,
            entry: entry(Outcome::Running),
        };
        let Begun::Started { seq, .. } = store.begin_command(id, begin).await.expect("begin")
        else {
            panic!("the command did not start");
        };
        let finish = FinishCommand {
            holder: "me".into(),
            seq,
            now,
            entry: entry(Outcome::Success),
            last_command: "execute_code".into(),
            last_result: serde_json::json!({"status": "success"}),
            state: None,
        };
        store.finish_command(id, finish).await.expect("finish");
    }
}

pub(super) async fn session(store: &SqliteStore, id: &str) {
    use crate::store::{NewSession, SessionStore};
    store
        .create(NewSession {
            id: id.into(),
            name: None,
            owner: crate::store::LOCAL_OWNER.into(),
            target: crate::backend::Target::new("127.0.0.1", 9876),
            now: 1.0,
        })
        .await
        .expect("create");
}

#[tokio::test]
async fn history_keeps_exactly_the_newest_entries_across_the_batched_trims() {
    use crate::store::SessionStore;
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, 3).expect("opens");
    session(&store, "s").await;
    for (done, total) in [(0, 63), (63, 64), (64, 65), (65, 130)] {
        commands(&store, "s", total - done).await;
        let page = store
            .history("s", None)
            .await
            .expect("read")
            .expect("there");
        let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
        let want: Vec<u64> = (total as u64 - 2..=total as u64).collect();
        assert_eq!(seqs, want, "after {total} commands");
        assert_eq!((page.total, page.dropped), (total as u64, total as u64 - 3));
        let info = store.get("s").await.expect("read").expect("there");
        assert_eq!(info.history_kept, 3);
        let newest = store
            .history("s", Some(2))
            .await
            .expect("read")
            .expect("there");
        assert_eq!(
            newest.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            want[1..]
        );
    }
    // The rows of dropped entries are deleted in batches: never more than a batch more.
    let conn = rusqlite::Connection::open(&path).expect("open");
    let rows: u64 = conn
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .expect("count");
    assert!(rows <= 3 + ops::HISTORY_TRIM_EVERY, "{rows} rows");
}
