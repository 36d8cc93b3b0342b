//! Every applicable conformance suite against the Redis components, each on a fresh
//! `redis-server` (Debian package `redis-server`), plus Dapr-layout compatibility, fault
//! (kill / restart), pub/sub reclaim and trimming, and configuration checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use layotto_components_redis::{
    RedisClusterLock, RedisConfigStore, RedisLock, RedisPubSub, RedisSequencer, RedisStateStore,
};
use layotto_conformance::{unique, within};
use layotto_core::configuration::ConfigStore;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::pubsub::{CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest};
use layotto_core::sequencer::Sequencer;
use layotto_core::state::{SetRequest, StateStore};
use layotto_core::{Component, ComponentSpec, ErrorKind, HealthStatus, Kind, Metadata, Registries};
use layotto_test_support::RedisServer;

/// Registries holding the Redis component types.
fn registries() -> Registries {
    let mut r = Registries::new();
    layotto_components_redis::register(&mut r).expect("redis types register once");
    r
}

fn spec(server: &RedisServer, type_: &str) -> ComponentSpec {
    ComponentSpec::new("redis-test", type_)
        .with("redisHost", server.addr())
        .with("dialTimeout", "1s")
        .with("readTimeout", "1s")
        .with("maxRetries", "1")
}

async fn state_store(server: &RedisServer) -> Arc<dyn StateStore> {
    let s = RedisStateStore::from_spec(&spec(server, "state.redis")).expect("valid spec");
    s.init().await.expect("init state.redis");
    Arc::new(s)
}

/// A raw client on `server`, for checking and writing Dapr's layout by hand.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{}/", server.addr()))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

fn set_req(key: &str, value: &'static str) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: Bytes::from_static(value.as_bytes()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state() {
    let server = RedisServer::start();
    layotto_conformance::state::run_all(|| state_store(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock() {
    let server = RedisServer::start();
    layotto_conformance::lock::run_all(|| async {
        let l = RedisLock::from_spec(&spec(&server, "lock.redis")).expect("valid spec");
        l.init().await.expect("init lock.redis");
        Arc::new(l) as Arc<dyn LockStore>
    })
    .await;
}

/// A Redlock store (`lock.redis_cluster`) over `servers`, initialised.
async fn cluster_lock(servers: &[RedisServer]) -> Arc<dyn LockStore> {
    let hosts: Vec<String> = servers.iter().map(RedisServer::addr).collect();
    let spec = ComponentSpec::new("redlock-test", "lock.redis_cluster")
        .with("redisHosts", hosts.join(","))
        .with("dialTimeout", "1s")
        .with("readTimeout", "1s")
        .with("maxRetries", "1");
    let l = RedisClusterLock::from_spec(&spec).expect("valid spec");
    l.init().await.expect("init lock.redis_cluster");
    Arc::new(l)
}

fn three_servers() -> Vec<RedisServer> {
    (0..3).map(|_| RedisServer::start()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_lock_suite() {
    let servers = three_servers();
    layotto_conformance::lock::run_all(|| cluster_lock(&servers)).await;
    assert_eq!(
        cluster_lock(&servers).await.health().await.status,
        HealthStatus::Up
    );
}

/// With 1 of 3 hosts down the lock still works: a lock taken before the kill stays exclusive,
/// its owner unlocks it, and new locks are exclusive too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_lock_one_host_down() {
    let mut servers = three_servers();
    let lock = cluster_lock(&servers).await;
    let lease = Duration::from_secs(10);
    let (r, a, b) = (unique("redlock-held"), unique("owner-a"), unique("owner-b"));
    assert!(lock.try_lock(&r, &a, lease).await.expect("lock"));
    servers[1].kill();
    assert!(
        !lock.try_lock(&r, &b, lease).await.expect("try_lock by b"),
        "held lock taken with one host down"
    );
    assert_eq!(
        lock.unlock(&r, &b).await.expect("unlock by b"),
        LockStatus::LockBelongToOthers
    );
    assert_eq!(
        lock.keep_alive(&r, &a, lease).await.expect("keep_alive"),
        LockStatus::Success
    );
    assert_eq!(
        lock.unlock(&r, &a).await.expect("unlock"),
        LockStatus::Success
    );
    assert_eq!(
        lock.unlock(&r, &a).await.expect("unlock again"),
        LockStatus::LockUnexist
    );
    layotto_conformance::lock::exclusive(&*lock).await;
    layotto_conformance::lock::not_reentrant(&*lock).await;
    layotto_conformance::lock::concurrent_try_lock(&*lock).await;
    assert_eq!(lock.health().await.status, HealthStatus::Up);
    // A store initialised while the host is down works as well.
    let late = cluster_lock(&servers).await;
    layotto_conformance::lock::exclusive(&*late).await;
}

/// With 2 of 3 hosts down try_lock fails fast with Unavailable naming the failures, and
/// health is DOWN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_lock_majority_down() {
    let mut servers = three_servers();
    let lock = cluster_lock(&servers).await;
    servers[0].kill();
    servers[2].kill();
    for _ in 0..2 {
        let started = Instant::now();
        let err = within(
            Duration::from_secs(10),
            "try_lock with 2 of 3 down",
            async {
                lock.try_lock(&unique("redlock-down"), "o", Duration::from_secs(5))
                    .await
            },
        )
        .await
        .expect_err("try_lock with a majority down");
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("2 of 3"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }
    let err = lock.unlock("r", "o").await.expect_err("unlock");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let h = within(Duration::from_secs(10), "health", lock.health()).await;
    assert_eq!(h.status, HealthStatus::Down, "{h:?}");
    let reason = h.details.get("reason").expect("reason");
    assert!(
        reason.contains(&servers[0].addr()) && reason.contains(&servers[2].addr()),
        "{reason}"
    );
    assert!(!reason.contains(&servers[1].addr()), "{reason}");
}

#[test]
fn cluster_lock_bad_metadata_names_the_key() {
    let r = registries();
    let base = |t: &str| ComponentSpec::new("bad", t).with("redisHosts", "127.0.0.1:6379");
    for t in ["redis_cluster", "lock.redis_cluster"] {
        r.create::<dyn LockStore>(&base(t)).expect("valid");
        // An unknown key is no error, only a warning naming it.
        let built = r
            .create_any(Kind::Lock, &base(t).with("unknownKey", "1"))
            .expect("unknown keys are ignored");
        assert!(
            built.warnings.len() == 1 && built.warnings[0].contains("'unknownKey'"),
            "{t}: {:?}",
            built.warnings
        );
        let cases = [
            (ComponentSpec::new("bad", t), "redisHosts"),
            (
                ComponentSpec::new("bad", t).with("redisHosts", " "),
                "redisHosts",
            ),
            (
                ComponentSpec::new("bad", t).with("redisHost", "127.0.0.1:6379"),
                "redisHosts",
            ),
            (
                base(t).with("redisHosts", "127.0.0.1:6379,nohost"),
                "redisHosts",
            ),
            (base(t).with("db", "abc"), "db"),
            (base(t).with("readTimeout", "soon"), "readTimeout"),
        ];
        for (s, key) in cases {
            let e = r
                .create::<dyn LockStore>(&s)
                .err()
                .unwrap_or_else(|| panic!("{t} {key}: accepted"));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(e.message.contains(key), "{t} {key}: {e}");
        }
        let e = r
            .create::<dyn LockStore>(&base(t).with("redisHost", "127.0.0.1:6379"))
            .err()
            .expect("singular redisHost");
        assert!(
            e.message.contains("'redisHost'") && e.message.contains("redisHosts"),
            "hint: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer() {
    let server = RedisServer::start();
    layotto_conformance::sequencer::run_all(|| async {
        let s = RedisSequencer::from_spec(&spec(&server, "sequencer.redis")).expect("valid spec");
        s.init().await.expect("init sequencer.redis");
        Arc::new(s) as Arc<dyn Sequencer>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_bigger_than() {
    let server = RedisServer::start();
    layotto_conformance::sequencer::bigger_than(|key, floor| {
        let spec = spec(&server, "redis").with("biggerThan", format!("{{\"{key}\": {floor}}}"));
        async move {
            let s = RedisSequencer::from_spec(&spec).expect("valid spec");
            s.init().await.expect("init");
            Arc::new(s) as Arc<dyn Sequencer>
        }
    })
    .await;
}

/// What we write is a Dapr hash (`data`, `version`); what Dapr wrote reads back with its
/// version as the ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dapr_layout() {
    let server = RedisServer::start();
    let store = state_store(&server).await;
    let mut conn = raw(&server).await;

    let k = unique("dapr-ours");
    store.set(set_req(&k, "{\"a\":1}")).await.expect("set");
    let hash: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&k)
        .query_async(&mut conn)
        .await
        .expect("HGETALL");
    assert_eq!(hash.get("data").map(String::as_str), Some("{\"a\":1}"));
    assert_eq!(hash.get("version").map(String::as_str), Some("1"));
    store.set(set_req(&k, "2")).await.expect("overwrite");
    let item = store
        .get(&k, &Metadata::new())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(item.etag.as_deref(), Some("2"));

    // Written by hand the way Dapr's state.redis writes a JSON string value.
    let k = unique("dapr-theirs");
    let () = redis::cmd("HSET")
        .arg(&k)
        .arg("data")
        .arg("\"x\"")
        .arg("version")
        .arg(1)
        .query_async(&mut conn)
        .await
        .map(|_: i64| ())
        .expect("HSET");
    let item = store
        .get(&k, &Metadata::new())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(item.data, Bytes::from_static(b"\"x\""));
    assert_eq!(item.etag.as_deref(), Some("1"));
    let err = store
        .set(SetRequest {
            etag: Some("7".into()),
            ..set_req(&k, "y")
        })
        .await
        .expect_err("stale etag on Dapr data");
    assert_eq!(err.kind, ErrorKind::EtagMismatch);
    store
        .set(SetRequest {
            etag: Some("1".into()),
            ..set_req(&k, "y")
        })
        .await
        .expect("matching etag on Dapr data");

    // ttlExpireTime is reported for keys with a TTL.
    let k = unique("dapr-ttl");
    let mut req = set_req(&k, "t");
    req.metadata.insert("ttlInSeconds".into(), "100".into());
    store.set(req).await.expect("set with ttl");
    let item = store.get(&k, &Metadata::new()).await.expect("get");
    assert!(
        item.is_some_and(|i| i.metadata.contains_key("ttlExpireTime")),
        "ttlExpireTime reported"
    );
    // An overwrite without TTL removes the expiry.
    store.set(set_req(&k, "t2")).await.expect("overwrite");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&k)
        .query_async(&mut conn)
        .await
        .expect("TTL");
    assert_eq!(ttl, -1, "PERSIST on overwrite without ttl");
}

/// Kill: calls fail fast with Unavailable and health is DOWN. Restart: calls succeed again,
/// health is UP and the write acknowledged before the kill is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart() {
    let mut server = RedisServer::start();
    let store = state_store(&server).await;
    let lock = RedisLock::from_spec(&spec(&server, "redis")).expect("spec");
    lock.init().await.expect("init lock");
    let k = unique("durable");
    store
        .set(set_req(&k, "kept"))
        .await
        .expect("acknowledged write");

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let err = within(Duration::from_secs(10), "get while redis is down", async {
            store.get(&k, &Metadata::new()).await
        })
        .await
        .expect_err("get while down");
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }
    let err = within(Duration::from_secs(10), "try_lock while down", async {
        lock.try_lock("r", "o", Duration::from_secs(5)).await
    })
    .await
    .expect_err("lock while down");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let h = within(Duration::from_secs(10), "health while down", store.health()).await;
    assert_eq!(h.status, HealthStatus::Down, "{h:?}");
    assert!(h.details.contains_key("reason"), "{h:?}");

    server.restart();
    // The connection manager reconnects by itself; allow a few attempts.
    let deadline = Instant::now() + Duration::from_secs(15);
    let item = loop {
        match store.get(&k, &Metadata::new()).await {
            Ok(item) => break item,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("redis still failing after restart: {e}"),
        }
    };
    assert_eq!(
        item.map(|i| i.data),
        Some(Bytes::from_static(b"kept")),
        "acknowledged write survives the restart"
    );
    assert_eq!(store.health().await.status, HealthStatus::Up);
    store
        .set(set_req(&k, "after"))
        .await
        .expect("write after restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match lock
            .try_lock(&unique("r"), "o", Duration::from_secs(5))
            .await
        {
            Ok(taken) => {
                assert!(taken);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("lock still failing after restart: {e}"),
        }
    }
    assert_eq!(lock.health().await.status, HealthStatus::Up);
}

/// Init against a port where nothing listens fails fast with Unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_without_server_is_unavailable() {
    let mut server = RedisServer::start();
    let s = RedisStateStore::from_spec(&spec(&server, "redis")).expect("spec");
    server.kill();
    let err = within(Duration::from_secs(10), "init", s.init())
        .await
        .expect_err("init with redis down");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let h = s.health().await;
    assert_eq!(h.status, HealthStatus::Down);
}

#[test]
fn bad_metadata_names_the_key() {
    let r = registries();
    let base = || ComponentSpec::new("bad", "redis").with("redisHost", "127.0.0.1:6379");
    let blocks = [
        Kind::State,
        Kind::Lock,
        Kind::Sequencer,
        Kind::PubSub,
        Kind::Configuration,
    ];
    // An unknown key is no error, only a warning naming it, for every block.
    for kind in blocks {
        let built = r
            .create_any(kind, &base().with("unknownKey", "1"))
            .unwrap_or_else(|e| panic!("{kind}: unknown keys are ignored: {e}"));
        assert!(
            built.warnings.len() == 1 && built.warnings[0].contains("'unknownKey'"),
            "{kind}: {:?}",
            built.warnings
        );
    }
    let cases = [
        (base().with("db", "abc"), "db"),
        (ComponentSpec::new("bad", "redis"), "redisHost"),
        (base().with("dialTimeout", "soon"), "dialTimeout"),
    ];
    for (s, key) in cases {
        for e in blocks.map(|kind| r.create_any(kind, &s).err()) {
            let e = e.unwrap_or_else(|| panic!("{key}: accepted"));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(e.message.contains(key), "{key}: {e}");
        }
    }
    let e = r
        .create::<dyn Sequencer>(&base().with("biggerThan", "nope"))
        .err()
        .expect("bad biggerThan");
    assert!(e.message.contains("biggerThan"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_invalid_names_the_key() {
    let server = RedisServer::start();
    let store = state_store(&server).await;
    let mut req = set_req(&unique("ttl-bad"), "v");
    req.metadata.insert("ttlInSeconds".into(), "abc".into());
    let e = store.set(req).await.expect_err("bad ttl");
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("ttlInSeconds"), "{e}");
}

/// A pub/sub that reclaims entries idle for 1 s, checking every 500 ms.
async fn pubsub(server: &RedisServer, extra: &[(&str, &str)]) -> Arc<dyn PubSub> {
    let mut s = spec(server, "pubsub.redis")
        .with("processingTimeout", "1s")
        .with("redeliverInterval", "500ms");
    for (k, v) in extra {
        s = s.with(*k, *v);
    }
    let p = RedisPubSub::from_spec(&s).expect("valid spec");
    p.init().await.expect("init pubsub.redis");
    Arc::new(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_suite() {
    let server = RedisServer::start();
    layotto_conformance::pubsub::run_all(|| pubsub(&server, &[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration_suite() {
    let server = RedisServer::start();
    layotto_conformance::configuration::run_all(|| async {
        let c = RedisConfigStore::from_spec(&spec(&server, "configuration.redis")).expect("spec");
        c.init().await.expect("init configuration.redis");
        Arc::new(c) as Arc<dyn ConfigStore>
    })
    .await;
}

fn sub_req(topic: &str, group: &str) -> SubscribeRequest {
    let mut metadata = Metadata::new();
    metadata.insert(CONSUMER_ID_KEY.into(), group.to_owned());
    SubscribeRequest {
        topic: topic.to_owned(),
        metadata,
    }
}

fn forward(tx: tokio::sync::mpsc::UnboundedSender<Bytes>) -> Handler {
    Arc::new(move |m: Message| {
        let _ = tx.send(m.data);
        async { Ok(()) }.boxed()
    })
}

fn message(topic: &str, data: &str) -> Message {
    Message {
        topic: topic.to_owned(),
        data: Bytes::from(data.to_owned()),
        metadata: Metadata::new(),
    }
}

async fn pending_count(
    conn: &mut redis::aio::MultiplexedConnection,
    topic: &str,
    group: &str,
) -> i64 {
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(topic)
        .arg(group)
        .query_async(conn)
        .await
        .expect("XPENDING");
    match summary {
        redis::Value::Array(v) => redis::from_redis_value_ref(&v[0]).expect("count"),
        other => panic!("XPENDING reply {other:?}"),
    }
}

/// A member that holds an entry without acknowledging it is dropped: the other member gets it
/// after processingTimeout; so does an entry left pending by a consumer that died (a killed
/// sidecar, simulated by a raw XREADGROUP that never acknowledges).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_reclaims_from_dropped_and_dead_members() {
    let server = RedisServer::start();
    let ps = pubsub(&server, &[]).await;
    let mut conn = raw(&server).await;
    let (topic, group) = (unique("topic"), unique("group"));
    let (taken_tx, mut taken_rx) = tokio::sync::mpsc::unbounded_channel();
    let stuck: Handler = Arc::new(move |m: Message| {
        let _ = taken_tx.send(m.data);
        futures::future::pending().boxed()
    });
    let a = ps
        .subscribe(sub_req(&topic, &group), stuck)
        .await
        .expect("sub a");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    ps.publish(message(&topic, "m1")).await.expect("publish");
    let got = within(Duration::from_secs(5), "delivery to a", taken_rx.recv()).await;
    assert_eq!(got, Some(Bytes::from_static(b"m1")));
    let _b = ps
        .subscribe(sub_req(&topic, &group), forward(tx))
        .await
        .expect("sub b");
    drop(a);
    let dropped_at = Instant::now();
    let got = within(Duration::from_secs(10), "hand-over to b", rx.recv()).await;
    assert_eq!(got, Some(Bytes::from_static(b"m1")));
    assert!(
        dropped_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        dropped_at.elapsed()
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while pending_count(&mut conn, &topic, &group).await != 0 {
        assert!(Instant::now() < deadline, "m1 still pending after delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A dead consumer of another group read m2 and never acknowledged it; a subscription
    // joining that group later can only get m2 by reclaiming it.
    let (topic2, group2) = (unique("topic"), unique("group"));
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&topic2)
        .arg(&group2)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    ps.publish(message(&topic2, "m2")).await.expect("publish");
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&group2)
        .arg("dead-sidecar")
        .arg("STREAMS")
        .arg(&topic2)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("XREADGROUP");
    assert_ne!(read, redis::Value::Nil, "the dead consumer read m2");
    let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
    let _c = ps
        .subscribe(sub_req(&topic2, &group2), forward(tx2))
        .await
        .expect("sub c");
    let got = within(
        Duration::from_secs(10),
        "m2 reclaimed from the dead consumer",
        rx2.recv(),
    )
    .await;
    assert_eq!(got, Some(Bytes::from_static(b"m2")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pending_count(&mut conn, &topic2, &group2).await != 0 {
        assert!(Instant::now() < deadline, "m2 still pending after delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rx2.try_recv().is_err(), "no duplicate deliveries of m2");
    assert!(rx.try_recv().is_err(), "no duplicate deliveries");
}

/// Kill: publish fails promptly with Unavailable and health is DOWN. Restart: publishing and
/// delivering to the existing subscription work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_kill_and_restart() {
    let mut server = RedisServer::start();
    let ps = pubsub(&server, &[]).await;
    let (topic, group) = (unique("topic"), unique("group"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _sub = ps
        .subscribe(sub_req(&topic, &group), forward(tx))
        .await
        .expect("sub");
    ps.publish(message(&topic, "before"))
        .await
        .expect("publish");
    let got = within(Duration::from_secs(5), "delivery before kill", rx.recv()).await;
    assert_eq!(got, Some(Bytes::from_static(b"before")));

    server.kill();
    for _ in 0..2 {
        let started = Instant::now();
        let err = within(
            Duration::from_secs(10),
            "publish while down",
            ps.publish(message(&topic, "lost")),
        )
        .await
        .expect_err("publish while down");
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(ps.health().await.status, HealthStatus::Down);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ps.publish(message(&topic, "after")).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("publish still failing after restart: {e}"),
        }
    }
    let got = within(Duration::from_secs(15), "delivery after restart", async {
        loop {
            match rx.recv().await {
                Some(b) if b == Bytes::from_static(b"after") => return b,
                Some(_) => {}
                None => panic!("handler channel closed"),
            }
        }
    })
    .await;
    assert_eq!(got, Bytes::from_static(b"after"));
    assert_eq!(ps.health().await.status, HealthStatus::Up);
}

/// `maxLenApprox` keeps the stream near its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_max_len_approx_trims() {
    let server = RedisServer::start();
    let ps = pubsub(&server, &[("maxLenApprox", "100")]).await;
    let mut conn = raw(&server).await;
    let topic = unique("topic");
    for i in 0..1000 {
        ps.publish(message(&topic, &format!("m{i}")))
            .await
            .expect("publish");
    }
    let len: i64 = redis::cmd("XLEN")
        .arg(&topic)
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert!((100..300).contains(&len), "XLEN {len} after 1000 publishes");
}

/// `spec` for the TLS port of `server` with `enableTLS` and the given extra keys.
fn tls_spec(server: &RedisServer, type_: &str, extra: &[(&str, &str)]) -> ComponentSpec {
    let mut s = ComponentSpec::new("redis-tls-test", type_)
        .with("redisHost", server.tls_addr())
        .with("enableTLS", "true")
        .with("dialTimeout", "1s")
        .with("readTimeout", "1s")
        .with("maxRetries", "1");
    for (k, v) in extra {
        s = s.with(*k, *v);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_state_suite_with_ca_cert() {
    let server = RedisServer::start_tls(false);
    let ca = server.certs().ca_cert.clone();
    layotto_conformance::state::run_all(|| async {
        let s = RedisStateStore::from_spec(&tls_spec(&server, "state.redis", &[("caCert", &ca)]))
            .expect("valid spec");
        s.init().await.expect("init state.redis over TLS");
        Arc::new(s) as Arc<dyn StateStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_pubsub_and_lock_over_mutual_tls() {
    let server = RedisServer::start_tls(true);
    let c = server.certs().clone();
    let dir = tempfile::tempdir().expect("temp dir");
    // Certificates may also be given as file paths.
    let (cert_path, key_path) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    std::fs::write(&cert_path, &c.client_cert).expect("write cert");
    std::fs::write(&key_path, &c.client_key).expect("write key");
    let (cert_path, key_path) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let mtls = [
        ("caCert", c.ca_cert.as_str()),
        ("clientCert", cert_path.as_str()),
        ("clientKey", key_path.as_str()),
        ("processingTimeout", "1s"),
        ("redeliverInterval", "500ms"),
    ];
    layotto_conformance::lock::run_all(|| async {
        let l = RedisLock::from_spec(&tls_spec(&server, "lock.redis", &mtls[..3])).expect("valid");
        l.init().await.expect("init lock.redis over mutual TLS");
        Arc::new(l) as Arc<dyn LockStore>
    })
    .await;
    layotto_conformance::pubsub::run_all(|| async {
        let p = RedisPubSub::from_spec(&tls_spec(&server, "pubsub.redis", &mtls)).expect("valid");
        p.init().await.expect("init pubsub.redis over mutual TLS");
        Arc::new(p) as Arc<dyn PubSub>
    })
    .await;

    // Without a client certificate the server refuses the handshake: unavailable, quickly.
    let no_cert = RedisLock::from_spec(&tls_spec(
        &server,
        "lock.redis",
        &[("caCert", c.ca_cert.as_str())],
    ))
    .expect("valid");
    let e = within(
        Duration::from_secs(10),
        "init without client cert",
        no_cert.init(),
    )
    .await
    .expect_err("server requires a client certificate");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_verifies_the_server_unless_told_not_to() {
    let server = RedisServer::start_tls(false);
    // The test CA is in no system store: verification must fail, clearly and quickly.
    let strict = RedisStateStore::from_spec(&tls_spec(&server, "state.redis", &[])).expect("valid");
    let e = within(
        Duration::from_secs(10),
        "init with untrusted cert",
        strict.init(),
    )
    .await
    .expect_err("untrusted server certificate");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");

    // A plain-TCP client on the TLS port fails too (no silent downgrade).
    let plain = RedisStateStore::from_spec(
        &ComponentSpec::new("plain", "state.redis")
            .with("redisHost", server.tls_addr())
            .with("dialTimeout", "1s")
            .with("readTimeout", "1s")
            .with("maxRetries", "1"),
    )
    .expect("valid");
    assert!(
        within(
            Duration::from_secs(10),
            "plain init on TLS port",
            plain.init()
        )
        .await
        .is_err()
    );

    let lax = RedisStateStore::from_spec(&tls_spec(
        &server,
        "state.redis",
        &[("insecureSkipVerify", "true")],
    ))
    .expect("valid");
    lax.init()
        .await
        .expect("insecureSkipVerify accepts the test certificate");
    lax.set(set_req("tls-key", "v"))
        .await
        .expect("set over TLS");
    // The write went to the same server: visible on the plain port.
    let mut conn = raw(&server).await;
    let data: Option<String> = redis::cmd("HGET")
        .arg("tls-key")
        .arg("data")
        .query_async(&mut conn)
        .await
        .expect("HGET");
    assert_eq!(data.as_deref(), Some("v"));
}
