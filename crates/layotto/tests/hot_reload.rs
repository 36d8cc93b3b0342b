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

use std::time::Duration;

use layotto_test_support::RedisServer;
use serde_json::json;
use support::daprd::{Daprd, request};
use support::hot::{component_names, eventually, get, metadata, swap_to_redis_under_load};

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

fn component(name: &str, type_: &str, items: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {name}}}
spec:
  type: {type_}
  version: v1
  metadata: {items}
"
    )
}

/// Starts a sidecar of app `app_id` on `config` (a Configuration) and a resources path
/// holding `store.yaml`, an in-memory state store; `app_port` names the app.
fn start(config: &'static str, app_id: &'static str, app_port: Option<String>) -> Daprd {
    let store = component("store", "state.in-memory", "[]");
    let mut args = vec![
        "--resources-path",
        "{dir}/resources",
        "--config",
        "{dir}/config.yaml",
        "--app-id",
        app_id,
    ];
    if let Some(p) = &app_port {
        args.extend(["--app-port", p.as_str()]);
    }
    Daprd::start(
        &[("resources/store.yaml", &store), ("config.yaml", config)],
        &args,
        &[],
        None,
    )
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
    let sidecar = tokio::task::spawn_blocking(move || start(HOT, "hot", Some(app_port)))
        .await
        .unwrap();
    let http = sidecar.http;
    let resources = sidecar.dir.path().join("resources");
    let port = redis.port();

    tokio::task::spawn_blocking(move || {
        swap_to_redis_under_load(http, "store", "hot", port, || {
            let redis_store = component(
                "store",
                "state.redis",
                &format!("[{{name: redisHost, value: \"127.0.0.1:{port}\"}}]"),
            );
            std::fs::write(resources.join("store.yaml"), redis_store).unwrap();
        });

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
        assert_eq!(get(http, "store", "probe").unwrap(), "\"p\"");

        // Removed: gone from the metadata API.
        std::fs::remove_file(resources.join("pubsub.yaml")).unwrap();
        std::fs::remove_file(resources.join("subscription.yaml")).unwrap();
        eventually("the pub/sub and its subscription are removed", || {
            metadata(http)["subscriptions"]
                .as_array()
                .is_none_or(Vec::is_empty)
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
    let sidecar = tokio::task::spawn_blocking(|| start(COLD, "cold", None))
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
