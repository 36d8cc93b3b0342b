//! Dapr's `HotReload` feature in self-hosted mode: with it on in the Configuration, edits to
//! the resources path are applied to the running sidecar.
//! - A state store edited from `state.in-memory` to `state.redis` (a real redis-server) is
//!   swapped in while a client keeps saving and reading through the sidecar: no call fails,
//!   and later writes land in Redis in daprd's layout.
//! - A pub/sub and a Subscription added later deliver to the app; removed, they are gone.
//! - An edit that cannot be built (unknown type) leaves the store serving as it was.
//! - Without the feature, an edit changes nothing.
#![allow(missing_docs)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layotto_test_support::RedisServer;
use serde_json::{Value, json};
use support::daprd::{Daprd, request};

const HOT: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: hot}
spec:
  features:
    - {name: HotReload, enabled: true}
";

const COLD: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: cold}
spec: {}
";

fn component(name: &str, type_: &str, metadata: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {name}}}
spec:
  type: {type_}
  version: v1
  metadata: {metadata}
"
    )
}

/// Waits (10 s at most) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn component_names(http: u16) -> Vec<String> {
    let meta = request(http, "GET", "/v1.0/metadata", &[], "").expect("metadata");
    let v: Value = serde_json::from_str(&meta.body).expect("json");
    v["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

fn redis_get(redis: &RedisServer, key: &str) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "HGET", key, "data"])
        .output()
        .expect("redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn save(http: u16, key: &str, value: &str) -> Result<(), String> {
    let body = json!([{"key": key, "value": value}]).to_string();
    match request(http, "POST", "/v1.0/state/store", &[], &body) {
        Some(r) if r.status == 204 => Ok(()),
        Some(r) => Err(format!("save {key}: {} {}", r.status, r.body)),
        None => Err(format!("save {key}: no answer")),
    }
}

fn get(http: u16, key: &str) -> Result<String, String> {
    match request(http, "GET", &format!("/v1.0/state/store/{key}"), &[], "") {
        Some(r) if r.status == 200 || r.status == 204 => Ok(r.body),
        Some(r) => Err(format!("get {key}: {} {}", r.status, r.body)),
        None => Err(format!("get {key}: no answer")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_resources_are_applied_without_a_restart() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let (hits_tx, mut hits) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app_port = support::serve_app(
        axum::Router::new()
            .route(
                "/dapr/subscribe",
                axum::routing::get(|| async { axum::Json(json!([])) }),
            )
            .route(
                "/orders",
                axum::routing::post(move |body: String| {
                    let _ = hits_tx.send(body);
                    async { axum::Json(json!({"status": "SUCCESS"})) }
                }),
            ),
    )
    .await
    .to_string();
    let store = component("store", "state.in-memory", "[]");
    let sidecar = tokio::task::spawn_blocking(move || {
        Daprd::start(
            &[("resources/store.yaml", &store), ("config.yaml", HOT)],
            &[
                "--resources-path",
                "{dir}/resources",
                "--config",
                "{dir}/config.yaml",
                "--app-id",
                "hot",
                "--app-port",
                &app_port,
            ],
            &[],
            None,
        )
    })
    .await
    .unwrap();
    let http = sidecar.http;
    let resources = sidecar.dir.path().join("resources");
    let port = redis.port();

    tokio::task::spawn_blocking(move || {
        // A client saving and reading back without pause while the store is swapped.
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let client = {
            let (stop, calls) = (stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = format!("k{i}");
                    let r = save(http, &key, &format!("v{i}")).and_then(|()| get(http, &key));
                    // A key saved on the old store and read on the new one is not found:
                    // the two stores share no data; what counts is that no call fails.
                    if let Err(e) = r {
                        failures.push(e);
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                }
                failures
            })
        };
        std::thread::sleep(Duration::from_millis(500));
        let before = calls.load(Ordering::SeqCst);
        let redis_store = component(
            "store",
            "state.redis",
            &format!("[{{name: redisHost, value: \"127.0.0.1:{port}\"}}]"),
        );
        std::fs::write(resources.join("store.yaml"), redis_store).unwrap();
        let edited = Instant::now();
        eventually("writes land in Redis", || {
            save(http, "probe", "p").is_ok() && redis_get(&redis, "hot||probe") == "\"p\""
        });
        let took = edited.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        let failures = client.join().unwrap();
        let during = calls.load(Ordering::SeqCst) - before;
        assert!(
            failures.is_empty(),
            "calls failed during the swap: {failures:?}"
        );
        assert!(during > 20, "only {during} calls ran across the swap");
        assert!(took < Duration::from_secs(5), "the edit took {took:?}");

        // A pub/sub and a Subscription added: the app gets the topic's events.
        std::fs::write(
            resources.join("pubsub.yaml"),
            component("pubsub", "pubsub.in-memory", "[]"),
        )
        .unwrap();
        std::fs::write(
            resources.join("subscription.yaml"),
            "apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders}
spec:
  pubsubname: pubsub
  topic: orders
  routes: {default: /orders}
",
        )
        .unwrap();
        support::daprd::wait_for_subscriptions(http, 1);
        let published = request(
            http,
            "POST",
            "/v1.0/publish/pubsub/orders",
            &[],
            r#"{"n":7}"#,
        )
        .expect("publish");
        assert_eq!(published.status, 204, "{}", published.body);

        // An edit that cannot be built: the store keeps serving the Redis data.
        std::fs::write(
            resources.join("store.yaml"),
            component("store", "state.nosuchstore", "[]"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(get(http, "probe").unwrap(), "\"p\"");

        // Removed: gone from the metadata API.
        std::fs::remove_file(resources.join("pubsub.yaml")).unwrap();
        std::fs::remove_file(resources.join("subscription.yaml")).unwrap();
        eventually("the pub/sub and its subscription are removed", || {
            let meta = request(http, "GET", "/v1.0/metadata", &[], "").expect("metadata");
            let v: Value = serde_json::from_str(&meta.body).expect("json");
            v["subscriptions"].as_array().is_none_or(Vec::is_empty)
                && !component_names(http).contains(&"pubsub".to_owned())
        });
    })
    .await
    .unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(5), hits.recv())
        .await
        .expect("the added subscription delivered")
        .unwrap();
    assert!(delivered.contains("\"n\":7"), "{delivered}");
    drop(sidecar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_feature_edits_wait_for_a_restart() {
    let store = component("store", "state.in-memory", "[]");
    let sidecar = tokio::task::spawn_blocking(move || {
        Daprd::start(
            &[("resources/store.yaml", &store), ("config.yaml", COLD)],
            &[
                "--resources-path",
                "{dir}/resources",
                "--config",
                "{dir}/config.yaml",
                "--app-id",
                "cold",
            ],
            &[],
            None,
        )
    })
    .await
    .unwrap();
    let http = sidecar.http;
    let resources = sidecar.dir.path().join("resources");
    tokio::task::spawn_blocking(move || {
        std::fs::write(
            resources.join("other.yaml"),
            component("other", "state.in-memory", "[]"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(component_names(http), ["store"]);
    })
    .await
    .unwrap();
    drop(sidecar);
}
