//! The SQLite store's event log: two stores on one file (two processes) share it, the
//! trimming is cheap, and a schema-3 file migrates forward, keeping its sessions and gaining
//! the `events` table.

use super::*;
use crate::store::{SessionStore, conformance};

#[tokio::test]
async fn two_stores_on_one_file_share_the_event_log() {
    let (_dir, path) = temp();
    let a = SqliteStore::open(&path, 3).expect("opens");
    let b = SqliteStore::open(&path, 3).expect("opens twice");
    conformance::events_shared(&a, &b).await;
    drop((a, b));
    let c = SqliteStore::open(&path, 3).expect("reopens");
    let page = c.events_after(0, 1).await.expect("read");
    assert_eq!(page.oldest, Some(1), "the log survives reopening");
    let next = c.append_events(&["{}".to_owned()]).await.expect("append");
    assert_eq!(next, [page.newest + 1], "and its ids go on");
}

#[tokio::test]
async fn a_version_3_file_migrates_keeping_its_sessions_and_gaining_the_event_log() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        for step in &schema::MIGRATIONS[..3] {
            conn.execute_batch(step).expect("v3 schema");
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 3;
             INSERT INTO sessions (id, name, owner, host, port, created_at, last_activity, status)
             VALUES ('old', 'main', 'alice', '127.0.0.1', 9876, 1.0, 2.0, 'open');
             INSERT INTO states (session_id, state) VALUES ('old', '{{\"objects\":[\"Cube\"]}}');
             INSERT INTO shares (session_id, user, access) VALUES ('old', 'bob', 'read');",
            schema::APPLICATION_ID
        ))
        .expect("a v3 session");
        let events: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(events, 0, "no event log before 4");
    }
    let store = SqliteStore::open(&path, 3).expect("opens and migrates");
    let old = store.get("old").await.expect("get").expect("kept");
    assert_eq!(
        (old.name.as_deref(), old.owner.as_str()),
        (Some("main"), "alice")
    );
    assert_eq!(old.state.as_deref(), Some("{\"objects\":[\"Cube\"]}"));
    assert_eq!(old.shares.len(), 1);
    assert_eq!(
        store.events_after(0, 10).await.expect("read"),
        crate::store::EventPage::default(),
        "the new log is empty"
    );
    assert_eq!(
        store
            .append_events(&["{\"type\":\"x\"}".to_owned()])
            .await
            .expect("append"),
        [1]
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::SCHEMA_VERSION);
    let body: String = conn
        .query_row("SELECT body FROM events WHERE id = 1", [], |r| r.get(0))
        .expect("the event row");
    assert_eq!(body, "{\"type\":\"x\"}");
}
