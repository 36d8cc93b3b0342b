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

/// An input binding that ticks every 100 ms and never stops, whatever happens to its reader.
struct RunawayTimer;

impl Component for RunawayTimer {}

#[async_trait]
impl layotto_core::binding::OutputBinding for RunawayTimer {
    fn operations(&self) -> Vec<String> {
        Vec::new()
    }
    async fn invoke(
        &self,
        _req: layotto_core::binding::BindingRequest,
    ) -> Result<layotto_core::binding::BindingResponse> {
        Err(layotto_core::Error::invalid("no operations"))
    }
    fn input(self: Arc<Self>) -> Option<Arc<dyn layotto_core::binding::InputBinding>> {
        Some(self)
    }
}

#[async_trait]
impl layotto_core::binding::InputBinding for RunawayTimer {
    async fn read(
        &self,
        handler: layotto_core::binding::InputHandler,
    ) -> Result<layotto_core::pubsub::Subscription> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = handler(layotto_core::binding::InputEvent::default()).await;
            }
        });
        Ok(layotto_core::pubsub::Subscription::new(|| {}))
    }
}

#[tokio::test]
#[should_panic(expected = "input_binding::stops_when_dropped")]
async fn runaway_input_binding_fails() {
    let source = layotto_conformance::input_binding::InputSource {
        produce: Box::new(|_| Box::pin(async {})),
        carries_data: false,
        redelivers: false,
        quiet_period: Duration::from_millis(500),
    };
    layotto_conformance::input_binding::stops_when_dropped(Arc::new(RunawayTimer), &source).await;
}
