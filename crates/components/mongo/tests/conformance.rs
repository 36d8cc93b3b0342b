//! The lock, sequencer and state suites against the MongoDB components, each on a fresh FerretDB
//! (a MongoDB wire-protocol server, built once by the test harness), plus layout fixtures
//! (documents written with the raw `mongodb` driver the way `mosn/layotto`'s and Dapr's Go
//! components write them, and the other way round), kill / restart, a frozen server, several
//! sidecars on one server, TLS and bad metadata.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_components_mongo::{MongoLock, MongoSequencer, MongoStateStore};
use layotto_conformance::{unique, within};
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::sequencer::Sequencer;
use layotto_core::state::{SetRequest, StateStore};
use layotto_core::{Component, ComponentSpec, ErrorKind, HealthStatus, Kind, Metadata, Registries};
use layotto_test_support::FerretDbServer;
use mongodb::bson::{Bson, DateTime, Document, doc};

/// Layotto's keys on `server`, with a 2 s operation timeout (the bound of every call).
fn spec(server: &FerretDbServer) -> ComponentSpec {
    ComponentSpec::new("mongo-test", "mongo")
        .with("mongoHost", server.addr())
        .with("mongoPassword", "")
        .with("username", "")
        .with("operationTimeout", "2s")
        .with("params", "")
}

async fn lock(server: &FerretDbServer) -> Arc<MongoLock> {
    let l = MongoLock::from_spec(&spec(server)).expect("valid spec");
    l.init().await.expect("init MongoDB lock");
    Arc::new(l)
}

async fn sequencer(server: &FerretDbServer) -> Arc<MongoSequencer> {
    let s = MongoSequencer::from_spec(&spec(server)).expect("valid spec");
    s.init().await.expect("init MongoDB sequencer");
    Arc::new(s)
}

/// A sequencer for the many-writers cases: FerretDB serialises writes and its guards are not
/// queued fairly, so under 8 to 12 writers on one key on a 2-core machine a writer may wait
/// past a 2 s timeout; the cases prove uniqueness, not latency, so they get 10 s.
async fn contended_sequencer(server: &FerretDbServer) -> Arc<MongoSequencer> {
    let s = MongoSequencer::from_spec(&spec(server).with("operationTimeout", "10s"))
        .expect("valid spec");
    s.init().await.expect("init MongoDB sequencer");
    Arc::new(s)
}

/// The state store with Dapr's keys.
async fn state(server: &FerretDbServer) -> Arc<MongoStateStore> {
    let s = ComponentSpec::new("mongo-state", "state.mongodb")
        .with("host", server.addr())
        .with("operationTimeout", "2s");
    let st = MongoStateStore::from_spec(&s).expect("valid spec");
    st.init().await.expect("init MongoDB state store");
    Arc::new(st)
}

/// A raw driver collection, for writing and checking the Go components' layout by hand.
async fn raw(server: &FerretDbServer, db: &str, coll: &str) -> mongodb::Collection<Document> {
    let c = mongodb::Client::with_uri_str(format!("mongodb://{}/", server.addr()))
        .await
        .expect("raw MongoDB client");
    c.database(db).collection(coll)
}

fn now_plus_secs(s: i64) -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() + s * 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_suite() {
    let server = FerretDbServer::start();
    layotto_conformance::lock::run_all(|| async { lock(&server).await as Arc<dyn LockStore> })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_suite() {
    let server = FerretDbServer::start();
    layotto_conformance::sequencer::run_all(|| async {
        contended_sequencer(&server).await as Arc<dyn Sequencer>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_bigger_than() {
    let server = FerretDbServer::start();
    layotto_conformance::sequencer::bigger_than(|key, floor| {
        let spec = spec(&server).with("biggerThan", format!("{{\"{key}\": {floor}}}"));
        async move {
            let s = MongoSequencer::from_spec(&spec).expect("valid spec");
            s.init().await.expect("init raises the key to the floor");
            Arc::new(s) as Arc<dyn Sequencer>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_suite() {
    let server = FerretDbServer::start();
    layotto_conformance::state::run_all(|| async { state(&server).await as Arc<dyn StateStore> })
        .await;
}

/// Lock documents: what Layotto's `TryLock` inserts (`{_id, LockOwner, Expire}` in
/// `layottoStore.layottoCollection`) is held here, and its owner can keep it alive and unlock
/// it; an expired one (which upstream's TTL index would remove) is taken over; what we write is
/// that same document.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_layout_matches_layotto() {
    let server = FerretDbServer::start();
    let coll = raw(&server, "layottoStore", "layottoCollection").await;
    let l = lock(&server).await;
    let lease = Duration::from_secs(30);

    let res = format!("lock|||app1||{}", unique("r"));
    coll.insert_one(doc! { "_id": &res, "LockOwner": "go", "Expire": now_plus_secs(30) })
        .await
        .expect("Layotto's TryLock");
    assert!(!l.try_lock(&res, "rs", lease).await.expect("try_lock"));
    assert_eq!(
        l.unlock(&res, "rs").await.expect("unlock"),
        LockStatus::LockBelongToOthers
    );
    assert_eq!(
        l.keep_alive(&res, "go", lease).await.expect("keep_alive"),
        LockStatus::Success
    );
    assert_eq!(
        l.unlock(&res, "go").await.expect("unlock"),
        LockStatus::Success
    );
    assert!(
        coll.find_one(doc! { "_id": &res })
            .await
            .expect("find")
            .is_none()
    );

    let expired = format!("lock|||app1||{}", unique("e"));
    coll.insert_one(doc! { "_id": &expired, "LockOwner": "go", "Expire": now_plus_secs(-1) })
        .await
        .expect("an expired lock");
    assert_eq!(
        l.unlock(&expired, "go").await.expect("unlock"),
        LockStatus::LockUnexist
    );
    assert!(l.try_lock(&expired, "rs", lease).await.expect("take over"));

    let ours = format!("lock|||app1||{}", unique("o"));
    let before = DateTime::now();
    assert!(l.try_lock(&ours, "rs", lease).await.expect("try_lock"));
    let d = coll
        .find_one(doc! { "_id": &ours })
        .await
        .expect("find")
        .expect("our lock document");
    assert_eq!(d.get_str("LockOwner").expect("LockOwner"), "rs");
    let expire = d.get_datetime("Expire").expect("Expire is a date");
    let ms = expire.timestamp_millis() - before.timestamp_millis();
    assert!((29_000..=31_000).contains(&ms), "Expire {ms} ms ahead");
    // Layotto's Unlock: deleteOne({_id, LockOwner}).
    let r = coll
        .delete_one(doc! { "_id": &ours, "LockOwner": "rs" })
        .await
        .expect("Layotto's Unlock");
    assert_eq!(r.deleted_count, 1);
}

/// Sequencer documents: `{_id, sequencer_value}` incremented by Layotto's `findOneAndUpdate`
/// and ours alike, ids continuing across both; segments take `size` ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_layout_matches_layotto() {
    let server = FerretDbServer::start();
    let coll = raw(&server, "layottoStore", "layottoCollection").await;
    let s = sequencer(&server).await;
    let key = format!("sequencer|||app1||{}", unique("k"));
    assert_eq!(s.get_next_id(&key).await.expect("next"), 1);
    for want in 2..=3_i64 {
        let d = coll
            .find_one_and_update(
                doc! { "_id": &key },
                doc! { "$inc": { "sequencer_value": 1 } },
            )
            .upsert(true)
            .return_document(mongodb::options::ReturnDocument::After)
            .await
            .expect("Layotto's GetNextId")
            .expect("document");
        assert_eq!(d.get("sequencer_value"), Some(&Bson::Int64(want)));
    }
    assert_eq!(s.get_next_id(&key).await.expect("next"), 4);
    let seg = s
        .get_segment(&key, 10)
        .await
        .expect("segment")
        .expect("some");
    assert_eq!((seg.from, seg.to), (5, 14));
    let d = coll
        .find_one(doc! { "_id": &key })
        .await
        .expect("find")
        .expect("document");
    assert_eq!(d.get("sequencer_value"), Some(&Bson::Int64(14)));
}

/// State documents: Dapr's `Set` writes `{_id, value: "<bytes>", _etag: uuid, _ttl: null}` in
/// `daprStore.daprCollection`; both ways, with ETags, documents stored as BSON and TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_layout_matches_dapr() {
    let server = FerretDbServer::start();
    let coll = raw(&server, "daprStore", "daprCollection").await;
    let st = state(&server).await;
    let key = format!("app1||{}", unique("k"));
    coll.insert_one(doc! { "_id": &key, "value": "{\"a\":1}", "_etag": "e-1", "_ttl": Bson::Null })
        .await
        .expect("Dapr's Set");
    let got = st
        .get(&key, &Metadata::new())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(got.data, Bytes::from_static(b"{\"a\":1}"));
    assert_eq!(got.etag.as_deref(), Some("e-1"));

    st.set(SetRequest {
        key: key.clone(),
        value: Bytes::from_static(b"v2"),
        etag: Some("e-1".into()),
        ..Default::default()
    })
    .await
    .expect("set with Dapr's ETag");
    let d = coll
        .find_one(doc! { "_id": &key })
        .await
        .expect("find")
        .expect("doc");
    assert_eq!(d.get_str("value").expect("value is a string"), "v2");
    let etag = d.get_str("_etag").expect("_etag").to_owned();
    assert_ne!(etag, "e-1");
    assert!(uuid_like(&etag), "{etag}");
    assert_eq!(d.get("_ttl"), Some(&Bson::Null));

    // A value another writer stored as a BSON document reads as JSON.
    let doc_key = format!("app1||{}", unique("d"));
    coll.insert_one(doc! { "_id": &doc_key, "value": { "n": 5, "s": "x" }, "_etag": "e" })
        .await
        .expect("insert");
    let got = st
        .get(&doc_key, &Metadata::new())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(got.data, Bytes::from_static(br#"{"n":5,"s":"x"}"#));

    // TTL: `_ttl` is a date; past it the key is absent even though the document stays.
    let mut m = Metadata::new();
    m.insert("ttlInSeconds".into(), "1".into());
    let ttl_key = format!("app1||{}", unique("t"));
    st.set(SetRequest {
        key: ttl_key.clone(),
        value: Bytes::from_static(b"short"),
        metadata: m,
        ..Default::default()
    })
    .await
    .expect("set with TTL");
    let d = coll
        .find_one(doc! { "_id": &ttl_key })
        .await
        .expect("find")
        .expect("doc");
    assert!(d.get_datetime("_ttl").is_ok(), "{d:?}");
    let item = st
        .get(&ttl_key, &Metadata::new())
        .await
        .expect("get")
        .expect("live");
    assert!(
        item.metadata.contains_key("ttlExpireTime"),
        "{:?}",
        item.metadata
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        st.get(&ttl_key, &Metadata::new())
            .await
            .expect("get")
            .is_none()
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

/// Two sidecars' components on one server: never two lock holders, every id distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sidecars_share_mongo() {
    let server = FerretDbServer::start();
    let (l1, l2) = (lock(&server).await, lock(&server).await);
    for _ in 0..20 {
        let r = unique("shared");
        let lease = Duration::from_secs(10);
        let (a, b) = tokio::join!(l1.try_lock(&r, "a", lease), l2.try_lock(&r, "b", lease));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(a ^ b, "exactly one holder, got a={a} b={b}");
    }
    // An expired lock taken over by both at once: one wins.
    for _ in 0..10 {
        let r = unique("expired");
        assert!(
            l1.try_lock(&r, "old", Duration::from_millis(50))
                .await
                .expect("old")
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        let lease = Duration::from_secs(10);
        let (a, b) = tokio::join!(l1.try_lock(&r, "a", lease), l2.try_lock(&r, "b", lease));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(a ^ b, "exactly one takes over, got a={a} b={b}");
    }
    let seqs = [
        contended_sequencer(&server).await,
        contended_sequencer(&server).await,
        contended_sequencer(&server).await,
    ];
    let key = unique("ids");
    let mut tasks = Vec::new();
    for s in &seqs {
        for _ in 0..4 {
            let (s, key) = (Arc::clone(s), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    if i % 5 == 0 {
                        let seg = s
                            .get_segment(&key, 7)
                            .await
                            .expect("segment")
                            .expect("some");
                        ids.extend(seg.from..=seg.to);
                    } else {
                        ids.push(s.get_next_id(&key).await.expect("id"));
                    }
                }
                ids
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "repeated ids");
    assert_eq!(all.len(), 12 * (20 + 5 * 7));
}

/// Awaits `fut`, which must fail with Unavailable within the 2 s timeout (plus slack).
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = layotto_core::Result<T>>,
) {
    layotto_conformance::unavailable_within(Duration::from_secs(2), what, fut).await;
}

/// Kill: calls fail with Unavailable within the timeout and health is DOWN. Restart: health is
/// UP, ids continue above every id handed out before, acknowledged state and locks are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart() {
    let mut server = FerretDbServer::start();
    let l = lock(&server).await;
    let s = sequencer(&server).await;
    let st = state(&server).await;
    let (res, key, skey) = (unique("held"), unique("ids"), unique("state"));
    let lease = Duration::from_secs(60);
    assert!(l.try_lock(&res, "owner", lease).await.expect("lock"));
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(s.get_next_id(&key).await.expect("id"));
    }
    for i in 0..20 {
        st.set(SetRequest {
            key: format!("{skey}-{i}"),
            value: Bytes::from(format!("v{i}")),
            ..Default::default()
        })
        .await
        .expect("set");
    }

    server.kill();
    unavailable("try_lock while down", l.try_lock(&unique("r"), "o", lease)).await;
    unavailable("unlock while down", l.unlock(&res, "owner")).await;
    unavailable("keep_alive while down", l.keep_alive(&res, "owner", lease)).await;
    unavailable("next id while down", s.get_next_id(&key)).await;
    unavailable("get while down", st.get(&skey, &Metadata::new())).await;
    let lost = SetRequest {
        key: format!("{skey}-lost"),
        value: Bytes::from_static(b"never acknowledged"),
        ..Default::default()
    };
    unavailable("set while down", st.set(lost)).await;
    for h in [l.health().await, s.health().await, st.health().await] {
        assert_eq!(h.status, HealthStatus::Down, "{h:?}");
        assert!(h.details.contains_key("reason"), "{h:?}");
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        match s.get_next_id(&key).await {
            Ok(id) => break id,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("MongoDB still failing after restart: {e}"),
        }
    };
    let max_before = *before.iter().max().expect("ids");
    assert!(
        first > max_before,
        "id {first} after restart repeats {max_before}"
    );
    for h in [l.health().await, s.health().await, st.health().await] {
        assert_eq!(h.status, HealthStatus::Up, "{h:?}");
    }
    for i in 0..20 {
        let got = st
            .get(&format!("{skey}-{i}"), &Metadata::new())
            .await
            .expect("get")
            .expect("acknowledged write kept");
        assert_eq!(got.data, Bytes::from(format!("v{i}")));
    }
    assert!(
        !l.try_lock(&res, "thief", lease).await.expect("try_lock"),
        "two holders"
    );
    assert_eq!(
        l.keep_alive(&res, "owner", lease)
            .await
            .expect("keep_alive"),
        LockStatus::Success
    );
}

/// A frozen server (SIGSTOP: sockets open, no answers) makes calls fail with Unavailable within
/// the timeout instead of hanging; thawed, the same components work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_mongo_times_out() {
    let server = FerretDbServer::start();
    let l = lock(&server).await;
    let s = sequencer(&server).await;
    let key = unique("frozen");
    let before = s.get_next_id(&key).await.expect("id");
    server.pause();
    unavailable(
        "try_lock while frozen",
        l.try_lock(&unique("r"), "o", Duration::from_secs(5)),
    )
    .await;
    unavailable("next id while frozen", s.get_next_id(&key)).await;
    let h = within(Duration::from_secs(10), "health while frozen", s.health()).await;
    assert_eq!(h.status, HealthStatus::Down, "{h:?}");
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        match s.get_next_id(&key).await {
            Ok(id) => break id,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("MongoDB still failing after resume: {e}"),
        }
    };
    assert!(after > before, "id {after} after {before}");
    assert_eq!(l.health().await.status, HealthStatus::Up);
}

/// Init against a port where nothing listens fails with Unavailable within the timeout, naming
/// the component and the host key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_without_server_is_unavailable() {
    let mut server = FerretDbServer::start();
    let l = MongoLock::from_spec(&spec(&server)).expect("spec");
    server.kill();
    let started = Instant::now();
    let e = within(Duration::from_secs(10), "init", l.init())
        .await
        .expect_err("init with MongoDB down");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("mongo-test") && e.message.contains("'mongoHost'"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(l.health().await.status, HealthStatus::Down);
}

/// `params` reaches the driver: `?tls=true&tlsCAFile=...` talks TLS to FerretDB's TLS listener
/// trusting the test CA; without the CA the server is refused, never silently trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_through_params() {
    let server = FerretDbServer::start_tls();
    let ca = server.dir().join("ca.pem");
    let tls_spec = |params: String| {
        spec(&server)
            .with("mongoHost", server.tls_addr())
            .with("params", params)
    };
    let l = MongoLock::from_spec(&tls_spec(format!("?tls=true&tlsCAFile={}", ca.display())))
        .expect("spec");
    l.init().await.expect("TLS with the test CA");
    let r = unique("tls");
    assert!(
        l.try_lock(&r, "o", Duration::from_secs(5))
            .await
            .expect("lock over TLS")
    );
    let untrusted = MongoLock::from_spec(&tls_spec("?tls=true".to_owned())).expect("spec");
    let e = within(Duration::from_secs(10), "init", untrusted.init())
        .await
        .expect_err("an untrusted server");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

/// Bad metadata fails the factory (no I/O) with an error naming the component and the key.
#[test]
fn bad_metadata_names_component_and_key() {
    let mut r = Registries::new();
    layotto_components_mongo::register(&mut r).expect("register");
    let base = || ComponentSpec::new("mongo-bad", "mongo").with("mongoHost", "127.0.0.1");
    for kind in [Kind::Lock, Kind::Sequencer] {
        for (spec, key) in [
            (ComponentSpec::new("mongo-bad", "mongo"), "mongoHost"),
            (base().with("operationTimeout", "soon"), "operationTimeout"),
            (base().with("operationTimeout", "0s"), "operationTimeout"),
            (base().with("writeConcern", "all"), "writeConcern"),
            (base().with("readConcern", "strong"), "readConcern"),
            (base().with("params", "?tls=perhaps"), "mongoHost"),
            (base().with("server", "db.example"), "server"),
        ] {
            let e = r
                .create_any(kind, &spec)
                .err()
                .unwrap_or_else(|| panic!("{kind}: {key}: accepted {:?}", spec.metadata));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(
                e.message.contains(key) && e.message.contains("mongo-bad"),
                "{kind}: {key}: {e}"
            );
        }
    }
    let e = r
        .create_any(
            Kind::State,
            &ComponentSpec::new("mongo-bad", "state.mongodb"),
        )
        .err()
        .expect("no host");
    assert!(
        e.message.contains("'host'") && e.message.contains("mongo-bad"),
        "{e}"
    );
    let e = r
        .create_any(Kind::Sequencer, &base().with("biggerThan", "[1]"))
        .err()
        .expect("bad biggerThan");
    assert!(
        e.message.contains("biggerThan") && e.message.contains("mongo-bad"),
        "{e}"
    );
}
