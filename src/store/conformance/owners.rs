//! The conformance check's part about owners: names are unique per owner (two owners each
//! have their own `main`, one owner's `main` is reused) and each owner's open sessions are
//! counted. Run by [`super::check`] after its first part, with owners other than `local`.

use crate::session::events::CloseReason;
use crate::store::{Created, LOCAL_OWNER, NewSession, SessionStore};

/// A session of `owner` to create.
pub(super) fn of(owner: &str, id: &str, name: Option<&str>, now: f64) -> NewSession {
    NewSession {
        owner: owner.into(),
        ..super::new(id, name, now)
    }
}

async fn created(store: &dyn SessionStore, new: NewSession) -> Created {
    let what = format!("create {}", new.id);
    store.create(new).await.expect(&what)
}

async fn id_by_name(store: &dyn SessionStore, owner: &str, name: &str) -> Option<String> {
    store
        .get_by_name(owner, name)
        .await
        .expect("by name")
        .map(|s| s.id)
}

async fn owned(store: &dyn SessionStore, owner: &str) -> u64 {
    store.count_owned(owner).await.expect("count owned")
}

/// Names per owner and the counts of owned sessions. `local` owns 2 open sessions, none
/// named `main`, when this starts.
pub(super) async fn check(store: &dyn SessionStore) {
    assert_eq!(owned(store, LOCAL_OWNER).await, 2);
    let Created::New(a) = created(store, of("alice", "al-1", Some("main"), 100.0)).await else {
        panic!("alice's first main is new");
    };
    assert_eq!(a.owner, "alice");
    let Created::New(_) = created(store, of("bob", "bo-1", Some("main"), 101.0)).await else {
        panic!("another owner's main is another session");
    };
    match created(store, of("alice", "al-2", Some("main"), 102.0)).await {
        Created::Existing(s) => assert_eq!((s.id.as_str(), s.owner.as_str()), ("al-1", "alice")),
        other => panic!("alice's open main is reused, got {other:?}"),
    }
    assert!(store.get("al-2").await.expect("get").is_none());
    let Created::New(_) = created(store, of("alice", "al-3", None, 103.0)).await else {
        panic!("no name, a new session");
    };
    assert_eq!(
        id_by_name(store, "alice", "main").await.as_deref(),
        Some("al-1")
    );
    assert_eq!(
        id_by_name(store, "bob", "main").await.as_deref(),
        Some("bo-1")
    );
    assert_eq!(id_by_name(store, "carol", "main").await, None);
    assert_eq!(id_by_name(store, LOCAL_OWNER, "main").await, None);
    assert_eq!(
        (owned(store, "alice").await, owned(store, "bob").await),
        (2, 1)
    );
    assert_eq!(owned(store, "carol").await, 0);
    assert_eq!(
        owned(store, LOCAL_OWNER).await,
        2,
        "other owners' are not local's"
    );
    // Closing frees the name for its owner only, and the session is not counted any more.
    store
        .close("al-1", CloseReason::Closed, 104.0)
        .await
        .expect("close")
        .expect("open");
    assert_eq!(owned(store, "alice").await, 1);
    assert_eq!(id_by_name(store, "alice", "main").await, None);
    assert_eq!(
        id_by_name(store, "bob", "main").await.as_deref(),
        Some("bo-1")
    );
    let Created::New(_) = created(store, of("alice", "al-4", Some("main"), 105.0)).await else {
        panic!("a closed session's name is free again for its owner");
    };
    assert_eq!(
        id_by_name(store, "alice", "main").await.as_deref(),
        Some("al-4")
    );
    assert_eq!(owned(store, "alice").await, 2);
}
