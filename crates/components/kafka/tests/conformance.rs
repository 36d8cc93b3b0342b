//! Dapr's `pubsub.kafka` on a real single-node Kafka (KRaft) started once by the test harness
//! for the whole suite (each case on topics of its own): the pub/sub suite, then what the suite
//! does not cover (record keys, headers and daprd's delivery metadata; where a new consumer
//! group starts), then the broker killed and restarted under load.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use layotto_components_kafka::KafkaPubSub;
use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest};
use layotto_core::{Component, ComponentSpec, Metadata};
use layotto_test_support::KafkaServer;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

async fn pubsub(server: &KafkaServer, pairs: &[(&str, &str)]) -> Arc<KafkaPubSub> {
    // Dapr's defaults but a faster heartbeat: members learn of a rebalance within 500 ms.
    let mut spec = ComponentSpec::new("kafka", "kafka")
        .with("brokers", server.addr())
        .with("authType", "none")
        .with("heartbeatInterval", "500ms");
    for (k, v) in pairs {
        spec = spec.with(*k, *v);
    }
    let ps = KafkaPubSub::from_spec(&spec).expect("valid spec");
    ps.init().await.expect("init kafka pubsub");
    Arc::new(ps)
}

fn message(topic: &str, data: &str, md: &[(&str, &str)]) -> Message {
    Message {
        topic: topic.to_owned(),
        data: Bytes::from(data.to_owned()),
        metadata: md
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn request(topic: &str, group: &str) -> SubscribeRequest {
    SubscribeRequest {
        topic: topic.to_owned(),
        metadata: Metadata::from([("consumerID".to_owned(), group.to_owned())]),
    }
}

fn forward() -> (Handler, UnboundedReceiver<Message>) {
    let (tx, rx) = unbounded_channel();
    let h: Handler = Arc::new(move |m| {
        let _ = tx.send(m);
        Box::pin(async { Ok(()) })
    });
    (h, rx)
}

async fn next(rx: &mut UnboundedReceiver<Message>, what: &str) -> Message {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_suite() {
    let server = KafkaServer::start();
    layotto_conformance::pubsub::run_all(|| async {
        pubsub(&server, &[]).await as Arc<dyn PubSub>
    })
    .await;
    binding_suites(&server).await;
    record_key_headers_and_metadata(&server).await;
    new_groups_start_where_initial_offset_says(&server).await;
    bulk_subscription_takes_records_at_once(&server).await;
    broker_restart_loses_no_acknowledged_record(server).await;
}

/// `bindings.kafka` against the input-binding suite, producing through its own `create`
/// operation: with Dapr's binding default a failed record is skipped, with
/// `consumeRetryEnabled` it is delivered again. Each binding reads as a group of its own.
async fn binding_suites(server: &KafkaServer) {
    use layotto_components_kafka::KafkaBinding;
    use layotto_conformance::input_binding::{InputSource, run_all};
    use layotto_core::binding::{BindingRequest, OutputBinding};
    for retry in [false, true] {
        let topic = format!("binding-{retry}");
        let spec = |group: String| {
            ComponentSpec::new("kafka-binding", "kafka")
                .with("brokers", server.addr())
                .with("authType", "none")
                .with("heartbeatInterval", "500ms")
                .with("topics", topic.clone())
                .with("publishTopic", topic.clone())
                .with("consumerGroup", group)
                .with("consumeRetryEnabled", retry.to_string())
        };
        let writer = Arc::new(KafkaBinding::from_spec(&spec("writer".into())).expect("spec"));
        writer.init().await.expect("init");
        let source = InputSource {
            produce: Box::new(move |data| {
                let w = Arc::clone(&writer);
                Box::pin(async move {
                    w.invoke(BindingRequest {
                        operation: "create".into(),
                        data,
                        metadata: Metadata::new(),
                    })
                    .await
                    .expect("create");
                })
            }),
            carries_data: true,
            redelivers: retry,
            quiet_period: Duration::from_secs(2),
        };
        run_all(
            || async {
                let b = KafkaBinding::from_spec(&spec(layotto_conformance::unique("group")))
                    .expect("spec");
                b.init().await.expect("init");
                Arc::new(b) as Arc<dyn OutputBinding>
            },
            &source,
        )
        .await;
    }
}

/// `partitionKey` becomes the record key, every metadata entry a header, and the subscriber
/// gets daprd's `__key`, `__topic`, `__partition`, `__offset`, `__timestamp` and the headers.
async fn record_key_headers_and_metadata(server: &KafkaServer) {
    let ps = pubsub(server, &[]).await;
    let (h, mut rx) = forward();
    let _s = ps
        .subscribe(request("meta", "g-meta"), h)
        .await
        .expect("subscribe");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    ps.publish(message(
        "meta",
        "payload",
        &[("partitionKey", "order-7"), ("traceparent", "00-abc-01")],
    ))
    .await
    .expect("publish");
    let got = next(&mut rx, "the keyed record").await;
    assert_eq!(got.data, Bytes::from("payload"));
    let md = |k: &str| got.metadata.get(k).cloned().unwrap_or_default();
    assert_eq!(md("__key"), "order-7");
    assert_eq!(md("__topic"), "meta");
    assert_eq!(md("__offset"), "0");
    assert!(
        md("__partition") == "0" || md("__partition") == "1",
        "{md:?}",
        md = got.metadata
    );
    let ts: u128 = md("__timestamp")
        .parse()
        .expect("__timestamp in milliseconds");
    assert!(
        ts + 5_000 >= before,
        "timestamp {ts} is the record's, in ms"
    );
    assert_eq!(md("partitionKey"), "order-7", "metadata travels as headers");
    assert_eq!(md("traceparent"), "00-abc-01");
}

/// `initialOffset: newest` (the default): a new group starts at the end, so a record published
/// before it subscribed is not delivered but the next one is; `oldest` gets both.
async fn new_groups_start_where_initial_offset_says(server: &KafkaServer) {
    let ps = pubsub(server, &[]).await;
    ps.publish(message("start", "before", &[]))
        .await
        .expect("publish");
    let (h, mut rx) = forward();
    let _newest = ps
        .subscribe(request("start", "g-new"), h)
        .await
        .expect("subscribe");
    ps.publish(message("start", "after", &[]))
        .await
        .expect("publish");
    assert_eq!(
        next(&mut rx, "the later record").await.data,
        Bytes::from("after")
    );
    let oldest = pubsub(server, &[("initialOffset", "oldest")]).await;
    let (h, mut rx) = forward();
    let _old = oldest
        .subscribe(request("start", "g-old"), h)
        .await
        .expect("subscribe");
    let mut got = vec![
        next(&mut rx, "a first record").await.data,
        next(&mut rx, "a second record").await.data,
    ];
    got.sort();
    assert_eq!(got, [Bytes::from("after"), Bytes::from("before")]);
}

/// A bulk subscription (`maxBulkSubCount`, set by the runtime) is handed up to that many
/// records at once; offsets are stored only after all of a batch were handled, so a member of
/// the group that joins after the first one left gets none of them again.
async fn bulk_subscription_takes_records_at_once(server: &KafkaServer) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ps = pubsub(server, &[]).await;
    // Records wait in the topic before the member starts, so it has a backlog to batch.
    let sends = (0..40).map(|i| ps.publish(message("bulk", &format!("r{i}"), &[])));
    for r in futures::future::join_all(sends).await {
        r.expect("publish");
    }
    let (in_flight, most, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let (i, m, d) = (in_flight.clone(), most.clone(), done.clone());
    let slow: Handler = Arc::new(move |msg: Message| {
        let (i, m, d) = (i.clone(), m.clone(), d.clone());
        Box::pin(async move {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            i.fetch_sub(1, Ordering::SeqCst);
            d.lock().expect("done").push(msg.data);
            Ok(())
        })
    });
    let mut req = request("bulk", "g-bulk-2");
    req.metadata.insert("maxBulkSubCount".into(), "16".into());
    let bulk = pubsub(server, &[("initialOffset", "oldest")]).await;
    let sub = bulk.subscribe(req.clone(), slow).await.expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while done.lock().expect("done").len() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all 40 records handled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        (2..=16).contains(&most),
        "{most} records were in flight at most"
    );
    drop(sub);
    bulk.close().await.expect("close");
    // Everything was acknowledged: the group's next member starts after it.
    let again = pubsub(server, &[("initialOffset", "oldest")]).await;
    let (h, mut rx) = forward();
    let _s = again.subscribe(req, h).await.expect("subscribe");
    again
        .publish(message("bulk", "later", &[]))
        .await
        .expect("publish");
    assert_eq!(
        next(&mut rx, "the next record").await.data,
        Bytes::from("later")
    );
}

/// The broker is killed (SIGKILL) and restarted while 2,000 records flow to a consumer group
/// of two members (two components, as two sidecars have): every record the broker
/// acknowledged is delivered at least once. Reports the duplicates.
async fn broker_restart_loses_no_acknowledged_record(server: KafkaServer) {
    let a = pubsub(&server, &[]).await;
    let b = pubsub(&server, &[]).await;
    let publisher = pubsub(&server, &[]).await;
    // Kept here too: the broker must outlive the restart closure.
    let server = Arc::new(std::sync::Mutex::new(server));
    let report = layotto_conformance::broker_fault::survives_broker_restart(
        &*publisher,
        &[a, b],
        "fault",
        "app",
        2_000,
        |i| Bytes::from(format!("m-{i}")),
        layotto_conformance::broker_fault::kill_then_start(
            Arc::clone(&server),
            KafkaServer::kill,
            KafkaServer::restart,
        ),
    )
    .await;
    println!("kafka broker restart: {report}");
}
