//! Every conformance suite against the in-memory components.

use std::collections::HashMap;
use std::sync::Arc;

use layotto_components_memory::{
    MemoryConfigStore, MemoryLock, MemoryPubSub, MemorySequencer, MemoryStateStore,
};
use layotto_core::configuration::ConfigStore;
use layotto_core::lock::LockStore;
use layotto_core::pubsub::PubSub;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state() {
    layotto_conformance::state::run_all(|| async {
        Arc::new(MemoryStateStore::new("conformance")) as Arc<dyn StateStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock() {
    layotto_conformance::lock::run_all(|| async {
        Arc::new(MemoryLock::new("conformance")) as Arc<dyn LockStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer() {
    layotto_conformance::sequencer::run_all(|| async {
        Arc::new(MemorySequencer::new("conformance", HashMap::new())) as Arc<dyn Sequencer>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_bigger_than() {
    layotto_conformance::sequencer::bigger_than(|key, floor| async move {
        let floors = HashMap::from([(key, floor)]);
        Arc::new(MemorySequencer::new("conformance", floors)) as Arc<dyn Sequencer>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration() {
    layotto_conformance::configuration::run_all(|| async {
        Arc::new(MemoryConfigStore::new("conformance", "default", "default"))
            as Arc<dyn ConfigStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub() {
    layotto_conformance::pubsub::run_all(|| async {
        Arc::new(MemoryPubSub::new("conformance")) as Arc<dyn PubSub>
    })
    .await;
}

/// One shared component per building block: the suites must not trip over each other's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_backends() {
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::new("shared"));
    let lock: Arc<dyn LockStore> = Arc::new(MemoryLock::new("shared"));
    let config: Arc<dyn ConfigStore> = Arc::new(MemoryConfigStore::new("shared", "d", "d"));
    tokio::join!(
        layotto_conformance::state::run_all(|| {
            let s = Arc::clone(&state);
            async move { s }
        }),
        layotto_conformance::lock::run_all(|| {
            let l = Arc::clone(&lock);
            async move { l }
        }),
        layotto_conformance::configuration::run_all(|| {
            let c = Arc::clone(&config);
            async move { c }
        }),
    );
}
