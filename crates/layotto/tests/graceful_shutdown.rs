//! SIGTERM during a 10,000-message delivery loses nothing acknowledged: a sidecar on Redis
//! pub/sub delivering to a (slowish) app gets SIGTERM half-way; it exits cleanly within
//! `--dapr-graceful-shutdown-seconds`, having acknowledged only what the app processed; a new
//! sidecar takes over the consumer group and every published message reaches the app.
#![allow(missing_docs)]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_sdk::{EventStatus, pb};
use layotto_test_support::RedisServer;
use serde_json::json;
use support::Sidecar;

type Seen = Arc<Mutex<HashSet<String>>>;

/// The app: records each event's data. Events `m...` wait until `gate` opens, so that the
/// delivery of the 10,000 is still in progress when the test sends SIGTERM, however fast this
/// machine publishes and delivers.
async fn start_app(seen: Seen, gate: tokio::sync::watch::Receiver<bool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    let handler = move |ev: pb::TopicEventRequest| {
        let (seen, mut gate) = (seen.clone(), gate.clone());
        let fut: futures::future::BoxFuture<'static, EventStatus> = Box::pin(async move {
            if ev.data.starts_with(b"m") && gate.wait_for(|open| *open).await.is_err() {
                return EventStatus::Retry;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            seen.lock()
                .expect("lock")
                .insert(String::from_utf8_lossy(&ev.data).into_owned());
            EventStatus::Success
        });
        fut
    };
    let subs = vec![pb::TopicSubscription {
        pubsub_name: "orders_pubsub".into(),
        topic: "orders".into(),
        metadata: std::collections::HashMap::new(),
    }];
    tokio::spawn(layotto_sdk::serve_app_callback(
        listener,
        subs,
        handler,
        std::future::pending(),
    ));
    port
}

fn count(seen: &Seen, prefix: &str) -> usize {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|k| k.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_delivery_loses_nothing_acknowledged() {
    let redis = RedisServer::start();
    let seen = Seen::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let app = start_app(seen.clone(), gate).await;
    let config = json!({
        "app": {"app_id": "orders-app", "grpc_callback_port": app},
        "pub_subs": {"orders_pubsub": {"type": "redis", "metadata": {
            "redisHost": redis.addr(), "processingTimeout": "3s", "redeliverInterval": "500ms"}}},
    });
    let args = ["--dapr-graceful-shutdown-seconds", "5"];
    let mut first = Sidecar::start_with(config.clone(), &[], &args);
    let c = first.client().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while count(&seen, "probe") == 0 {
        c.publish_event("orders_pubsub", "orders", b"probe".to_vec(), "text/plain")
            .await
            .expect("probe");
        assert!(Instant::now() < deadline, "no delivery ever");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Publish 10,000 (each acknowledged by the sidecar) while the app holds them, then let
    // the app process and SIGTERM while delivering.
    for i in 0..10_000 {
        c.publish_event(
            "orders_pubsub",
            "orders",
            format!("m{i}").into_bytes(),
            "text/plain",
        )
        .await
        .expect("publish acknowledged");
    }
    assert_eq!(count(&seen, "m"), 0, "the app held every event until now");
    open.send_replace(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&seen, "m") < 200 {
        assert!(Instant::now() < deadline, "deliveries never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_term = count(&seen, "m");
    let started = Instant::now();
    let status = first
        .terminate(Duration::from_secs(10))
        .expect("the sidecar exits after SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "exit within the 5 s graceful period: {:?}",
        started.elapsed()
    );
    assert!(
        at_term < 10_000,
        "SIGTERM came after every delivery ({at_term}); the test proves nothing"
    );

    // A new sidecar in the same consumer group delivers the rest.
    let _second = Sidecar::start_with(config, &[], &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(&seen, "m");
        if n == 10_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of 10000 acknowledged publishes reached the app (SIGTERM at {at_term})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
