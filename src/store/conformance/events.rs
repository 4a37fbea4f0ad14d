//! The conformance check's part about the event log: ids from 1, in order, consecutive;
//! reads after an id, by limit, with the bounds; trimming to about [`EVENT_LOG_KEEP`]
//! (one batch past it, to stay fast); and, for the stores two processes share
//! ([`events_shared`]), two handles' appends interleaving with strictly increasing ids and no
//! gaps, each handle seeing the other's events.

use crate::store::{EVENT_LOG_KEEP, EventPage, SessionStore, StoredEvent};

fn bodies(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"type":"test","tag":"{tag}","i":{i}}}"#))
        .collect()
}

async fn append(store: &dyn SessionStore, bodies: &[String]) -> Vec<u64> {
    store.append_events(bodies).await.expect("append events")
}

async fn after(store: &dyn SessionStore, after: u64, limit: usize) -> EventPage {
    store
        .events_after(after, limit)
        .await
        .expect("events after")
}

fn ids(page: &EventPage) -> Vec<u64> {
    page.events.iter().map(|e| e.id).collect()
}

/// The log of a fresh store: empty, then appended to, read and trimmed.
pub(super) async fn check(store: &dyn SessionStore) {
    assert_eq!(
        after(store, 0, 10).await,
        EventPage::default(),
        "a fresh log is empty: no events, no oldest, newest 0"
    );
    assert!(append(store, &[]).await.is_empty(), "nothing to append");
    assert_eq!(
        after(store, 0, 10).await.newest,
        0,
        "an empty append assigns nothing"
    );

    let first = bodies("one", 3);
    assert_eq!(
        append(store, &first).await,
        [1, 2, 3],
        "ids from 1, in order"
    );
    let second = bodies("two", 2);
    assert_eq!(append(store, &second).await, [4, 5], "ids go on");

    let all = after(store, 0, 10).await;
    let expected: Vec<StoredEvent> = first
        .iter()
        .chain(&second)
        .zip(1..)
        .map(|(body, id)| StoredEvent {
            id,
            body: body.clone(),
        })
        .collect();
    assert_eq!(all.events, expected, "every body as given, oldest first");
    assert_eq!((all.oldest, all.newest), (Some(1), 5));

    let page = after(store, 2, 2).await;
    assert_eq!(ids(&page), [3, 4], "after 2, at most 2");
    assert_eq!(
        (page.oldest, page.newest),
        (Some(1), 5),
        "the bounds on every page"
    );
    let page = after(store, 4, 10).await;
    assert_eq!(ids(&page), [5]);
    let page = after(store, 5, 10).await;
    assert!(page.events.is_empty(), "nothing after the newest");
    assert_eq!((page.oldest, page.newest), (Some(1), 5));
    let page = after(store, 1, 0).await;
    assert!(page.events.is_empty(), "limit 0: the bounds only");
    assert_eq!((page.oldest, page.newest), (Some(1), 5));
    let page = after(store, 99, 10).await;
    assert!(page.events.is_empty(), "after an id not yet assigned");
    assert_eq!(page.newest, 5);
    assert!(after(store, u64::MAX, 10).await.events.is_empty());

    // Trimming: one batch past the keep (one step, so the check stays fast).
    let keep = usize::try_from(EVENT_LOG_KEEP).expect("fits");
    let many = bodies("many", keep + 1000);
    let got = append(store, &many).await;
    let newest = 5 + EVENT_LOG_KEEP + 1000;
    assert_eq!(got.len(), many.len());
    assert_eq!(got.first().copied(), Some(6));
    assert_eq!(got.last().copied(), Some(newest));
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "consecutive ids");
    let page = after(store, 0, 5).await;
    let oldest = page.oldest.expect("events are kept");
    assert!(
        oldest > 1,
        "the oldest events were dropped (oldest {oldest})"
    );
    let kept = newest - oldest + 1;
    assert!(
        (EVENT_LOG_KEEP..EVENT_LOG_KEEP + 256).contains(&kept),
        "about the newest {EVENT_LOG_KEEP} are kept, not {kept}"
    );
    assert_eq!(page.newest, newest, "the newest survives trimming");
    assert_eq!(
        ids(&page),
        (oldest..oldest + 5).collect::<Vec<_>>(),
        "events after 0 start at the oldest kept"
    );
    assert_eq!(
        page.events[0].body,
        many[usize::try_from(oldest - 6).expect("fits")]
    );
    // A reader that lost events can tell: its `after + 1` is below the oldest.
    let page = after(store, 2, 1).await;
    assert_eq!(ids(&page), [oldest]);
    assert!(3 < page.oldest.expect("kept"));
    let tail = after(store, newest - 2, 10).await;
    assert_eq!(ids(&tail), [newest - 1, newest]);
    assert_eq!(
        append(store, &bodies("after", 1)).await,
        [newest + 1],
        "ids go on after trimming"
    );
}

/// Two handles on one store (`a` and `b`, as two processes would open it), its log empty:
/// appends alternating, then at once, get strictly increasing ids with no gaps, and each
/// handle reads every event of both.
pub async fn events_shared(a: &dyn SessionStore, b: &dyn SessionStore) {
    // Alternating: each handle's append comes right after the other's.
    let mut expected = Vec::new();
    for i in 0..6 {
        let (store, tag) = if i % 2 == 0 { (a, "a") } else { (b, "b") };
        let batch = bodies(&format!("{tag}{i}"), 1 + i % 3);
        let got = append(store, &batch).await;
        let next = expected.len() as u64 + 1;
        assert_eq!(
            got,
            (next..next + batch.len() as u64).collect::<Vec<_>>(),
            "ids go on from the other handle's"
        );
        expected.extend(got.into_iter().zip(batch));
    }
    // At once: both append in a loop, concurrently.
    let run = |store: &'static str| async move {
        let handle = if store == "a" { a } else { b };
        let mut mine = Vec::new();
        for i in 0..30 {
            let batch = bodies(&format!("{store}-par-{i}"), 1 + i % 3);
            let got = append(handle, &batch).await;
            assert!(
                got.windows(2).all(|w| w[1] == w[0] + 1),
                "one append's ids are consecutive: {got:?}"
            );
            mine.extend(got.into_iter().zip(batch));
        }
        mine
    };
    let (from_a, from_b) = tokio::join!(run("a"), run("b"));
    for (name, mine) in [("a", &from_a), ("b", &from_b)] {
        assert!(
            mine.windows(2).all(|w| w[1].0 > w[0].0),
            "{name}'s ids increase: {:?}",
            mine.iter().map(|e| e.0).collect::<Vec<_>>()
        );
    }
    expected.extend(from_a);
    expected.extend(from_b);
    expected.sort_by_key(|e| e.0);
    let n = expected.len() as u64;
    assert_eq!(
        expected.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "no gaps, no id twice"
    );
    let expected: Vec<StoredEvent> = expected
        .into_iter()
        .map(|(id, body)| StoredEvent { id, body })
        .collect();
    for (name, store) in [("a", a), ("b", b)] {
        let page = after(store, 0, 1000).await;
        assert_eq!(page.events, expected, "{name} reads every event of both");
        assert_eq!((page.oldest, page.newest), (Some(1), n));
        let page = after(store, n - 3, 2).await;
        assert_eq!(ids(&page), [n - 2, n - 1]);
    }
}
