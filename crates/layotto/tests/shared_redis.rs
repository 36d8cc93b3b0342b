//! Several sidecars, one Redis: three `layotto` processes share a redis-server.
//! - 32 clients spread over them contend for one lock for 20 s: never two holders at once.
//! - 3 x 10,000 WEAK and 3 x 10,000 STRONG ids are all distinct.
#![allow(missing_docs)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layotto_sdk::Increment;
use layotto_test_support::RedisServer;
use serde_json::json;
use support::Sidecar;

fn config(addr: &str) -> serde_json::Value {
    let md = json!({"redisHost": addr});
    json!({
        "app": {"app_id": "shared"},
        "lock": {"lock_demo": {"type": "redis", "metadata": md}},
        "sequencer": {"sequencer_demo": {"type": "redis", "metadata": md}},
    })
}

fn three_sidecars(redis: &RedisServer) -> Vec<Sidecar> {
    (0..3)
        .map(|_| Sidecar::start(config(&redis.addr())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lock_holder_at_a_time_across_three_sidecars() {
    let redis = RedisServer::start();
    let sidecars = three_sidecars(&redis);
    let mut clients = Vec::new();
    for s in &sidecars {
        clients.push(s.client().await);
    }
    let holders = Arc::new(AtomicI64::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let c = clients[i % clients.len()].clone();
        let (holders, acquisitions, violations) =
            (holders.clone(), acquisitions.clone(), violations.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("client-{i}");
            while Instant::now() < deadline {
                if c.try_lock("lock_demo", "the-one", &owner, 10)
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
                    let st = c
                        .unlock("lock_demo", "the-one", &owner)
                        .await
                        .expect("unlock");
                    assert_eq!(st, layotto_sdk::pb::unlock_response::Status::Success);
                } else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    assert_eq!(violations.load(Ordering::SeqCst), 0, "two holders at once");
    assert!(
        acquisitions.load(Ordering::SeqCst) > 100,
        "the lock changed hands only {} times",
        acquisitions.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_distinct_across_three_sidecars() {
    let redis = RedisServer::start();
    let sidecars = three_sidecars(&redis);
    let mut tasks = Vec::new();
    for s in &sidecars {
        let c = s.client().await;
        for inc in [Increment::Weak, Increment::Strong] {
            // 10,000 ids of each kind per sidecar, fetched by 4 concurrent callers.
            for _ in 0..4 {
                let c = c.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(2500);
                    for _ in 0..2500 {
                        ids.push(
                            c.get_next_id("sequencer_demo", "orders", inc)
                                .await
                                .expect("id"),
                        );
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
        // Each caller sees its own ids increase.
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "not increasing per caller"
        );
        count += ids.len();
        all.extend(ids);
    }
    assert_eq!(count, 60_000);
    assert_eq!(all.len(), 60_000, "duplicate ids across sidecars");
}
