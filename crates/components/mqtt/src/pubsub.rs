//! Dapr's `pubsub.mqtt3` (`dapr/components-contrib:pubsub/mqtt3`) on MQTT 3.1.1, with the
//! `rumqttc` client.
//!
//! **Connection.** One MQTT connection per component; its client id is `consumerID` (daprd
//! and this runtime fill in the app id when the component names none; two sidecars with one
//! client id take the connection from each other, so replicas need `{uuid}` or `{podName}`,
//! as Dapr's docs say). `cleanSession` defaults to false: the broker keeps the session's
//! subscriptions and queues QoS 1 messages while the sidecar is away. The client reconnects
//! by itself and subscribes again (as daprd does: a clean session has no subscriptions, and
//! a broker may not keep shared ones).
//!
//! **Publish** sends with `qos` (default 1) and `retain` (per request metadata `retain`), and
//! with QoS 1 or 2 returns once the broker acknowledged it (PUBACK / PUBCOMP).
//!
//! **Subscribe** subscribes to the topic filter (wildcards `+` and `#`). Consumer groups are
//! MQTT shared subscriptions, used only when the app subscribes to `$share/<group>/<filter>`,
//! as in Dapr; otherwise every subscriber gets every message. A message is acknowledged once
//! the handler returned `Ok`; a failed delivery is retried in place after [`retry_delay`]
//! (MQTT 3.1.1 has no negative acknowledgement; daprd leaves it unacknowledged until the next
//! reconnect). A message that arrives before a subscription matches it (a resumed session
//! delivers at once, before the app has subscribed again) is kept unacknowledged and handed
//! to the subscription when it comes; daprd drops it unacknowledged until the next reconnect. Dropping a subscription
//! unsubscribes only with `cleanSession` or the subscription metadata `unsubscribeOnClose`, as
//! daprd does, so a restarting sidecar's session keeps collecting messages.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use layotto_core::metadata::{ComponentMetadata, decode, parse_truthy, spec_error};
use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest, Subscription, retry_delay};
use layotto_core::{Component, ComponentSpec, Error, Health, Metadata, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde::Deserialize;
use tokio::sync::{Mutex, oneshot};
use tokio_util::sync::CancellationToken;

/// Subscription metadata key: unsubscribe when the subscription is dropped.
pub const UNSUBSCRIBE_ON_CLOSE_KEY: &str = "unsubscribeOnClose";
/// Largest MQTT packet (the protocol's limit: 256 MiB).
const MAX_PACKET: usize = 268_435_455;
/// How long publish and subscribe wait for the broker (Dapr's `defaultWait`).
const WAIT: Duration = Duration::from_secs(20);

/// Metadata of [`MqttPubSub`]: Dapr's `pubsub.mqtt3` keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MqttMetadata {
    /// `url` (required): `tcp://[user:password@]host:port` (also `mqtt://`; port 1883 by
    /// default), or over TLS `ssl://` (also `mqtts://`, `tls://`, `tcps://`; port 8883).
    pub url: Option<String>,
    /// `consumerID` (required; the runtime sets the app id): the MQTT client id.
    #[serde(rename = "consumerID")]
    pub consumer_id: Option<String>,
    /// `qos`: 0, 1 (default) or 2.
    pub qos: Option<u8>,
    /// `retain`: publish retained messages (default false).
    pub retain: Option<bool>,
    /// `cleanSession`: start a clean session (default false).
    #[serde(rename = "cleanSession")]
    pub clean_session: Option<bool>,
    /// `caCert`: PEM of the CA(s) the broker's certificate must chain to (TLS urls; else the
    /// system roots).
    #[serde(rename = "caCert")]
    pub ca_cert: Option<String>,
    /// `clientCert`: PEM client certificate chain for mutual TLS (needs `clientKey`).
    #[serde(rename = "clientCert")]
    pub client_cert: Option<String>,
    /// `clientKey`: PEM private key of `clientCert`.
    #[serde(rename = "clientKey")]
    pub client_key: Option<String>,
}

impl ComponentMetadata for MqttMetadata {}

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    client_id: String,
    qos: QoS,
    retain: bool,
    clean_session: bool,
    /// TLS to the broker (a TLS url scheme).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The rustls client configuration of a TLS url: the broker's certificate verified against
/// `ca` (PEM) or the system roots, and the client certificate `cert`/`key` (PEM) when given.
fn tls_config(
    ca: Option<&str>,
    cert: Option<&str>,
    key: Option<&str>,
) -> std::result::Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = |pem: &str, what: &str| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("invalid {what}: no PEM certificate in it"))
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for c in certs(ca, "caCert")? {
                roots.add(c).map_err(|e| format!("invalid caCert: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    match (cert, key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(c), Some(k)) => {
            let key = PrivateKeyDer::from_pem_slice(k.as_bytes())
                .map_err(|e| format!("invalid clientKey: {e}"))?;
            builder
                .with_client_auth_cert(certs(c, "clientCert")?, key)
                .map_err(|e| format!("unable to load client certificate and key pair: {e}"))
        }
        (Some(_), None) => Err("clientCert needs clientKey".to_owned()),
        (None, Some(_)) => Err("clientKey needs clientCert".to_owned()),
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Settings {
    fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: MqttMetadata = decode(spec)?;
        let err = |msg: String| spec_error(spec, format!("mqtt pubsub error: {msg}"));
        let url = nonempty(m.url).ok_or_else(|| err("missing url".to_owned()))?;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err(format!("invalid url '{url}' (tcp://host:port)")))?;
        let (ca, cert, key) = (
            nonempty(m.ca_cert),
            nonempty(m.client_cert),
            nonempty(m.client_key),
        );
        let tls = match scheme {
            "tcp" | "mqtt" => {
                if ca.is_some() || cert.is_some() || key.is_some() {
                    tracing::warn!(
                        "{}: caCert, clientCert and clientKey apply to ssl:// urls only; '{url}' \
                         connects without TLS",
                        spec.name
                    );
                }
                None
            }
            "ssl" | "mqtts" | "tls" | "tcps" => Some(Arc::new(
                tls_config(ca.as_deref(), cert.as_deref(), key.as_deref())
                    .map_err(|e| err(format!("invalid TLS configuration: {e}")))?,
            )),
            other => {
                return Err(err(format!(
                    "unknown url scheme '{other}' (tcp, mqtt, ssl, mqtts, tls or tcps)"
                )));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| err(format!("invalid port in url '{url}'")))?,
            ),
            None => (hostport.to_owned(), if tls.is_some() { 8883 } else { 1883 }),
        };
        let credentials = userinfo.map(|u| match u.split_once(':') {
            Some((user, pass)) => (user.to_owned(), pass.to_owned()),
            None => (u.to_owned(), String::new()),
        });
        let client_id =
            nonempty(m.consumer_id).ok_or_else(|| err("missing consumerID".to_owned()))?;
        let qos = match m.qos.unwrap_or(1) {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            n => return Err(err(format!("invalid qos {n} (0, 1 or 2)"))),
        };
        Ok(Self {
            host,
            port,
            credentials,
            client_id,
            qos,
            retain: m.retain.unwrap_or(false),
            clean_session: m.clean_session.unwrap_or(false),
            tls,
        })
    }
}

/// Whether `topic` matches the MQTT filter `filter` (`+` one level, `#` the rest).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return !topic.starts_with('$') || !filter.starts_with('#'),
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The filter a subscription topic stands for: `$share/<group>/<filter>` stands for
/// `<filter>`.
fn effective_filter(topic: &str) -> &str {
    topic
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(topic, |(_, f)| f)
}

/// A subscription's handler and filter.
struct Route {
    id: u64,
    topic: String,
    handler: Handler,
    cancel: CancellationToken,
}

/// Requests waiting for the broker's answer, keyed by packet id once it is known.
#[derive(Default)]
struct Waiters {
    /// Sent but not yet given a packet id, in request order.
    queued: VecDeque<oneshot::Sender<Result<()>>>,
    /// By packet id.
    by_pkid: HashMap<u16, oneshot::Sender<Result<()>>>,
}

impl Waiters {
    /// The request that went out as `pkid` (a replay after a reconnect keeps its entry).
    fn sent(&mut self, pkid: u16) {
        // A live entry means a replay after a reconnect; a closed one is a request that gave
        // up waiting, whose packet id is free again.
        if self.by_pkid.get(&pkid).is_some_and(|tx| !tx.is_closed()) {
            return;
        }
        if let Some(tx) = self.queued.pop_front() {
            self.by_pkid.insert(pkid, tx);
        } else {
            self.by_pkid.remove(&pkid);
        }
    }

    /// Fails every waiter (their requests will not be answered on this connection).
    fn fail_all(&mut self, why: &str) {
        for tx in self
            .queued
            .drain(..)
            .chain(self.by_pkid.drain().map(|(_, tx)| tx))
        {
            let _ = tx.send(Err(Error::unavailable(why.to_owned())));
        }
    }

    fn answered(&mut self, pkid: u16, result: Result<()>) {
        if let Some(tx) = self.by_pkid.remove(&pkid) {
            let _ = tx.send(result);
        }
    }
}

struct Shared {
    label: String,
    settings: Settings,
    client: AsyncClient,
    publishes: std::sync::Mutex<Waiters>,
    subscribes: std::sync::Mutex<Waiters>,
    /// Serialises publish (and subscribe) requests with their waiters' order.
    publish_order: Mutex<()>,
    subscribe_order: Mutex<()>,
    routes: std::sync::RwLock<Vec<Arc<Route>>>,
    /// Packet ids of deliveries being handled: a resent copy (after a reconnect) is not
    /// handled twice nor acknowledged twice.
    running: std::sync::Mutex<std::collections::HashSet<u16>>,
    /// Woken when the DISCONNECT went out (`close`).
    disconnected: tokio::sync::Notify,
    /// Messages that arrived before any subscription matched them, unacknowledged.
    unrouted: std::sync::Mutex<Vec<rumqttc::Publish>>,
    connected: AtomicBool,
    next_id: AtomicU64,
}

/// Dapr's `pubsub.mqtt3` (type `mqtt3`). See the module documentation.
pub struct MqttPubSub {
    label: String,
    settings: Settings,
    shared: OnceLock<Arc<Shared>>,
    closed: CancellationToken,
}

impl std::fmt::Debug for MqttPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPubSub")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl MqttPubSub {
    /// Factory: [`MqttMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the key: `url` missing or malformed, `consumerID` missing,
    /// `qos` above 2, certificates that are no PEM or a client certificate without its key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        Ok(Self {
            label: format!("pubsub '{}'", spec.name),
            settings: Settings::from_spec(spec)?,
            shared: OnceLock::new(),
            closed: CancellationToken::new(),
        })
    }

    fn shared(&self) -> Result<&Arc<Shared>> {
        self.shared
            .get()
            .ok_or_else(|| Error::unavailable(format!("{}: not initialised", self.label)))
    }
}

/// Waits for `rx` (the broker's answer) up to [`WAIT`].
async fn answer(rx: oneshot::Receiver<Result<()>>, what: &str) -> Result<()> {
    match tokio::time::timeout(WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(Error::unavailable(format!("{what}: connection closed"))),
        Err(_) => Err(Error::deadline_exceeded(format!(
            "{what}: the broker did not answer within {WAIT:?}"
        ))),
    }
}

impl Shared {
    /// Drives the connection until cancelled: tracks answers, dispatches messages, and
    /// reconnects after errors.
    async fn run(self: Arc<Self>, mut events: EventLoop, cancel: CancellationToken) {
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                e = events.poll() => e,
            };
            match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                    self.publishes.lock().expect("lock").sent(pkid);
                }
                Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                    self.subscribes.lock().expect("lock").sent(pkid);
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => {
                    self.publishes
                        .lock()
                        .expect("lock")
                        .answered(a.pkid, Ok(()));
                }
                Ok(Event::Incoming(Packet::PubComp(c))) => {
                    self.publishes
                        .lock()
                        .expect("lock")
                        .answered(c.pkid, Ok(()));
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    let refused = s
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                    let result = if refused {
                        Err(Error::permission_denied(format!(
                            "{}: the broker refused the subscription",
                            self.label
                        )))
                    } else {
                        Ok(())
                    };
                    self.subscribes
                        .lock()
                        .expect("lock")
                        .answered(s.pkid, result);
                }
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    self.connected.store(true, Ordering::SeqCst);
                    // Subscriptions in flight at the disconnect are not sent again; without a
                    // kept session neither are publishes.
                    let why = format!("{}: connection to the MQTT broker was lost", self.label);
                    self.subscribes.lock().expect("lock").fail_all(&why);
                    if !c.session_present {
                        self.publishes.lock().expect("lock").fail_all(&why);
                    }
                    // Subscribe again after every reconnect, as daprd does: a clean session
                    // has no subscriptions, and a broker may not have kept shared ones.
                    let me = Arc::clone(&self);
                    tokio::spawn(async move { me.resubscribe().await });
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.dispatch(p),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    self.connected.store(false, Ordering::SeqCst);
                    self.disconnected.notify_waiters();
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    if self.connected.swap(false, Ordering::SeqCst) {
                        tracing::warn!(error = %e, "{}: connection to the MQTT broker lost; reconnecting", self.label);
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    async fn resubscribe(&self) {
        let topics: Vec<String> = self
            .routes
            .read()
            .expect("lock")
            .iter()
            .map(|r| r.topic.clone())
            .collect();
        for t in topics {
            if let Err(e) = self.subscribe(&t).await {
                tracing::warn!(topic = %t, error = %e, "{}: resubscribe failed", self.label);
            }
        }
    }

    async fn subscribe(&self, topic: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.subscribe_order.lock().await;
            self.subscribes.lock().expect("lock").queued.push_back(tx);
            if let Err(e) = self.client.subscribe(topic, self.settings.qos).await {
                self.subscribes.lock().expect("lock").queued.pop_back();
                return Err(Error::unavailable(format!(
                    "{}: subscribe: {e}",
                    self.label
                )));
            }
        }
        answer(rx, &format!("{}: subscribe to '{topic}'", self.label)).await
    }

    /// Hands `p` to a subscription whose filter matches its topic (in turn among the
    /// subscriptions to the first such filter); acknowledges it once handled. Without one it stays unacknowledged (delivered again on the next
    /// session resume).
    fn dispatch(self: &Arc<Self>, p: rumqttc::Publish) {
        // Under the `unrouted` lock, so a subscription being added either sees this message
        // among the unrouted or is seen here.
        let route = {
            let mut unrouted = self.unrouted.lock().expect("lock");
            let routes = self.routes.read().expect("lock");
            // One MQTT subscription per filter reaches this client; the sidecar's
            // subscriptions to that filter share its messages in turn (a consumer group
            // within one client).
            let matching: Vec<&Arc<Route>> = match routes
                .iter()
                .find(|r| topic_matches(effective_filter(&r.topic), &p.topic))
            {
                Some(first) => routes.iter().filter(|r| r.topic == first.topic).collect(),
                None => Vec::new(),
            };
            if matching.is_empty() {
                // A resumed session delivers before the app has subscribed again: kept (not
                // acknowledged) for the subscription that comes. The broker's in-flight
                // window bounds how many wait.
                tracing::debug!(topic = %p.topic, "{}: no subscription yet for this message; kept", self.label);
                unrouted.push(p);
                return;
            }
            let turn = self.next_id.fetch_add(1, Ordering::Relaxed);
            Arc::clone(matching[(turn as usize) % matching.len()])
        };
        if p.qos != QoS::AtMostOnce && !self.running.lock().expect("lock").insert(p.pkid) {
            // The broker resent a message that is still being handled here.
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut metadata = Metadata::new();
            metadata.insert("retained".into(), p.retain.to_string());
            let msg = Message {
                topic: p.topic.clone(),
                data: Bytes::copy_from_slice(&p.payload),
                metadata,
            };
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let run = std::panic::AssertUnwindSafe((route.handler)(msg.clone())).catch_unwind();
                let outcome = tokio::select! {
                    () = route.cancel.cancelled() => {
                        me.running.lock().expect("lock").remove(&p.pkid);
                        return;
                    }
                    r = run => r,
                };
                match outcome {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => {
                        tracing::debug!(attempt, error = %e, "{}: delivery failed; retrying", me.label)
                    }
                    Err(_) => tracing::warn!(attempt, "{}: handler panicked; retrying", me.label),
                }
                tokio::select! {
                    () = route.cancel.cancelled() => {
                        me.running.lock().expect("lock").remove(&p.pkid);
                        return;
                    }
                    () = tokio::time::sleep(retry_delay(attempt)) => {}
                }
            }
            if p.qos != QoS::AtMostOnce {
                match tokio::time::timeout(WAIT, me.client.ack(&p)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "{}: ack failed (delivered again after a reconnect)", me.label);
                    }
                    Err(_) => {
                        tracing::warn!(
                            "{}: ack not sent within {WAIT:?} (delivered again after a reconnect)",
                            me.label
                        );
                    }
                }
                me.running.lock().expect("lock").remove(&p.pkid);
            }
        });
    }
}

#[async_trait]
impl Component for MqttPubSub {
    /// Connects (20 s to get the broker's CONNACK). Errors: unavailable when the broker cannot
    /// be reached or refuses the connection.
    async fn init(&self) -> Result<()> {
        let s = &self.settings;
        let mut opts = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
        opts.set_clean_session(s.clean_session)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(100)
            // MQTT's own limit (rumqttc defaults to 10 KiB, which would jam on larger
            // messages).
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some((u, p)) = &s.credentials {
            opts.set_credentials(u.clone(), p.clone());
        }
        if let Some(tls) = &s.tls {
            opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::clone(tls)),
            ));
        }
        let (client, mut events) = AsyncClient::new(opts, 256);
        // The first CONNACK (or error) before the component counts as initialised.
        let first = tokio::time::timeout(WAIT, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match first {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::unavailable(format!(
                    "{}: cannot connect to the MQTT broker {}:{}: {e}",
                    self.label, s.host, s.port
                )));
            }
            Err(_) => {
                return Err(Error::unavailable(format!(
                    "{}: no answer from the MQTT broker {}:{} within {WAIT:?}",
                    self.label, s.host, s.port
                )));
            }
        }
        let shared = Arc::new(Shared {
            label: self.label.clone(),
            settings: s.clone(),
            client,
            publishes: std::sync::Mutex::default(),
            subscribes: std::sync::Mutex::default(),
            publish_order: Mutex::new(()),
            subscribe_order: Mutex::new(()),
            routes: std::sync::RwLock::default(),
            unrouted: std::sync::Mutex::default(),
            running: std::sync::Mutex::default(),
            disconnected: tokio::sync::Notify::new(),
            connected: AtomicBool::new(true),
            next_id: AtomicU64::new(0),
        });
        tokio::spawn(Arc::clone(&shared).run(events, self.closed.clone()));
        let _ = self.shared.set(shared);
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.shared.get() {
            Some(s) if s.connected.load(Ordering::SeqCst) => Health::up(),
            Some(_) => Health::down("connection to the MQTT broker lost (reconnecting)"),
            None => Health::down("not initialised"),
        }
    }

    /// Stops the subscriptions and disconnects (the session stays with the broker unless it
    /// is clean).
    async fn close(&self) -> Result<()> {
        if let Some(s) = self.shared.get() {
            // A clean DISCONNECT (up to 2 s), so the broker hands the session on at once.
            let sent = s.disconnected.notified();
            if matches!(
                tokio::time::timeout(Duration::from_secs(2), s.client.disconnect()).await,
                Ok(Ok(()))
            ) {
                let _ = tokio::time::timeout(Duration::from_secs(2), sent).await;
            }
        }
        self.closed.cancel();
        Ok(())
    }
}

#[async_trait]
impl PubSub for MqttPubSub {
    /// Publishes with the component's `qos`; QoS 1 and 2 return once the broker acknowledged
    /// the message. Errors: invalid argument for an empty topic or a bad `retain`;
    /// unavailable or deadline exceeded when the broker does not acknowledge within 20 s.
    async fn publish(&self, msg: Message) -> Result<()> {
        if msg.topic.is_empty() {
            return Err(Error::invalid("topic name is empty").context(&self.label));
        }
        let shared = self.shared()?;
        let retain = match msg
            .metadata
            .get("retain")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            Some(v) => parse_truthy(v).ok_or_else(|| {
                Error::invalid(format!("{}: mqtt invalid retain {v}", self.label))
            })?,
            None => self.settings.retain,
        };
        let qos = self.settings.qos;
        let (tx, rx) = oneshot::channel();
        {
            let _order = shared.publish_order.lock().await;
            if qos != QoS::AtMostOnce {
                shared.publishes.lock().expect("lock").queued.push_back(tx);
            }
            if let Err(e) = shared
                .client
                .publish(msg.topic.clone(), qos, retain, msg.data.to_vec())
                .await
            {
                if qos != QoS::AtMostOnce {
                    shared.publishes.lock().expect("lock").queued.pop_back();
                }
                return Err(Error::unavailable(format!(
                    "{}: failed to publish: {e}",
                    self.label
                )));
            }
        }
        if qos == QoS::AtMostOnce {
            return Ok(());
        }
        answer(rx, &format!("{}: publish to '{}'", self.label, msg.topic)).await
    }

    /// Subscribes to the topic filter and returns once the broker acknowledged it. Errors:
    /// invalid argument for an empty topic; permission denied when the broker refuses the
    /// filter; unavailable when it does not answer.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        if req.topic.is_empty() {
            return Err(Error::invalid("topic name is empty").context(&self.label));
        }
        let shared = Arc::clone(self.shared()?);
        let route = Arc::new(Route {
            id: shared.next_id.fetch_add(1, Ordering::SeqCst),
            topic: req.topic.clone(),
            handler,
            cancel: self.closed.child_token(),
        });
        // Messages the resumed session delivered before this subscription existed (the lock
        // order of `dispatch`: unrouted, then routes).
        let waiting: Vec<rumqttc::Publish> = {
            let mut unrouted = shared.unrouted.lock().expect("lock");
            shared
                .routes
                .write()
                .expect("lock")
                .push(Arc::clone(&route));
            let filter = effective_filter(&req.topic).to_owned();
            let (mine, rest) = unrouted
                .drain(..)
                .partition(|p| topic_matches(&filter, &p.topic));
            *unrouted = rest;
            mine
        };
        for p in waiting {
            shared.dispatch(p);
        }
        if let Err(e) = shared.subscribe(&req.topic).await {
            route.cancel.cancel();
            shared
                .routes
                .write()
                .expect("lock")
                .retain(|r| r.id != route.id);
            return Err(e);
        }
        let unsubscribe = self.settings.clean_session
            || req
                .metadata
                .get(UNSUBSCRIBE_ON_CLOSE_KEY)
                .and_then(|v| parse_truthy(v))
                .unwrap_or(false);
        Ok(Subscription::new(move || {
            route.cancel.cancel();
            shared
                .routes
                .write()
                .expect("lock")
                .retain(|r| r.id != route.id);
            let still_used = shared
                .routes
                .read()
                .expect("lock")
                .iter()
                .any(|r| r.topic == route.topic);
            if unsubscribe && !still_used {
                let (client, topic) = (shared.client.clone(), route.topic.clone());
                tokio::spawn(async move {
                    let _ = client.unsubscribe(topic).await;
                });
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(pairs: &[(&str, &str)]) -> String {
        let mut s = ComponentSpec::new("m", "mqtt3");
        for (k, v) in pairs {
            s = s.with(*k, *v);
        }
        MqttPubSub::from_spec(&s).expect_err("refused").to_string()
    }

    #[test]
    fn filters_match_as_mqtt_says() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/c"));
        assert!(topic_matches("a/+/c", "a/x/c"));
        assert!(!topic_matches("a/+", "a/x/c"));
        assert!(topic_matches("a/#", "a/x/c"));
        assert!(topic_matches("#", "anything/at/all"));
        assert!(!topic_matches("#", "$SYS/broker"));
        assert_eq!(effective_filter("$share/g/orders/+"), "orders/+");
        assert_eq!(effective_filter("orders"), "orders");
    }

    #[test]
    fn metadata_is_checked() {
        assert!(err(&[("consumerID", "c")]).contains("missing url"));
        assert!(err(&[("url", "tcp://h:1883")]).contains("missing consumerID"));
        assert!(
            err(&[("url", "tcp://h:1883"), ("consumerID", "c"), ("qos", "3")]).contains("qos 3")
        );
        assert!(
            err(&[
                ("url", "ssl://h"),
                ("consumerID", "c"),
                ("caCert", "nonsense")
            ])
            .contains("invalid caCert")
        );
        assert!(
            err(&[("url", "ssl://h"), ("consumerID", "c"), ("clientKey", "k")])
                .contains("clientKey")
        );
        let tls = MqttPubSub::from_spec(
            &ComponentSpec::new("m", "mqtt3")
                .with("url", "mqtts://broker")
                .with("consumerID", "c"),
        )
        .expect("TLS with the system roots");
        assert!(tls.settings.tls.is_some() && tls.settings.port == 8883);
        assert!(err(&[("url", "h:1883"), ("consumerID", "c")]).contains("invalid url"));
        let ok = MqttPubSub::from_spec(
            &ComponentSpec::new("m", "mqtt3")
                .with("url", "tcp://user:pw@broker:1884")
                .with("consumerID", "c"),
        )
        .expect("valid");
        assert_eq!(
            (ok.settings.host.as_str(), ok.settings.port),
            ("broker", 1884)
        );
        assert_eq!(
            ok.settings.credentials,
            Some(("user".to_owned(), "pw".to_owned()))
        );
        assert_eq!(ok.settings.qos, QoS::AtLeastOnce);
        assert!(!ok.settings.clean_session);
    }
}
