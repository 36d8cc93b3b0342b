//! Suite of the [`LockStore`] contract: exclusivity, no re-entry, owner-checked unlock and
//! keep-alive, lease expiry and a race of many contenders.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use layotto_core::Feature;
use layotto_core::lock::{LockStatus, LockStore};

use crate::run::SuiteRun;
use crate::unique;

/// The features this suite has cases for: none (Dapr defines no lock features); a
/// component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// Runs every case of this suite, each against a fresh component from `factory`.
///
/// # Panics
/// When a case fails (its message, then the run's summary), or when the component claims a
/// feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn LockStore>>,
{
    let mut run = SuiteRun::start("lock", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("lock::exclusive", async {
        exclusive(&*f().await).await;
    })
    .await;
    run.case("lock::not_reentrant", async {
        not_reentrant(&*f().await).await;
    })
    .await;
    run.case("lock::unlock_by_other_owner", async {
        unlock_by_other_owner(&*f().await).await;
    })
    .await;
    run.case("lock::unlock_missing", async {
        unlock_missing(&*f().await).await;
    })
    .await;
    run.case("lock::keep_alive_by_other_owner", async {
        keep_alive_by_other_owner(&*f().await).await;
    })
    .await;
    run.case("lock::concurrent_try_lock", async {
        concurrent_try_lock(&*f().await).await;
    })
    .await;
    run.case("lock::expiry", async {
        expiry(&*f().await).await;
    })
    .await;
    run.case("lock::keep_alive_extends", async {
        keep_alive_extends(&*f().await).await;
    })
    .await;
    run.finish();
}

const LEASE: Duration = Duration::from_secs(10);

async fn try_lock(
    store: &dyn LockStore,
    res: &str,
    owner: &str,
    lease: Duration,
    case: &str,
) -> bool {
    store
        .try_lock(res, owner, lease)
        .await
        .unwrap_or_else(|e| panic!("{case}: try_lock '{res}' by '{owner}' failed: {e}"))
}

async fn unlock(store: &dyn LockStore, res: &str, owner: &str, case: &str) -> LockStatus {
    store
        .unlock(res, owner)
        .await
        .unwrap_or_else(|e| panic!("{case}: unlock '{res}' by '{owner}' failed: {e}"))
}

/// While one owner holds a lock, another owner's `try_lock` fails; after unlock it succeeds.
pub async fn exclusive(store: &dyn LockStore) {
    let case = "lock::exclusive";
    let (r, a, b) = (unique("lock-excl"), unique("owner-a"), unique("owner-b"));
    assert!(
        try_lock(store, &r, &a, LEASE, case).await,
        "{case}: first lock"
    );
    assert!(
        !try_lock(store, &r, &b, LEASE, case).await,
        "{case}: second owner got a held lock"
    );
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::Success,
        "{case}: unlock"
    );
    assert!(
        try_lock(store, &r, &b, LEASE, case).await,
        "{case}: lock after unlock"
    );
    assert_eq!(
        unlock(store, &r, &b, case).await,
        LockStatus::Success,
        "{case}: cleanup"
    );
}

/// The holder's own second `try_lock` fails too (not re-entrant).
pub async fn not_reentrant(store: &dyn LockStore) {
    let case = "lock::not_reentrant";
    let (r, a) = (unique("lock-reentry"), unique("owner-a"));
    assert!(
        try_lock(store, &r, &a, LEASE, case).await,
        "{case}: first lock"
    );
    assert!(
        !try_lock(store, &r, &a, LEASE, case).await,
        "{case}: lock is re-entrant"
    );
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::Success,
        "{case}: unlock"
    );
}

/// Unlock by a non-owner is `LockBelongToOthers` and leaves the lock held.
pub async fn unlock_by_other_owner(store: &dyn LockStore) {
    let case = "lock::unlock_by_other_owner";
    let (r, a, b) = (
        unique("lock-wrong-owner"),
        unique("owner-a"),
        unique("owner-b"),
    );
    assert!(
        try_lock(store, &r, &a, LEASE, case).await,
        "{case}: first lock"
    );
    assert_eq!(
        unlock(store, &r, &b, case).await,
        LockStatus::LockBelongToOthers,
        "{case}: unlock by another owner"
    );
    assert!(
        !try_lock(store, &r, &b, LEASE, case).await,
        "{case}: lock was released by a non-owner"
    );
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::Success,
        "{case}: owner unlock"
    );
}

/// Unlock of a lock nobody holds is `LockUnexist`, also after a release.
pub async fn unlock_missing(store: &dyn LockStore) {
    let case = "lock::unlock_missing";
    let (r, a) = (unique("lock-missing"), unique("owner-a"));
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::LockUnexist,
        "{case}: never taken"
    );
    assert!(try_lock(store, &r, &a, LEASE, case).await, "{case}: lock");
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::Success,
        "{case}: unlock"
    );
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::LockUnexist,
        "{case}: released"
    );
}

/// A 1 s lease expires: after 1.5 s another owner takes the lock.
pub async fn expiry(store: &dyn LockStore) {
    let case = "lock::expiry";
    let (r, a, b) = (unique("lock-expiry"), unique("owner-a"), unique("owner-b"));
    assert!(
        try_lock(store, &r, &a, Duration::from_secs(1), case).await,
        "{case}: lock"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        try_lock(store, &r, &b, LEASE, case).await,
        "{case}: lock not free after its lease"
    );
    assert_eq!(
        unlock(store, &r, &b, case).await,
        LockStatus::Success,
        "{case}: cleanup"
    );
}

/// The owner's keep-alive extends the lease beyond the original 1 s.
pub async fn keep_alive_extends(store: &dyn LockStore) {
    let case = "lock::keep_alive_extends";
    let (r, a, b) = (
        unique("lock-keepalive"),
        unique("owner-a"),
        unique("owner-b"),
    );
    assert!(
        try_lock(store, &r, &a, Duration::from_secs(1), case).await,
        "{case}: lock"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = store
        .keep_alive(&r, &a, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{case}: keep_alive failed: {e}"));
    assert_eq!(st, LockStatus::Success, "{case}: keep_alive by the owner");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !try_lock(store, &r, &b, LEASE, case).await,
        "{case}: lock expired at its original lease despite keep_alive"
    );
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::Success,
        "{case}: owner unlock"
    );
}

/// Keep-alive by a non-owner is `LockBelongToOthers`; of a free lock `LockUnexist`.
pub async fn keep_alive_by_other_owner(store: &dyn LockStore) {
    let case = "lock::keep_alive_by_other_owner";
    let (r, a, b) = (
        unique("lock-keepalive-other"),
        unique("owner-a"),
        unique("owner-b"),
    );
    let ka = |owner: String| {
        let r = r.clone();
        async move {
            store
                .keep_alive(&r, &owner, LEASE)
                .await
                .unwrap_or_else(|e| panic!("{case}: keep_alive failed: {e}"))
        }
    };
    assert_eq!(
        ka(a.clone()).await,
        LockStatus::LockUnexist,
        "{case}: free lock"
    );
    assert!(try_lock(store, &r, &a, LEASE, case).await, "{case}: lock");
    assert_eq!(
        ka(b.clone()).await,
        LockStatus::LockBelongToOthers,
        "{case}: non-owner"
    );
    assert_eq!(
        unlock(store, &r, &a, case).await,
        LockStatus::Success,
        "{case}: owner unlock"
    );
}

/// 16 owners race for one lock: exactly one wins.
pub async fn concurrent_try_lock(store: &dyn LockStore) {
    let case = "lock::concurrent_try_lock";
    let r = unique("lock-race");
    let owners: Vec<String> = (0..16).map(|i| unique(&format!("owner{i}"))).collect();
    let results =
        futures::future::join_all(owners.iter().map(|o| try_lock(store, &r, o, LEASE, case))).await;
    let winners: Vec<&String> = owners
        .iter()
        .zip(&results)
        .filter_map(|(o, won)| won.then_some(o))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{case}: {} of 16 contenders got the lock",
        winners.len()
    );
    assert_eq!(
        unlock(store, &r, winners[0], case).await,
        LockStatus::Success,
        "{case}: cleanup"
    );
}
