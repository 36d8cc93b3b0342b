//! Feature claims are proven: a component claiming a feature whose cases it does not pass, or
//! a feature the suite has no cases for, fails its suite; a component claiming nothing is
//! not tested for what it does not claim.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_components_memory::{MemoryLock, MemoryPubSub, MemoryStateStore};
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest, Subscription};
use layotto_core::state::{
    DeleteRequest, SetRequest, StateItem, StateStore, TTL_METADATA_KEY, TransactionOp,
};
use layotto_core::{Component, Error, Feature, Metadata, Result};

/// The in-memory state store with chosen claims; optionally ignoring `ttlInSeconds` and
/// optionally without transactions.
struct Claiming {
    inner: MemoryStateStore,
    claims: &'static [Feature],
    ignore_ttl: bool,
    transactions: bool,
}

impl Claiming {
    fn new(claims: &'static [Feature]) -> Self {
        Self {
            inner: MemoryStateStore::new("claims"),
            claims,
            ignore_ttl: false,
            transactions: true,
        }
    }
    fn strip(&self, mut req: SetRequest) -> SetRequest {
        if self.ignore_ttl {
            req.metadata.remove(TTL_METADATA_KEY);
        }
        req
    }
}

#[async_trait]
impl Component for Claiming {
    fn features(&self) -> &'static [Feature] {
        self.claims
    }
}

#[async_trait]
impl StateStore for Claiming {
    async fn get(&self, key: &str, metadata: &Metadata) -> Result<Option<StateItem>> {
        self.inner.get(key, metadata).await
    }
    async fn set(&self, req: SetRequest) -> Result<()> {
        self.inner.set(self.strip(req)).await
    }
    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        self.inner.delete(req).await
    }
    async fn transact(&self, ops: Vec<TransactionOp>, metadata: &Metadata) -> Result<()> {
        if !self.transactions {
            return Err(Error::unsupported("no transactions here"));
        }
        let ops = ops
            .into_iter()
            .map(|op| match op {
                TransactionOp::Upsert(r) => TransactionOp::Upsert(self.strip(r)),
                d => d,
            })
            .collect();
        self.inner.transact(ops, metadata).await
    }
}

/// Runs `suite` to its end and returns its panic message, failing the test if it passed.
async fn failure_of(suite: impl Future<Output = ()> + Send + 'static) -> String {
    let err = tokio::spawn(suite)
        .await
        .expect_err("the suite passed, but it must fail");
    let payload = err.into_panic();
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        String::new()
    }
}

const ALL: &[Feature] = &[Feature::Etag, Feature::Transactional, Feature::Ttl];

/// Claims TTL but ignores `ttlInSeconds`: the suite fails in a TTL case, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_claim_without_ttl_fails() {
    let msg = failure_of(layotto_conformance::state::run_all(|| async {
        let mut s = Claiming::new(ALL);
        s.ignore_ttl = true;
        Arc::new(s) as Arc<dyn StateStore>
    }))
    .await;
    assert!(msg.contains("FAILED state::ttl_"), "{msg}");
    assert!(msg.contains("claimed [ETAG, TRANSACTIONAL, TTL]"), "{msg}");
}

/// Claims DELETE_WITH_PREFIX, for which the state suite has no cases: the suite fails naming
/// it.
#[tokio::test]
async fn claim_without_cases_fails() {
    let msg = failure_of(layotto_conformance::state::run_all(|| async {
        Arc::new(Claiming::new(&[Feature::Etag, Feature::DeleteWithPrefix])) as Arc<dyn StateStore>
    }))
    .await;
    assert!(
        msg.contains("claims DELETE_WITH_PREFIX but the suite has no cases for it"),
        "{msg}"
    );
}

/// Claims QUERY_API without answering queries: the query case fails.
#[tokio::test]
async fn query_claim_without_queries_fails() {
    let msg = failure_of(layotto_conformance::state::run_all(|| async {
        const CLAIMS: &[Feature] = &[
            Feature::Etag,
            Feature::Transactional,
            Feature::Ttl,
            Feature::QueryApi,
        ];
        Arc::new(Claiming::new(CLAIMS)) as Arc<dyn StateStore>
    }))
    .await;
    assert!(msg.contains("FAILED state::query"), "{msg}");
}

/// Implements transactions without claiming TRANSACTIONAL: the suite fails (the runtime
/// would refuse transactions the store can do, or the claim is missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_transactions_fail() {
    let msg = failure_of(layotto_conformance::state::run_all(|| async {
        Arc::new(Claiming::new(&[Feature::Etag, Feature::Ttl])) as Arc<dyn StateStore>
    }))
    .await;
    assert!(
        msg.contains("FAILED state::transaction_unsupported"),
        "{msg}"
    );
}

/// Claims nothing, ignores `ttlInSeconds` and has no transactions: only the base cases run,
/// so the suite passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_features_are_skipped() {
    layotto_conformance::state::run_all(|| async {
        let mut s = Claiming::new(&[]);
        s.ignore_ttl = true;
        s.transactions = false;
        Arc::new(s) as Arc<dyn StateStore>
    })
    .await;
}

/// The in-memory pub/sub claiming bulk pub/sub, which the suite has no cases for.
struct BulkClaim(MemoryPubSub);

#[async_trait]
impl Component for BulkClaim {
    fn features(&self) -> &'static [Feature] {
        &[Feature::BulkPubSub]
    }
}

#[async_trait]
impl PubSub for BulkClaim {
    async fn publish(&self, msg: Message) -> Result<()> {
        self.0.publish(msg).await
    }
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        self.0.subscribe(req, handler).await
    }
}

#[tokio::test]
async fn pubsub_claim_without_cases_fails() {
    let msg = failure_of(layotto_conformance::pubsub::run_all(|| async {
        Arc::new(BulkClaim(MemoryPubSub::new("claims"))) as Arc<dyn PubSub>
    }))
    .await;
    assert!(
        msg.contains("claims BULK_PUBSUB but the suite has no cases for it"),
        "{msg}"
    );
}

/// The in-memory lock claiming a state feature: no lock feature exists, so any claim fails.
struct TtlLock(MemoryLock);

#[async_trait]
impl Component for TtlLock {
    fn features(&self) -> &'static [Feature] {
        &[Feature::Ttl]
    }
}

#[async_trait]
impl LockStore for TtlLock {
    async fn try_lock(&self, r: &str, o: &str, l: Duration) -> Result<bool> {
        self.0.try_lock(r, o, l).await
    }
    async fn unlock(&self, r: &str, o: &str) -> Result<LockStatus> {
        self.0.unlock(r, o).await
    }
    async fn keep_alive(&self, r: &str, o: &str, l: Duration) -> Result<LockStatus> {
        self.0.keep_alive(r, o, l).await
    }
}

#[tokio::test]
async fn lock_claim_fails() {
    let msg = failure_of(layotto_conformance::lock::run_all(|| async {
        Arc::new(TtlLock(MemoryLock::new("claims"))) as Arc<dyn LockStore>
    }))
    .await;
    assert!(
        msg.contains("claims TTL but the suite has no cases for it"),
        "{msg}"
    );
}
