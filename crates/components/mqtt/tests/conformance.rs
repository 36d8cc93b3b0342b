//! Dapr's `pubsub.mqtt3` on a real Mosquitto started once by the test harness for the whole
//! suite (each case on topics of its own): the pub/sub suite, with the suite's consumer groups
//! as MQTT shared subscriptions (`$share/<group>/<topic>`, the way an app subscribes to one),
//! a session that collects messages while its sidecar is away, and the broker restarted under
//! load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use layotto_components_mqtt::MqttPubSub;
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription,
};
use layotto_core::{Component, ComponentSpec, Health, Metadata, Result};
use layotto_test_support::MosquittoServer;

static CLIENTS: AtomicUsize = AtomicUsize::new(0);

async fn pubsub(server: &MosquittoServer, client_id: Option<&str>) -> Arc<MqttPubSub> {
    pubsub_at(&server.url(), client_id).await
}

async fn pubsub_at(url: &str, client_id: Option<&str>) -> Arc<MqttPubSub> {
    let id = client_id.map_or_else(
        || format!("client-{}", CLIENTS.fetch_add(1, Ordering::SeqCst)),
        str::to_owned,
    );
    let spec = ComponentSpec::new("mqtt", "mqtt3")
        .with("url", url)
        .with("consumerID", id);
    let ps = MqttPubSub::from_spec(&spec).expect("valid spec");
    ps.init().await.expect("init mqtt pubsub");
    Arc::new(ps)
}

/// The suite's consumer groups as MQTT sees them: each group is an app with a sidecar of its
/// own (an MQTT client: a component made on the group's first subscription) subscribed to
/// `$share/<group>/<topic>`. Subscriptions of one group share that client's messages in turn.
struct Shared {
    server_url: String,
    publisher: Arc<MqttPubSub>,
    groups: tokio::sync::Mutex<std::collections::HashMap<String, Arc<MqttPubSub>>>,
}

impl Shared {
    async fn new(server: &MosquittoServer) -> Self {
        Self {
            server_url: server.url(),
            publisher: pubsub_at(&server.url(), None).await,
            groups: tokio::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl Component for Shared {
    async fn health(&self) -> Health {
        self.publisher.health().await
    }
}

#[async_trait]
impl PubSub for Shared {
    async fn publish(&self, msg: Message) -> Result<()> {
        self.publisher.publish(msg).await
    }

    async fn subscribe(&self, mut req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        let group = req
            .metadata
            .get(CONSUMER_ID_KEY)
            .cloned()
            .unwrap_or_else(|| "default".to_owned());
        req.topic = format!("$share/{group}/{}", req.topic);
        let client = {
            let mut groups = self.groups.lock().await;
            match groups.get(&group) {
                Some(c) => Arc::clone(c),
                None => {
                    let c = pubsub_at(&self.server_url, None).await;
                    groups.insert(group, Arc::clone(&c));
                    c
                }
            }
        };
        client.subscribe(req, handler).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt_suite() {
    let server = MosquittoServer::start();
    layotto_conformance::pubsub::run_all_without_handover(
        || async { Arc::new(Shared::new(&server).await) as Arc<dyn PubSub> },
        "MQTT 3.1.1 has no negative acknowledgement: an unacknowledged message stays with its session",
    )
    .await;
    session_collects_while_away(&server).await;
    broker_restart_loses_no_acknowledged_message(server).await;
}

/// With `cleanSession: false` (the default), messages published while a subscriber's sidecar
/// is away are delivered when it comes back with the same client id.
async fn session_collects_while_away(server: &MosquittoServer) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler: Handler = Arc::new(move |m: Message| {
        let _ = tx.send(m.data);
        Box::pin(async { Ok(()) })
    });
    let req = SubscribeRequest {
        topic: "away/orders".into(),
        metadata: Metadata::new(),
    };
    let first = pubsub(server, Some("returning-app")).await;
    let sub = first
        .subscribe(req.clone(), handler.clone())
        .await
        .expect("subscribe");
    drop(sub);
    first.close().await.expect("close");
    let publisher = pubsub(server, None).await;
    publisher
        .publish(Message {
            topic: "away/orders".into(),
            data: Bytes::from("while away"),
            metadata: Metadata::new(),
        })
        .await
        .expect("publish");
    let back = pubsub(server, Some("returning-app")).await;
    let _sub = back.subscribe(req, handler).await.expect("subscribe again");
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the queued message within 10 s")
        .expect("open");
    assert_eq!(got, Bytes::from("while away"));
}

/// The broker is stopped (SIGTERM, so it saves its state) and started again while 2,000
/// messages flow to a subscriber with a persistent session: every message the broker
/// acknowledged is delivered at least once. Reports the duplicates.
///
/// One plain subscriber, not a shared subscription: Mosquitto 2.0.11 (Debian's) does not keep
/// shared subscriptions across a restart, so a consumer group (`$share/<group>/...`) misses
/// what is published before its members subscribe again (seen here; plain subscriptions are
/// restored with the session and queue meanwhile).
async fn broker_restart_loses_no_acknowledged_message(server: MosquittoServer) {
    let members = [pubsub(&server, None).await as Arc<dyn PubSub>];
    let publisher = pubsub(&server, None).await;
    // Kept here too: the broker must outlive the restart closure.
    let server = Arc::new(std::sync::Mutex::new(server));
    let restarted = Arc::clone(&server);
    let report = layotto_conformance::broker_fault::survives_broker_restart(
        &*publisher,
        &members,
        "fault/load",
        "app",
        2_000,
        |i| Bytes::from(format!("m-{i}")),
        move || restarted.lock().expect("lock").restart(),
    )
    .await;
    println!("mosquitto broker restart (SIGTERM): {report}");
}

/// Over TLS (`ssl://`) with the broker's CA and a client certificate (the broker requires
/// one): messages flow as over TCP. Without the client certificate, or trusting only the
/// system roots, the connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_with_client_certificate() {
    let server = MosquittoServer::start_tls(true);
    let certs = server.certs().clone();
    let spec = |id: &str, with_client: bool, with_ca: bool| {
        let mut s = ComponentSpec::new("mqtt-tls", "mqtt3")
            .with("url", server.tls_url())
            .with("consumerID", id);
        if with_ca {
            s = s.with("caCert", certs.ca_cert.clone());
        }
        if with_client {
            s = s
                .with("clientCert", certs.client_cert.clone())
                .with("clientKey", certs.client_key.clone());
        }
        s
    };
    let ps = MqttPubSub::from_spec(&spec("tls-sub", true, true)).expect("valid spec");
    ps.init().await.expect("init over TLS");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler: Handler = Arc::new(move |m: Message| {
        let _ = tx.send(m.data);
        Box::pin(async { Ok(()) })
    });
    let _sub = ps
        .subscribe(
            SubscribeRequest {
                topic: "secure/orders".into(),
                metadata: Metadata::new(),
            },
            handler,
        )
        .await
        .expect("subscribe");
    ps.publish(Message {
        topic: "secure/orders".into(),
        data: Bytes::from_static(b"over tls"),
        metadata: Metadata::new(),
    })
    .await
    .expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("delivered in time")
        .expect("open");
    assert_eq!(got, Bytes::from_static(b"over tls"));
    for (id, client, ca, why) in [
        ("tls-no-cert", false, true, "no client certificate"),
        ("tls-no-ca", true, false, "the test CA is not trusted"),
    ] {
        let refused = MqttPubSub::from_spec(&spec(id, client, ca)).expect("valid spec");
        assert!(refused.init().await.is_err(), "connected although {why}");
    }
}
