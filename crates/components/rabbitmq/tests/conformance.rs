//! Dapr's `pubsub.rabbitmq` on a real RabbitMQ node started once by the test harness for the
//! whole suite (each case on topics of its own): the pub/sub suite, daprd's broker layout
//! (exchange, queue name and arguments, dead-letter pair), and the node killed and restarted
//! under load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_components_rabbitmq::RabbitMqPubSub;
use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest};
use layotto_core::{Component, ComponentSpec, Metadata};
use layotto_test_support::RabbitMqServer;

async fn pubsub(server: &RabbitMqServer, pairs: &[(&str, &str)]) -> Arc<RabbitMqPubSub> {
    let mut spec = ComponentSpec::new("rabbit", "rabbitmq").with("connectionString", server.url());
    for (k, v) in pairs {
        spec = spec.with(*k, *v);
    }
    let ps = RabbitMqPubSub::from_spec(&spec).expect("valid spec");
    ps.init().await.expect("init rabbitmq pubsub");
    Arc::new(ps)
}

fn message(topic: &str, data: &str) -> Message {
    Message {
        topic: topic.to_owned(),
        data: Bytes::from(data.to_owned()),
        metadata: Metadata::new(),
    }
}

fn request(topic: &str, group: &str) -> SubscribeRequest {
    SubscribeRequest {
        topic: topic.to_owned(),
        metadata: Metadata::from([("consumerID".to_owned(), group.to_owned())]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_suite() {
    let server = RabbitMqServer::start();
    layotto_conformance::pubsub::run_all(|| async {
        pubsub(&server, &[]).await as Arc<dyn PubSub>
    })
    .await;
    layotto_conformance::pubsub::run_all(|| async {
        pubsub(
            &server,
            &[("concurrency", "single"), ("prefetchCount", "10")],
        )
        .await as Arc<dyn PubSub>
    })
    .await;
    dead_letter_when_not_requeued(&server).await;
    broker_restart_loses_no_confirmed_message(server).await;
}

/// With `requeueInFailure: false` and `enableDeadLetter`, a message the handler failed goes to
/// daprd's `dlq-<consumerID>-<topic>` through `dlx-<consumerID>-<topic>`, not back to the app.
async fn dead_letter_when_not_requeued(server: &RabbitMqServer) {
    let ps = pubsub(
        server,
        &[
            ("requeueInFailure", "false"),
            ("enableDeadLetter", "true"),
            ("deletedWhenUnused", "false"),
        ],
    )
    .await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let failing: Handler = Arc::new(move |_m| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Err(layotto_core::Error::internal("no")) })
    });
    let _s = ps
        .subscribe(request("poison", "app"), failing)
        .await
        .expect("subscribe");
    ps.publish(message("poison", "bad")).await.expect("publish");
    // Read the dead-letter queue as any AMQP client would.
    let conn = lapin::Connection::connect(&server.url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let m = ch
            .basic_get(
                "dlq-app-poison".into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await
            .expect("basic.get on dlq-app-poison");
        if let Some(m) = m {
            break m.delivery.data;
        }
        assert!(
            Instant::now() < deadline,
            "nothing dead-lettered within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(got, b"bad");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not redelivered to the app"
    );
}

/// The node is killed (SIGKILL) and restarted while 2,000 persistent messages flow to a
/// consumer group of two members (two components, as two sidecars have): every message the
/// broker confirmed is delivered at least once. Reports the duplicates.
async fn broker_restart_loses_no_confirmed_message(server: RabbitMqServer) {
    let durable = [
        ("deliveryMode", "2"),
        ("deletedWhenUnused", "false"),
        ("reconnectWaitSeconds", "1"),
        ("publisherConfirm", "true"),
    ];
    let members = [
        pubsub(&server, &durable).await as Arc<dyn PubSub>,
        pubsub(&server, &durable).await as Arc<dyn PubSub>,
    ];
    let publisher = pubsub(&server, &durable).await;
    // Kept here too: the broker must outlive the restart closure.
    let server = Arc::new(Mutex::new(server));
    let restarted = Arc::clone(&server);
    let report = layotto_conformance::broker_fault::survives_broker_restart(
        &*publisher,
        &members,
        "fault",
        "app",
        2_000,
        |i| Bytes::from(format!("m-{i}")),
        move || {
            let mut s = restarted.lock().expect("lock");
            s.kill();
            std::thread::sleep(Duration::from_millis(300));
            s.restart();
        },
    )
    .await;
    println!("rabbitmq broker restart: {report}");
}
