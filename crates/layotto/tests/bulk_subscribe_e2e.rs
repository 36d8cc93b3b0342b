//! Dapr's bulk subscribe end to end: a declarative subscription with `bulkSubscribe` on
//! `pubsub.in-memory`, events published through the bulk publish API. The app receives
//! envelopes of several entries (never more than `maxMessagesCount`), answers a status per
//! entry, and an entry it asks to RETRY comes again in a later envelope while the others are
//! not redelivered.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::daprd::{Daprd, request};

const RESOURCES: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    default: /orders
  bulkSubscribe:
    enabled: true
    maxMessagesCount: 10
    maxAwaitDurationMs: 300
"#;

/// Envelopes the app got: the `n` of each entry's event data, per envelope.
type Seen = Arc<Mutex<Vec<Vec<i64>>>>;

/// An app answering SUCCESS for every entry, except RETRY the first time it sees `n == 7`.
async fn app() -> (u16, Seen) {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let retried = Arc::new(Mutex::new(false));
    let app = axum::Router::new().route(
        "/orders",
        post(move |body: axum::body::Bytes| {
            let (s, retried) = (s.clone(), retried.clone());
            async move {
                let env: Value = serde_json::from_slice(&body).expect("a JSON envelope");
                assert_eq!(env["type"], "com.dapr.event.sent.bulk", "{env}");
                assert_eq!(env["topic"], "orders");
                let mut ns = Vec::new();
                let mut statuses = Vec::new();
                for e in env["entries"].as_array().expect("entries") {
                    let n = e["event"]["data"]["n"].as_i64().expect("n");
                    ns.push(n);
                    let retry =
                        n == 7 && !std::mem::replace(&mut *retried.lock().expect("r"), true);
                    statuses.push(json!({
                        "entryId": e["entryId"],
                        "status": if retry { "RETRY" } else { "SUCCESS" },
                    }));
                }
                s.lock().expect("seen").push(ns);
                axum::Json(json!({"statuses": statuses}))
            }
        }),
    );
    let port = support::serve_app(app).await;
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_subscription_gets_envelopes_and_per_entry_retries() {
    let (app_port, seen) = app().await;
    let sidecar = Daprd::start(
        &[("res/resources.yaml", RESOURCES)],
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
    let http = sidecar.http;
    support::daprd::wait_for_subscriptions(http, 1);
    const N: i64 = 30;
    let entries: Vec<Value> = (0..N)
        .map(|n| json!({"entryId": n.to_string(), "event": {"n": n}, "contentType": "application/json"}))
        .collect();
    let r = request(
        http,
        "POST",
        "/v1.0-alpha1/publish/bulk/pubsub/orders",
        &[("content-type", "application/json")],
        &Value::Array(entries).to_string(),
    )
    .expect("bulk publish");
    assert_eq!(r.status, 204, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let envelopes = loop {
        let got = seen.lock().expect("seen").clone();
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for n in got.iter().flatten() {
            *counts.entry(*n).or_default() += 1;
        }
        if counts.len() == usize::try_from(N).expect("small") && counts[&7] == 2 {
            for (n, c) in &counts {
                assert_eq!(*c, if *n == 7 { 2 } else { 1 }, "event {n}: {got:?}");
            }
            break got;
        }
        assert!(Instant::now() < deadline, "envelopes so far: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "entries per envelope: {:?}",
        envelopes.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        envelopes.iter().all(|e| e.len() <= 10),
        "an envelope holds at most maxMessagesCount entries: {envelopes:?}"
    );
    assert!(
        envelopes.iter().any(|e| e.len() > 1),
        "events that arrive together share an envelope: {envelopes:?}"
    );
}
