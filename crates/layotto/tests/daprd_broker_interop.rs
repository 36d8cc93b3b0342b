//! Broker interop with Dapr's own sidecar: `daprd` v1.14.0 and layotto-rs, each with an app
//! subscribed over HTTP, on one Kafka broker (`pubsub.kafka`), one RabbitMQ node
//! (`pubsub.rabbitmq`), one Mosquitto (`pubsub.mqtt3`) and one Redis Cluster (`pubsub.redis`
//! with `redisType: cluster`), with Dapr's documented metadata. An event published through either
//! sidecar reaches the app behind the other (the messages are the same CloudEvents); and with
//! one consumer group (replicas of one app, half of them migrated), the two sidecars share the
//! topic and every event is delivered.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_test_support::{KafkaServer, MosquittoServer, RabbitMqServer, RedisCluster};
use serde_json::Value;
use support::daprd::{Daprd, request, start_real_daprd};

const CONFIG: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: interop
spec:
  nameResolution:
    component: kubernetes
  metrics:
    enabled: false
";

/// A broker both sidecars use, as Component YAML for consumer group `group`.
type Component = dyn Fn(&str) -> String;

fn kafka(brokers: &str) -> Box<Component> {
    let brokers = brokers.to_owned();
    Box::new(move |group| {
        format!(
            "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broker
spec:
  type: pubsub.kafka
  version: v1
  metadata:
  - name: brokers
    value: \"{brokers}\"
  - name: consumerGroup
    value: \"{group}\"
  - name: clientId
    value: \"interop\"
  - name: authType
    value: \"none\"
  - name: maxMessageBytes
    value: 1024
  - name: consumeRetryInterval
    value: 200ms
"
        )
    })
}

/// MQTT: client ids must differ per sidecar, so `consumerID` is Dapr's `{uuid}` placeholder;
/// the group is the shared subscription the app asks for.
fn mqtt(url: &str) -> Box<Component> {
    let url = url.to_owned();
    Box::new(move |_group| {
        format!(
            "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broker
spec:
  type: pubsub.mqtt3
  version: v1
  metadata:
  - name: url
    value: \"{url}\"
  - name: consumerID
    value: \"{{uuid}}\"
  - name: qos
    value: 1
  - name: cleanSession
    value: false
"
        )
    })
}

fn rabbitmq(url: &str) -> Box<Component> {
    let url = url.to_owned();
    Box::new(move |group| {
        format!(
            "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broker
spec:
  type: pubsub.rabbitmq
  version: v1
  metadata:
  - name: connectionString
    value: \"{url}\"
  - name: consumerID
    value: \"{group}\"
  - name: durable
    value: true
  - name: deletedWhenUnused
    value: false
  - name: deliveryMode
    value: 2
  - name: requeueInFailure
    value: true
  - name: prefetchCount
    value: 10
  - name: publisherConfirm
    value: true
"
        )
    })
}

/// Redis Streams on a Redis Cluster: each topic's stream lives on the master of its slot.
fn redis_cluster(hosts: &str) -> Box<Component> {
    let hosts = hosts.to_owned();
    Box::new(move |group| {
        format!(
            "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broker
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: \"{hosts}\"
  - name: redisType
    value: cluster
  - name: consumerID
    value: \"{group}\"
"
        )
    })
}

/// Events an app received: CloudEvent `data.n` (or the whole data) -> CloudEvent.
type Seen = Arc<Mutex<Vec<Value>>>;

/// An app subscribed to `topic` on `broker` at `/orders`, recording each CloudEvent.
async fn app(topic: &str) -> (u16, Seen) {
    use axum::routing::{get, post};
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let listing = serde_json::json!([
        {"pubsubname": "broker", "topic": topic, "route": "/orders"}
    ]);
    let app = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(move || {
                let listing = listing.clone();
                async move { axum::Json(listing) }
            }),
        )
        .route(
            "/orders",
            post(move |body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        s.lock().expect("lock").push(v);
                    }
                    axum::Json(serde_json::json!({"status": "SUCCESS"}))
                }
            }),
        );
    let port = support::serve_app(app).await;
    (port, seen)
}

fn publish(port: u16, body: &Value) {
    let r = request(
        port,
        "POST",
        "/v1.0/publish/broker/orders",
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .expect("publish");
    assert_eq!(r.status, 204, "publish on port {port}: {r:?}");
}

/// The CloudEvents of `seen` whose `data.tag` is `tag`.
fn tagged(seen: &Seen, tag: &str) -> Vec<Value> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|e| e["data"]["tag"] == tag)
        .cloned()
        .collect()
}

/// Publishes `{"tag": tag}` through `port` every 500 ms until `ready` holds (60 s): with
/// `initialOffset: newest` a consumer group sees only what is published once it has its
/// partitions.
async fn warm_up(port: u16, tag: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "no warm-up event '{tag}' delivered within 60 s"
        );
        publish(port, &serde_json::json!({"tag": tag}));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn start_pair(
    component: &Component,
    group_ours: &str,
    group_dapr: &str,
    app_ours: u16,
    app_dapr: u16,
) -> (Daprd, support::daprd::RealDaprd) {
    let ours = Daprd::start(
        &[
            ("config.yaml", CONFIG),
            ("res/broker.yaml", &component(group_ours)),
        ],
        &[
            "--app-id",
            "orders",
            "--app-port",
            &app_ours.to_string(),
            "--resources-path",
            "{dir}/res",
            "--config",
            "{dir}/config.yaml",
        ],
        &[],
        None,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("res")).expect("mkdir");
    std::fs::write(dir.path().join("config.yaml"), CONFIG).expect("write");
    std::fs::write(dir.path().join("res/broker.yaml"), component(group_dapr)).expect("write");
    let dapr = start_real_daprd(&[
        "--app-id",
        "orders",
        "--app-port",
        &app_dapr.to_string(),
        "--resources-path",
        dir.path().join("res").to_str().expect("utf-8"),
        "--config",
        dir.path().join("config.yaml").to_str().expect("utf-8"),
        "--enable-metrics=false",
    ]);
    std::mem::forget(dir);
    (ours, dapr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daprd_and_layotto_exchange_events_over_kafka() {
    let kafka = KafkaServer::start();
    exchange_events(&*self::kafka(&kafka.addr()), "kafka", "orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daprd_and_layotto_exchange_events_over_rabbitmq() {
    let rabbit = RabbitMqServer::start();
    exchange_events(&*rabbitmq(&rabbit.url()), "rabbitmq", "orders").await;
}

/// MQTT's consumer group is a shared subscription the apps ask for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daprd_and_layotto_exchange_events_over_mqtt() {
    let broker = MosquittoServer::start();
    exchange_events(&*mqtt(&broker.url()), "mqtt", "$share/shared/orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daprd_and_layotto_exchange_events_over_redis_cluster() {
    let cluster = RedisCluster::start();
    exchange_events(&*redis_cluster(&cluster.hosts()), "redis", "orders").await;
}

async fn exchange_events(component: &Component, broker: &str, shared_topic: &str) {
    // Two groups: every event reaches both apps, whichever sidecar published it.
    let (port_ours, seen_ours) = app("orders").await;
    let (port_dapr, seen_dapr) = app("orders").await;
    let (ours, dapr) = start_pair(component, "group-l", "group-d", port_ours, port_dapr);
    warm_up(dapr.http, "warm", || {
        !tagged(&seen_ours, "warm").is_empty() && !tagged(&seen_dapr, "warm").is_empty()
    })
    .await;
    publish(dapr.http, &serde_json::json!({"tag": "from-daprd", "n": 1}));
    publish(
        ours.http,
        &serde_json::json!({"tag": "from-layotto", "n": 2}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for (who, seen) in [
        ("layotto-rs's app", &seen_ours),
        ("daprd's app", &seen_dapr),
    ] {
        for tag in ["from-daprd", "from-layotto"] {
            while tagged(seen, tag).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "{who} never got the event '{tag}'"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let e = &tagged(seen, tag)[0];
            assert_eq!(e["specversion"], "1.0", "{who}: a CloudEvent: {e}");
            assert_eq!(e["topic"], "orders", "{e}");
            assert_eq!(e["pubsubname"], "broker", "{e}");
            assert!(e["id"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        }
    }
    drop(ours);
    drop(dapr);

    // One group across both sidecars: the partitions are shared, every event delivered.
    let (port_ours, seen_ours) = app(shared_topic).await;
    let (port_dapr, seen_dapr) = app(shared_topic).await;
    let (ours, dapr) = start_pair(component, "shared", "shared", port_ours, port_dapr);
    // Both members have partitions once each app has received a warm-up event.
    warm_up(ours.http, "warm-shared", || {
        !tagged(&seen_ours, "warm-shared").is_empty()
            && !tagged(&seen_dapr, "warm-shared").is_empty()
    })
    .await;
    const N: i64 = 40;
    for n in 0..N {
        let via = if n % 2 == 0 { ours.http } else { dapr.http };
        publish(via, &serde_json::json!({"tag": "shared", "n": n}));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts: HashMap<i64, u32> = HashMap::new();
        for seen in [&seen_ours, &seen_dapr] {
            for e in tagged(seen, "shared") {
                *counts
                    .entry(e["data"]["n"].as_i64().expect("n"))
                    .or_default() += 1;
            }
        }
        if counts.len() == usize::try_from(N).expect("small") {
            let twice = counts.values().filter(|c| **c > 1).count();
            let (a, b) = (
                tagged(&seen_ours, "shared").len(),
                tagged(&seen_dapr, "shared").len(),
            );
            assert!(a > 0 && b > 0, "both members take part: {a} / {b}");
            println!(
                "{broker}, shared group: layotto-rs's app {a}, daprd's app {b}, {twice} twice"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {N} events delivered across the shared group",
            counts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
