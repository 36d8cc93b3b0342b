//! The Redis components on a real Redis Cluster (`redisType: cluster`): three masters with one
//! replica each, started once for the whole file. The state and pub/sub conformance suites, a
//! refused cross-slot transaction, the components that refuse a cluster, and a master killed
//! while writes flow: writes acknowledged before the fail-over are counted when lost, and with
//! `waitForReplicas: 1` none may be.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_components_redis::{RedisPubSub, RedisStateStore};
use layotto_conformance::unique;
use layotto_core::pubsub::PubSub;
use layotto_core::state::{SetRequest, StateStore, TransactionOp};
use layotto_core::{Component, ComponentSpec, ErrorKind, Kind, Metadata, Registries};
use layotto_test_support::RedisCluster;
use tokio::sync::Mutex;

fn spec(cluster: &RedisCluster, type_: &str) -> ComponentSpec {
    ComponentSpec::new("redis-cluster-test", type_)
        .with("redisHost", cluster.hosts())
        .with("redisType", "cluster")
        .with("dialTimeout", "1s")
        .with("readTimeout", "1s")
        .with("maxRetries", "2")
}

async fn state_store(cluster: &RedisCluster, extra: &[(&str, &str)]) -> Arc<dyn StateStore> {
    let mut s = spec(cluster, "state.redis");
    for (k, v) in extra {
        s = s.with(*k, *v);
    }
    let st = RedisStateStore::from_spec(&s).expect("valid spec");
    st.init().await.expect("init state.redis on the cluster");
    Arc::new(st)
}

async fn pubsub(cluster: &RedisCluster) -> Arc<dyn PubSub> {
    let s = spec(cluster, "pubsub.redis")
        .with("processingTimeout", "1s")
        .with("redeliverInterval", "500ms");
    let p = RedisPubSub::from_spec(&s).expect("valid spec");
    p.init().await.expect("init pubsub.redis on the cluster");
    Arc::new(p)
}

fn set_req(key: &str, value: String) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: Bytes::from(value),
        ..Default::default()
    }
}

/// Everything runs in one test, in order, because the fail-over cases kill masters of the
/// one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster() {
    let mut cluster = RedisCluster::start();
    layotto_conformance::state::run_all(|| state_store(&cluster, &[])).await;
    layotto_conformance::pubsub::run_all(|| pubsub(&cluster)).await;
    cross_slot_transaction_is_refused(&cluster).await;
    refused_by_the_components_that_cannot_use_it(&cluster);
    more_replicas_than_there_are(&cluster).await;
    component_ttl_is_the_default(&cluster).await;
    // The lost count without WAIT is reported, not asserted: replication on loopback is
    // usually quicker than the kill.
    let lost = failover(&mut cluster, &[]).await;
    eprintln!("redis cluster fail-over without waitForReplicas: {lost} acknowledged writes lost");
    let lost = failover(&mut cluster, &[("waitForReplicas", "1")]).await;
    eprintln!("redis cluster fail-over with waitForReplicas 1: {lost} acknowledged writes lost");
    assert_eq!(
        lost, 0,
        "waitForReplicas 1 acknowledged writes that were lost"
    );
}

/// Keys in different hash slots cannot change in one atomic script: the transaction is
/// refused naming both keys and changes nothing; with a common hash tag it applies.
async fn cross_slot_transaction_is_refused(cluster: &RedisCluster) {
    let store = state_store(cluster, &[]).await;
    let (a, b) = (unique("tx-slot-a"), unique("tx-slot-b"));
    let ops = |a: &str, b: &str| {
        vec![
            TransactionOp::Upsert(set_req(a, "1".into())),
            TransactionOp::Upsert(set_req(b, "2".into())),
        ]
    };
    let e = store
        .transact(ops(&a, &b), &Metadata::new())
        .await
        .expect_err("keys in two slots");
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.message.contains("hash tag") && e.message.contains(&a),
        "{e}"
    );
    for k in [&a, &b] {
        assert!(store.get(k, &Metadata::new()).await.expect("get").is_none());
    }
    let tag = unique("tag");
    let (a, b) = (format!("a-{{{tag}}}"), format!("b-{{{tag}}}"));
    store
        .transact(ops(&a, &b), &Metadata::new())
        .await
        .expect("one hash slot");
    let items = store
        .bulk_get(&[a.clone(), b.clone()], &Metadata::new())
        .await
        .expect("bulk get");
    let data: Vec<_> = items
        .into_iter()
        .map(|i| i.item.expect("no error").expect("present").data)
        .collect();
    assert_eq!(data, [Bytes::from("1"), Bytes::from("2")]);
}

/// `waitForReplicas` above the one replica each master has: the write is applied on the
/// master but not acknowledged (unavailable, naming how many replicas confirmed), for a save
/// and for a publish. WAIT answers after three quarters of `readTimeout`; the rest must carry
/// its reply back, which a loaded CI machine once failed to do within 75 ms of a 300 ms
/// timeout, so the timeout here is 2 s.
async fn more_replicas_than_there_are(cluster: &RedisCluster) {
    let store = state_store(cluster, &[("waitForReplicas", "2"), ("readTimeout", "2s")]).await;
    let k = unique("wait-2");
    let e = store
        .set(set_req(&k, "v".into()))
        .await
        .expect_err("only one replica");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("reached 1 of the 2 replicas"), "{e}");
    let p = RedisPubSub::from_spec(
        &spec(cluster, "pubsub.redis")
            .with("waitForReplicas", "2")
            .with("readTimeout", "2s"),
    )
    .expect("spec");
    p.init().await.expect("init");
    let e = p
        .publish(layotto_core::pubsub::Message {
            topic: unique("wait-2-topic"),
            data: Bytes::from_static(b"x"),
            metadata: Metadata::new(),
        })
        .await
        .expect_err("only one replica");
    assert!(e.message.contains("reached 1 of the 2 replicas"), "{e}");
}

/// The component's `ttlInSeconds` (Dapr's default time to live) applies to saves that name
/// none; a save's own `ttlInSeconds: -1` keeps the key for good.
async fn component_ttl_is_the_default(cluster: &RedisCluster) {
    let store = state_store(cluster, &[("ttlInSeconds", "100")]).await;
    let (k, forever) = (unique("default-ttl"), unique("no-ttl"));
    store.set(set_req(&k, "v".into())).await.expect("set");
    let mut req = set_req(&forever, "v".into());
    req.metadata.insert("ttlInSeconds".into(), "-1".into());
    store.set(req).await.expect("set");
    let md = |k: String| {
        let store = Arc::clone(&store);
        async move {
            store
                .get(&k, &Metadata::new())
                .await
                .expect("get")
                .expect("present")
                .metadata
        }
    };
    assert!(
        md(k).await.contains_key("ttlExpireTime"),
        "default TTL applied"
    );
    assert!(
        !md(forever).await.contains_key("ttlExpireTime"),
        "-1 persists"
    );
}

/// The lock, the sequencer and the configuration store refuse `redisType: cluster` with
/// their reason; a database other than 0 is refused.
fn refused_by_the_components_that_cannot_use_it(cluster: &RedisCluster) {
    let mut r = Registries::new();
    layotto_components_redis::register(&mut r).expect("register");
    for (kind, type_, reason) in [
        (Kind::Lock, "lock.redis", "lock.redis_cluster"),
        (Kind::Sequencer, "sequencer.redis", "handed out again"),
        (Kind::Configuration, "configuration.redis", "one server"),
    ] {
        let e = r
            .create_any(kind, &spec(cluster, type_))
            .err()
            .unwrap_or_else(|| panic!("{type_} accepted a cluster"));
        assert!(
            e.message.contains("redisType: cluster") && e.message.contains(reason),
            "{type_}: {e}"
        );
    }
    let e = r
        .create_any(
            Kind::State,
            &spec(cluster, "state.redis").with("redisDB", "1"),
        )
        .err()
        .expect("db 1 on a cluster");
    assert!(e.message.contains("database 0"), "{e}");
}

/// Writers save fresh keys, all in one hash slot, while that slot's master is killed; the
/// test waits for the fail-over, starts the old master again (it rejoins as a replica) and
/// lets the writers go on a little. Returns how many writes acknowledged to a writer are not
/// readable afterwards.
async fn failover(cluster: &mut RedisCluster, extra: &[(&str, &str)]) -> usize {
    let store = state_store(cluster, extra).await;
    let tag = unique("failover");
    let master = cluster.master_of(&format!("{{{tag}}}"));
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let (stop, sent, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, acked, stop, sent, failed, tag) = (
                Arc::clone(&store),
                Arc::clone(&acked),
                Arc::clone(&stop),
                Arc::clone(&sent),
                Arc::clone(&failed),
                tag.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let (k, v) = (format!("{{{tag}}}-{w}-{i}"), format!("v{w}-{i}"));
                    i += 1;
                    sent.fetch_add(1, Ordering::SeqCst);
                    match store.set(set_req(&k, v.clone())).await {
                        Ok(()) => acked.lock().await.push((k, v)),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();
    let wait_acked = |n: usize| {
        let acked = Arc::clone(&acked);
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.lock().await.len() < n {
                assert!(Instant::now() < deadline, "writes stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_acked(500).await;
    cluster.kill(master);
    let started = Instant::now();
    tokio::task::block_in_place(|| cluster.wait_ok(Duration::from_secs(30)));
    let failed_over = started.elapsed();
    tokio::task::block_in_place(|| cluster.restart(master));
    let before = acked.lock().await.len();
    wait_acked(before + 500).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().await.clone();
    let mut lost = 0;
    for (k, v) in &acked {
        let got = store.get(k, &Metadata::new()).await.expect("read back");
        if got.map(|i| i.data) != Some(Bytes::from(v.clone())) {
            lost += 1;
        }
    }
    eprintln!(
        "fail-over {extra:?}: master {master} killed, slots served again after {failed_over:?}; \
         {} writes sent, {} acknowledged, {} failed",
        sent.load(Ordering::SeqCst),
        acked.len(),
        failed.load(Ordering::SeqCst)
    );
    store.close().await.expect("close");
    lost
}
