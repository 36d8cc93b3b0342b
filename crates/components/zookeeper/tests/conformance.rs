//! The lock, sequencer and state suites against the ZooKeeper components, each on a fresh
//! ZooKeeper (Debian package `zookeeperd`), plus layout fixtures (nodes written with a raw
//! `zookeeper-client` the way `mosn/layotto`'s and Dapr's Go components write them, and the
//! other way round), kill / restart, a frozen server, a session expired by a network
//! partition, several sidecars on one ZooKeeper, many locks on one session, digest
//! authentication and bad metadata.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_components_zookeeper::{ZkLock, ZkSequencer, ZkStateStore};
use layotto_conformance::{unique, within};
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::sequencer::Sequencer;
use layotto_core::state::{SetRequest, StateStore};
use layotto_core::{Component, ComponentSpec, ErrorKind, HealthStatus, Kind, Metadata, Registries};
use layotto_test_support::ZooKeeperServer;
use tokio::task::AbortHandle;
use zookeeper_client as zk;

/// A spec on `server` with a 2 s session timeout (the bound of every call).
fn spec(server: &ZooKeeperServer) -> ComponentSpec {
    ComponentSpec::new("zk-test", "zookeeper")
        .with("zookeeperHosts", server.addr())
        .with("zookeeperPassword", "")
        .with("sessionTimeout", "2")
        .with("logInfo", "false")
        .with("keyPrefixPath", "/")
}

async fn lock(server: &ZooKeeperServer) -> Arc<ZkLock> {
    let l = ZkLock::from_spec(&spec(server)).expect("valid spec");
    l.init().await.expect("init ZooKeeper lock");
    Arc::new(l)
}

async fn sequencer(server: &ZooKeeperServer) -> Arc<ZkSequencer> {
    let s = ZkSequencer::from_spec(&spec(server)).expect("valid spec");
    s.init().await.expect("init ZooKeeper sequencer");
    Arc::new(s)
}

/// The state store the way `config_integrate_test.json` configures it: `servers`,
/// `sessionTimeout` as a Go duration, `keyPrefixPath` `/`.
async fn state(server: &ZooKeeperServer) -> Arc<ZkStateStore> {
    let s = ComponentSpec::new("zk-state", "zookeeper")
        .with("servers", server.addr())
        .with("zookeeperPassword", "")
        .with("sessionTimeout", "2s")
        .with("logInfo", "false")
        .with("keyPrefixPath", "/");
    let st = ZkStateStore::from_spec(&s).expect("valid spec");
    st.init().await.expect("init ZooKeeper state store");
    Arc::new(st)
}

/// A raw client, for writing and checking the Go components' layout by hand.
async fn raw(server: &ZooKeeperServer) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&server.addr())
        .await
        .expect("raw ZooKeeper client")
}

fn open(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_suite() {
    let server = ZooKeeperServer::start();
    layotto_conformance::lock::run_all(|| async { lock(&server).await as Arc<dyn LockStore> })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_suite() {
    let server = ZooKeeperServer::start();
    layotto_conformance::sequencer::run_all(|| async {
        sequencer(&server).await as Arc<dyn Sequencer>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_bigger_than() {
    let server = ZooKeeperServer::start();
    layotto_conformance::sequencer::bigger_than(|key, floor| {
        let spec = spec(&server).with("biggerThan", format!("{{\"{key}\": {floor}}}"));
        async move {
            let s = ZkSequencer::from_spec(&spec).expect("valid spec");
            s.init()
                .await
                .expect("init raises the version to the floor");
            Arc::new(s) as Arc<dyn Sequencer>
        }
    })
    .await;
    let s = ZkSequencer::from_spec(&spec(&server).with("biggerThan", r#"{"far": 1000000000}"#))
        .expect("valid spec");
    let e = s.init().await.expect_err("gap too large");
    assert!(
        e.message.contains("biggerThan") && e.message.contains("'far'"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_suite() {
    let server = ZooKeeperServer::start();
    layotto_conformance::state::run_all(|| async { state(&server).await as Arc<dyn StateStore> })
        .await;
}

/// Lock nodes: what Layotto's `TryLock` writes (an ephemeral `/<resource>` holding the owner,
/// in a session of its own) is held here, and its owner can keep it alive and unlock it; what
/// we write is that same node, which Layotto's `Unlock` (get, compare, delete at the version)
/// releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_layout_matches_layotto() {
    let server = ZooKeeperServer::start();
    let layotto = raw(&server).await;
    let l = lock(&server).await;
    let res = format!("lock|||app1||{}", unique("res"));
    let path = format!("/{res}");
    layotto
        .create(&path, b"layotto-owner", &open(zk::CreateMode::Ephemeral))
        .await
        .expect("Layotto's TryLock");
    let lease = Duration::from_secs(30);
    assert!(!l.try_lock(&res, "other", lease).await.expect("try_lock"));
    assert_eq!(
        l.unlock(&res, "other").await.expect("unlock"),
        LockStatus::LockBelongToOthers
    );
    assert_eq!(
        l.keep_alive(&res, "layotto-owner", lease)
            .await
            .expect("keep_alive of a Layotto-held lock"),
        LockStatus::Success
    );
    let (data, stat) = layotto.get_data(&path).await.expect("still held");
    assert_eq!(data, b"layotto-owner");
    assert_eq!(
        Some(stat.ephemeral_owner),
        l.session_id(),
        "keep-alive moved the node into the component's session"
    );
    // Layotto's sidecar closing its session (at its expiry) no longer drops the lock.
    drop(layotto); // the last handle: its session closes
    tokio::time::sleep(Duration::from_millis(500)).await;
    let layotto = raw(&server).await;
    assert!(layotto.check_stat(&path).await.expect("stat").is_some());
    assert_eq!(
        l.unlock(&res, "layotto-owner").await.expect("unlock"),
        LockStatus::Success
    );
    assert!(layotto.check_stat(&path).await.expect("stat").is_none());

    // Ours, read and released as Layotto's Unlock does.
    let res = format!("lock|||app1||{}", unique("res"));
    let path = format!("/{res}");
    assert!(l.try_lock(&res, "ours", lease).await.expect("try_lock"));
    let (data, stat) = layotto.get_data(&path).await.expect("written");
    assert_eq!(data, b"ours");
    assert_ne!(stat.ephemeral_owner, 0, "an ephemeral node");
    layotto
        .delete(&path, Some(stat.version))
        .await
        .expect("Layotto's Unlock");
    assert_eq!(
        l.unlock(&res, "ours").await.expect("unlock"),
        LockStatus::LockUnexist
    );
}

/// Sequencer ids are the version of `/<key>`: Layotto's `GetNextId` (`Set(path, "", -1)`) and
/// ours continue each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencer_layout_matches_layotto() {
    let server = ZooKeeperServer::start();
    let layotto = raw(&server).await;
    let s = sequencer(&server).await;
    let key = format!("sequencer|||app1||{}", unique("k"));
    let path = format!("/{key}");
    // Layotto never creates the node: its first GetNextId fails until someone does.
    assert!(matches!(
        layotto.set_data(&path, b"", None).await,
        Err(zk::Error::NoNode)
    ));
    assert_eq!(s.get_next_id(&key).await.expect("next"), 1);
    for want in 2..=3 {
        let stat = layotto
            .set_data(&path, b"", None)
            .await
            .expect("Layotto's GetNextId");
        assert_eq!(i64::from(stat.version), want);
    }
    assert_eq!(s.get_next_id(&key).await.expect("next"), 4);
    let (data, stat) = layotto.get_data(&path).await.expect("node");
    assert_eq!((data.as_slice(), stat.version), (&b""[..], 4));
    assert_eq!(stat.ephemeral_owner, 0, "a persistent node");
    assert_eq!(s.get_segment(&key, 10).await.expect("segment"), None);
}

/// State nodes: Dapr's `Set` writes the raw value at `path.Join(keyPrefixPath, key)`, and its
/// `Get` reports the version as the ETag; both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_layout_matches_dapr() {
    let server = ZooKeeperServer::start();
    let dapr = raw(&server).await;
    let st = state(&server).await;
    let key = format!("app1||{}", unique("k"));
    let path = format!("/{key}");
    dapr.create(&path, b"{\"v\":1}", &open(zk::CreateMode::Persistent))
        .await
        .expect("Dapr's Set (create)");
    dapr.set_data(&path, b"{\"v\":2}", None)
        .await
        .expect("Dapr's Set");
    let item = st
        .get(&key, &Metadata::new())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(item.data, Bytes::from_static(b"{\"v\":2}"));
    assert_eq!(item.etag.as_deref(), Some("1"), "the ETag is the version");
    st.set(SetRequest {
        key: key.clone(),
        value: Bytes::from_static(b"ours"),
        etag: Some("1".into()),
        ..Default::default()
    })
    .await
    .expect("set with the version as ETag");
    let (data, stat) = dapr.get_data(&path).await.expect("Dapr's Get");
    assert_eq!((data.as_slice(), stat.version), (&b"ours"[..], 2));
    // A key ZooKeeper cannot name is stored under an encoded name, one-to-one.
    let odd = format!("app1||{}/🔑", unique("k"));
    st.set(SetRequest {
        key: odd.clone(),
        value: Bytes::from_static(b"x"),
        ..Default::default()
    })
    .await
    .expect("set an odd key");
    let got = st
        .get(&odd, &Metadata::new())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.data, Bytes::from_static(b"x"));
    let children = dapr.list_children("/").await.expect("ls /");
    assert!(children.iter().any(|c| c.starts_with('~')), "{children:?}");
}

/// Many locks and several components share one session each (Layotto opens a session per
/// lock and runs into ZooKeeper's 60-connections-per-address limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_locks_share_one_session() {
    let server = ZooKeeperServer::start();
    let l = lock(&server).await;
    let session = l.session_id().expect("a session");
    let resources: Vec<String> = (0..200).map(|i| unique(&format!("many{i}"))).collect();
    let taken = futures::future::join_all(
        resources
            .iter()
            .map(|r| l.try_lock(r, "o", Duration::from_secs(30))),
    )
    .await;
    assert!(taken.into_iter().all(|t| t.expect("try_lock")));
    assert_eq!(l.session_id(), Some(session), "one session for every lock");
    let c = raw(&server).await;
    let (_, stat) = c
        .get_data(&format!("/{}", resources[0]))
        .await
        .expect("node");
    assert_eq!(stat.ephemeral_owner, session);
}

/// When a lock was held: from the start of the `try_lock` that took it to its lease end.
type Span = (Instant, Instant, &'static str);

/// Two sidecars on one ZooKeeper: one lock holder per resource at every moment, all ids
/// distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sidecars_share_zookeeper() {
    let server = ZooKeeperServer::start();
    let (l1, l2) = (lock(&server).await, lock(&server).await);
    let (s1, s2) = (sequencer(&server).await, sequencer(&server).await);
    for _ in 0..10 {
        let r = unique("shared");
        let lease = Duration::from_secs(10);
        let (a, b) = tokio::join!(l1.try_lock(&r, "a", lease), l2.try_lock(&r, "b", lease));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(a ^ b, "exactly one holder, got a={a} b={b}");
    }
    // Short leases taken in turns: a lock is free only after its holder's lease ended.
    let r = unique("turns");
    let held: Arc<Mutex<Vec<Span>>> = Arc::default();
    let contend = |l: Arc<ZkLock>, who: &'static str| {
        let (r, held) = (r.clone(), Arc::clone(&held));
        async move {
            let end = Instant::now() + Duration::from_secs(4);
            while Instant::now() < end {
                let start = Instant::now();
                if l.try_lock(&r, who, Duration::from_millis(300))
                    .await
                    .expect("try_lock")
                {
                    held.lock().expect("mutex").push((
                        start,
                        start + Duration::from_millis(300),
                        who,
                    ));
                    tokio::time::sleep(Duration::from_millis(350)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    tokio::join!(contend(Arc::clone(&l1), "a"), contend(Arc::clone(&l2), "b"));
    let mut spans = held.lock().expect("mutex").clone();
    spans.sort_by_key(|s| s.0);
    assert!(spans.len() >= 4, "{} turns", spans.len());
    for w in spans.windows(2) {
        // A later acquisition starts after the previous lease (taken before the call began)
        // ended: requests start before the node is created, so allow the call's own latency.
        assert!(
            w[1].0 + Duration::from_millis(50) >= w[0].1,
            "overlap: {w:?}"
        );
    }
    let k = unique("shared-seq");
    let take = |s: Arc<ZkSequencer>, k: String| async move {
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

/// A TCP proxy in front of ZooKeeper that can cut every connection: a network partition
/// between one sidecar and the server, which stays up for the others.
struct Partition {
    addr: String,
    blocked: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Partition {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let blocked = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (b, c) = (Arc::clone(&blocked), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                if b.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let upstream = upstream.clone();
                let t = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().expect("mutex").push(t.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            blocked,
            conns,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        for h in self.conns.lock().expect("mutex").drain(..) {
            h.abort();
        }
    }

    /// Lets connections through again.
    fn heal(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A partition longer than the session timeout: the server expires the session and deletes
/// its lock, another sidecar can take it, and once the partition heals the owner learns it
/// lost the lock (keep-alive and unlock say so, a new session is opened by itself); the two
/// never hold it together in ZooKeeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_session_loses_the_lock() {
    let server = ZooKeeperServer::start();
    let proxy = Partition::start(server.addr()).await;
    let l =
        ZkLock::from_spec(&spec(&server).with("zookeeperHosts", proxy.addr.clone())).expect("spec");
    l.init().await.expect("init through the proxy");
    let other = lock(&server).await;
    let c = raw(&server).await;
    let res = unique("expiring");
    let path = format!("/{res}");
    let lease = Duration::from_secs(60);
    assert!(l.try_lock(&res, "owner", lease).await.expect("lock"));
    let old = l.session_id().expect("session");

    proxy.cut();
    unavailable(
        "keep_alive while partitioned",
        l.keep_alive(&res, "owner", lease),
    )
    .await;
    // The server expires the session (2 s) and deletes its node.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.check_stat(&path).await.expect("stat").is_some() {
        assert!(
            Instant::now() < deadline,
            "the expired session's node is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        other
            .try_lock(&res, "thief", lease)
            .await
            .expect("free now")
    );
    proxy.heal();

    // The owner learns (the first calls may see the expiry itself, as Unavailable, before
    // the session is replaced).
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        match l.keep_alive(&res, "owner", lease).await {
            Ok(s) => break s,
            Err(e) if e.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("keep_alive after the partition: {e}"),
        }
    };
    assert_eq!(status, LockStatus::LockBelongToOthers);
    assert_ne!(l.session_id(), Some(old), "a new session");
    assert_eq!(
        l.unlock(&res, "owner").await.expect("unlock"),
        LockStatus::LockBelongToOthers
    );
    assert!(
        !l.try_lock(&res, "owner", lease).await.expect("try_lock"),
        "two holders"
    );
    let (data, _) = c.get_data(&path).await.expect("node");
    assert_eq!(data, b"thief");
    // Released by the thief, the lock is free for the owner again, who never lost track.
    assert_eq!(
        other.unlock(&res, "thief").await.expect("unlock"),
        LockStatus::Success
    );
    assert_eq!(
        l.keep_alive(&res, "owner", lease)
            .await
            .expect("keep_alive"),
        LockStatus::LockUnexist
    );
}

/// Awaits `fut`, which must fail with Unavailable within the 2 s timeout (plus slack).
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = layotto_core::Result<T>>,
) {
    layotto_conformance::unavailable_within(Duration::from_secs(2), what, fut).await;
}

/// Kill: calls fail with Unavailable within the session timeout and health is DOWN. Restart:
/// health is UP, ids continue above every id handed out before, acknowledged state is there,
/// and a held lock is still held or its owner learns it is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart() {
    let mut server = ZooKeeperServer::start();
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
            Err(e) => panic!("ZooKeeper still failing after restart: {e}"),
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
}

/// Init against a port where nothing listens fails with Unavailable within the timeout,
/// naming the component and the hosts key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_without_server_is_unavailable() {
    let mut server = ZooKeeperServer::start();
    let l = ZkLock::from_spec(&spec(&server)).expect("spec");
    server.kill();
    let started = Instant::now();
    let e = within(Duration::from_secs(10), "init", l.init())
        .await
        .expect_err("init with ZooKeeper down");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("zk-test") && e.message.contains("'zookeeperHosts'"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(l.health().await.status, HealthStatus::Down);
    // A listener that accepts and never answers: init fails within the timeout too.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let c = ZkLock::from_spec(&spec(&server).with("zookeeperHosts", addr)).expect("spec");
    unavailable("init against a silent server", c.init()).await;
}

/// Bad metadata fails the factory (no I/O) with an error naming the component and the key.
#[test]
fn bad_metadata_names_component_and_key() {
    let mut r = Registries::new();
    layotto_components_zookeeper::register(&mut r).expect("register");
    let base = || ComponentSpec::new("zk-bad", "zookeeper").with("zookeeperHosts", "127.0.0.1");
    for kind in [Kind::Lock, Kind::Sequencer, Kind::State] {
        for (spec, key) in [
            (ComponentSpec::new("zk-bad", "zookeeper"), "zookeeperHosts"),
            (base().with("zookeeperHosts", "h:99999"), "zookeeperHosts"),
            (base().with("sessionTimeout", "soon"), "sessionTimeout"),
            (base().with("sessionTimeout", "0"), "sessionTimeout"),
            (
                base().with("zookeeperPassword", "nocolon"),
                "zookeeperPassword",
            ),
            (base().with("keyPrefixPath", "/a/../b"), "keyPrefixPath"),
        ] {
            let key =
                if kind == Kind::State && key == "zookeeperHosts" && spec.get_ci(key).is_none() {
                    "servers"
                } else {
                    key
                };
            let e = r
                .create_any(kind, &spec)
                .err()
                .unwrap_or_else(|| panic!("{kind}: {key}: accepted {:?}", spec.metadata));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(
                e.message.contains(key) && e.message.contains("zk-bad"),
                "{kind}: {key}: {e}"
            );
        }
    }
    let e = r
        .create_any(Kind::Sequencer, &base().with("biggerThan", "[1]"))
        .err()
        .expect("bad biggerThan");
    assert!(
        e.message.contains("biggerThan") && e.message.contains("zk-bad"),
        "{e}"
    );
}

/// A frozen ZooKeeper (SIGSTOP: sockets open, no answers) makes calls fail with Unavailable
/// within the timeout instead of hanging; thawed, the same components work again and no id
/// repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_zookeeper_times_out() {
    let server = ZooKeeperServer::start();
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
            Err(e) => panic!("ZooKeeper still failing after resume: {e}"),
        }
    };
    assert!(after > before, "id {after} after {before}");
    assert_eq!(l.health().await.status, HealthStatus::Up);
}

/// `zookeeperPassword` (`user:password`) authenticates the session with ZooKeeper's digest
/// scheme: a prefix node only that user may use works with it, and without it every call is
/// refused with PermissionDenied naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_authentication() {
    let server = ZooKeeperServer::start();
    let admin = zk::Client::connector()
        .with_auth("digest", b"layotto:s3cret")
        .connect(&server.addr())
        .await
        .expect("authenticated raw client");
    admin
        .create(
            "/secure",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
        )
        .await
        .expect("a node only layotto may use");
    let with = |pw: &str| {
        ComponentSpec::new("zk-auth", "zookeeper")
            .with("servers", server.addr())
            .with("sessionTimeout", "2s")
            .with("keyPrefixPath", "/secure")
            .with("zookeeperPassword", pw)
    };
    let good = ZkStateStore::from_spec(&with("layotto:s3cret")).expect("spec");
    good.init().await.expect("init");
    let key = unique("k");
    good.set(SetRequest {
        key: key.clone(),
        value: Bytes::from_static(b"v"),
        ..Default::default()
    })
    .await
    .expect("set under the protected prefix");
    let (data, _) = admin
        .get_data(&format!("/secure/{key}"))
        .await
        .expect("written under /secure");
    assert_eq!(data, b"v");
    let bad = ZkStateStore::from_spec(&with("layotto:wrong")).expect("spec");
    bad.init()
        .await
        .expect("init (ZooKeeper checks digests per node)");
    let e = bad
        .set(SetRequest {
            key: unique("k"),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })
        .await
        .expect_err("wrong password");
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message.contains("'zookeeperPassword'") && e.message.contains("zk-auth"),
        "{e}"
    );
}
