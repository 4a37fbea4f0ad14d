//! Resource subscriptions over the 2026-07-28 path (`subscriptions/listen`), in process: a
//! command in the session sends `notifications/resources/updated` for its resources, and
//! only for the ones asked for.

mod support;

use std::time::Duration;

use blender_session_mcp::session::Registry;
use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use serde_json::json;
use support::{Client, FakeAddon, call, config, ok};

async fn connect(reg: Registry) -> Client {
    let client_io = support::serve_in_process(reg);
    // The 2026-07-28 lifecycle (server/discover, no initialize): subscriptions/listen.
    ().serve_with_lifecycle(
        client_io,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("client discovers")
}

#[tokio::test]
async fn listen_delivers_updates_of_the_subscribed_session_resources() {
    let fake = FakeAddon::start().await;
    let client = connect(Registry::new(config(fake.target()))).await;
    let r = call(&client, "get_session_info", json!({})).await;
    let id = ok(&r).structured_content.clone().expect("info")["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let uri = format!("blender://sessions/{id}/history");
    let filter = SubscriptionFilter::builder()
        .resource_subscription(uri.clone())
        .resource_subscription("blender://nowhere")
        .build();
    let mut sub = client.peer().listen(filter).await.expect("listen");
    assert_eq!(
        sub.acknowledged().resource_subscriptions,
        Some(vec![uri.clone()]),
        "only this server's resources are accepted"
    );
    ok(&call(&client, "execute_blender_code", json!({"code": "print(1)"})).await);
    let note = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an update within 5 s")
        .expect("the subscription stays open")
        .expect("a notification");
    match note {
        ServerNotification::ResourceUpdatedNotification(n) => assert_eq!(n.params.uri, uri),
        other => panic!("unexpected notification {other:?}"),
    }
}
