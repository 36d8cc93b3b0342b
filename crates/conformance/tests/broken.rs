//! The suites catch broken components: each deliberately wrong component must fail its case.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_components_memory::MemoryStateStore;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::sequencer::{Segment, Sequencer};
use layotto_core::state::{DeleteRequest, SetRequest, StateItem, StateStore, TransactionOp};
use layotto_core::{Component, Metadata, Result};

/// Hands out the same id every time.
struct StuckSequencer;

impl Component for StuckSequencer {}

#[async_trait]
impl Sequencer for StuckSequencer {
    async fn get_next_id(&self, _key: &str) -> Result<i64> {
        Ok(1)
    }
    async fn get_segment(&self, _key: &str, _size: u32) -> Result<Option<Segment>> {
        Ok(None)
    }
}

/// Grants every lock to everyone.
struct OpenLock;

impl Component for OpenLock {}

#[async_trait]
impl LockStore for OpenLock {
    async fn try_lock(&self, _r: &str, _o: &str, _l: Duration) -> Result<bool> {
        Ok(true)
    }
    async fn unlock(&self, _r: &str, _o: &str) -> Result<LockStatus> {
        Ok(LockStatus::Success)
    }
    async fn keep_alive(&self, _r: &str, _o: &str, _l: Duration) -> Result<LockStatus> {
        Ok(LockStatus::Success)
    }
}

/// The in-memory store with ETags dropped from every write.
struct EtagBlind(MemoryStateStore);

impl Component for EtagBlind {}

#[async_trait]
impl StateStore for EtagBlind {
    async fn get(&self, key: &str, metadata: &Metadata) -> Result<Option<StateItem>> {
        self.0.get(key, metadata).await
    }
    async fn set(&self, mut req: SetRequest) -> Result<()> {
        req.etag = None;
        self.0.set(req).await
    }
    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        self.0.delete(req).await
    }
    async fn transact(&self, ops: Vec<TransactionOp>, metadata: &Metadata) -> Result<()> {
        self.0.transact(ops, metadata).await
    }
}

#[tokio::test]
#[should_panic(expected = "sequencer::increasing_per_key")]
async fn stuck_sequencer_fails() {
    layotto_conformance::sequencer::increasing_per_key(&StuckSequencer).await;
}

#[tokio::test]
#[should_panic(expected = "lock::exclusive")]
async fn open_lock_fails() {
    layotto_conformance::lock::exclusive(&OpenLock).await;
}

#[tokio::test]
#[should_panic(expected = "state::stale_etag_on_update")]
async fn etag_blind_state_fails() {
    let store: Arc<dyn StateStore> = Arc::new(EtagBlind(MemoryStateStore::new("blind")));
    layotto_conformance::state::stale_etag_on_update(&*store).await;
}
