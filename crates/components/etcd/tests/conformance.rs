//! The lock, sequencer and configuration suites against the etcd components, each on a fresh
//! `etcd` (Debian package `etcd-server`), plus Layotto-layout fixtures (keys written with a raw
//! etcd client the way `mosn/layotto`'s Go components write them, and the other way round),
//! kill / restart, several sidecars on one etcd, authentication, TLS and bad metadata.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use layotto_components_etcd::{EtcdConfigStore, EtcdLock, EtcdSequencer, EtcdStateStore};
use layotto_conformance::{unique, within};
use layotto_core::configuration::{ConfigItem, ConfigQuery, ConfigStore};
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{Component, ComponentSpec, ErrorKind, HealthStatus, Kind, Metadata, Registries};
use layotto_test_support::EtcdServer;

fn registries() -> Registries {
    let mut r = Registries::new();
    layotto_components_etcd::register(&mut r).expect("etcd types register once");
    r
}

/// A spec on `server` with a 1 s dial timeout (the bound of every call).
fn spec(server: &EtcdServer, type_: &str) -> ComponentSpec {
    ComponentSpec::new("etcd-test", type_)
        .with("endpoints", server.addr())
        .with("dialTimeout", "1")
}

async fn lock(server: &EtcdServer) -> Arc<EtcdLock> {
    let l = EtcdLock::from_spec(&spec(server, "etcd")).expect("valid spec");
    l.init().await.expect("init etcd lock");
    Arc::new(l)
}

async fn sequencer(server: &EtcdServer) -> Arc<EtcdSequencer> {
    let s = EtcdSequencer::from_spec(&spec(server, "etcd")).expect("valid spec");
    s.init().await.expect("init etcd sequencer");
    Arc::new(s)
}

/// The configuration store the way Layotto's files configure it: `address` and `timeout`.
async fn config_store(server: &EtcdServer) -> Arc<EtcdConfigStore> {
    let s = ComponentSpec::new("etcd-config", "etcd")
        .with("address", format!("[\"{}\"]", server.addr()))
        .with("timeout", "1");
    let c = EtcdConfigStore::from_spec(&s).expect("valid spec");
    c.init().await.expect("init etcd configuration store");
    Arc::new(c)
}

/// A raw client, for writing and checking Layotto's layout by hand.
async fn raw(server: &EtcdServer) -> Client {
    Client::connect([server.addr()], None)
        .await
        .expect("raw etcd client")
}

async fn raw_get(c: &mut Client, key: &str) -> Option<etcd_client::KeyValue> {
    c.get(key, None)
        .await
        .expect("raw get")
        .kvs()
        .first()
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_suite() {
    let server = EtcdServer::start();
    layotto_conformance::lock::run_all(|| async { lock(&server).await as Arc<dyn LockStore> })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_suite() {
    let server = EtcdServer::start();
    layotto_conformance::sequencer::run_all(|| async {
        sequencer(&server).await as Arc<dyn Sequencer>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_bigger_than() {
    let server = EtcdServer::start();
    layotto_conformance::sequencer::bigger_than(|key, floor| {
        let spec = spec(&server, "etcd").with("biggerThan", format!("{{\"{key}\": {floor}}}"));
        async move {
            let s = EtcdSequencer::from_spec(&spec).expect("valid spec");
            s.init()
                .await
                .expect("init raises the version to the floor");
            Arc::new(s) as Arc<dyn Sequencer>
        }
    })
    .await;
    // A floor too far above the version is refused, naming biggerThan and the key.
    let s = EtcdSequencer::from_spec(
        &spec(&server, "etcd").with("biggerThan", r#"{"far": 1000000000}"#),
    )
    .expect("valid spec");
    let e = s.init().await.expect_err("gap too large");
    assert!(
        e.message.contains("biggerThan") && e.message.contains("'far'"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration_suite() {
    let server = EtcdServer::start();
    layotto_conformance::configuration::run_all(|| async {
        config_store(&server).await as Arc<dyn ConfigStore>
    })
    .await;
}

/// Lock keys: what Layotto's `TryLock` writes (owner under a lease at
/// `<keyPrefixPath><resource>`) is held here; what we write is that same layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_layout_matches_layotto() {
    let server = EtcdServer::start();
    let mut c = raw(&server).await;
    let l =
        EtcdLock::from_spec(&spec(&server, "etcd").with("keyPrefixPath", "/lock")).expect("spec");
    l.init().await.expect("init");

    // Layotto's TryLock: grant, then Txn(If CreateRevision == 0, Then Put with lease).
    let res = format!("lock|||app||{}", unique("res"));
    let key = format!("/lock/{res}");
    let lease = c.lease_grant(30, None).await.expect("grant").id();
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key.as_str(),
            "layotto-owner",
            Some(PutOptions::new().with_lease(lease)),
        )]);
    assert!(c.txn(txn).await.expect("txn").succeeded());
    let lease_30s = Duration::from_secs(30);
    assert!(
        !l.try_lock(&res, "other", lease_30s)
            .await
            .expect("try_lock")
    );
    assert_eq!(
        l.unlock(&res, "other").await.expect("unlock"),
        LockStatus::LockBelongToOthers
    );
    assert_eq!(
        l.keep_alive(&res, "layotto-owner", Duration::from_secs(45))
            .await
            .expect("keep_alive of a Layotto-held lock"),
        LockStatus::Success
    );
    let kv = raw_get(&mut c, &key).await.expect("still held");
    assert_eq!(kv.value(), b"layotto-owner");
    assert_ne!(
        kv.lease(),
        lease,
        "keep-alive moved the lock to a fresh lease"
    );
    let ttl = c.lease_time_to_live(kv.lease(), None).await.expect("ttl");
    assert_eq!(
        ttl.granted_ttl(),
        45,
        "keep-alive renews with the requested expiry"
    );
    assert_eq!(
        l.unlock(&res, "layotto-owner").await.expect("unlock"),
        LockStatus::Success
    );
    assert!(
        raw_get(&mut c, &key).await.is_none(),
        "unlock deletes the key"
    );

    // Ours, read as Layotto's Unlock reads it: the owner is the value, under a lease.
    let res = format!("lock|||app||{}", unique("res"));
    let key = format!("/lock/{res}");
    assert!(
        l.try_lock(&res, "ours", Duration::from_secs(7))
            .await
            .expect("try_lock")
    );
    let kv = raw_get(&mut c, &key).await.expect("written");
    assert_eq!(kv.value(), b"ours");
    let ttl = c.lease_time_to_live(kv.lease(), None).await.expect("ttl");
    assert_eq!(ttl.granted_ttl(), 7, "the lease has the requested expiry");
    // Layotto's Unlock: Txn(If Value == owner, Then Delete).
    let txn = Txn::new()
        .when([Compare::value(key.as_str(), CompareOp::Equal, "ours")])
        .and_then([TxnOp::delete(key.as_str(), None)]);
    assert!(c.txn(txn).await.expect("txn").succeeded());
    assert_eq!(
        l.unlock(&res, "ours").await.expect("unlock"),
        LockStatus::LockUnexist
    );
    // The default prefix is Layotto's `/layotto/`.
    let d = lock(&server).await;
    let r = unique("res");
    assert!(d.try_lock(&r, "o", lease_30s).await.expect("try_lock"));
    assert!(raw_get(&mut c, &format!("/layotto/{r}")).await.is_some());
}

/// Sequencer ids are the version of `/layotto/<key>`: Layotto's `GetNextId`
/// (`Txn(Put(key, ""), Get(key))`) and ours continue each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_layout_matches_layotto() {
    let server = EtcdServer::start();
    let mut c = raw(&server).await;
    let s = sequencer(&server).await;
    let k = format!("sequencer|||app||{}", unique("k"));
    let key = format!("/layotto/{k}");
    let layotto_next = |mut c: Client| {
        let key = key.clone();
        async move {
            let txn = Txn::new().and_then([
                TxnOp::put(key.as_str(), "", None),
                TxnOp::get(key.as_str(), None),
            ]);
            let resp = c.txn(txn).await.expect("txn");
            match &resp.op_responses()[1] {
                TxnOpResponse::Get(g) => g.kvs()[0].version(),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    for want in 1..=3 {
        assert_eq!(layotto_next(c.clone()).await, want);
    }
    assert_eq!(s.get_next_id(&k).await.expect("next"), 4);
    assert_eq!(s.get_next_id(&k).await.expect("next"), 5);
    assert_eq!(layotto_next(c.clone()).await, 6);
    let kv = raw_get(&mut c, &key).await.expect("key");
    assert_eq!((kv.value(), kv.version()), (&b""[..], 6));
    assert_eq!(s.get_segment(&k, 10).await.expect("segment"), None);
}

fn query(app: &str, group: &str, label: &str, keys: &[&str]) -> ConfigQuery {
    ConfigQuery {
        app_id: app.to_owned(),
        group: group.to_owned(),
        label: label.to_owned(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        metadata: Metadata::new(),
    }
}

/// Configuration items are `/appId/group/label/key`, tags `/appId/group/label/key/<tag>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration_layout_matches_layotto() {
    let server = EtcdServer::start();
    let mut c = raw(&server).await;
    let store = config_store(&server).await;
    let app = unique("app");

    // Written as Layotto's Set writes: the item, then one key per tag *value* holding the
    // content; Layotto's Get reads that tag back as {value: content}, and so do we.
    let mut sub = store
        .subscribe(&query(&app, "g", "l", &["color"]))
        .await
        .expect("subscribe");
    c.put(format!("/{app}/g/l/color"), "blue", None)
        .await
        .expect("put");
    c.put(format!("/{app}/g/l/color/prod"), "blue", None)
        .await
        .expect("put tag");
    c.put(format!("/{app}/g/l/size"), "L", None)
        .await
        .expect("put");
    c.put(format!("/{app}/g/other/size"), "XL", None)
        .await
        .expect("put");
    let got = store.get(&query(&app, "g", "l", &[])).await.expect("get");
    let pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|i| (i.key.as_str(), i.content.as_str()))
        .collect();
    assert_eq!(pairs, [("color", "blue"), ("size", "L")]);
    assert_eq!(
        got[0].tags,
        HashMap::from([("prod".to_owned(), "blue".to_owned())])
    );
    assert_eq!((got[0].group.as_str(), got[0].label.as_str()), ("g", "l"));
    // Layotto's `*` matches every label.
    let all = store
        .get(&query(&app, "g", "*", &["size"]))
        .await
        .expect("get *");
    assert_eq!(all.len(), 2, "{all:?}");
    // A change written by a Layotto sidecar reaches our subscriber.
    let batch = within(Duration::from_secs(5), "watch event", sub.recv())
        .await
        .expect("subscription open");
    assert_eq!(
        (batch[0].key.as_str(), batch[0].content.as_str()),
        ("color", "blue")
    );

    // Ours: blank group and label are `default`; each tag is a key holding the tag value,
    // which Layotto's Get reads back as that tag.
    let item = ConfigItem {
        key: "timeout".into(),
        content: "30s".into(),
        tags: HashMap::from([("env".to_owned(), "test".to_owned())]),
        ..Default::default()
    };
    store
        .set(&app, vec![item], &Metadata::new())
        .await
        .expect("set");
    let resp = c
        .get(
            format!("/{app}/default/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .expect("raw get");
    let written: BTreeMap<String, String> = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf8").to_owned(),
                kv.value_str().expect("utf8").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        written,
        BTreeMap::from([
            (format!("/{app}/default/default/timeout"), "30s".to_owned()),
            (
                format!("/{app}/default/default/timeout/env"),
                "test".to_owned()
            ),
        ])
    );
    // Replacing the item without tags removes its tag keys; deleting removes the item.
    let plain = ConfigItem {
        key: "timeout".into(),
        content: "60s".into(),
        ..Default::default()
    };
    store
        .set(&app, vec![plain], &Metadata::new())
        .await
        .expect("set");
    assert!(
        raw_get(&mut c, &format!("/{app}/default/default/timeout/env"))
            .await
            .is_none()
    );
    store
        .delete(&query(&app, "", "", &["timeout"]))
        .await
        .expect("delete");
    assert!(
        raw_get(&mut c, &format!("/{app}/default/default/timeout"))
            .await
            .is_none()
    );
    // Keys that would break the layout are refused.
    let bad = ConfigItem {
        key: "a/b".into(),
        ..Default::default()
    };
    let e = store
        .set(&app, vec![bad], &Metadata::new())
        .await
        .expect_err("slash");
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
}

/// Concurrent sets of one item with different tags leave exactly one writer's tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sets_keep_one_tag_set() {
    let server = EtcdServer::start();
    let stores = [config_store(&server).await, config_store(&server).await];
    let app = unique("app");
    let writes = (0..8).map(|i| {
        let store = Arc::clone(&stores[i % 2]);
        let app = app.clone();
        async move {
            let item = ConfigItem {
                key: "k".into(),
                content: format!("v{i}"),
                tags: HashMap::from([(format!("t{i}"), format!("{i}"))]),
                ..Default::default()
            };
            store.set(&app, vec![item], &Metadata::new()).await
        }
    });
    for r in futures::future::join_all(writes).await {
        r.expect("set");
    }
    let got = stores[0]
        .get(&query(&app, "", "", &["k"]))
        .await
        .expect("get");
    assert_eq!(got.len(), 1, "{got:?}");
    let i = got[0].content.trim_start_matches('v');
    assert_eq!(
        got[0].tags,
        HashMap::from([(format!("t{i}"), i.to_owned())]),
        "tags of one writer only: {got:?}"
    );
}

/// Two sidecars on one etcd: one lock holder per resource, all ids distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sidecars_share_etcd() {
    let server = EtcdServer::start();
    let (l1, l2) = (lock(&server).await, lock(&server).await);
    let (s1, s2) = (sequencer(&server).await, sequencer(&server).await);
    for _ in 0..10 {
        let r = unique("shared");
        let lease = Duration::from_secs(10);
        let (a, b) = tokio::join!(l1.try_lock(&r, "a", lease), l2.try_lock(&r, "b", lease));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(a ^ b, "exactly one holder, got a={a} b={b}");
    }
    let k = unique("shared-seq");
    let take = |s: Arc<EtcdSequencer>, k: String| async move {
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(s.get_next_id(&k).await.expect("id"));
        }
        ids
    };
    let (a, b) = tokio::join!(take(s1, k.clone()), take(s2, k.clone()));
    let all: HashSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), 200, "ids repeat across sidecars");
}

/// Awaits `fut`, which must fail with Unavailable within the 1 s timeout (plus slack).
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = layotto_core::Result<T>>,
) {
    layotto_conformance::unavailable_within(Duration::from_secs(1), what, fut).await;
}

/// Kill: calls fail with Unavailable within the dial timeout and health is DOWN. Restart:
/// health is UP, ids continue above every id handed out before, a held lock is still held
/// (its owner's keep-alive succeeds and nobody else takes it), configuration survives and the
/// subscription delivers changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart() {
    let mut server = EtcdServer::start();
    let l = lock(&server).await;
    let s = sequencer(&server).await;
    let cs = config_store(&server).await;
    let (res, key, app) = (unique("held"), unique("ids"), unique("app"));
    let lease = Duration::from_secs(60);
    assert!(l.try_lock(&res, "owner", lease).await.expect("lock"));
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(s.get_next_id(&key).await.expect("id"));
    }
    let item = ConfigItem {
        key: "k".into(),
        content: "v1".into(),
        ..Default::default()
    };
    cs.set(&app, vec![item], &Metadata::new())
        .await
        .expect("set");
    let mut sub = cs
        .subscribe(&query(&app, "", "", &["k"]))
        .await
        .expect("subscribe");

    server.kill();
    unavailable("try_lock while down", l.try_lock(&unique("r"), "o", lease)).await;
    unavailable("unlock while down", l.unlock(&res, "owner")).await;
    unavailable("keep_alive while down", l.keep_alive(&res, "owner", lease)).await;
    unavailable("next id while down", s.get_next_id(&key)).await;
    unavailable("get while down", cs.get(&query(&app, "", "", &[]))).await;
    let lost = ConfigItem {
        key: "k".into(),
        content: "never acknowledged".into(),
        ..Default::default()
    };
    unavailable("set while down", cs.set(&app, vec![lost], &Metadata::new())).await;
    for h in [l.health().await, s.health().await, cs.health().await] {
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
            Err(e) => panic!("etcd still failing after restart: {e}"),
        }
    };
    let max_before = *before.iter().max().expect("ids");
    assert!(
        first > max_before,
        "id {first} after restart repeats or precedes {max_before}"
    );
    for h in [l.health().await, s.health().await, cs.health().await] {
        assert_eq!(h.status, HealthStatus::Up, "{h:?}");
    }
    // The lock acknowledged before the kill: still held, or its owner learns it is lost.
    match l
        .keep_alive(&res, "owner", lease)
        .await
        .expect("keep_alive")
    {
        LockStatus::Success => {
            assert!(
                !l.try_lock(&res, "thief", lease).await.expect("try_lock"),
                "two holders"
            );
        }
        LockStatus::LockUnexist => {}
        other => panic!("keep_alive after restart: {other:?}"),
    }
    let got = cs.get(&query(&app, "", "", &["k"])).await.expect("get");
    assert_eq!(got.first().map(|i| i.content.as_str()), Some("v1"));
    let item = ConfigItem {
        key: "k".into(),
        content: "v2".into(),
        ..Default::default()
    };
    cs.set(&app, vec![item], &Metadata::new())
        .await
        .expect("set after restart");
    let got = within(Duration::from_secs(15), "change after restart", async {
        loop {
            let batch = sub.recv().await.expect("subscription open");
            if let Some(i) = batch.into_iter().find(|i| i.content == "v2") {
                return i;
            }
        }
    })
    .await;
    assert_eq!(got.key, "k");
}

/// A frozen etcd (SIGSTOP: sockets open, no answers) makes calls fail with Unavailable within
/// the timeout instead of hanging; thawed, the same component works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_etcd_times_out() {
    let server = EtcdServer::start();
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
            Err(e) => panic!("etcd still failing after resume: {e}"),
        }
    };
    assert!(after > before, "id {after} after {before}");
    assert_eq!(l.health().await.status, HealthStatus::Up);
    // A listener that accepts and never answers: init fails within the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let c = EtcdLock::from_spec(
        &ComponentSpec::new("etcd-silent", "etcd")
            .with("endpoints", addr)
            .with("dialTimeout", "1"),
    )
    .expect("spec");
    unavailable("init against a silent server", c.init()).await;
}

/// Init against a port where nothing listens fails with Unavailable within the timeout,
/// naming the component.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_without_server_is_unavailable() {
    let mut server = EtcdServer::start();
    let l = EtcdLock::from_spec(&spec(&server, "etcd")).expect("spec");
    server.kill();
    let started = Instant::now();
    let e = within(Duration::from_secs(10), "init", l.init())
        .await
        .expect_err("init with etcd down");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("etcd-test") && e.message.contains("'endpoints'"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(l.health().await.status, HealthStatus::Down);
}

/// With authentication on: the right user works, a wrong password fails init naming the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authentication() {
    let server = EtcdServer::start();
    let mut c = raw(&server).await;
    let _ = c.role_add("root").await;
    c.user_add("root", "rootpw", None).await.expect("user add");
    c.user_grant_role("root", "root").await.expect("grant");
    c.auth_enable().await.expect("auth enable");
    let good = EtcdLock::from_spec(
        &spec(&server, "etcd")
            .with("username", "root")
            .with("password", "rootpw"),
    )
    .expect("spec");
    good.init().await.expect("init with the right password");
    layotto_conformance::lock::exclusive(&good).await;
    let bad = EtcdLock::from_spec(
        &spec(&server, "etcd")
            .with("username", "root")
            .with("password", "wrong"),
    )
    .expect("spec");
    let e = within(Duration::from_secs(10), "init", bad.init())
        .await
        .expect_err("wrong password");
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message.contains("'password'") && e.message.contains("etcd-test"),
        "{e}"
    );
}

/// Mutual TLS with Layotto's keys (file paths), and a refused handshake without a client
/// certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_tls() {
    let server = EtcdServer::start_tls(true);
    let certs = server.certs().clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).expect("write");
        p.display().to_string()
    };
    let (ca, cert, key) = (
        path("ca.pem", &certs.ca_cert),
        path("client.pem", &certs.client_cert),
        path("client.key", &certs.client_key),
    );
    let tls = |extra: &[(&str, &str)]| {
        let mut s = ComponentSpec::new("etcd-tls", "etcd")
            .with("endpoints", server.tls_addr())
            .with("dialTimeout", "2");
        for (k, v) in extra {
            s = s.with(*k, *v);
        }
        s
    };
    let l = EtcdLock::from_spec(&tls(&[
        ("tlsCa", &ca),
        ("tlsCert", &cert),
        ("tlsCertKey", &key),
    ]))
    .expect("spec");
    l.init().await.expect("init over mutual TLS");
    layotto_conformance::lock::exclusive(&l).await;
    let s = EtcdSequencer::from_spec(&tls(&[
        ("tlsCa", &ca),
        ("tlsCert", &cert),
        ("tlsCertKey", &key),
    ]))
    .expect("spec");
    s.init().await.expect("init over mutual TLS");
    layotto_conformance::sequencer::increasing_per_key(&s).await;
    let no_cert = EtcdLock::from_spec(&tls(&[("tlsCa", &ca)])).expect("spec");
    let e = within(
        Duration::from_secs(10),
        "init without client cert",
        no_cert.init(),
    )
    .await
    .expect_err("the server requires a client certificate");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

#[test]
fn bad_metadata_names_the_component_and_key() {
    let r = registries();
    let base = || ComponentSpec::new("bad-etcd", "etcd").with("endpoints", "127.0.0.1:2379");
    let blocks = [Kind::Lock, Kind::Sequencer, Kind::Configuration];
    let cases = [
        (ComponentSpec::new("bad-etcd", "etcd"), "endpoints"),
        (base().with("endpoints", "no-port"), "endpoints"),
        (base().with("dialTimeout", "soon"), "dialTimeout"),
        (base().with("password", "p"), "password"),
        (base().with("tlsCa", "/nonexistent/ca.pem"), "tlsCa"),
        (base().with("tlsCert", "/nonexistent/c.pem"), "tlsCert"),
    ];
    for (s, key) in cases {
        for kind in blocks {
            let e = r
                .create_any(kind, &s)
                .err()
                .unwrap_or_else(|| panic!("{kind} {key}: accepted"));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(
                e.message.contains(key) && e.message.contains("bad-etcd"),
                "{kind} {key}: {e}"
            );
        }
    }
    let e = r
        .create::<dyn Sequencer>(&base().with("biggerThan", "nope"))
        .err()
        .expect("bad biggerThan");
    assert!(
        e.message.contains("biggerThan") && e.message.contains("bad-etcd"),
        "{e}"
    );
    // Layotto's own sections load: lock and sequencer metadata of runtime_config.json, and the
    // configuration store's `address` / `timeout`.
    let lock = ComponentSpec::new("lock_demo", "etcd")
        .with("endpoints", "localhost:2379")
        .with("username", "")
        .with("password", "")
        .with("keyPrefixPath", "/lock")
        .with("dialTimeout", "5");
    let built = r.create_any(Kind::Lock, &lock).expect("lock_demo");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    let seq = ComponentSpec::new("sequencer_demo", "etcd")
        .with("endpoints", "localhost:2379")
        .with("segmentCacheEnable", "false")
        .with("segmentStep", "1")
        .with("username", "")
        .with("password", "")
        .with("dialTimeout", "5");
    let built = r.create_any(Kind::Sequencer, &seq).expect("sequencer_demo");
    assert!(
        built.warnings.iter().all(|w| w.contains("no effect")),
        "{:?}",
        built.warnings
    );
    let cfg = ComponentSpec::new("config_demo", "etcd")
        .with("address", r#"["127.0.0.1:2379"]"#)
        .with("timeout", "10");
    let built = r
        .create_any(Kind::Configuration, &cfg)
        .expect("config_demo");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
}

async fn state_store(server: &EtcdServer, version: &str) -> Arc<EtcdStateStore> {
    let s = EtcdStateStore::from_spec(&spec(server, "state.etcd").with_version(version))
        .expect("valid spec");
    s.init().await.expect("init etcd state store");
    Arc::new(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_suite_v1() {
    let server = EtcdServer::start();
    layotto_conformance::state::run_all(|| async {
        state_store(&server, "v1").await as Arc<dyn StateStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_suite_v2() {
    let server = EtcdServer::start();
    layotto_conformance::state::run_all(|| async {
        state_store(&server, "v2").await as Arc<dyn StateStore>
    })
    .await;
}

/// daprd's layout: key `keyPrefixPath/key`; v1 raw bytes, v2 the protobuf envelope
/// (`data` = 1, `ts` = 2, `ttl` = 3) under a lease when `ttlInSeconds` is given; ETag the
/// ModRevision. Values daprd wrote are read back; a version the type lacks is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_layout_matches_dapr() {
    use layotto_core::state::SetRequest;
    let server = EtcdServer::start();
    let mut c = raw(&server).await;
    let v1 = state_store(&server, "").await;
    v1.set(SetRequest {
        key: "app||one".into(),
        value: b"raw bytes".to_vec().into(),
        ..SetRequest::default()
    })
    .await
    .expect("set v1");
    let kv = raw_get(&mut c, "/app||one").await.expect("v1 key");
    assert_eq!(kv.value(), b"raw bytes");
    let got = v1
        .get("app||one", &Metadata::new())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(got.etag, Some(kv.mod_revision().to_string()));

    let v2 = state_store(&server, "v2").await;
    v2.set(SetRequest {
        key: "app||two".into(),
        value: br#"{"a":1}"#.to_vec().into(),
        metadata: Metadata::from([("ttlInSeconds".to_owned(), "100".to_owned())]),
        ..SetRequest::default()
    })
    .await
    .expect("set v2");
    let kv = raw_get(&mut c, "/app||two").await.expect("v2 key");
    assert!(kv.lease() != 0, "ttlInSeconds puts the key under a lease");
    let bytes = kv.value();
    assert!(bytes.starts_with(b"\x0a\x07{\"a\":1}\x12"), "{bytes:?}");
    assert!(
        bytes.ends_with(b"\x1a\x02\x08\x64"),
        "ttl = Duration{{100 s}}: {bytes:?}"
    );
    let got = v2
        .get("app||two", &Metadata::new())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(got.data.as_ref(), br#"{"a":1}"#);
    assert!(got.metadata.contains_key("ttlExpireTime"), "{got:?}");

    // A v2 value as daprd writes it (data, ts, empty ttl), read here.
    c.put(
        "/app||dapr",
        b"\x0a\x02hi\x12\x06\x08\xc0\xb4\x8a\xb4\x06\x1a\x00".to_vec(),
        None,
    )
    .await
    .expect("daprd's value");
    let got = v2
        .get("app||dapr", &Metadata::new())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(got.data.as_ref(), b"hi");
    assert_eq!(
        got.metadata.get("ttlExpireTime").map(String::as_str),
        Some("2024-07-01T12:00:00Z")
    );

    let e = registries()
        .create::<dyn StateStore>(&spec(&server, "state.etcd").with_version("v3"))
        .err()
        .expect("no v3");
    assert!(e.message.contains("has no version 'v3'"), "{e}");
    let e = registries()
        .create::<dyn StateStore>(&spec(&server, "etcd").with_version("v2"))
        .map(|_| ())
        .err();
    assert!(e.is_none(), "the Layotto name takes v2 too: {e:?}");
}
