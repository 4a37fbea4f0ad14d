use super::*;

#[tokio::test]
async fn the_memory_store_keeps_every_promise() {
    crate::store::conformance::check(&MemoryStore::new(3)).await;
}
