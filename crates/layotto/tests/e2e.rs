//! End-to-end: every Layotto rpc over a real gRPC connection to a running `layotto` process,
//! including failure paths.
#![allow(missing_docs)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use layotto_sdk::{EventStatus, Increment, pb};
use serde_json::json;
use support::Sidecar;
use tonic::Code;

fn code(e: layotto_sdk::Error) -> (Code, String) {
    match e {
        layotto_sdk::Error::Status(s) => (s.code(), s.message().to_owned()),
        other => panic!("expected a status, got {other}"),
    }
}

/// Every in-memory block, plus local files and secrets rooted in `dir`.
fn all_blocks(dir: &std::path::Path) -> serde_json::Value {
    let secrets = dir.join("secrets.json");
    std::fs::write(
        &secrets,
        r#"{"db": {"user": "admin", "password": "s3cret"}, "token": "abc", "port": 5432}"#,
    )
    .expect("write secrets");
    json!({
        "app": {"app_id": "app1"},
        "hellos": {"quick_start_demo": {"type": "helloworld", "hello": "greeting"}},
        "state": {"state_demo": {"type": "in-memory"}},
        "lock": {"lock_demo": {"type": "in-memory"}},
        "sequencer": {"sequencer_demo": {"type": "in-memory", "biggerThan": {"key666": 1000}}},
        "config_store": {"config_demo": {"type": "in-memory"}},
        "pub_subs": {"pub_subs_demo": {"type": "in-memory"}},
        "secret_store": {
            "secret_demo": {"type": "local.file", "metadata": {"secretsFile": secrets.to_string_lossy()}},
            "env_demo": {"type": "local.env", "metadata": {"prefix": "E2E_SECRET_"}}
        },
        "file": {"file_demo": {"type": "local", "metadata": {"root": dir.join("files").to_string_lossy()}}},
    })
}

/// A sidecar with every block; the returned dir holds its files root and secrets file.
fn start_all() -> (Sidecar, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = all_blocks(dir.path());
    let s = Sidecar::start_with_env(cfg, &[("E2E_SECRET_API_KEY", "k-123")]);
    (s, dir)
}

fn item(key: &str, value: &[u8]) -> pb::StateItem {
    pb::StateItem {
        key: key.into(),
        value: value.to_vec(),
        ..Default::default()
    }
}

#[tokio::test]
async fn hello_and_lifecycle() {
    let (s, _dir) = start_all();
    let c = s.client().await;
    assert_eq!(
        c.say_hello("quick_start_demo", "bob").await.expect("hello"),
        "greeting, bob"
    );
    let (code_, msg) = code(c.say_hello("nope", "bob").await.expect_err("unknown"));
    assert_eq!(code_, Code::InvalidArgument, "{msg}");
    let mut md = HashMap::new();
    md.insert("hello".to_owned(), "hi".to_owned());
    c.apply_configuration("hellos", "quick_start_demo", md)
        .await
        .expect("apply");
    assert_eq!(
        c.say_hello("quick_start_demo", "bob").await.expect("hello"),
        "hi, bob"
    );
    let (code_, _) = code(
        c.apply_configuration("hellos", "missing", HashMap::new())
            .await
            .expect_err("unknown component"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn state_crud_etags_ttl_bulk_and_transactions() {
    let (s, _dir) = start_all();
    let c = s.client().await;
    let st = "state_demo";
    // missing key: empty response, not an error
    assert_eq!(c.get_state(st, "nothing").await.expect("get"), None);
    c.save_state(st, "k1", b"v1".to_vec()).await.expect("save");
    let v1 = c.get_state(st, "k1").await.expect("get").expect("present");
    assert_eq!(v1.data, b"v1");
    assert!(!v1.etag.is_empty());
    // stale etag -> ABORTED, value unchanged
    let mut stale = item("k1", b"v2");
    stale.etag = Some(pb::Etag {
        value: "999999".into(),
    });
    let (code_, msg) = code(c.save_states(st, vec![stale]).await.expect_err("stale"));
    assert_eq!(code_, Code::Aborted, "{msg}");
    assert_eq!(
        c.get_state(st, "k1").await.expect("get").expect("v").data,
        b"v1"
    );
    // right etag -> saved, new etag
    let mut right = item("k1", b"v2");
    right.etag = Some(pb::Etag {
        value: v1.etag.clone(),
    });
    c.save_states(st, vec![right]).await.expect("right etag");
    let v2 = c.get_state(st, "k1").await.expect("get").expect("v");
    assert_eq!(v2.data, b"v2");
    assert_ne!(v2.etag, v1.etag);
    // last-write still checks an etag it is given; without one it overwrites
    let mut lw = item("k1", b"v3");
    lw.etag = Some(pb::Etag {
        value: "bogus".into(),
    });
    lw.options = Some(pb::StateOptions {
        concurrency: pb::state_options::StateConcurrency::ConcurrencyLastWrite.into(),
        consistency: 0,
    });
    let (code_, _) = code(
        c.save_states(st, vec![lw.clone()])
            .await
            .expect_err("last-write with a stale etag"),
    );
    assert_eq!(code_, Code::Aborted);
    lw.etag = None;
    c.save_states(st, vec![lw]).await.expect("last-write");
    // first-write without etag on an existing key -> ABORTED; on a new key -> ok
    let fw = |k: &str| {
        let mut i = item(k, b"first");
        i.options = Some(pb::StateOptions {
            concurrency: pb::state_options::StateConcurrency::ConcurrencyFirstWrite.into(),
            consistency: 0,
        });
        i
    };
    let (code_, _) = code(
        c.save_states(st, vec![fw("k1")])
            .await
            .expect_err("first-write"),
    );
    assert_eq!(code_, Code::Aborted);
    c.save_states(st, vec![fw("fresh")])
        .await
        .expect("first write of a new key");
    // delete with a stale etag -> ABORTED
    let (code_, _) = code(
        c.delete_state(st, "k1", Some("1"))
            .await
            .expect_err("stale delete"),
    );
    assert_eq!(code_, Code::Aborted);
    c.delete_state(st, "k1", None).await.expect("delete");
    assert_eq!(c.get_state(st, "k1").await.expect("get"), None);

    // TTL
    let mut t = item("ttl", b"x");
    t.metadata.insert("ttlInSeconds".into(), "1".into());
    c.save_states(st, vec![t]).await.expect("ttl save");
    assert!(c.get_state(st, "ttl").await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(c.get_state(st, "ttl").await.expect("get"), None, "expired");
    let mut bad = item("ttl", b"x");
    bad.metadata.insert("ttlInSeconds".into(), "abc".into());
    let (code_, msg) = code(c.save_states(st, vec![bad]).await.expect_err("bad ttl"));
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("ttlInSeconds"), "{msg}");

    // bulk
    c.save_states(st, vec![item("b1", b"1"), item("b2", b"2")])
        .await
        .expect("bulk save");
    let items = c
        .get_bulk_state(st, vec!["b1".into(), "b2".into(), "b3".into()])
        .await
        .expect("bulk get");
    let got: HashMap<_, _> = items
        .iter()
        .map(|i| (i.key.as_str(), i.data.clone()))
        .collect();
    assert_eq!(got["b1"], b"1");
    assert_eq!(got["b2"], b"2");
    assert!(got["b3"].is_empty());
    c.delete_bulk_state(st, vec![item("b1", b""), item("b2", b"")])
        .await
        .expect("bulk delete");
    assert_eq!(c.get_state(st, "b1").await.expect("get"), None);

    // transaction: applied in order and atomically
    let op = |t: &str, i: pb::StateItem| pb::TransactionalStateOperation {
        operation_type: t.into(),
        request: Some(i),
    };
    c.execute_state_transaction(
        st,
        vec![
            op("upsert", item("t1", b"a")),
            op("upsert", item("t2", b"b")),
            op("delete", item("t1", b"")),
        ],
    )
    .await
    .expect("tx");
    assert_eq!(c.get_state(st, "t1").await.expect("get"), None);
    assert_eq!(
        c.get_state(st, "t2").await.expect("get").expect("t2").data,
        b"b"
    );
    let mut stale = item("t2", b"zzz");
    stale.etag = Some(pb::Etag {
        value: "nope".into(),
    });
    let (code_, _) = code(
        c.execute_state_transaction(
            st,
            vec![op("upsert", item("t3", b"c")), op("upsert", stale)],
        )
        .await
        .expect_err("tx with stale etag"),
    );
    assert_eq!(code_, Code::Aborted);
    assert_eq!(
        c.get_state(st, "t3").await.expect("get"),
        None,
        "nothing applied"
    );
    let (code_, _) = code(
        c.execute_state_transaction(st, vec![op("merge", item("t4", b""))])
            .await
            .expect_err("bad op"),
    );
    assert_eq!(code_, Code::InvalidArgument);

    // failure paths: unknown store, empty key, illegal key
    let (code_, msg) = code(
        c.save_state("nope", "k", b"v".to_vec())
            .await
            .expect_err("unknown store"),
    );
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("nope"), "{msg}");
    let (code_, msg) = code(c.get_state(st, "").await.expect_err("empty key"));
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("key"), "{msg}");
    let (code_, _) = code(
        c.save_state(st, "a||b", b"v".to_vec())
            .await
            .expect_err("|| key"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn nothing_configured_is_failed_precondition() {
    let s = Sidecar::start(json!({"app": {"app_id": "bare"},
        "hellos": {"h": {"type": "helloworld"}}}));
    let c = s.client().await;
    let checks = [
        code(c.get_state("s", "k").await.expect_err("state")),
        code(c.try_lock("l", "r", "o", 5).await.expect_err("lock")),
        code(
            c.get_next_id("q", "k", Increment::Strong)
                .await
                .expect_err("seq"),
        ),
        code(
            c.publish_event("p", "t", b"x".to_vec(), "")
                .await
                .expect_err("pubsub"),
        ),
        code(c.get_secret("s", "k").await.expect_err("secret")),
        code(c.get_file("f", "x").await.expect_err("file")),
        code(
            c.invoke_binding("b", "get", vec![], HashMap::new())
                .await
                .expect_err("binding"),
        ),
    ];
    for (code_, msg) in checks {
        assert_eq!(code_, Code::FailedPrecondition, "{msg}");
    }
}

#[tokio::test]
async fn lock_exclusive_expiry_and_keep_alive() {
    use pb::lock_keep_alive_response::Status as K;
    use pb::unlock_response::Status as U;
    let (s, _dir) = start_all();
    let c = s.client().await;
    let l = "lock_demo";
    assert!(c.try_lock(l, "res", "a", 1).await.expect("lock"));
    assert!(!c.try_lock(l, "res", "b", 1).await.expect("held by a"));
    assert!(!c.try_lock(l, "res", "a", 1).await.expect("not re-entrant"));
    assert_eq!(
        c.unlock(l, "res", "b").await.expect("unlock"),
        U::LockBelongToOthers
    );
    assert_eq!(
        c.lock_keep_alive(l, "res", "b", 5).await.expect("ka"),
        K::LockBelongToOthers
    );
    // keep-alive by the owner extends past the original 1 s lease
    assert_eq!(
        c.lock_keep_alive(l, "res", "a", 3).await.expect("ka"),
        K::Success
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !c.try_lock(l, "res", "b", 1)
            .await
            .expect("still held after keep-alive")
    );
    assert_eq!(c.unlock(l, "res", "a").await.expect("unlock"), U::Success);
    assert_eq!(
        c.unlock(l, "res", "a").await.expect("unlock again"),
        U::LockUnexist
    );
    // expiry then re-acquire by another owner
    assert!(c.try_lock(l, "exp", "a", 1).await.expect("lock"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        c.lock_keep_alive(l, "exp", "a", 5).await.expect("ka"),
        K::LockUnexist
    );
    assert!(
        c.try_lock(l, "exp", "b", 1)
            .await
            .expect("re-acquire after expiry")
    );
    // failure paths
    let (code_, msg) = code(c.try_lock(l, "", "a", 1).await.expect_err("empty resource"));
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("resource_id"), "{msg}");
    let (code_, msg) = code(c.try_lock(l, "r", "", 1).await.expect_err("empty owner"));
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("lock_owner"), "{msg}");
    let (code_, _) = code(c.try_lock(l, "r", "a", 0).await.expect_err("zero expire"));
    assert_eq!(code_, Code::InvalidArgument);
    let (code_, _) = code(
        c.try_lock("nope", "r", "a", 1)
            .await
            .expect_err("unknown store"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn sequencer_strong_weak_and_floor() {
    let (s, _dir) = start_all();
    let c = s.client().await;
    let q = "sequencer_demo";
    let first = c
        .get_next_id(q, "key666", Increment::Strong)
        .await
        .expect("id");
    assert!(first > 1000, "biggerThan floor: {first}");
    let mut seen = HashSet::new();
    let mut last = 0;
    for i in 0..3000 {
        let inc = if i % 3 == 0 {
            Increment::Strong
        } else {
            Increment::Weak
        };
        let id = c.get_next_id(q, "orders", inc).await.expect("id");
        assert!(seen.insert(id), "duplicate id {id}");
        if inc == Increment::Weak {
            assert!(id > 0);
        }
        last = id;
    }
    assert!(last > 0);
    // concurrent callers: all distinct
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::new();
            for _ in 0..200 {
                v.push(
                    c.get_next_id("sequencer_demo", "conc", Increment::Weak)
                        .await
                        .expect("id"),
                );
            }
            v
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(all.insert(id), "duplicate concurrent id {id}");
        }
    }
    let (code_, _) = code(
        c.get_next_id(q, "", Increment::Weak)
            .await
            .expect_err("empty key"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn configuration_get_save_delete_subscribe() {
    let (s, _dir) = start_all();
    let c = s.client().await;
    let store = "config_demo";
    let mut sub = c
        .subscribe_configuration(pb::SubscribeConfigurationRequest {
            store_name: store.into(),
            keys: vec!["db.url".into()],
            ..Default::default()
        })
        .await
        .expect("subscribe");
    let mut tags = HashMap::new();
    tags.insert("owner".to_owned(), "team-a".to_owned());
    c.save_configuration(pb::SaveConfigurationRequest {
        store_name: store.into(),
        items: vec![
            pb::ConfigurationItem {
                key: "db.url".into(),
                content: "postgres://x".into(),
                tags: tags.clone(),
                ..Default::default()
            },
            pb::ConfigurationItem {
                key: "other".into(),
                content: "1".into(),
                group: "g2".into(),
                label: "prod".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    })
    .await
    .expect("save");
    let got = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: store.into(),
            keys: vec!["db.url".into()],
            ..Default::default()
        })
        .await
        .expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].content, "postgres://x");
    assert_eq!(got[0].tags, tags);
    // group / label addressing
    let g2 = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: store.into(),
            group: "g2".into(),
            label: "prod".into(),
            ..Default::default()
        })
        .await
        .expect("get g2");
    assert_eq!(
        g2.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["other"]
    );
    let change = tokio::time::timeout(Duration::from_secs(5), sub.message())
        .await
        .expect("change in time")
        .expect("stream ok")
        .expect("an item batch");
    assert_eq!(change.store_name, store);
    assert_eq!(change.items.len(), 1, "only the subscribed key: {change:?}");
    assert_eq!(change.items[0].content, "postgres://x");
    c.delete_configuration(pb::DeleteConfigurationRequest {
        store_name: store.into(),
        keys: vec!["db.url".into()],
        ..Default::default()
    })
    .await
    .expect("delete");
    let deleted = tokio::time::timeout(Duration::from_secs(5), sub.message())
        .await
        .expect("deletion in time")
        .expect("stream ok")
        .expect("batch");
    assert_eq!(deleted.items[0].key, "db.url");
    assert!(deleted.items[0].content.is_empty());
    let (code_, _) = code(
        c.get_configuration(pb::GetConfigurationRequest {
            store_name: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown store"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn pubsub_streaming_subscription_acks_and_redelivers() {
    let (s, _dir) = start_all();
    let c = s.client().await;
    let mut events = c
        .subscribe_topic_events("pub_subs_demo", "orders")
        .await
        .expect("subscribe");
    c.publish_event(
        "pub_subs_demo",
        "orders",
        br#"{"n":1}"#.to_vec(),
        "application/json",
    )
    .await
    .expect("publish");
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("event");
    assert_eq!(ev.data, br#"{"n":1}"#);
    assert_eq!(ev.spec_version, "1.0");
    assert_eq!(ev.source, "app1");
    assert_eq!(ev.pubsub_name, "pub_subs_demo");
    assert_eq!(ev.topic, "orders");
    assert_eq!(ev.data_content_type, "application/json");
    // RETRY -> the same event comes again
    events.ack(&ev.id, EventStatus::Retry).await.expect("retry");
    let again = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("redelivered in time")
        .expect("ok")
        .expect("event");
    assert_eq!(again.id, ev.id);
    events
        .ack(&again.id, EventStatus::Success)
        .await
        .expect("ack");
    let none = tokio::time::timeout(Duration::from_millis(700), events.next()).await;
    assert!(none.is_err(), "acknowledged event must not come back");
    // bad input
    let (code_, _) = code(
        c.publish_event("pub_subs_demo", "", b"x".to_vec(), "")
            .await
            .expect_err("empty topic"),
    );
    assert_eq!(code_, Code::InvalidArgument);
    let (code_, _) = code(
        c.publish_event("nope", "t", b"x".to_vec(), "")
            .await
            .expect_err("unknown pubsub"),
    );
    assert_eq!(code_, Code::InvalidArgument);
    let (code_, _) = code(
        c.publish_event(
            "pub_subs_demo",
            "t",
            b"not json".to_vec(),
            "application/cloudevents+json",
        )
        .await
        .expect_err("malformed cloudevent"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn pubsub_delivers_through_app_callback_with_retry_and_drop() {
    use std::sync::{Arc, Mutex};
    let app_port = support::free_port();
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = all_blocks(dir.path());
    cfg["app"] = json!({"app_id": "app1", "grpc_callback_port": app_port});
    // The app is not up yet: the sidecar must keep retrying, not crash.
    let s = Sidecar::start(cfg);
    let c = s.client().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    type Log = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Log = Arc::default();
    let attempts: Arc<Mutex<HashMap<Vec<u8>, u32>>> = Arc::default();
    let (r, a) = (received.clone(), attempts.clone());
    let handler = move |ev: pb::TopicEventRequest| {
        let (r, a) = (r.clone(), a.clone());
        let fut: futures::future::BoxFuture<'static, EventStatus> = Box::pin(async move {
            let n = {
                let mut a = a.lock().expect("lock");
                let n = a.entry(ev.data.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let status = match (ev.data.as_slice(), n) {
                (b"retry-once", 1) => EventStatus::Retry,
                (b"drop-me", _) => EventStatus::Drop,
                _ => EventStatus::Success,
            };
            if status == EventStatus::Success {
                r.lock()
                    .expect("lock")
                    .push((ev.topic.clone(), ev.data.clone()));
            }
            status
        });
        fut
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", app_port))
        .await
        .expect("bind app");
    let subs = vec![pb::TopicSubscription {
        pubsub_name: "pub_subs_demo".into(),
        topic: "t1".into(),
        metadata: HashMap::new(),
    }];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(layotto_sdk::serve_app_callback(
        listener,
        subs,
        handler,
        async {
            let _ = stop_rx.await;
        },
    ));
    // wait until the sidecar has subscribed (it retries ListTopicSubscriptions with backoff)
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        c.publish_event("pub_subs_demo", "t1", b"probe".to_vec(), "text/plain")
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !received.lock().expect("lock").is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "app never received an event"
        );
    }
    for d in ["retry-once", "drop-me", "plain"] {
        c.publish_event("pub_subs_demo", "t1", d.as_bytes().to_vec(), "text/plain")
            .await
            .expect("publish");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Vec<u8>> = received
            .lock()
            .expect("lock")
            .iter()
            .map(|x| x.1.clone())
            .collect();
        if got.contains(&b"retry-once".to_vec()) && got.contains(&b"plain".to_vec()) {
            assert!(!got.contains(&b"drop-me".to_vec()));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retried event not redelivered: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts.lock().expect("lock")[&b"retry-once".to_vec()], 2);
    assert_eq!(
        attempts.lock().expect("lock")[&b"drop-me".to_vec()],
        1,
        "DROP is not redelivered"
    );
    let _ = stop_tx.send(());
    let _ = server.await;
}

#[tokio::test]
async fn secrets_local_file_and_env() {
    let (s, _dir) = start_all();
    let c = s.client().await;
    let db_user = c
        .get_secret("secret_demo", "db:user")
        .await
        .expect("nested");
    assert_eq!(db_user.get("db:user").map(String::as_str), Some("admin"));
    let token = c.get_secret("secret_demo", "token").await.expect("token");
    assert_eq!(token["token"], "abc");
    let bulk = c.get_bulk_secret("secret_demo").await.expect("bulk");
    assert!(
        bulk.contains_key("db:password") && bulk.contains_key("port"),
        "{bulk:?}"
    );
    let (code_, _) = code(
        c.get_secret("secret_demo", "missing")
            .await
            .expect_err("missing"),
    );
    assert_eq!(code_, Code::NotFound);
    let env = c.get_secret("env_demo", "API_KEY").await.expect("env");
    assert_eq!(env["API_KEY"], "k-123");
    let (code_, _) = code(c.get_secret("nope", "x").await.expect_err("unknown store"));
    assert_eq!(code_, Code::InvalidArgument);
}

#[tokio::test]
async fn files_stream_list_and_stay_inside_root() {
    let (s, dir) = start_all();
    let c = s.client().await;
    let f = "file_demo";
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.put_file(f, "dir/big.bin", &big).await.expect("put big");
    assert_eq!(c.get_file(f, "dir/big.bin").await.expect("get"), big);
    let meta = c.get_file_meta(f, "dir/big.bin").await.expect("meta");
    assert_eq!(meta.size, 300_000);
    for i in 0..5 {
        c.put_file(f, &format!("dir/f{i}.txt"), b"x")
            .await
            .expect("put");
    }
    let mut names = Vec::new();
    let mut marker = String::new();
    loop {
        let page = c.list_file(f, "dir", 2, &marker).await.expect("list");
        assert!(page.files.len() <= 2);
        names.extend(page.files.iter().map(|x| x.file_name.clone()));
        if !page.is_truncated {
            break;
        }
        marker = page.marker;
    }
    assert_eq!(names.len(), 6, "{names:?}");
    c.del_file(f, "dir/f0.txt").await.expect("del");
    let (code_, _) = code(c.get_file(f, "dir/f0.txt").await.expect_err("deleted"));
    assert_eq!(code_, Code::NotFound);
    let (code_, _) = code(
        c.get_file_meta(f, "dir/nothing")
            .await
            .expect_err("meta missing"),
    );
    assert_eq!(code_, Code::NotFound);
    // escapes: .., absolute, symlink out of the root
    for bad in ["../outside.txt", "dir/../../x", "/etc/passwd"] {
        let (code_, msg) = code(c.get_file(f, bad).await.expect_err(bad));
        assert!(
            matches!(code_, Code::InvalidArgument | Code::PermissionDenied),
            "{bad}: {code_:?} {msg}"
        );
        let (code_, _) = code(c.put_file(f, bad, b"x").await.expect_err(bad));
        assert!(matches!(
            code_,
            Code::InvalidArgument | Code::PermissionDenied
        ));
    }
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.txt"), b"top secret").expect("write");
    let files_root = dir.path().join("files");
    std::os::unix::fs::symlink(outside.path(), files_root.join("link")).expect("symlink");
    let (code_, msg) = code(
        c.get_file(f, "link/secret.txt")
            .await
            .expect_err("symlink escape"),
    );
    assert_eq!(code_, Code::PermissionDenied, "{msg}");
    let (code_, _) = code(
        c.put_file(f, "link/new.txt", b"x")
            .await
            .expect_err("symlink put"),
    );
    assert_eq!(code_, Code::PermissionDenied);
    assert!(!outside.path().join("new.txt").exists());
}

#[tokio::test]
async fn http_binding_and_actuator() {
    let (s, _dir) = start_all();
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = all_blocks(dir.path());
    cfg["bindings"] = json!({"actuator": {"type": "http", "metadata": {"url": format!("http://127.0.0.1:{}/actuator", s.actuator_port)}}});
    let s2 = Sidecar::start(cfg);
    let c = s2.client().await;
    let mut md = HashMap::new();
    md.insert("path".to_owned(), "/info".to_owned());
    let resp = c
        .invoke_binding("actuator", "get", vec![], md)
        .await
        .expect("binding get");
    let info: serde_json::Value = serde_json::from_slice(&resp.data).expect("json");
    assert_eq!(info["app"]["name"], "layotto-rs");
    assert_eq!(
        resp.metadata.get("statusCode").map(String::as_str),
        Some("200")
    );
    let (code_, _) = code(
        c.invoke_binding("actuator", "frobnicate", vec![], HashMap::new())
            .await
            .expect_err("bad op"),
    );
    assert_eq!(code_, Code::InvalidArgument);

    let http = support::http();
    let live = http
        .get(s.actuator("/actuator/health/liveness"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    let ready = http
        .get(s.actuator("/actuator/health/readiness"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&ready.bytes().await.expect("body")).expect("json");
    assert_eq!(body["status"], "UP");
    assert_eq!(body["components"]["state/state_demo"]["status"], "UP");
}

#[tokio::test]
async fn unix_socket_listener() {
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("layotto.sock");
    let mut cfg = support::layotto_config(
        0,
        support::free_port(),
        json!({"app": {"app_id": "u"}, "hellos": {"h": {"type": "helloworld", "hello": "hey"}}}),
    );
    cfg["servers"][0]["listeners"][0]["address"] = json!(sock.to_string_lossy());
    cfg["servers"][0]["listeners"][0]["network"] = json!("unix");
    let path = dir.path().join("c.json");
    std::fs::write(&path, serde_json::to_vec(&cfg).expect("json")).expect("write");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_layotto"))
        .args(["start", "-c"])
        .arg(&path)
        .spawn()
        .expect("spawn");
    // The socket file appears at bind(), a moment before listen(): wait until it accepts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let channel = loop {
        let sock2 = sock.clone();
        let connected = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let p = sock2.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(p).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await;
        match connected {
            Ok(c) => break c,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the unix socket never accepted within 10 s: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let c = layotto_sdk::Client::from_channel(channel);
    assert_eq!(c.say_hello("h", "x").await.expect("hello"), "hey, x");
    let _ = child.kill();
    let _ = child.wait();
}
