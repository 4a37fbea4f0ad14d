//! The conformance check's part about shares: setting, replacing and removing a share, the
//! access it gives ([`StoredSession::access_of`]), what a viewer's page shows and counts,
//! and shares kept with a closed session until it is pruned. Run by [`super::check`] after
//! [`super::owners`]; plus the two halves of the check that shares survive reopening a store
//! ([`shares_before_reopen`], [`shares_after_reopen`]), for the stores that keep anything.

use crate::session::events::CloseReason;
use crate::store::{Access, Created, EVERYONE, LOCAL_OWNER, SessionStore, Status, StoredSession};

use super::owners::of;

async fn session(store: &dyn SessionStore, id: &str) -> StoredSession {
    store
        .get(id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{id} exists"))
}

/// `(user, access)` of each share, in the order given.
fn shares(s: &StoredSession) -> Vec<(&str, Access)> {
    s.shares
        .iter()
        .map(|s| (s.user.as_str(), s.access))
        .collect()
}

async fn share(store: &dyn SessionStore, id: &str, user: &str, access: Option<Access>) -> bool {
    store.share(id, user, access).await.expect("share")
}

/// `(total, ids)` of a page.
async fn page(
    store: &dyn SessionStore,
    offset: usize,
    limit: usize,
    viewer: Option<&str>,
) -> (u64, Vec<String>) {
    let p = store.list_page(offset, limit, viewer).await.expect("page");
    (p.total, p.sessions.into_iter().map(|s| s.id).collect())
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Shares and viewers' pages. Open when this starts: `a` and `n3` (local's), `bo-1` (bob's
/// `main`), `al-3` and `al-4` (alice's, `al-4` her `main`), oldest first; `al-1` (alice's)
/// closed; no shares.
pub(super) async fn check(store: &dyn SessionStore) {
    use Access::{Read, Write};
    assert!(
        session(store, "al-3").await.shares.is_empty(),
        "none at first"
    );
    // Set, replace, add everyone's, remove.
    assert!(share(store, "al-3", "bob", Some(Read)).await);
    let s = session(store, "al-3").await;
    assert_eq!(shares(&s), [("bob", Read)]);
    assert_eq!(s.access_of("bob"), Some(Read));
    assert_eq!(s.access_of("alice"), Some(Write), "the owner");
    assert_eq!(s.access_of("carol"), None);
    assert!(share(store, "al-3", "bob", Some(Write)).await);
    assert_eq!(
        shares(&session(store, "al-3").await),
        [("bob", Write)],
        "replaced"
    );
    assert!(share(store, "al-3", EVERYONE, Some(Read)).await);
    let s = session(store, "al-3").await;
    assert_eq!(
        shares(&s),
        [(EVERYONE, Read), ("bob", Write)],
        "sorted by user"
    );
    assert_eq!(s.access_of("carol"), Some(Read), "everyone's share");
    assert_eq!(
        s.access_of("bob"),
        Some(Write),
        "the stronger of bob's and everyone's"
    );
    assert!(share(store, "al-3", "bob", None).await);
    let s = session(store, "al-3").await;
    assert_eq!(shares(&s), [(EVERYONE, Read)], "removed");
    assert_eq!(
        s.access_of("bob"),
        Some(Read),
        "bob still reads as everyone"
    );
    assert!(
        share(store, "al-3", "nobody", None).await,
        "removing no share is fine"
    );
    assert!(share(store, "al-4", "bob", Some(Read)).await);
    assert!(share(store, "al-4", EVERYONE, Some(Write)).await);
    let s = session(store, "al-4").await;
    assert_eq!(
        s.access_of("bob"),
        Some(Write),
        "everyone's is the stronger"
    );
    // No open session: nothing shared.
    assert!(!share(store, "nope", "bob", Some(Read)).await, "missing");
    assert!(!share(store, "al-1", "bob", Some(Read)).await, "closed");
    assert!(!share(store, "al-1", "bob", None).await, "closed");
    assert!(session(store, "al-1").await.shares.is_empty());
    // What each viewer sees: its own, shared with it, shared with everyone.
    assert_eq!(
        page(store, 0, 10, Some("bob")).await,
        (3, ids(&["bo-1", "al-3", "al-4"]))
    );
    assert_eq!(
        page(store, 0, 10, Some("carol")).await,
        (2, ids(&["al-3", "al-4"]))
    );
    assert_eq!(
        page(store, 0, 10, Some("alice")).await,
        (2, ids(&["al-3", "al-4"]))
    );
    assert_eq!(
        page(store, 0, 10, Some(LOCAL_OWNER)).await,
        (4, ids(&["a", "n3", "al-3", "al-4"]))
    );
    assert_eq!(
        page(store, 0, 10, None).await,
        (5, ids(&["a", "n3", "bo-1", "al-3", "al-4"]))
    );
    // Pages of what bob sees: the total is his on every page.
    assert_eq!(page(store, 0, 1, Some("bob")).await, (3, ids(&["bo-1"])));
    assert_eq!(page(store, 1, 1, Some("bob")).await, (3, ids(&["al-3"])));
    assert_eq!(page(store, 2, 5, Some("bob")).await, (3, ids(&["al-4"])));
    assert_eq!(page(store, 3, 5, Some("bob")).await, (3, ids(&[])));
    assert_eq!(page(store, 0, 0, Some("bob")).await, (3, ids(&[])));
    // A page's sessions come with their shares.
    let p = store.list_page(2, 1, Some("bob")).await.expect("page");
    assert_eq!(shares(&p.sessions[0]), [(EVERYONE, Write), ("bob", Read)]);
    assert_eq!(
        store.count_owned("bob").await.expect("count"),
        1,
        "shared is not owned"
    );
    // A reused session comes with its shares.
    match store.create(of("alice", "al-6", Some("main"), 106.0)).await {
        Ok(Created::Existing(s)) => {
            assert_eq!(s.id, "al-4");
            assert_eq!(shares(&s), [(EVERYONE, Write), ("bob", Read)]);
        }
        other => panic!("alice's main is reused, got {other:?}"),
    }
    // A closed session keeps its shares (and is listed to no one) until it is pruned.
    let Ok(Created::New(_)) = store.create(of("alice", "al-5", None, 107.0)).await else {
        panic!("a new session");
    };
    assert!(share(store, "al-5", "carol", Some(Write)).await);
    assert_eq!(page(store, 0, 10, Some("carol")).await.0, 3);
    let closed = store
        .close("al-5", CloseReason::Closed, 108.0)
        .await
        .expect("close")
        .expect("open");
    assert_eq!(
        shares(&closed),
        [("carol", Write)],
        "the closed session's shares"
    );
    let s = session(store, "al-5").await;
    assert_eq!(
        (s.status, s.access_of("carol")),
        (Status::Closed, Some(Write))
    );
    assert_eq!(
        page(store, 0, 10, Some("carol")).await,
        (2, ids(&["al-3", "al-4"]))
    );
    assert_eq!(store.prune(108.0).await.expect("prune"), 2, "al-1 and al-5");
    assert!(store.get("al-5").await.expect("get").is_none());
    // A session made again with a pruned one's id starts with no shares.
    let Ok(Created::New(again)) = store.create(of("alice", "al-5", None, 109.0)).await else {
        panic!("the id is free again");
    };
    assert!(again.shares.is_empty());
    assert!(
        session(store, "al-5").await.shares.is_empty(),
        "none left behind"
    );
}

/// The first half of the reopening check, on an empty store: a named session of `olga`
/// shared with `bob` (read) and with everyone (write), another of hers not shared.
pub async fn shares_before_reopen(store: &dyn SessionStore) {
    for (id, name, now) in [("k-1", Some("main"), 1.0), ("k-2", None, 2.0)] {
        let Ok(Created::New(_)) = store.create(of("olga", id, name, now)).await else {
            panic!("{id} is new");
        };
    }
    assert!(share(store, "k-1", "bob", Some(Access::Read)).await);
    assert!(share(store, "k-1", EVERYONE, Some(Access::Write)).await);
}

/// The second half, on the store opened again: the shares, the name and what bob sees are
/// as [`shares_before_reopen`] left them.
pub async fn shares_after_reopen(store: &dyn SessionStore) {
    let s = session(store, "k-1").await;
    assert_eq!(
        shares(&s),
        [(EVERYONE, Access::Write), ("bob", Access::Read)],
        "shares survive reopening"
    );
    let named = store.get_by_name("olga", "main").await.expect("by name");
    assert_eq!(named.map(|s| s.id).as_deref(), Some("k-1"));
    assert_eq!(page(store, 0, 10, Some("bob")).await, (1, ids(&["k-1"])));
    assert_eq!(store.count_owned("olga").await.expect("count"), 2);
}
