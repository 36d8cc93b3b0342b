//! Declarative subscriptions, routing rules and dead-letter topics, end to end: the sidecar
//! reads `Subscription` resources (v1alpha1 and v2alpha1) from its resources path, routes each
//! event of a real Redis pub/sub by the first CEL rule that holds, publishes events the app
//! drops or fails to the dead-letter topic (delivered to the app again through a second
//! subscription), merges the app's own subscriptions over declared ones as daprd does, lists
//! all of them with their type in the metadata API, and names resource kinds it does not read.
#![allow(missing_docs)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_test_support::RedisServer;
use serde_json::Value;
use support::daprd::{Daprd, request};

const SUBSCRIPTIONS: &str = r#"apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: event.type == "widget"
      path: /widgets
    - match: event.data.amount > 100
      path: /big
    default: /orders
  deadLetterTopic: poison
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: poison
spec:
  pubsubname: pubsub
  topic: poison
  route: /poison
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: items-declared
spec:
  pubsubname: pubsub
  topic: items
  route: /items-declared
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: elsewhere
spec:
  pubsubname: pubsub
  topic: orders
  route: /elsewhere
scopes: [another-app]
---
apiVersion: dapr.io/v1alpha1
kind: Actor
metadata:
  name: stray
"#;

fn pubsub(redis: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: {redis}
"
    )
}

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// An app that lists `items` itself and records every event it is posted, by path. `/orders`
/// answers DROP for events whose data has `drop` and 500 for those with `fail`.
async fn app() -> (u16, Seen) {
    use axum::routing::{get, post};
    let seen: Seen = Arc::default();
    let record = |seen: Seen| {
        move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let ev: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                seen.lock()
                    .expect("seen")
                    .push((uri.path().to_owned(), ev.clone()));
                let data = &ev["data"];
                if uri.path() == "/orders" && data["drop"] == true {
                    (axum::http::StatusCode::OK, r#"{"status":"DROP"}"#)
                } else if uri.path() == "/orders" && data["fail"] == true {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "")
                } else {
                    (axum::http::StatusCode::OK, "")
                }
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async {
                axum::Json(serde_json::json!([
                    {"pubsubname": "pubsub", "topic": "items", "route": "/items-app"}
                ]))
            }),
        )
        .fallback(post(record(seen.clone())));
    let port = support::serve_app(app).await;
    (port, seen)
}

fn publish(http: u16, topic: &str, content_type: &str, body: &str) {
    let r = request(
        http,
        "POST",
        &format!("/v1.0/publish/pubsub/{topic}"),
        &[("content-type", content_type)],
        body,
    )
    .expect("publish");
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Waits until the app has seen `n` events and returns them.
fn wait_for(seen: &Seen, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = seen.lock().expect("seen").clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} events: {got:#?}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declared_subscriptions_route_by_rules_and_dead_letter() {
    let redis = RedisServer::start();
    let (app_port, seen) = app().await;
    let mut sidecar = Daprd::start(
        &[
            ("res/pubsub.yaml", &pubsub(&redis.addr())),
            ("res/subscriptions.yaml", SUBSCRIPTIONS),
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
    let http = sidecar.http;
    let subs = support::daprd::wait_for_subscriptions(http, 3);
    let by_topic = |t: &str| {
        subs.as_array()
            .expect("array")
            .iter()
            .find(|s| s["topic"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no subscription to {t}: {subs}"))
    };
    let orders = by_topic("orders");
    assert_eq!(orders["type"], "DECLARATIVE");
    assert_eq!(orders["deadLetterTopic"], "poison");
    assert_eq!(
        orders["rules"],
        serde_json::json!([
            {"match": "event.type == \"widget\"", "path": "/widgets"},
            {"match": "event.data.amount > 100", "path": "/big"},
            {"path": "/orders"}
        ])
    );
    assert_eq!(by_topic("poison")["type"], "DECLARATIVE");
    // The app's own subscription to `items` replaces the declared one, as in daprd.
    let items = by_topic("items");
    assert_eq!(items["type"], "PROGRAMMATIC");
    assert_eq!(items["rules"], serde_json::json!([{"path": "/items-app"}]));

    let ce = r#"{"specversion": "1.0", "id": "w1", "source": "test", "type": "widget",
                 "datacontenttype": "application/json", "data": {"amount": 1}}"#;
    publish(http, "orders", "application/cloudevents+json", ce);
    publish(http, "orders", "application/json", r#"{"amount": 500}"#);
    publish(http, "orders", "application/json", r#"{"amount": 5}"#);
    publish(
        http,
        "orders",
        "application/json",
        r#"{"amount": 6, "drop": true}"#,
    );
    publish(
        http,
        "orders",
        "application/json",
        r#"{"amount": 7, "fail": true}"#,
    );
    publish(http, "items", "application/json", r#"{"item": 1}"#);
    // 6 deliveries on their routes, plus the dropped and the failed event again from `poison`.
    let got = wait_for(&seen, 8);
    std::thread::sleep(Duration::from_millis(300));
    let got_after = seen.lock().expect("seen").clone();
    assert_eq!(got_after.len(), 8, "nothing more arrives: {got_after:#?}");
    let at = |path: &str| -> Vec<Value> {
        got.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, ev)| ev.clone())
            .collect()
    };
    let widgets = at("/widgets");
    assert_eq!(widgets.len(), 1, "{got:#?}");
    assert_eq!(widgets[0]["id"], "w1");
    let big = at("/big");
    assert_eq!(big.len(), 1, "{got:#?}");
    assert_eq!(big[0]["data"]["amount"], 500);
    // Dapr's envelope carries the publish time (RFC 3339) and the app gets it.
    let time = big[0]["time"].as_str().expect("time attribute");
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    let amounts = |evs: Vec<Value>| -> Vec<i64> {
        let mut a: Vec<i64> = evs
            .iter()
            .map(|e| e["data"]["amount"].as_i64().expect("amount"))
            .collect();
        a.sort_unstable();
        a
    };
    assert_eq!(amounts(at("/orders")), [5, 6, 7], "{got:#?}");
    assert_eq!(
        amounts(at("/poison")),
        [6, 7],
        "the dropped and the failed event reach the dead-letter topic"
    );
    // The dead-letter topic gets the message as it was: its CloudEvent still names the topic
    // it was published to, as with daprd.
    assert!(at("/poison").iter().all(|e| e["topic"] == "orders"));
    assert_eq!(at("/items-app").len(), 1);
    assert!(at("/items-declared").is_empty() && at("/elsewhere").is_empty());

    sidecar.sigterm();
    let _ = sidecar.child.wait();
    let log = sidecar.stderr();
    assert!(
        log.contains("resource kind 'Actor' is not read from the resources path"),
        "{log}"
    );
}

#[test]
fn a_rule_that_is_no_cel_expression_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let res = dir.path().join("res");
    std::fs::create_dir_all(&res).expect("mkdir");
    std::fs::write(
        res.join("pubsub.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\n\
         spec: {type: pubsub.in-memory, version: v1}\n",
    )
    .expect("write");
    std::fs::write(
        res.join("sub.yaml"),
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: bad}\nspec:\n  \
         pubsubname: pubsub\n  topic: t\n  routes:\n    rules:\n    - {match: 'event.type ==', \
         path: /x}\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layotto"))
        .args(["validate", "--app-id", "shop", "--resources-path"])
        .arg(&res)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Subscription 'bad'.spec.routes") && err.contains("match 'event.type =='"),
        "{err}"
    );
}

type Dapr =
    layotto_proto::dapr::proto::runtime::v1::dapr_client::DaprClient<tonic::transport::Channel>;
type StreamIn = tokio::sync::mpsc::Sender<
    layotto_proto::dapr::proto::runtime::v1::SubscribeTopicEventsRequestAlpha1,
>;
type StreamOut =
    tonic::Streaming<layotto_proto::dapr::proto::runtime::v1::SubscribeTopicEventsResponseAlpha1>;

/// Opens a streaming subscription (`SubscribeTopicEventsAlpha1`) to `topic` of `pubsub`, with
/// `dead_letter` as its dead-letter topic, and waits for the initial response; the sender
/// carries the acknowledgements.
async fn open_stream(
    c: &mut Dapr,
    topic: &str,
    dead_letter: Option<&str>,
) -> (StreamIn, StreamOut) {
    use dapr::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Req;
    use layotto_proto::dapr::proto::runtime::v1 as dapr;
    use tokio_stream::StreamExt as _;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(dapr::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Req::InitialRequest(
            dapr::SubscribeTopicEventsRequestInitialAlpha1 {
                pubsub_name: "pubsub".into(),
                topic: topic.into(),
                dead_letter_topic: dead_letter.map(str::to_owned),
                ..Default::default()
            },
        )),
    })
    .await
    .expect("initial request");
    let mut events = c
        .subscribe_topic_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("subscribe")
        .into_inner();
    let _initial = events.next().await.expect("initial response").expect("ok");
    (tx, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_subscriptions_are_listed_while_open_and_carry_the_event_attributes() {
    use layotto_proto::dapr::proto::runtime::v1 as dapr;
    use tokio_stream::StreamExt as _;
    let (app_port, _) = app().await;
    let sidecar = Daprd::start(
        &[(
            "res/pubsub.yaml",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\n\
             spec: {type: pubsub.in-memory, version: v1}\n",
        )],
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
    let mut c =
        dapr::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{}", sidecar.grpc))
            .await
            .expect("connect");
    let listed = |mut c: dapr::dapr_client::DaprClient<tonic::transport::Channel>| async move {
        let md = c
            .get_metadata(dapr::GetMetadataRequest::default())
            .await
            .expect("metadata")
            .into_inner();
        md.subscriptions
            .into_iter()
            .map(|s| {
                let rules = s.rules.map(|r| r.rules.len()).unwrap_or_default();
                (s.topic, s.r#type, rules)
            })
            .collect::<Vec<_>>()
    };
    use dapr::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Req;
    let (tx, mut events) = open_stream(&mut c, "live", None).await;
    let streaming = dapr::PubsubSubscriptionType::Streaming as i32;
    let programmatic = dapr::PubsubSubscriptionType::Programmatic as i32;
    let mut now = listed(c.clone()).await;
    now.sort();
    assert_eq!(
        now,
        [
            ("items".to_owned(), programmatic, 1),
            ("live".to_owned(), streaming, 0)
        ]
    );

    c.publish_event(dapr::PublishEventRequest {
        pubsub_name: "pubsub".into(),
        topic: "live".into(),
        data: br#"{"n": 1}"#.to_vec(),
        data_content_type: "application/json".into(),
        ..Default::default()
    })
    .await
    .expect("publish");
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("in time")
        .expect("an event")
        .expect("ok");
    use dapr::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Resp;
    let Some(Resp::EventMessage(ev)) = ev.subscribe_topic_events_response_type else {
        panic!("not an event: {ev:?}");
    };
    let ext = ev.extensions.expect("extensions").fields;
    let text = |k: &str| match ext.get(k).and_then(|v| v.kind.clone()) {
        Some(prost_types::value::Kind::StringValue(s)) => s,
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(text("topic"), "live");
    assert_eq!(text("pubsubname"), "pubsub");
    assert!(text("time").ends_with('Z'));
    assert!(
        !ext.contains_key("id") && !ext.contains_key("data"),
        "{ext:?}"
    );

    // RETRY or DROP on a stream with a dead-letter topic sends the event there (here: another
    // stream), as daprd.
    let (_dtx, mut dead) = open_stream(&mut c, "live-dlq", None).await;
    let (rtx, mut retried) = open_stream(&mut c, "retried", Some("live-dlq")).await;
    let next_event =
        |m: Option<Result<dapr::SubscribeTopicEventsResponseAlpha1, tonic::Status>>| match m
            .expect("a message")
            .expect("ok")
            .subscribe_topic_events_response_type
        {
            Some(Resp::EventMessage(ev)) => ev,
            other => panic!("not an event: {other:?}"),
        };
    use dapr::topic_event_response::TopicEventResponseStatus as Status;
    for (n, answer) in [(2, Status::Retry), (3, Status::Drop)] {
        c.publish_event(dapr::PublishEventRequest {
            pubsub_name: "pubsub".into(),
            topic: "retried".into(),
            data: format!(r#"{{"n": {n}}}"#).into_bytes(),
            data_content_type: "application/json".into(),
            ..Default::default()
        })
        .await
        .expect("publish");
        let ev = next_event(
            tokio::time::timeout(Duration::from_secs(5), retried.next())
                .await
                .expect("in time"),
        );
        rtx.send(dapr::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Req::EventProcessed(
                dapr::SubscribeTopicEventsRequestProcessedAlpha1 {
                    id: ev.id.clone(),
                    status: Some(dapr::TopicEventResponse {
                        status: answer as i32,
                    }),
                },
            )),
        })
        .await
        .expect("answer");
        let dead_ev = next_event(
            tokio::time::timeout(Duration::from_secs(5), dead.next())
                .await
                .expect("dead-lettered in time"),
        );
        let data: Value = serde_json::from_slice(&dead_ev.data).expect("JSON data");
        assert_eq!(data, serde_json::json!({"n": n}), "{answer:?}");
        assert_eq!(
            dead_ev.topic, "retried",
            "the event keeps the topic it was published to"
        );
    }

    // Closing the stream ends the subscription and its listing.
    drop(tx);
    drop(events);
    let deadline = Instant::now() + Duration::from_secs(5);
    while listed(c.clone()).await.iter().any(|(t, _, _)| t == "live") {
        assert!(
            Instant::now() < deadline,
            "still listed after the stream closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
