//! Several sidecars, one Redis, pub/sub: three sidecars with one subscriber app each, all in one
//! consumer group. 10,000 published messages are each delivered to exactly one app; then one
//! sidecar and its app are killed mid-stream and every message it had not acknowledged is
//! redelivered to the others: none is lost. Last, only an app is killed while its sidecar keeps
//! running: the sidecar unsubscribes it, and its messages go to the remaining app.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_sdk::{EventStatus, pb};
use layotto_test_support::RedisServer;
use serde_json::json;
use support::Sidecar;

type Seen = Arc<Mutex<HashMap<String, u32>>>;

struct App {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn start_app(seen: Seen) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    let handler = move |ev: pb::TopicEventRequest| {
        let seen = seen.clone();
        let fut: futures::future::BoxFuture<'static, EventStatus> = Box::pin(async move {
            let key = String::from_utf8_lossy(&ev.data).into_owned();
            *seen.lock().expect("lock").entry(key).or_insert(0) += 1;
            EventStatus::Success
        });
        fut
    };
    let subs = vec![pb::TopicSubscription {
        pubsub_name: "orders_pubsub".into(),
        topic: "orders".into(),
        metadata: HashMap::new(),
    }];
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(layotto_sdk::serve_app_callback(
        listener,
        subs,
        handler,
        async {
            let _ = rx.await;
        },
    ));
    App {
        port,
        stop: Some(tx),
    }
}

fn config(redis: &str, app_port: u16) -> serde_json::Value {
    json!({
        "app": {"app_id": "orders-app", "grpc_callback_port": app_port},
        "pub_subs": {"orders_pubsub": {"type": "redis", "metadata": {
            "redisHost": redis, "processingTimeout": "8s", "redeliverInterval": "500ms"}}},
    })
}

fn total(seen: &[Seen]) -> HashMap<String, u32> {
    let mut all = HashMap::new();
    for s in seen {
        for (k, n) in s.lock().expect("lock").iter() {
            *all.entry(k.clone()).or_insert(0) += n;
        }
    }
    all
}

async fn wait_for(seen: &[Seen], prefix: &str, n: usize, limit: Duration) -> HashMap<String, u32> {
    let deadline = Instant::now() + limit;
    loop {
        let all = total(seen);
        let got = all.keys().filter(|k| k.starts_with(prefix)).count();
        if got >= n {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {n} '{prefix}' messages arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_across_sidecars_delivers_once_and_survives_a_killed_member() {
    let redis = RedisServer::start();
    let seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();
    let mut apps = Vec::new();
    for s in &seen {
        apps.push(start_app(s.clone()).await);
    }
    let mut sidecars: Vec<Option<Sidecar>> = apps
        .iter()
        .map(|a| Some(Sidecar::start(config(&redis.addr(), a.port))))
        .collect();
    let mut clients = Vec::new();
    for s in sidecars.iter().flatten() {
        clients.push(s.client().await);
    }
    // Wait until the group exists and delivers.
    let deadline = Instant::now() + Duration::from_secs(15);
    while total(&seen).is_empty() {
        clients[0]
            .publish_event("orders_pubsub", "orders", b"probe".to_vec(), "text/plain")
            .await
            .expect("probe");
        assert!(Instant::now() < deadline, "no subscriber ever received");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Phase 1: 10,000 messages, each to exactly one app.
    let mut tasks = Vec::new();
    for (w, c) in clients.iter().enumerate() {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..10_000).step_by(3) {
                c.publish_event(
                    "orders_pubsub",
                    "orders",
                    format!("a{i}").into_bytes(),
                    "text/plain",
                )
                .await
                .expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let all = wait_for(&seen, "a", 10_000, Duration::from_secs(60)).await;
    let dup: Vec<_> = all
        .iter()
        .filter(|(k, n)| k.starts_with('a') && **n != 1)
        .collect();
    assert!(
        dup.is_empty(),
        "delivered more than once: {:?}",
        &dup[..dup.len().min(10)]
    );
    let per_app: Vec<usize> = seen
        .iter()
        .map(|s| {
            s.lock()
                .expect("lock")
                .keys()
                .filter(|k| k.starts_with('a'))
                .count()
        })
        .collect();
    assert!(
        per_app.iter().filter(|n| **n > 0).count() >= 2,
        "no competition: {per_app:?}"
    );

    // Phase 2: kill sidecar 0 and its app mid-stream; nothing is lost.
    let publisher = clients[1].clone();
    let pub_task = tokio::spawn(async move {
        for i in 0..3_000 {
            publisher
                .publish_event(
                    "orders_pubsub",
                    "orders",
                    format!("b{i}").into_bytes(),
                    "text/plain",
                )
                .await
                .expect("publish");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen[0]
        .lock()
        .expect("lock")
        .keys()
        .filter(|k| k.starts_with('b'))
        .count()
        < 100
    {
        assert!(
            Instant::now() < deadline,
            "member 0 never got phase-2 messages"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sidecars[0].take()); // SIGKILL: its un-acked entries stay pending in the group
    if let Some(stop) = apps[0].stop.take() {
        let _ = stop.send(());
    }
    pub_task.await.expect("publisher");
    wait_for(&seen, "b", 3_000, Duration::from_secs(60)).await;

    // Phase 3: kill only app 1; sidecar 1 stays up. Its un-acked and future messages must
    // reach app 2.
    let publisher = clients[2].clone();
    let pub_task = tokio::spawn(async move {
        for i in 0..3_000 {
            publisher
                .publish_event(
                    "orders_pubsub",
                    "orders",
                    format!("c{i}").into_bytes(),
                    "text/plain",
                )
                .await
                .expect("publish");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen[1]
        .lock()
        .expect("lock")
        .keys()
        .filter(|k| k.starts_with('c'))
        .count()
        < 100
    {
        assert!(
            Instant::now() < deadline,
            "member 1 never got phase-3 messages"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(stop) = apps[1].stop.take() {
        let _ = stop.send(());
    }
    pub_task.await.expect("publisher");
    wait_for(&seen, "c", 3_000, Duration::from_secs(90)).await;
    assert!(
        sidecars[1].is_some(),
        "sidecar 1 kept running while its app was gone"
    );
}
