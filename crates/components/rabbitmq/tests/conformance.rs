//! Dapr's `pubsub.rabbitmq` on a real RabbitMQ node started once by the test harness for the
//! whole suite (each case on topics of its own): the pub/sub suite, daprd's broker layout
//! (exchange, queue name and arguments, dead-letter pair), and the node killed and restarted
//! under load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_components_rabbitmq::{RabbitMqBinding, RabbitMqPubSub};
use layotto_core::binding::{BindingRequest, InputEvent, InputHandler, OutputBinding};
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
    binding_suite(&server).await;
    binding_message_properties(&server).await;
    broker_restart_loses_no_confirmed_message(server).await;
}

fn binding_spec(server: &RabbitMqServer, queue: &str) -> ComponentSpec {
    ComponentSpec::new("rabbit-binding", "bindings.rabbitmq")
        .with("host", server.url())
        .with("queueName", queue)
        .with("durable", "true")
        .with("prefetchCount", "10")
}

async fn binding(server: &RabbitMqServer, queue: &str) -> Arc<RabbitMqBinding> {
    let b = RabbitMqBinding::from_spec(&binding_spec(server, queue)).expect("valid spec");
    b.init().await.expect("init rabbitmq binding");
    Arc::new(b)
}

fn create(data: &[u8], metadata: &[(&str, &str)]) -> BindingRequest {
    BindingRequest {
        operation: "create".into(),
        data: Bytes::copy_from_slice(data),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// `bindings.rabbitmq` against the input-binding suite, each binding on one queue written
/// through its own `create`: a failed message is requeued and comes again.
async fn binding_suite(server: &RabbitMqServer) {
    use layotto_conformance::input_binding::{InputSource, run_all};
    let writer = binding(server, "binding-suite").await;
    let source = InputSource {
        produce: Box::new(move |data| {
            let w = Arc::clone(&writer);
            Box::pin(async move {
                w.invoke(create(&data, &[])).await.expect("create");
            })
        }),
        carries_data: true,
        redelivers: true,
        quiet_period: Duration::from_secs(2),
    };
    run_all(
        || async { binding(server, "binding-suite").await as Arc<dyn OutputBinding> },
        &source,
    )
    .await;
}

/// `create` before anyone reads: the queue declared at init keeps the message. It arrives
/// persistent with the request metadata as headers (query-escaped to the app, as daprd), and
/// an unknown operation is refused by name.
async fn binding_message_properties(server: &RabbitMqServer) {
    let b = binding(server, "binding-props").await;
    b.invoke(create(
        b"{\"n\":1}",
        &[("contentType", "application/json"), ("x-who", "a b/c")],
    ))
    .await
    .expect("create");
    let e = b
        .invoke(BindingRequest {
            operation: "delete".into(),
            ..create(b"", &[])
        })
        .await
        .expect_err("not an operation");
    assert!(e.message.contains("'delete'"), "{e}");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler: InputHandler = Arc::new(move |ev: InputEvent| {
        let _ = tx.send(ev);
        Box::pin(async { Ok(Bytes::new()) })
    });
    let input = Arc::clone(&b).input().expect("input side");
    let _reading = input.read(handler).await.expect("read");
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the message sent before reading arrives")
        .expect("event");
    assert_eq!(ev.data, Bytes::from_static(b"{\"n\":1}"));
    assert_eq!(
        ev.metadata.get("x-who").map(String::as_str),
        Some("a+b%2Fc")
    );
    assert_eq!(
        ev.metadata.get("contentType").map(String::as_str),
        Some("application%2Fjson")
    );
    let e = RabbitMqBinding::from_spec(&binding_spec(server, "q").with("caCert", "pem"))
        .expect_err("not PEM");
    assert!(e.message.contains("'caCert'"), "{e}");
}

/// TLS (`amqps://`) to a node that requires a client certificate issued by its CA, with Dapr's
/// keys holding PEM text: the pub/sub logging in as `guest` over TLS and, with
/// `saslExternal`, as the certificate's user (the URI's credentials are wrong, so only
/// EXTERNAL can get in); the binding with `externalSasl`. Without `caCert` the node's
/// certificate is not trusted, and without a client certificate the node refuses the
/// connection: both fail at init, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_and_external_login() {
    let server = RabbitMqServer::start_tls();
    let c = server.certs();
    let certs = [
        ("caCert", c.ca_cert.as_str()),
        ("clientCert", c.client_cert.as_str()),
        ("clientKey", c.client_key.as_str()),
    ];
    let tls_url = server.tls_url();
    let external_url = tls_url.replace("guest:guest@", "nobody:wrong@");
    for (url, extra) in [
        (tls_url.as_str(), None),
        (external_url.as_str(), Some(("saslExternal", "true"))),
    ] {
        let mut spec = ComponentSpec::new("rabbit-tls", "rabbitmq").with("connectionString", url);
        for (k, v) in certs.iter().copied().chain(extra) {
            spec = spec.with(k, v);
        }
        let ps = RabbitMqPubSub::from_spec(&spec).expect("valid spec");
        ps.init()
            .await
            .unwrap_or_else(|e| panic!("init over TLS {extra:?}: {e}"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handler: Handler = Arc::new(move |m: Message| {
            let _ = tx.send(m.data);
            Box::pin(async { Ok(()) })
        });
        let topic = format!("tls-{}", extra.is_some());
        let _sub = ps
            .subscribe(request(&topic, "app"), handler)
            .await
            .expect("subscribe over TLS");
        ps.publish(message(&topic, "secret"))
            .await
            .expect("publish over TLS");
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("delivered over TLS within 10 s");
        assert_eq!(got, Some(Bytes::from_static(b"secret")));
        ps.close().await.expect("close");
    }

    let mut spec = ComponentSpec::new("rabbit-binding-tls", "bindings.rabbitmq")
        .with("host", external_url.as_str())
        .with("queueName", "tls-binding")
        .with("externalSasl", "true");
    for (k, v) in certs {
        spec = spec.with(k, v);
    }
    let b = Arc::new(RabbitMqBinding::from_spec(&spec).expect("valid spec"));
    b.init().await.expect("binding init over TLS with EXTERNAL");
    b.invoke(create(b"over tls", &[]))
        .await
        .expect("create over TLS");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler: InputHandler = Arc::new(move |ev: InputEvent| {
        let _ = tx.send(ev.data);
        Box::pin(async { Ok(Bytes::new()) })
    });
    let input = Arc::clone(&b).input().expect("input side");
    let _reading = input.read(handler).await.expect("read");
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("read over TLS within 10 s");
    assert_eq!(got, Some(Bytes::from_static(b"over tls")));

    let refused = |pairs: &[(&str, &str)]| {
        let mut spec =
            ComponentSpec::new("rabbit-tls", "rabbitmq").with("connectionString", tls_url.as_str());
        for (k, v) in pairs {
            spec = spec.with(*k, *v);
        }
        async move {
            let ps = RabbitMqPubSub::from_spec(&spec).expect("valid spec");
            ps.init().await.expect_err("init must fail")
        }
    };
    let e = refused(&certs[1..]).await;
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    let e = refused(&certs[..1]).await;
    assert!(e.message.contains("connect to RabbitMQ"), "{e}");
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
    let server = Arc::new(std::sync::Mutex::new(server));
    let report = layotto_conformance::broker_fault::survives_broker_restart(
        &*publisher,
        &members,
        "fault",
        "app",
        2_000,
        |i| Bytes::from(format!("m-{i}")),
        layotto_conformance::broker_fault::kill_then_start(
            Arc::clone(&server),
            RabbitMqServer::kill,
            RabbitMqServer::restart,
        ),
    )
    .await;
    println!("rabbitmq broker restart: {report}");
}
