//! Dapr's `pubsub.jetstream` against the pub/sub suite, on a real `nats-server -js` started by
//! the test harness, plus what the suite does not cover: the stream's acknowledgement, headers,
//! the durable consumer's name and a broker restart.

use std::sync::Arc;

use async_nats::jetstream;
use layotto_components_nats::JetStreamPubSub;
use layotto_core::pubsub::PubSub;
use layotto_core::{Component, ComponentSpec};
use layotto_test_support::NatsServer;

/// Creates the file-backed stream `name` capturing `subjects`.
async fn create_stream(server: &NatsServer, name: &str, subjects: &[&str]) {
    let client = async_nats::connect(server.url()).await.expect("connect");
    jetstream::new(client)
        .create_stream(jetstream::stream::Config {
            name: name.to_owned(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .expect("create stream");
}

async fn pubsub(server: &NatsServer, pairs: &[(&str, &str)]) -> Arc<JetStreamPubSub> {
    let mut spec = ComponentSpec::new("js", "jetstream").with("natsURL", server.url());
    for (k, v) in pairs {
        spec = spec.with(*k, *v);
    }
    let ps = JetStreamPubSub::from_spec(&spec).expect("valid spec");
    ps.init().await.expect("init jetstream pubsub");
    Arc::new(ps)
}

/// One `nats-server` for the whole suite, each case on subjects of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_suite() {
    let server = NatsServer::start();
    pubsub_suite(&server).await;
    headers_dedup_streams_and_durables(&server).await;
    broker_restart_loses_no_acknowledged_message(server).await;
}

async fn pubsub_suite(server: &NatsServer) {
    // The suite's topics are single tokens (`topic-<n>-...`).
    create_stream(server, "CONFORMANCE", &["*"]).await;
    layotto_conformance::pubsub::run_all(|| async { pubsub(server, &[]).await as Arc<dyn PubSub> })
        .await;
    layotto_conformance::pubsub::run_all(|| async {
        pubsub(
            server,
            &[("concurrency", "parallel"), ("maxAckPending", "50")],
        )
        .await as Arc<dyn PubSub>
    })
    .await;
}

fn ce(id: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!(r#"{{"specversion":"1.0","id":"{id}","data":"x"}}"#))
}

fn message(topic: &str, data: bytes::Bytes, md: &[(&str, &str)]) -> layotto_core::pubsub::Message {
    layotto_core::pubsub::Message {
        topic: topic.to_owned(),
        data,
        metadata: md
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Metadata travels as headers and comes back with `Topic`; a CloudEvent published twice
/// (a retried publish) is stored once; publishing where no stream listens is a clear error;
/// the group's durable consumer is `<consumerID>-<topic>`; a `durableName` that filters
/// another topic is refused by name.
async fn headers_dedup_streams_and_durables(server: &NatsServer) {
    create_stream(server, "ORDERS", &["orders.>"]).await;
    let ps = pubsub(server, &[]).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler: layotto_core::pubsub::Handler = Arc::new(move |m| {
        let _ = tx.send(m);
        Box::pin(async { Ok(()) })
    });
    let req = layotto_core::pubsub::SubscribeRequest {
        topic: "orders.eu".to_owned(),
        metadata: [("consumerID".to_owned(), "shop".to_owned())].into(),
    };
    let _sub = ps.subscribe(req, handler.clone()).await.expect("subscribe");
    ps.publish(message(
        "orders.eu",
        ce("e-1"),
        &[("traceparent", "00-abc-01")],
    ))
    .await
    .expect("publish");
    ps.publish(message("orders.eu", ce("e-1"), &[]))
        .await
        .expect("a retried publish is acknowledged too");
    ps.publish(message("orders.eu", ce("e-2"), &[]))
        .await
        .expect("publish");
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("delivery")
        .expect("open");
    assert_eq!(first.data, ce("e-1"));
    assert_eq!(
        first.metadata.get("Topic").map(String::as_str),
        Some("orders.eu")
    );
    assert_eq!(
        first.metadata.get("traceparent").map(String::as_str),
        Some("00-abc-01")
    );
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("delivery")
        .expect("open");
    assert_eq!(second.data, ce("e-2"), "the duplicate e-1 was not stored");

    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    let mut stream = js.get_stream("ORDERS").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 2);
    let consumer = stream
        .consumer_info("shop-orders_eu")
        .await
        .expect("the group's durable consumer");
    assert_eq!(consumer.config.filter_subject, "orders.eu");

    let lost = ps
        .publish(message("nowhere.at.all", ce("e-3"), &[]))
        .await
        .expect_err("no stream captures 'nowhere.at.all'");
    assert!(lost.to_string().contains("'nowhere.at.all'"), "{lost}");
    let unsubscribable = ps
        .subscribe(
            layotto_core::pubsub::SubscribeRequest {
                topic: "nowhere.at.all".to_owned(),
                ..Default::default()
            },
            handler.clone(),
        )
        .await
        .expect_err("no stream captures 'nowhere.at.all'");
    assert!(
        unsubscribable.to_string().contains("streamName"),
        "{unsubscribable}"
    );

    let pinned = pubsub(server, &[("durableName", "shop-orders_eu")]).await;
    let wrong = pinned
        .subscribe(
            layotto_core::pubsub::SubscribeRequest {
                topic: "orders.us".to_owned(),
                ..Default::default()
            },
            handler,
        )
        .await
        .expect_err("the durable filters orders.eu");
    assert!(
        wrong.to_string().contains("filters subject 'orders.eu'"),
        "{wrong}"
    );
}

/// The broker is killed (SIGKILL) and restarted while 2,000 messages flow to a consumer group
/// of two members (two components, as two sidecars have): every message the stream
/// acknowledged is delivered at least once. Reports the duplicates.
async fn broker_restart_loses_no_acknowledged_message(server: NatsServer) {
    create_stream(&server, "FAULT", &["fault.>"]).await;
    let members = [
        pubsub(&server, &[("concurrency", "parallel"), ("ackWait", "5s")]).await as Arc<dyn PubSub>,
        pubsub(&server, &[("concurrency", "parallel"), ("ackWait", "5s")]).await as Arc<dyn PubSub>,
    ];
    let publisher = pubsub(&server, &[]).await;
    // Kept here too: the broker must outlive the restart closure.
    let server = Arc::new(std::sync::Mutex::new(server));
    // CloudEvents, so a publish retried after a lost acknowledgement is stored once.
    let report = layotto_conformance::broker_fault::survives_broker_restart(
        &*publisher,
        &members,
        "fault.load",
        "app",
        2_000,
        |i| ce(&format!("m-{i}")),
        layotto_conformance::broker_fault::kill_then_start(
            Arc::clone(&server),
            NatsServer::kill,
            NatsServer::restart,
        ),
    )
    .await;
    println!("jetstream broker restart: {report}");
}
