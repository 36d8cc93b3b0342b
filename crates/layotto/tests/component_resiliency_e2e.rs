//! Resiliency policies on components (`targets.components`), against a real Redis frozen with
//! SIGSTOP (it keeps its sockets and answers nothing, as behind a partition) and a real app:
//!
//! - outbound timeout and retries: a save to a store whose Redis is frozen is cut at the
//!   timeout and retried until Redis thaws, then succeeds;
//! - outbound circuit breaker: two timed-out reads trip it; the next read fails at once; after
//!   the breaker's timeout, with Redis back, a read succeeds;
//! - Dapr's default policies: a store no target names gets `DefaultComponentOutboundTimeout
//!   Policy` (a read fails at that timeout instead of waiting on Redis);
//! - inbound retries: an app that fails a delivery twice gets it three times from the sidecar
//!   before the broker hears of it;
//!
//! each counted in `dapr_resiliency_*` with daprd's `target` (`Statestore_<name>`,
//! `Pubsub_<name>`) and `flow_direction` labels.
#![allow(missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layotto_test_support::RedisServer;
use support::daprd::{Daprd, request};

const RESILIENCY: &str = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: components
spec:
  policies:
    timeouts:
      quick: 150ms
      DefaultComponentOutboundTimeoutPolicy: 250ms
    retries:
      again:
        policy: constant
        duration: 150ms
        maxRetries: 20
      redeliver:
        policy: constant
        duration: 50ms
        maxRetries: 5
    circuitBreakers:
      fuse:
        maxRequests: 1
        timeout: 1s
        trip: consecutiveFailures >= 2
  targets:
    components:
      retried:
        outbound:
          timeout: quick
          retry: again
      broken:
        outbound:
          timeout: quick
          circuitBreaker: fuse
      pubsub:
        inbound:
          retry: redeliver
";

fn store(name: &str, redis: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: {redis}
"
    )
}

const PUBSUB: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
";

/// An app subscribed to `orders` on `pubsub` that fails its first two deliveries (500) and
/// takes the rest; its port and the number of deliveries it saw.
async fn subscriber() -> (u16, Arc<AtomicUsize>) {
    use axum::routing::{get, post};
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async {
                axum::Json(serde_json::json!([
                    {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}
                ]))
            }),
        )
        .route(
            "/orders",
            post(move || {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= 2 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
    let port = support::serve_app(app).await;
    (port, seen)
}

/// The value of the first `dapr_resiliency_activations_total` or `_count` series (`metric`)
/// whose labels contain every one of `labels`; 0 when there is none.
fn series(metrics_port: u16, metric: &str, labels: &[&str]) -> u64 {
    let text = request(metrics_port, "GET", "/metrics", &[], "")
        .expect("metrics")
        .body;
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn component_policies_apply_outbound_and_inbound() {
    let redis = RedisServer::start();
    let (app_port, deliveries) = subscriber().await;
    let addr = redis.addr();
    let sidecar = Daprd::start(
        &[
            ("res/retried.yaml", &store("retried", &addr)),
            ("res/broken.yaml", &store("broken", &addr)),
            ("res/plain.yaml", &store("plain", &addr)),
            ("res/pubsub.yaml", PUBSUB),
            ("res/resiliency.yaml", RESILIENCY),
        ],
        &[
            "--app-id",
            "shop",
            "--app-port",
            &app_port.to_string(),
            "--resources-path",
            "{dir}/res",
        ],
        &[],
        None,
    );
    let (http, metrics) = (sidecar.http, sidecar.metrics);
    let save = move |store: &str| {
        let started = Instant::now();
        let r = request(
            http,
            "POST",
            &format!("/v1.0/state/{store}"),
            &[("content-type", "application/json")],
            r#"[{"key": "k", "value": "v"}]"#,
        )
        .expect("save");
        (r.status, r.body, started.elapsed())
    };
    let read = move |store: &str| {
        let started = Instant::now();
        let r = request(http, "GET", &format!("/v1.0/state/{store}/k"), &[], "").expect("read");
        (r.status, r.body, started.elapsed())
    };
    for s in ["retried", "broken", "plain"] {
        assert_eq!(save(s).0, 204, "{s}");
    }

    // Inbound: the app fails twice; the sidecar retries (50 ms apart) before the broker hears.
    let r = request(
        http,
        "POST",
        "/v1.0/publish/pubsub/orders",
        &[("content-type", "application/json")],
        r#"{"id": 1}"#,
    )
    .expect("publish");
    assert_eq!(r.status, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries.load(Ordering::SeqCst) < 3 {
        assert!(
            Instant::now() < deadline,
            "the app did not get the event three times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        deliveries.load(Ordering::SeqCst),
        3,
        "taken on the third delivery"
    );
    let inbound = [
        "policy=\"retry\"",
        "flow_direction=\"inbound\"",
        "target=\"Pubsub_pubsub\"",
    ];
    assert_eq!(
        series(metrics, "dapr_resiliency_activations_total", &inbound),
        2
    );

    redis.pause();

    // Breaker: two reads cut at 150 ms trip it; the third fails at once.
    for _ in 0..2 {
        let (status, body, took) = read("broken");
        assert_eq!(status, 500, "{body}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    let (status, body, took) = read("broken");
    assert_eq!(status, 500);
    assert!(body.contains("circuit breaker is open"), "{body}");
    assert!(
        took < Duration::from_millis(100),
        "failing fast took {took:?}"
    );
    assert!(
        series(
            metrics,
            "dapr_resiliency_count",
            &[
                "policy=\"circuitbreaker\"",
                "status=\"open\"",
                "target=\"Statestore_broken\"",
                "flow_direction=\"outbound\""
            ]
        ) >= 1
    );

    // Default policy: a store no target names is cut at DefaultComponentOutboundTimeoutPolicy.
    let (status, body, took) = read("plain");
    assert_eq!(status, 500, "{body}");
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // Retries: the save keeps timing out and being retried until Redis thaws.
    let saving = std::thread::spawn(move || save("retried"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    redis.resume();
    let (status, body, took) = saving.join().expect("save thread");
    assert_eq!(status, 204, "{body}");
    assert!(
        took >= Duration::from_millis(500),
        "it waited for Redis: {took:?}"
    );
    assert!(
        series(
            metrics,
            "dapr_resiliency_activations_total",
            &["policy=\"retry\"", "target=\"Statestore_retried\""]
        ) >= 2
    );
    let (status, body, _) = read("retried");
    assert_eq!((status, body.as_str()), (200, "\"v\""));

    // The breaker half-opens after 1 s; with Redis back the probe closes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body, _) = read("broken");
    assert_eq!((status, body.as_str()), (200, "\"v\""));
}

/// Layotto's JSON config takes the same policies in `grpc_config.resiliency`: a read from a
/// store whose Redis is frozen is cut at the section's timeout instead of waiting out the
/// store's 10 s read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layottos_resiliency_section_applies_to_its_components() {
    let redis = RedisServer::start();
    let md = serde_json::json!({"redisHost": redis.addr(), "readTimeout": "10s"});
    let s = support::Sidecar::start(serde_json::json!({
        "app": {"app_id": "app1"},
        "state": {"state_demo": {"type": "redis", "metadata": md}},
        "resiliency": {
            "policies": {"timeouts": {"quick": "150ms"}},
            "targets": {"components": {"state_demo": {"outbound": {"timeout": "quick"}}}}
        }
    }));
    let c = s.client().await;
    c.save_state("state_demo", "k", b"before".to_vec())
        .await
        .expect("save");
    redis.pause();
    let started = Instant::now();
    let e = c
        .get_state("state_demo", "k")
        .await
        .expect_err("Redis is frozen");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "cut at the policy's timeout: {took:?}"
    );
    assert!(
        e.to_string().contains("timeout waiting for state_demo"),
        "{e}"
    );
    redis.resume();
    let got = c
        .get_state("state_demo", "k")
        .await
        .expect("read once thawed");
    assert_eq!(got.map(|s| s.data), Some(b"before".to_vec()));
}
