//! NATS JetStream pub/sub, following Dapr's `pubsub.jetstream`
//! (`dapr/components-contrib:pubsub/jetstream`; metadata keys as its docs page "NATS JetStream"
//! lists them).
//!
//! **Streams.** As with Dapr, the streams are the user's: a topic is published to the subject of
//! the same name, which a stream must capture (`streamName`, else the stream whose subjects
//! match the topic). Publishing waits for the stream's acknowledgement (`PubAck`), so a
//! published message is stored before `publish` returns; the CloudEvent `id` goes in the
//! `Nats-Msg-Id` header, so a publish retried within the stream's duplicate window is stored
//! once. Message metadata travels as headers.
//!
//! **Consumer groups.** Each (group, topic) is one durable *pull* consumer on the stream,
//! filtered to the topic: `durableName` when given (one topic per durable, as in Dapr), else
//! `<consumerID>-<topic>` with the characters NATS forbids in names replaced by `_`. The
//! group is the subscription's `consumerID` (the runtime sets the app id), else the
//! component's, else `default`. Subscriptions of one group, in one or many sidecars, pull from
//! the same consumer and so compete; every group gets every message. (Dapr uses push consumers
//! and ignores `consumerID`: without `durableName` each of its sidecars gets an ephemeral
//! consumer and every replica of an app receives every message.)
//!
//! **Delivery.** A subscription pulls as many messages as it has free handler slots
//! (`concurrency: single`, the default, handles one at a time; `parallel` up to
//! `maxAckPending`, default 1000). A handled message is acknowledged with a double ack (the
//! server confirms it). A handler error or panic is answered with a NAK delayed by
//! [`retry_delay`] of the delivery count, so the server redelivers it to a member of the group.
//! While a handler runs, `+WPI` (work in progress) resets the ack wait every half `ackWait`, so
//! a slow handler is not redelivered to another member meanwhile. Dropping the
//! [`Subscription`] stops pulling and NAKs what it held, so the other members get those
//! messages at once; a killed sidecar's messages come back after `ackWait` (server default
//! 30 s). `maxDeliver` bounds the deliveries per message; `backOff` spaces redeliveries after
//! an ack timeout. With `ackPolicy: none` nothing is acknowledged (at most once); `all` is
//! refused, since one ack would also acknowledge earlier messages still being retried.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind, Context};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use layotto_core::metadata::{ComponentMetadata, GoDuration, decode, spec_error};
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription, retry_delay,
};
use layotto_core::{Component, ComponentSpec, Error, Health, Result};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Consumer group of subscriptions without `consumerID` (subscription or component metadata).
pub const DEFAULT_GROUP: &str = "default";
/// Delivered-message metadata key holding the subject (as Dapr sets it).
pub const TOPIC_METADATA_KEY: &str = "Topic";
/// How long one pull request waits for messages; bounds how late a dropped subscription
/// notices and how long its last pull may still deliver.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// Most messages one pull asks for.
const MAX_PULL: usize = 256;
/// Handler slots of `concurrency: parallel` when `maxAckPending` is not set (the server's
/// default `max_ack_pending`).
const DEFAULT_PARALLEL: usize = 1000;
/// Attempts to acknowledge a handled message before leaving it to the ack wait.
const ACK_ATTEMPTS: u32 = 5;
/// Ack wait the server uses when the consumer sets none.
const SERVER_ACK_WAIT: Duration = Duration::from_secs(30);
/// Time allowed to connect to the server in `init`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Metadata of [`JetStreamPubSub`]: Dapr's `pubsub.jetstream` keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JetStreamMetadata {
    /// `natsURL` (required): the server, e.g. `nats://127.0.0.1:4222`.
    #[serde(rename = "natsURL")]
    pub nats_url: Option<String>,
    /// `jwt`: a user JWT; needs `seedKey`, which signs the server's nonce.
    pub jwt: Option<String>,
    /// `seedKey`: the user's NKey seed (`SU...`); needs `jwt`.
    #[serde(rename = "seedKey")]
    pub seed_key: Option<String>,
    /// `token`: a token for token authentication.
    pub token: Option<String>,
    /// `tls_client_cert`: the client certificate file (PEM); needs `tls_client_key`.
    pub tls_client_cert: Option<String>,
    /// `tls_client_key`: the client key file (PEM); needs `tls_client_cert`.
    pub tls_client_key: Option<String>,
    /// `name`: the connection name (default `dapr.io - pubsub.jetstream`).
    pub name: Option<String>,
    /// `streamName`: the stream every topic is in (default: looked up by subject).
    #[serde(rename = "streamName")]
    pub stream_name: Option<String>,
    /// `durableName`: the durable consumer's name (default `<consumerID>-<topic>`).
    #[serde(rename = "durableName")]
    pub durable_name: Option<String>,
    /// `queueGroupName`: Dapr's push-consumer queue group; pull consumers compete without one,
    /// so it is accepted and has no effect.
    #[serde(rename = "queueGroupName")]
    pub queue_group_name: Option<String>,
    /// `consumerID`: the consumer group of subscriptions that name none.
    #[serde(rename = "consumerID")]
    pub consumer_id: Option<String>,
    /// `startSequence`: first stream sequence delivered (with `deliverPolicy: sequence`).
    #[serde(rename = "startSequence")]
    pub start_sequence: Option<u64>,
    /// `startTime`: first publish time delivered, in Unix **seconds** (with
    /// `deliverPolicy: time`).
    #[serde(rename = "startTime")]
    pub start_time: Option<u64>,
    /// `deliverPolicy`: `all` (default), `last`, `new`, `sequence` or `time`.
    #[serde(rename = "deliverPolicy")]
    pub deliver_policy: Option<String>,
    /// `ackPolicy`: `explicit` (default) or `none`; `all` is refused (an ack would also
    /// acknowledge earlier messages whose delivery failed).
    #[serde(rename = "ackPolicy")]
    pub ack_policy: Option<String>,
    /// `ackWait`: how long the server waits for an acknowledgement before redelivering (Go
    /// duration or seconds; server default 30 s).
    #[serde(rename = "ackWait")]
    pub ack_wait: Option<GoDuration>,
    /// `maxDeliver`: most deliveries of one message (default unlimited).
    #[serde(rename = "maxDeliver")]
    pub max_deliver: Option<i64>,
    /// `backOff`: comma-separated redelivery delays after ack timeouts (Go durations).
    #[serde(rename = "backOff")]
    pub back_off: Option<Vec<GoDuration>>,
    /// `maxAckPending`: most unacknowledged messages of the consumer (server default 1000).
    #[serde(rename = "maxAckPending")]
    pub max_ack_pending: Option<i64>,
    /// `replicas`: the consumer's replicas in a clustered JetStream.
    pub replicas: Option<usize>,
    /// `memoryStorage`: keep the consumer's state in memory.
    #[serde(rename = "memoryStorage")]
    pub memory_storage: Option<bool>,
    /// `domain`: the JetStream domain.
    pub domain: Option<String>,
    /// `apiPrefix`: the JetStream API prefix (instead of `domain`).
    #[serde(rename = "apiPrefix")]
    pub api_prefix: Option<String>,
    /// `concurrency`: `single` (default: one handler call at a time) or `parallel`.
    pub concurrency: Option<String>,
}

impl ComponentMetadata for JetStreamMetadata {
    /// Push-consumer settings (pull consumers have no rate, flow control or heartbeat) and the
    /// retry keys Dapr decodes and never uses.
    const NO_EFFECT: &'static [&'static str] = &[
        "flowControl",
        "heartbeat",
        "rateLimit",
        "backOffPolicy",
        "backOffDuration",
        "backOffMaxRetries",
        "backOffInitialInterval",
        "backOffMaxInterval",
        "backOffMaxElapsedTime",
        "backOffRandomizationFactor",
        "backOffMultiplier",
    ];
}

/// How the connection authenticates.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Token(String),
    Jwt { jwt: String, seed: String },
    ClientCert { cert: String, key: String },
}

/// Settings read from the metadata.
#[derive(Debug, Clone)]
struct Settings {
    url: String,
    auth: Auth,
    name: String,
    stream_name: Option<String>,
    durable_name: Option<String>,
    consumer_id: Option<String>,
    deliver_policy: DeliverPolicy,
    ack_policy: AckPolicy,
    ack_wait: Option<Duration>,
    max_deliver: Option<i64>,
    back_off: Vec<Duration>,
    max_ack_pending: Option<i64>,
    replicas: Option<usize>,
    memory_storage: bool,
    domain: Option<String>,
    api_prefix: Option<String>,
    /// Handler calls in flight per subscription.
    slots: usize,
}

/// Dapr's `pubsub.jetstream` (type `jetstream`). See the module documentation.
#[derive(Debug)]
pub struct JetStreamPubSub {
    label: String,
    settings: Settings,
    conn: OnceLock<Conn>,
    /// Parent of every subscription's token; cancelled by `close`.
    closed: CancellationToken,
    warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct Conn {
    client: async_nats::Client,
    js: Context,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl JetStreamPubSub {
    /// Factory: [`JetStreamMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the key: `natsURL` missing, `jwt` without `seedKey` (or the
    /// reverse), a TLS certificate without its key (or the reverse), an unknown
    /// `deliverPolicy`, `ackPolicy` or `concurrency`, `deliverPolicy: sequence` without
    /// `startSequence`, `deliverPolicy: time` without `startTime`, a negative
    /// `maxAckPending`, `ackPolicy: all`.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: JetStreamMetadata = decode(spec)?;
        let url = nonempty(m.nats_url).ok_or_else(|| spec_error(spec, "missing nats URL"))?;
        let auth = match (
            nonempty(m.jwt),
            nonempty(m.seed_key),
            nonempty(m.tls_client_cert),
            nonempty(m.tls_client_key),
        ) {
            (Some(_), None, ..) => return Err(spec_error(spec, "missing seed key ('seedKey')")),
            (None, Some(_), ..) => return Err(spec_error(spec, "missing jwt ('jwt')")),
            (Some(jwt), Some(seed), ..) => Auth::Jwt { jwt, seed },
            (None, None, Some(_), None) => {
                return Err(spec_error(
                    spec,
                    "missing tls client key ('tls_client_key')",
                ));
            }
            (None, None, None, Some(_)) => {
                return Err(spec_error(
                    spec,
                    "missing tls client cert ('tls_client_cert')",
                ));
            }
            (None, None, Some(cert), Some(key)) => Auth::ClientCert { cert, key },
            (None, None, None, None) => nonempty(m.token).map_or(Auth::None, Auth::Token),
        };
        let deliver_policy = match m.deliver_policy.as_deref().map(str::trim).unwrap_or("") {
            "" | "all" => DeliverPolicy::All,
            "last" => DeliverPolicy::Last,
            "new" => DeliverPolicy::New,
            "sequence" => DeliverPolicy::ByStartSequence {
                start_sequence: m.start_sequence.filter(|s| *s > 0).ok_or_else(|| {
                    spec_error(
                        spec,
                        "deliver policy 'sequence' needs 'startSequence' (a positive stream sequence)",
                    )
                })?,
            },
            "time" => {
                let secs = m.start_time.ok_or_else(|| {
                    spec_error(spec, "deliver policy 'time' needs 'startTime' (Unix seconds)")
                })?;
                let start_time = async_nats::datetime::from_nanos(i128::from(secs) * 1_000_000_000)
                    .map_err(|e| spec_error(spec, format!("'startTime' {secs}: {e}")))?;
                DeliverPolicy::ByStartTime { start_time }
            }
            other => {
                return Err(spec_error(
                    spec,
                    format!("deliver policy {other} is not one of: all, last, new, sequence, time"),
                ));
            }
        };
        let ack_policy = match m.ack_policy.as_deref().map(str::trim).unwrap_or("") {
            "" | "explicit" => AckPolicy::Explicit,
            // Each ack would also acknowledge every earlier message, including ones a
            // handler failed and that wait for redelivery: they would be lost.
            "all" => {
                return Err(spec_error(
                    spec,
                    "ackPolicy 'all' is refused: acknowledging one message would also \
                     acknowledge earlier ones still failing, which are then never redelivered; \
                     use 'explicit' (the default)",
                ));
            }
            "none" => AckPolicy::None,
            other => {
                return Err(spec_error(
                    spec,
                    format!("ack policy {other} is not one of: explicit, all, none"),
                ));
            }
        };
        if let Some(n) = m.max_ack_pending.filter(|n| *n < 0) {
            return Err(spec_error(
                spec,
                format!("'maxAckPending' must not be negative, got {n}"),
            ));
        }
        let slots = match m.concurrency.as_deref().map(str::trim).unwrap_or("") {
            "" | "single" => 1,
            "parallel" => m
                .max_ack_pending
                .filter(|n| *n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_PARALLEL),
            other => {
                return Err(spec_error(
                    spec,
                    format!("invalid value for 'concurrency': {other} (single or parallel)"),
                ));
            }
        };
        let mut warnings = Vec::new();
        if nonempty(m.queue_group_name).is_some() {
            warnings.push(
                "'queueGroupName' has no effect: subscriptions of one consumer group pull from \
                 one durable consumer and so compete without a queue group"
                    .to_owned(),
            );
        }
        let settings = Settings {
            url,
            auth,
            name: nonempty(m.name).unwrap_or_else(|| "dapr.io - pubsub.jetstream".to_owned()),
            stream_name: nonempty(m.stream_name),
            durable_name: nonempty(m.durable_name),
            consumer_id: nonempty(m.consumer_id),
            deliver_policy,
            ack_policy,
            ack_wait: m.ack_wait.map(|d| d.0).filter(|d| !d.is_zero()),
            max_deliver: m.max_deliver.filter(|n| *n != 0),
            back_off: m
                .back_off
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.0)
                .collect(),
            max_ack_pending: m.max_ack_pending.filter(|n| *n > 0),
            replicas: m.replicas.filter(|n| *n > 0),
            memory_storage: m.memory_storage.unwrap_or(false),
            domain: nonempty(m.domain),
            api_prefix: nonempty(m.api_prefix),
            slots,
        };
        Ok(Self {
            label: format!("pubsub '{}'", spec.name),
            settings,
            conn: OnceLock::new(),
            closed: CancellationToken::new(),
            warnings,
        })
    }

    fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    fn conn(&self) -> Result<&Conn> {
        self.conn
            .get()
            .ok_or_else(|| self.err(Error::unavailable("not initialised")))
    }

    fn group(&self, req: &SubscribeRequest) -> String {
        req.metadata
            .get(CONSUMER_ID_KEY)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .or(self.settings.consumer_id.as_deref())
            .unwrap_or(DEFAULT_GROUP)
            .to_owned()
    }

    /// The stream holding `topic`: `streamName`, else the one whose subjects match it.
    async fn stream_of(&self, js: &Context, topic: &str) -> Result<String> {
        if let Some(s) = &self.settings.stream_name {
            return Ok(s.clone());
        }
        js.stream_by_subject(topic).await.map_err(|e| {
            self.err(Error::not_found(format!(
                "no JetStream stream captures subject '{topic}' (create one, or name it in \
                 'streamName'): {e}"
            )))
        })
    }
}

/// A durable consumer name from `group` and `topic`: NATS names may not hold whitespace, `.`,
/// `*`, `>`, `/` or `\`; each becomes `_`.
pub fn durable_name(group: &str, topic: &str) -> String {
    format!("{group}-{topic}")
        .chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The CloudEvent `id` of a JSON payload, if it has one.
fn cloud_event_id(data: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Id>(data).ok()?.id? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[async_trait]
impl Component for JetStreamPubSub {
    /// Connects to `natsURL` (5 s to answer); the client reconnects by itself later.
    /// Errors: unavailable when the server cannot be reached or refuses the credentials;
    /// invalid argument for a seed that is no NKey seed.
    async fn init(&self) -> Result<()> {
        let s = &self.settings;
        let mut opts = async_nats::ConnectOptions::new()
            .name(&s.name)
            .connection_timeout(CONNECT_TIMEOUT);
        match &s.auth {
            Auth::None => {}
            Auth::Token(t) => opts = opts.token(t.clone()),
            Auth::Jwt { jwt, seed } => {
                let kp = Arc::new(nkeys::KeyPair::from_seed(seed).map_err(|e| {
                    self.err(Error::invalid(format!("'seedKey' is no NKey seed: {e}")))
                })?);
                opts = opts.jwt(jwt.clone(), move |nonce| {
                    let kp = Arc::clone(&kp);
                    async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
                });
            }
            Auth::ClientCert { cert, key } => {
                opts = opts
                    .add_client_certificate(cert.into(), key.into())
                    .require_tls(true);
            }
        }
        let client = opts.connect(s.url.as_str()).await.map_err(|e| {
            self.err(Error::unavailable(format!(
                "cannot connect to NATS at {}: {e}",
                s.url
            )))
        })?;
        let js = match (&s.domain, &s.api_prefix) {
            (Some(d), _) => jetstream::with_domain(client.clone(), d),
            (None, Some(p)) => jetstream::with_prefix(client.clone(), p),
            (None, None) => jetstream::new(client.clone()),
        };
        let _ = self.conn.set(Conn { client, js });
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.conn.get().map(|c| c.client.connection_state()) {
            Some(async_nats::connection::State::Connected) => Health::up(),
            Some(state) => Health::down(format!("NATS connection is {state}")),
            None => Health::down("not initialised"),
        }
    }

    /// Stops every subscription (what they held is NAKed for the group) and flushes the
    /// connection.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        if let Some(c) = self.conn.get() {
            let _ = c.client.flush().await;
        }
        Ok(())
    }

    fn config_warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

#[async_trait]
impl PubSub for JetStreamPubSub {
    /// Publishes to the subject `msg.topic` with the metadata as headers and the CloudEvent id
    /// as `Nats-Msg-Id`; returns once the stream acknowledged it. Errors: invalid argument for
    /// an empty topic or a metadata entry that cannot be a NATS header; not found when no
    /// stream captures the subject; unavailable when the server does not answer.
    async fn publish(&self, msg: Message) -> Result<()> {
        if msg.topic.is_empty() {
            return Err(self.err(Error::empty_field("topic")));
        }
        let conn = self.conn()?;
        let mut headers = HeaderMap::new();
        for (k, v) in &msg.metadata {
            if k.is_empty()
                || k.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control())
                || v.contains(['\r', '\n'])
            {
                return Err(self.err(Error::invalid(format!(
                    "metadata '{k}' cannot be sent as a NATS header"
                ))));
            }
            headers.insert(k.as_str(), v.as_str());
        }
        if let Some(id) = cloud_event_id(&msg.data) {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        let ack = conn
            .js
            .publish_with_headers(msg.topic.clone(), headers, msg.data)
            .await
            .map_err(|e| self.err(Error::unavailable(format!("publish: {e}"))))?;
        ack.await.map_err(|e| {
            use async_nats::jetstream::context::PublishErrorKind as K;
            match e.kind() {
                K::StreamNotFound => self.err(Error::not_found(format!(
                    "no JetStream stream captures subject '{}'",
                    msg.topic
                ))),
                _ => self.err(Error::unavailable(format!(
                    "publish to '{}' was not acknowledged: {e}",
                    msg.topic
                ))),
            }
        })?;
        Ok(())
    }

    /// Creates the group's durable consumer if needed and starts pulling. Errors: invalid
    /// argument for an empty topic, or a durable consumer of that name that filters another
    /// subject or is a push consumer; not found when no stream captures the topic;
    /// unavailable when the server does not answer.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        if req.topic.is_empty() {
            return Err(self.err(Error::empty_field("topic")));
        }
        let conn = self.conn()?;
        let s = &self.settings;
        let stream_name = self.stream_of(&conn.js, &req.topic).await?;
        let stream = conn.js.get_stream(&stream_name).await.map_err(|e| {
            self.err(Error::unavailable(format!(
                "get stream '{stream_name}': {e}"
            )))
        })?;
        let group = self.group(&req);
        let durable = s
            .durable_name
            .clone()
            .unwrap_or_else(|| durable_name(&group, &req.topic));
        let config = PullConfig {
            durable_name: Some(durable.clone()),
            filter_subject: req.topic.clone(),
            deliver_policy: s.deliver_policy,
            ack_policy: s.ack_policy,
            ack_wait: s.ack_wait.unwrap_or_default(),
            max_deliver: s.max_deliver.unwrap_or_default(),
            backoff: s.back_off.clone(),
            max_ack_pending: s.max_ack_pending.unwrap_or_default(),
            num_replicas: s.replicas.unwrap_or_default(),
            memory_storage: s.memory_storage,
            ..Default::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| {
                use async_nats::jetstream::stream::ConsumerErrorKind as K;
                let text = format!("consumer '{durable}' on stream '{stream_name}': {e}");
                match e.kind() {
                    K::InvalidConsumerType => self.err(Error::invalid(format!(
                        "{text} (a push consumer; this component uses pull consumers)"
                    ))),
                    _ => self.err(Error::unavailable(text)),
                }
            })?;
        let info = consumer.cached_info();
        let filter = &info.config.filter_subject;
        if filter != &req.topic {
            return Err(self.err(Error::invalid(format!(
                "durable consumer '{durable}' on stream '{stream_name}' filters subject \
                 '{filter}', not '{}': a durable consumer serves one topic",
                req.topic
            ))));
        }
        let ack_wait = match info.config.ack_wait {
            d if d.is_zero() => SERVER_ACK_WAIT,
            d => d,
        };
        let sub = Arc::new(Sub {
            consumer,
            topic: req.topic,
            handler,
            acks: s.ack_policy != AckPolicy::None,
            progress_every: ack_wait / 2,
            slots: Arc::new(Semaphore::new(s.slots)),
            cancel: self.closed.child_token(),
        });
        tracing::debug!(topic = %sub.topic, stream = %stream_name, durable = %durable, "jetstream subscription started");
        tokio::spawn(Arc::clone(&sub).pull_loop());
        let cancel = sub.cancel.clone();
        Ok(Subscription::new(move || cancel.cancel()))
    }
}

/// One subscription: a puller on the group's durable consumer.
struct Sub {
    consumer: PullConsumer,
    topic: String,
    handler: Handler,
    /// Whether the consumer expects acknowledgements (`ackPolicy` is not `none`).
    acks: bool,
    /// How often a running handler's message gets `+WPI`.
    progress_every: Duration,
    slots: Arc<Semaphore>,
    cancel: CancellationToken,
}

impl Sub {
    /// Sleeps `d` unless cancelled first (`false`).
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }

    /// Free handler slots: waits for one, then takes what else is free (up to [`MAX_PULL`]).
    async fn take_slots(&self) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return None,
            p = Arc::clone(&self.slots).acquire_owned() => p.ok()?,
        };
        let mut slots = vec![first];
        while slots.len() < MAX_PULL {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(p) => slots.push(p),
                Err(_) => break,
            }
        }
        Some(slots)
    }

    /// Pulls as many messages as there are free slots and hands each to a task, until
    /// cancelled; backs off while the server fails.
    async fn pull_loop(self: Arc<Self>) {
        let mut failures = 0u32;
        while let Some(mut slots) = self.take_slots().await {
            let batch = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                b = self.consumer.batch().max_messages(slots.len()).expires(PULL_EXPIRES).messages() => b,
            };
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(topic = %self.topic, error = %e, "jetstream pull failed");
                    if !self.pause(retry_delay(failures)).await {
                        break;
                    }
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => {
                        self.give_back(batch).await;
                        return;
                    }
                    n = batch.next() => n,
                };
                match next {
                    None => break,
                    Some(Ok(msg)) => {
                        failures = 0;
                        let slot = slots.pop();
                        tokio::spawn(Arc::clone(&self).handle(msg, slot));
                    }
                    Some(Err(e)) => {
                        failures += 1;
                        tracing::warn!(topic = %self.topic, error = %e, "jetstream pull failed");
                        if !self.pause(retry_delay(failures)).await {
                            return;
                        }
                        break;
                    }
                }
            }
        }
    }

    /// After cancellation: NAKs what the last pull still brings (it ends within
    /// [`PULL_EXPIRES`]), so the other members get it at once.
    async fn give_back(&self, mut batch: jetstream::consumer::pull::Batch) {
        let drain = async {
            while let Some(Ok(msg)) = batch.next().await {
                if self.acks {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                }
            }
        };
        let _ = tokio::time::timeout(PULL_EXPIRES * 2, drain).await;
    }

    /// Runs the handler on one message and acknowledges (or NAKs) it.
    async fn handle(self: Arc<Self>, msg: jetstream::Message, _slot: Option<OwnedSemaphorePermit>) {
        let delivered = msg
            .info()
            .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let mut metadata: BTreeMap<String, String> = BTreeMap::new();
        if let Some(h) = &msg.headers {
            for (k, vs) in h.iter() {
                let k: &str = k.as_ref();
                if k.starts_with("Nats-") {
                    continue;
                }
                if let Some(v) = vs.first() {
                    metadata.insert(k.to_owned(), v.as_str().to_owned());
                }
            }
        }
        metadata.insert(TOPIC_METADATA_KEY.to_owned(), msg.subject.to_string());
        let delivery = Message {
            topic: self.topic.clone(),
            data: msg.payload.clone(),
            metadata: metadata.into_iter().collect(),
        };
        let run = AssertUnwindSafe((self.handler)(delivery)).catch_unwind();
        tokio::pin!(run);
        let mut progress =
            tokio::time::interval(self.progress_every.max(Duration::from_millis(100)));
        progress.tick().await;
        let outcome = loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break None,
                r = &mut run => break Some(r),
                _ = progress.tick(), if self.acks => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            }
        };
        if !self.acks {
            return;
        }
        match outcome {
            // Dropped while handling: straight back to the group.
            None => {
                let _ = msg.ack_with(AckKind::Nak(None)).await;
            }
            Some(Ok(Ok(()))) => {
                for attempt in 1..=ACK_ATTEMPTS {
                    match msg.double_ack().await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(topic = %self.topic, attempt, error = %e, "jetstream ack failed");
                            if !self.pause(retry_delay(attempt)).await {
                                return;
                            }
                        }
                    }
                }
            }
            Some(Ok(Err(e))) => {
                tracing::debug!(topic = %self.topic, delivered, error = %e, "handler failed; NAK for redelivery");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(retry_delay(delivered))))
                    .await;
            }
            Some(Err(_panic)) => {
                tracing::warn!(topic = %self.topic, delivered, "handler panicked; NAK for redelivery");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(retry_delay(delivered))))
                    .await;
            }
        }
    }
}

impl std::fmt::Debug for Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sub").field("topic", &self.topic).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pairs: &[(&str, &str)]) -> ComponentSpec {
        let mut s = ComponentSpec::new("js", "jetstream").with("natsURL", "nats://127.0.0.1:4222");
        for (k, v) in pairs {
            s = s.with(*k, *v);
        }
        s
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        JetStreamPubSub::from_spec(&spec(pairs))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn durable_names_avoid_forbidden_characters() {
        assert_eq!(durable_name("app", "orders.eu"), "app-orders_eu");
        assert_eq!(durable_name("my app", "a>*/\\"), "my_app-a____");
    }

    #[test]
    fn cloud_event_ids_are_read_from_json_only() {
        assert_eq!(
            cloud_event_id(br#"{"id":"e1","data":1}"#).as_deref(),
            Some("e1")
        );
        assert_eq!(cloud_event_id(br#"{"id":5}"#), None);
        assert_eq!(cloud_event_id(b"plain"), None);
    }

    #[test]
    fn metadata_is_checked_as_dapr_checks_it() {
        let missing = JetStreamPubSub::from_spec(&ComponentSpec::new("js", "jetstream"))
            .expect_err("no URL")
            .to_string();
        assert!(missing.contains("missing nats URL"), "{missing}");
        assert!(err(&[("jwt", "x")]).contains("seedKey"));
        assert!(err(&[("seedKey", "x")]).contains("'jwt'"));
        assert!(err(&[("tls_client_cert", "c.pem")]).contains("tls_client_key"));
        assert!(err(&[("tls_client_key", "k.pem")]).contains("tls_client_cert"));
        assert!(err(&[("deliverPolicy", "first")]).contains("not one of: all, last"));
        assert!(err(&[("deliverPolicy", "sequence")]).contains("startSequence"));
        assert!(err(&[("deliverPolicy", "time")]).contains("startTime"));
        assert!(err(&[("ackPolicy", "some")]).contains("ack policy some"));
        assert!(err(&[("ackPolicy", "all")]).contains("ackPolicy 'all' is refused"));
        assert!(err(&[("concurrency", "many")]).contains("'concurrency'"));
        assert!(err(&[("maxAckPending", "-1")]).contains("maxAckPending"));
        let ok = JetStreamPubSub::from_spec(&spec(&[
            ("deliverPolicy", "time"),
            ("startTime", "1700000000"),
            ("ackWait", "10s"),
            ("backOff", "1s,5s"),
            ("concurrency", "parallel"),
            ("maxAckPending", "20"),
            ("queueGroupName", "q"),
        ]))
        .expect("valid");
        assert_eq!(ok.settings.ack_wait, Some(Duration::from_secs(10)));
        assert_eq!(
            ok.settings.back_off,
            [Duration::from_secs(1), Duration::from_secs(5)]
        );
        assert_eq!(ok.settings.slots, 20);
        assert!(matches!(
            ok.settings.deliver_policy,
            DeliverPolicy::ByStartTime { .. }
        ));
        assert_eq!(ok.config_warnings().len(), 1, "queueGroupName is reported");
        let single = JetStreamPubSub::from_spec(&spec(&[])).expect("valid");
        assert_eq!(single.settings.slots, 1);
        assert_eq!(single.settings.name, "dapr.io - pubsub.jetstream");
    }
}
