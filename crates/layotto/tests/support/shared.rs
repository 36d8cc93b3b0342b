//! What several sidecars sharing one backend must guarantee, through their gRPC APIs: never two
//! lock holders, every sequencer id distinct and increasing per caller.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layotto_sdk::{Increment, pb};

/// Eight callers spread over `clients` take and release lock `store`'s `the-one` for 8 s;
/// asserts no two held it at once and it changed hands more than `min_handovers` times.
pub async fn one_lock_holder(clients: &[layotto_sdk::Client], store: &str, min_handovers: usize) {
    let holders = Arc::new(AtomicI64::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = clients[i % clients.len()].clone();
        let store = store.to_owned();
        let (holders, acquisitions, violations) =
            (holders.clone(), acquisitions.clone(), violations.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("client-{i}");
            while Instant::now() < deadline {
                if c.try_lock(&store, "the-one", &owner, 10)
                    .await
                    .expect("try_lock")
                {
                    if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    acquisitions.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    if holders.fetch_sub(1, Ordering::SeqCst) != 1 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    let st = c.unlock(&store, "the-one", &owner).await.expect("unlock");
                    assert_eq!(st, pb::unlock_response::Status::Success);
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    assert_eq!(violations.load(Ordering::SeqCst), 0, "two holders at once");
    let n = acquisitions.load(Ordering::SeqCst);
    assert!(n > min_handovers, "the lock changed hands only {n} times");
}

/// Two WEAK and two STRONG callers per client each take `per_caller` ids of sequencer
/// `store`'s key `orders`; asserts every id is distinct and each caller's ids increase.
pub async fn distinct_ids(clients: &[layotto_sdk::Client], store: &str, per_caller: usize) {
    let mut tasks = Vec::new();
    for c in clients {
        for inc in [Increment::Weak, Increment::Strong] {
            for _ in 0..2 {
                let (c, store) = (c.clone(), store.to_owned());
                tasks.push(tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(per_caller);
                    for _ in 0..per_caller {
                        ids.push(c.get_next_id(&store, "orders", inc).await.expect("id"));
                    }
                    ids
                }));
            }
        }
    }
    let mut all = HashSet::new();
    let mut count = 0;
    for t in tasks {
        let ids = t.await.expect("task");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "not increasing per caller"
        );
        count += ids.len();
        all.extend(ids);
    }
    assert_eq!(count, clients.len() * 4 * per_caller);
    assert_eq!(all.len(), count, "duplicate ids across sidecars");
}
