//! What every [`SessionStore`] must do, as one check each store's tests run against a fresh,
//! empty store of its kind (the memory store in its unit tests, SQLite on a temporary file,
//! Redis on a test server). Panics on the first broken promise, naming it.
//!
//! - this module: one owner's sessions, commands, leases, recovery, closing, pruning;
//! - `owners`: names per owner, counts of owned sessions;
//! - `shares`: shares, the access they give, what a viewer's page shows; and what survives
//!   reopening a store ([`shares_before_reopen`], [`shares_after_reopen`]);
//! - `events`: the event log; and two handles on one store sharing it ([`events_shared`]).

mod events;
mod owners;
mod shares;

pub use events::events_shared;
pub use shares::{shares_after_reopen, shares_before_reopen};

use serde_json::json;

use crate::backend::Target;
use crate::session::events::CloseReason;
use crate::session::{HistoryEntry, Outcome};

use super::{
    BeginCommand, Begun, Created, FinishCommand, INTERRUPTED_MESSAGE, NewSession, SessionStore,
    Status,
};

fn entry(command: &str) -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        timestamp: 1.0,
        command: command.into(),
        tool: "execute_blender_code".into(),
        arguments: json!({"code": "print(1)"}),
        outcome: Outcome::Success,
        result: None,
        message: None,
        duration: 0.0,
        note: None,
    }
}

fn new(id: &str, name: Option<&str>, now: f64) -> NewSession {
    NewSession {
        id: id.into(),
        name: name.map(str::to_owned),
        owner: super::LOCAL_OWNER.into(),
        target: Target::new("127.0.0.1", 9876),
        now,
    }
}

fn begin(holder: &str, now: f64) -> BeginCommand {
    BeginCommand {
        holder: holder.into(),
        now,
        lease_until: now + 10.0,
        entry: entry("execute_code"),
    }
}

fn finish(holder: &str, seq: u64, now: f64, state: Option<&str>) -> FinishCommand {
    let mut e = entry("execute_code");
    e.result = Some(json!("ok"));
    FinishCommand {
        holder: holder.into(),
        seq,
        now,
        entry: e,
        last_command: "execute_code".into(),
        last_result: json!({"status": "success"}),
        state: state.map(Into::into),
    }
}

/// Run every check on `store`, which must be empty and keep at least 3 history entries but
/// at most 3 (`history_limit` 3).
pub async fn check(store: &dyn SessionStore) {
    let gone = |h: &str| h == "dead";
    // Create, get, names.
    let Created::New(a) = store.create(new("a", None, 1.0)).await.expect("create a") else {
        panic!("a fresh id is a new session");
    };
    assert_eq!(a.status, Status::Open);
    assert_eq!(a.owner, "local");
    let Created::New(_) = store
        .create(new("n1", Some("shared"), 2.0))
        .await
        .expect("n1")
    else {
        panic!("a fresh name is a new session");
    };
    let Created::Existing(again) = store
        .create(new("n2", Some("shared"), 3.0))
        .await
        .expect("n2")
    else {
        panic!("an open name is reused");
    };
    assert_eq!(again.id, "n1");
    assert!(
        store.get("n2").await.expect("get").is_none(),
        "no second session"
    );
    assert_eq!(
        store
            .get_by_name(super::LOCAL_OWNER, "shared")
            .await
            .expect("by name")
            .map(|s| s.id),
        Some("n1".into())
    );
    assert!(store.get("nope").await.expect("get").is_none());

    // Commands: seq from the store, the lease keeps out another holder.
    let Begun::Started { seq, state_version } = store
        .begin_command("a", begin("p1", 5.0))
        .await
        .expect("begin")
    else {
        panic!("a free lease is taken");
    };
    assert_eq!((seq, state_version), (1, 0));
    let running = store
        .history("a", None)
        .await
        .expect("history")
        .expect("exists");
    assert_eq!(
        running.entries[0].outcome,
        Outcome::Running,
        "written before sending"
    );
    assert_eq!(running.entries[0].arguments, json!({"code": "print(1)"}));
    match store
        .begin_command("a", begin("p2", 6.0))
        .await
        .expect("begin")
    {
        Begun::Leased(l) => assert_eq!(l.holder, "p1"),
        other => panic!("a held lease keeps others out, got {other:?}"),
    }
    assert!(store.renew_lease("a", "p1", 20.0).await.expect("renew"));
    assert!(!store.renew_lease("a", "p2", 20.0).await.expect("renew"));
    // A live lease keeps the entry running through a recovery.
    assert_eq!(store.recover(None, 7.0, &gone).await.expect("recover"), 0);
    store
        .finish_command("a", finish("p1", 1, 8.0, Some("{\"objects\":[\"Cube\"]}")))
        .await
        .expect("finish");
    let s = store.get("a").await.expect("get").expect("exists");
    assert_eq!(s.last_activity, 8.0);
    assert_eq!(s.state.as_deref(), Some("{\"objects\":[\"Cube\"]}"));
    assert_eq!(s.state_version, 1);
    assert_eq!(s.last_command.as_deref(), Some("execute_code"));
    assert!(s.lease.is_none(), "finishing gives the lease back");
    let page = store
        .history("a", None)
        .await
        .expect("history")
        .expect("exists");
    assert_eq!(page.entries[0].outcome, Outcome::Success);
    assert_eq!(page.entries[0].result, Some(json!("ok")));
    // p2 may go now; no state given keeps the state.
    let Begun::Started { seq, state_version } = store
        .begin_command("a", begin("p2", 9.0))
        .await
        .expect("begin")
    else {
        panic!("a released lease is taken");
    };
    assert_eq!((seq, state_version), (2, 1));
    store
        .finish_command("a", finish("p2", 2, 9.5, None))
        .await
        .expect("finish");
    assert_eq!(
        store.get("a").await.expect("get").expect("a").state_version,
        1
    );
    // An expired lease is taken over.
    let Begun::Started { .. } = store
        .begin_command("a", begin("p1", 10.0))
        .await
        .expect("b")
    else {
        panic!("free");
    };
    match store
        .begin_command("a", begin("p2", 30.0))
        .await
        .expect("begin")
    {
        Begun::Started { seq, .. } => assert_eq!(seq, 4),
        other => panic!("an expired lease is taken over, got {other:?}"),
    }
    // p1's entry 3 is running with no live lease of p1: interrupted. p2's 4 stays running.
    assert_eq!(
        store
            .recover(Some("a"), 31.0, &gone)
            .await
            .expect("recover"),
        1
    );
    let page = store.history("a", None).await.expect("h").expect("a");
    let outcomes: Vec<(u64, Outcome)> = page.entries.iter().map(|e| (e.seq, e.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (2, Outcome::Success),
            (3, Outcome::Interrupted),
            (4, Outcome::Running)
        ],
        "history limit 3 keeps the newest"
    );
    assert_eq!(
        page.entries[1].message.as_deref(),
        Some(INTERRUPTED_MESSAGE)
    );
    assert_eq!((page.total, page.dropped), (4, 1));
    assert_eq!(
        store
            .history("a", Some(1))
            .await
            .expect("h")
            .expect("a")
            .entries
            .len(),
        1
    );
    store.release_lease("a", "p2").await.expect("release");
    // A gone holder's lease is dropped and its running entry interrupted at once.
    let Begun::Started { seq, .. } = store
        .begin_command("a", begin("dead", 32.0))
        .await
        .expect("b")
    else {
        panic!("free");
    };
    assert_eq!(seq, 5);
    assert_eq!(
        store.recover(None, 32.5, &gone).await.expect("recover"),
        2,
        "4 and 5"
    );
    assert!(
        store
            .get("a")
            .await
            .expect("get")
            .expect("a")
            .lease
            .is_none()
    );

    // Entries never sent, state overwrites.
    assert_eq!(
        store
            .record_entry("a", 33.0, entry("get_scene_info"))
            .await
            .expect("r"),
        Some(6)
    );
    assert_eq!(
        store
            .record_entry("nope", 33.0, entry("x"))
            .await
            .expect("r"),
        None
    );
    assert!(store.set_state("a", "{}".into(), 34.0).await.expect("set"));
    assert_eq!(
        store.get("a").await.expect("get").expect("a").state_version,
        2
    );

    // Idle, close once, prune.
    let mut idle = store.list_idle(4.0, 40.0).await.expect("idle");
    idle.sort();
    assert_eq!(idle, ["n1"], "n1 idle since 2.0; a active at 34");
    let Begun::Started { .. } = store
        .begin_command("n1", begin("p1", 3.5))
        .await
        .expect("b")
    else {
        panic!("free");
    };
    assert!(
        store.list_idle(4.0, 5.0).await.expect("idle").is_empty(),
        "a leased session is busy"
    );
    // The close of idle cleanup re-checks idleness in its own atomic step.
    assert!(
        store
            .close_idle("n1", 4.0, 5.0)
            .await
            .expect("close")
            .is_none(),
        "a leased session is not closed as idle"
    );
    assert!(
        store
            .close_idle("a", 4.0, 40.0)
            .await
            .expect("close")
            .is_none(),
        "a session active since the list is not closed as idle"
    );
    assert_eq!(
        store.get("a").await.expect("get").map(|s| s.status),
        Some(Status::Open)
    );
    let closed = store.close_idle("n1", 4.0, 41.0).await.expect("close");
    assert_eq!(closed.map(|s| s.status), Some(Status::Closed));
    assert!(
        store
            .close("n1", CloseReason::Idle, 42.0)
            .await
            .expect("close")
            .is_none(),
        "once"
    );
    match store
        .begin_command("n1", begin("p1", 43.0))
        .await
        .expect("begin")
    {
        Begun::Closed => {}
        other => panic!("a closed session takes no command, got {other:?}"),
    }
    assert_eq!(
        store
            .begin_command("nope", begin("p1", 43.0))
            .await
            .expect("b"),
        Begun::Missing
    );
    assert!(
        store
            .get_by_name(super::LOCAL_OWNER, "shared")
            .await
            .expect("by name")
            .is_none()
    );
    let Created::New(fresh) = store
        .create(new("n3", Some("shared"), 44.0))
        .await
        .expect("n3")
    else {
        panic!("a closed session's name is free again");
    };
    assert_eq!(fresh.id, "n3");
    let open: Vec<String> = store
        .list(false)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(open, ["a", "n3"], "oldest first");
    assert_eq!(store.list(true).await.expect("list").len(), 3);
    // Pages of the open sessions, in the same order, the closed one (n1) skipped.
    let page = |offset, limit| async move {
        let p = store.list_page(offset, limit, None).await.expect("page");
        (
            p.total,
            p.sessions.into_iter().map(|s| s.id).collect::<Vec<_>>(),
        )
    };
    assert_eq!(page(0, 1).await, (2, vec!["a".to_owned()]));
    assert_eq!(page(1, 5).await, (2, vec!["n3".to_owned()]));
    assert_eq!(page(2, 5).await, (2, Vec::<String>::new()));
    assert_eq!(page(0, 0).await, (2, Vec::<String>::new()));
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.open, stats.closed, stats.writable), (2, 1, true));
    let old = store
        .get("n1")
        .await
        .expect("get")
        .expect("readable until pruned");
    assert_eq!(old.closed.map(|c| c.1), Some(CloseReason::Idle));
    assert!(store.history("n1", None).await.expect("h").is_some());
    assert_eq!(store.prune(40.0).await.expect("prune"), 0, "closed at 41");
    assert_eq!(store.prune(41.0).await.expect("prune"), 1);
    assert!(store.get("n1").await.expect("get").is_none());
    assert!(store.history("n1", None).await.expect("h").is_none());

    owners::check(store).await;
    shares::check(store).await;
    events::check(store).await;
}
