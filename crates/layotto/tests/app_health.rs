//! App health checks (`--enable-app-health-check`): an HTTP app whose `/healthz` starts failing
//! stops getting deliveries within the threshold and readiness reports `app` DOWN; once it
//! recovers, deliveries resume and no message is lost (Redis pub/sub keeps what the app did not
//! acknowledge).
#![allow(missing_docs)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use layotto_test_support::RedisServer;
use serde_json::json;
use support::Sidecar;

#[derive(Default)]
struct AppState {
    healthy: AtomicBool,
    seen: Mutex<HashSet<String>>,
}

async fn app(state: Arc<AppState>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    let (h, o) = (state.clone(), state);
    let router = Router::new()
        .route(
            "/healthz",
            get(move || {
                let h = h.clone();
                async move {
                    if h.healthy.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        )
        .route(
            "/dapr/subscribe",
            get(|| async {
                Json(
                    json!([{"pubsubname": "orders_pubsub", "topic": "orders", "route": "/orders"}]),
                )
            }),
        )
        .route(
            "/orders",
            post(move |Json(ev): Json<serde_json::Value>| {
                let o = o.clone();
                async move {
                    let data = ev["data"].as_str().unwrap_or_default().to_owned();
                    o.seen.lock().expect("lock").insert(data);
                    Json(json!({"status": "SUCCESS"}))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

fn count(state: &AppState) -> usize {
    state.seen.lock().expect("lock").len()
}

async fn readiness_app(s: &Sidecar) -> String {
    let r = support::http()
        .get(s.actuator("/actuator/health/readiness"))
        .send()
        .await
        .expect("actuator");
    let body: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    body["components"]["app"]["status"]
        .as_str()
        .unwrap_or("absent")
        .to_owned()
}

async fn publish(c: &layotto_sdk::Client, from: usize, to: usize) {
    for i in from..to {
        c.publish_event(
            "orders_pubsub",
            "orders",
            format!("m{i}").into_bytes(),
            "text/plain",
        )
        .await
        .expect("publish");
    }
}

async fn wait_until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_app_gets_no_deliveries_until_it_recovers_and_loses_none() {
    let redis = RedisServer::start();
    let state = Arc::new(AppState::default());
    state.healthy.store(true, Ordering::SeqCst);
    let port = app(state.clone()).await;
    let config = json!({
        "app": {"app_id": "orders-app"},
        "pub_subs": {"orders_pubsub": {"type": "redis", "metadata": {
            "redisHost": redis.addr(), "processingTimeout": "2s", "redeliverInterval": "500ms"}}},
    });
    let port_s = port.to_string();
    let s = Sidecar::start_with(
        config,
        &[],
        &[
            "--app-port",
            &port_s,
            "--app-protocol",
            "http",
            "--enable-app-health-check",
            "--app-health-probe-interval",
            "1",
            "--app-health-probe-timeout",
            "300",
            "--app-health-threshold",
            "2",
        ],
    );
    let c = s.client().await;
    wait_until(
        "the subscription delivers",
        Duration::from_secs(15),
        async || {
            publish(&c, 0, 1).await;
            count(&state) > 0
        },
    )
    .await;
    publish(&c, 1, 50).await;
    wait_until("the first 50 arrive", Duration::from_secs(15), async || {
        count(&state) == 50
    })
    .await;
    assert_eq!(readiness_app(&s).await, "UP");

    state.healthy.store(false, Ordering::SeqCst);
    // Threshold 2 at 1 s intervals: unhealthy within about 3 s.
    wait_until(
        "readiness reports the app DOWN",
        Duration::from_secs(6),
        async || readiness_app(&s).await == "DOWN",
    )
    .await;
    publish(&c, 50, 100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&state), 50, "no delivery to an unhealthy app");

    state.healthy.store(true, Ordering::SeqCst);
    wait_until(
        "every message after recovery",
        Duration::from_secs(20),
        async || count(&state) == 100,
    )
    .await;
    assert_eq!(readiness_app(&s).await, "UP");
}
