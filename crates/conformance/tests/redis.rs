//! Every applicable conformance suite against the Redis components, each on a fresh
//! `redis-server` (Debian package `redis-server`), plus Dapr-layout compatibility, fault
//! (kill / restart) and configuration checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_components::Registries;
use layotto_components::redis::{RedisLock, RedisSequencer, RedisStateStore};
use layotto_conformance::{unique, within};
use layotto_core::lock::LockStore;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::{SetRequest, StateStore};
use layotto_core::{ComponentSpec, ErrorKind, HealthStatus, Metadata};
use layotto_test_support::RedisServer;

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
    let r = Registries::builtin().expect("registries");
    let base = || ComponentSpec::new("bad", "redis").with("redisHost", "127.0.0.1:6379");
    let cases = [
        (base().with("db", "abc"), "db"),
        (ComponentSpec::new("bad", "redis"), "redisHost"),
        (base().with("unknownKey", "1"), "unknownKey"),
        (base().with("dialTimeout", "soon"), "dialTimeout"),
    ];
    for (s, key) in cases {
        for e in [
            r.state.create(&s).err(),
            r.lock.create(&s).err(),
            r.sequencer.create(&s).err(),
        ] {
            let e = e.unwrap_or_else(|| panic!("{key}: accepted"));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(e.message.contains(key), "{key}: {e}");
        }
    }
    let e = r
        .sequencer
        .create(&base().with("biggerThan", "nope"))
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
