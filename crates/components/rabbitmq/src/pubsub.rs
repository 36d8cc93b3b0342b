//! Dapr's `pubsub.rabbitmq` (`dapr/components-contrib:pubsub/rabbitmq`), in daprd's layout on
//! the broker, so daprd and layotto-rs publish to each other's subscribers:
//!
//! - a topic is an exchange of that name (`exchangeKind`, default `fanout`; `durable` and
//!   `deletedWhenUnused` as the metadata says, defaults true and true);
//! - a consumer group is the queue `<consumerID>-<topic>` (or the subscription's `queueName`)
//!   bound to it with the subscription's `routingKey` (comma-separated), declared with
//!   daprd's arguments (`x-max-length`, `x-max-length-bytes`, `x-queue-type`,
//!   `x-max-priority`, `x-single-active-consumer`, and with `enableDeadLetter` the exchange
//!   `dlx-<queue>` and the lazy queue `dlq-<queue>`);
//! - a message is published with `deliveryMode`, `expiration` from `ttlInSeconds` and
//!   `priority` from the request metadata.
//!
//! **Acknowledgements.** Every publish waits for the broker's publisher confirm, whatever
//! `publisherConfirm` says (daprd returns without one when it is false), so a message
//! `publish` acknowledged was taken by the broker. A delivery is acknowledged after the
//! handler returned `Ok`; a handler error is answered, after [`retry_delay`](layotto_core::pubsub::retry_delay), with a NACK that
//! requeues it (`requeueInFailure`, default true here; daprd's default false drops it, or
//! dead-letters it with `enableDeadLetter`). Each subscription has a channel of its own:
//! dropping it closes the channel, and the broker requeues what it held for the other
//! consumers of the queue. `autoAck: true` delivers at most once.
//!
//! **Connection.** One connection per component (named `clientName`), reopened after
//! `reconnectWaitSeconds` when it breaks; subscriptions re-declare and consume again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use layotto_core::metadata::{ComponentMetadata, GoDuration, decode, parse_truthy, spec_error};
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription,
};
use layotto_core::{Component, ComponentSpec, Error, Health, Metadata, Result};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::connector::{
    Connector, amqp_err, await_confirm, consume_loop, expiry_and_priority, nonempty, settle,
};
use crate::tls::{AmqpTls, TlsKeys};

/// Subscription metadata key naming the queue (instead of `<consumerID>-<topic>`).
pub const QUEUE_NAME_KEY: &str = "queueName";
/// Publish / subscription metadata key: the routing key(s).
pub const ROUTING_KEY: &str = "routingKey";
/// Publish attempts (a broken connection is reopened between them), as daprd.
const PUBLISH_ATTEMPTS: u32 = 3;

/// Metadata of [`RabbitMqPubSub`]: Dapr's `pubsub.rabbitmq` keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RabbitMqMetadata {
    /// `connectionString`: `amqp://user:password@host:port/vhost` (alias: the deprecated
    /// `host`).
    #[serde(rename = "connectionString", alias = "host")]
    pub connection_string: Option<String>,
    /// `protocol`: `amqp` (default) when the URI is built from `hostname`.
    pub protocol: Option<String>,
    /// `hostname` (default `localhost`), `username`, `password`: the URI's parts.
    pub hostname: Option<String>,
    /// `username`.
    pub username: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `consumerID`: the consumer group (the runtime sets the app id).
    #[serde(rename = "consumerID")]
    pub consumer_id: Option<String>,
    /// `durable`: durable exchanges and queues (default true).
    pub durable: Option<bool>,
    /// `deletedWhenUnused`: auto-delete exchanges and queues (default true, as daprd).
    #[serde(rename = "deletedWhenUnused")]
    pub deleted_when_unused: Option<bool>,
    /// `autoAck`: the broker forgets a message once sent (default false).
    #[serde(rename = "autoAck")]
    pub auto_ack: Option<bool>,
    /// `requeueInFailure`: requeue a message the handler failed (default true here).
    #[serde(rename = "requeueInFailure")]
    pub requeue_in_failure: Option<bool>,
    /// `deliveryMode`: 0 or 1 transient (default 0), 2 persistent.
    #[serde(rename = "deliveryMode")]
    pub delivery_mode: Option<u8>,
    /// `prefetchCount`: unacknowledged messages per subscription (default 0, which here means
    /// the handler slots of `concurrency`, not daprd's "no limit").
    #[serde(rename = "prefetchCount")]
    pub prefetch_count: Option<u16>,
    /// `reconnectWaitSeconds`: wait before reopening a broken connection (default 3 s).
    #[serde(rename = "reconnectWaitSeconds")]
    pub reconnect_wait_seconds: Option<GoDuration>,
    /// `maxLen`: `x-max-length` of the queues.
    #[serde(rename = "maxLen")]
    pub max_len: Option<i64>,
    /// `maxLenBytes`: `x-max-length-bytes` of the queues.
    #[serde(rename = "maxLenBytes")]
    pub max_len_bytes: Option<i64>,
    /// `exchangeKind`: `fanout` (default), `topic`, `direct` or `headers`.
    #[serde(rename = "exchangeKind")]
    pub exchange_kind: Option<String>,
    /// `clientName`: the connection's name in the broker.
    #[serde(rename = "clientName")]
    pub client_name: Option<String>,
    /// `heartBeat`: the AMQP heartbeat (default 10 s).
    #[serde(rename = "heartBeat")]
    pub heart_beat: Option<GoDuration>,
    /// `publisherConfirm`: accepted; publishes always wait for the broker's confirm.
    #[serde(rename = "publisherConfirm")]
    pub publisher_confirm: Option<bool>,
    /// `enableDeadLetter`: declare `dlx-<queue>` / `dlq-<queue>` and dead-letter there.
    #[serde(rename = "enableDeadLetter")]
    pub enable_dead_letter: Option<bool>,
    /// `concurrency`: `parallel` (default: up to `prefetchCount`, else 100, at once) or
    /// `single`.
    pub concurrency: Option<String>,
    /// `ttlInSeconds`: default message expiry in seconds.
    #[serde(rename = "ttlInSeconds")]
    pub ttl_in_seconds: Option<u64>,
    /// `saslExternal`: log in with the client certificate (SASL `EXTERNAL`); needs `amqps`,
    /// `caCert`, `clientCert` and `clientKey`.
    #[serde(rename = "saslExternal")]
    pub sasl_external: Option<bool>,
    /// `caCert`: PEM text of a CA the broker's certificate may chain to (`amqps` only).
    #[serde(rename = "caCert")]
    pub ca_cert: Option<String>,
    /// `clientCert`: PEM text of the client certificate (`amqps` only; needs `clientKey`).
    #[serde(rename = "clientCert")]
    pub client_cert: Option<String>,
    /// `clientKey`: PEM text of the client certificate's private key.
    #[serde(rename = "clientKey")]
    pub client_key: Option<String>,
}

impl ComponentMetadata for RabbitMqMetadata {}

/// Settings read from the metadata.
#[derive(Debug, Clone)]
struct Settings {
    uri: String,
    /// Set for `amqps://` URIs.
    tls: Option<AmqpTls>,
    client_name: Option<String>,
    consumer_id: Option<String>,
    durable: bool,
    auto_delete: bool,
    auto_ack: bool,
    requeue: bool,
    delivery_mode: u8,
    prefetch: u16,
    reconnect_wait: Duration,
    max_len: Option<i64>,
    max_len_bytes: Option<i64>,
    exchange_kind: ExchangeKind,
    heartbeat: Duration,
    dead_letter: bool,
    /// Handler calls in flight per subscription.
    slots: usize,
    ttl: Option<u64>,
}

impl Settings {
    fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: RabbitMqMetadata = decode(spec)?;
        let err = |msg: String| spec_error(spec, format!("rabbitmq pub/sub error: {msg}"));
        let uri = match nonempty(m.connection_string) {
            Some(u) => {
                let scheme = u.split("://").next().unwrap_or_default().to_owned();
                if let Some(p) = nonempty(m.protocol.clone())
                    && p != scheme
                {
                    return Err(err(format!(
                        "protocol does not match connection string, protocol: {p}, connection string: {u}"
                    )));
                }
                u
            }
            None => {
                let scheme = nonempty(m.protocol).unwrap_or_else(|| "amqp".to_owned());
                let host = nonempty(m.hostname).unwrap_or_else(|| "localhost".to_owned());
                match (nonempty(m.username), nonempty(m.password)) {
                    (Some(u), Some(p)) => format!("{scheme}://{u}:{p}@{host}"),
                    (Some(u), None) => format!("{scheme}://{u}@{host}"),
                    _ => format!("{scheme}://{host}"),
                }
            }
        };
        if !uri.starts_with("amqp://") && !uri.starts_with("amqps://") {
            return Err(err(format!("invalid connection string: {uri}")));
        }
        let (tls, warning) = AmqpTls::from_metadata(
            &uri,
            TlsKeys {
                ca_cert: m.ca_cert,
                client_cert: m.client_cert,
                client_key: m.client_key,
                external: (m.sasl_external.unwrap_or(false), "saslExternal"),
            },
        )
        .map_err(err)?;
        if let Some(w) = warning {
            tracing::warn!(component = %spec.name, "rabbitmq pub/sub: {w}");
        }
        let delivery_mode = m.delivery_mode.unwrap_or(0);
        if delivery_mode > 2 {
            return Err(err(
                "invalid RabbitMQ delivery mode, accepted values are between 0 and 2".to_owned(),
            ));
        }
        let exchange_kind = match nonempty(m.exchange_kind).as_deref().unwrap_or("fanout") {
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "direct" => ExchangeKind::Direct,
            "headers" => ExchangeKind::Headers,
            other => return Err(err(format!("invalid RabbitMQ exchange kind {other}"))),
        };
        let prefetch = m.prefetch_count.unwrap_or(0);
        let slots = match nonempty(m.concurrency).as_deref().unwrap_or("parallel") {
            "single" => 1,
            "parallel" if prefetch > 0 => usize::from(prefetch),
            "parallel" => 100,
            other => {
                return Err(err(format!(
                    "invalid value for 'concurrency': {other} (single or parallel)"
                )));
            }
        };
        Ok(Self {
            uri,
            tls,
            client_name: nonempty(m.client_name),
            consumer_id: nonempty(m.consumer_id),
            durable: m.durable.unwrap_or(true),
            auto_delete: m.deleted_when_unused.unwrap_or(true),
            auto_ack: m.auto_ack.unwrap_or(false),
            requeue: m.requeue_in_failure.unwrap_or(true),
            delivery_mode,
            prefetch,
            reconnect_wait: m
                .reconnect_wait_seconds
                .map_or(Duration::from_secs(3), |d| d.0),
            max_len: m.max_len.filter(|n| *n > 0),
            max_len_bytes: m.max_len_bytes.filter(|n| *n > 0),
            exchange_kind,
            heartbeat: m.heart_beat.map_or(Duration::from_secs(10), |d| d.0),
            dead_letter: m.enable_dead_letter.unwrap_or(false),
            slots,
            ttl: m.ttl_in_seconds.filter(|n| *n > 0),
        })
    }

    /// daprd's queue arguments (`formatQueueDeclareArgs` plus the subscription's).
    fn queue_args(&self, req: &SubscribeRequest, dlx: Option<&str>) -> Result<FieldTable> {
        let mut args = FieldTable::default();
        if let Some(x) = dlx {
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from(x)),
            );
        }
        let num = |key: &str| -> Result<Option<i64>> {
            match req
                .metadata
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .map(|n| Some(i64::try_from(n).unwrap_or(i64::MAX)))
                    .map_err(|_| {
                        Error::invalid(format!(
                            "subscription metadata '{key}' is not a number: {v}"
                        ))
                    }),
            }
        };
        if let Some(n) = num("maxLen")?.or(self.max_len) {
            args.insert("x-max-length".into(), AMQPValue::LongLongInt(n));
        }
        if let Some(n) = num("maxLenBytes")?.or(self.max_len_bytes) {
            args.insert("x-max-length-bytes".into(), AMQPValue::LongLongInt(n));
        }
        if let Some(p) = num("maxPriority")? {
            let p = u8::try_from(p).unwrap_or(u8::MAX);
            args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(p));
        }
        let queue_type = req
            .metadata
            .get("queueType")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .unwrap_or("classic");
        if queue_type != "classic" && queue_type != "quorum" {
            return Err(Error::invalid(format!(
                "invalid queue type {queue_type}. Valid types are classic and quorum"
            )));
        }
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from(queue_type)),
        );
        if req
            .metadata
            .get("singleActiveConsumer")
            .and_then(|v| parse_truthy(v))
            .unwrap_or(false)
        {
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        Ok(args)
    }
}

/// Dapr's `pubsub.rabbitmq` (type `rabbitmq`). See the module documentation.
pub struct RabbitMqPubSub {
    label: String,
    settings: Settings,
    connector: Arc<Connector>,
    publisher: Mutex<Option<Channel>>,
    declared: Mutex<HashSet<String>>,
    closed: CancellationToken,
}

impl std::fmt::Debug for RabbitMqPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqPubSub")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl RabbitMqPubSub {
    /// Factory: [`RabbitMqMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the key: a connection string that is no `amqp://` URI or
    /// disagrees with `protocol`, `deliveryMode` above 2, an unknown `exchangeKind` or
    /// `concurrency`, a TLS key that is no PEM or lacks its pair, `saslExternal` without the
    /// three certificate keys or an `amqps` URI.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let (label, settings) = (
            format!("pubsub '{}'", spec.name),
            Settings::from_spec(spec)?,
        );
        Ok(Self {
            connector: Arc::new(Connector::new(
                label.clone(),
                settings.uri.clone(),
                settings.client_name.clone(),
                settings.heartbeat,
                settings.tls.clone(),
            )),
            label,
            settings,
            publisher: Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
            closed: CancellationToken::new(),
        })
    }

    /// The open connection (see [`Connector::get`]); a new one forgets the declared
    /// exchanges.
    async fn connection(&self) -> Result<Arc<Connection>> {
        let (c, fresh) = self.connector.get().await?;
        if fresh {
            self.declared.lock().await.clear();
        }
        Ok(c)
    }

    async fn declare_exchange(&self, ch: &Channel, name: &str, kind: ExchangeKind) -> Result<()> {
        ch.exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: self.settings.durable,
                auto_delete: self.settings.auto_delete,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err(&format!("{}: declare exchange '{name}'", self.label), &e))
    }

    async fn publish_once(&self, msg: &Message) -> Result<()> {
        let conn = self.connection().await?;
        let mut slot = self.publisher.lock().await;
        let ch = match slot.as_ref().filter(|c| c.status().connected()) {
            Some(c) => c.clone(),
            None => {
                let c = conn
                    .create_channel()
                    .await
                    .map_err(|e| amqp_err(&self.label, &e))?;
                c.confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| amqp_err(&self.label, &e))?;
                *slot = Some(c.clone());
                c
            }
        };
        if !self.declared.lock().await.contains(&msg.topic) {
            self.declare_exchange(&ch, &msg.topic, self.settings.exchange_kind.clone())
                .await?;
            self.declared.lock().await.insert(msg.topic.clone());
        }
        let mut props = BasicProperties::default().with_content_type("text/plain".into());
        // 0 means "not set" (the broker's default, transient), as amqp091-go sends it.
        if self.settings.delivery_mode > 0 {
            props = props.with_delivery_mode(self.settings.delivery_mode);
        }
        let props = expiry_and_priority(
            props,
            msg.metadata.get("ttlInSeconds").map(String::as_str),
            self.settings.ttl,
            msg.metadata.get("priority").map(String::as_str),
        )?;
        let routing_key = msg.metadata.get(ROUTING_KEY).cloned().unwrap_or_default();
        let confirm = ch
            .basic_publish(
                msg.topic.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &msg.data,
                props,
            )
            .await
            .map_err(|e| amqp_err(&format!("{}: publish to '{}'", self.label, msg.topic), &e))?;
        drop(slot);
        await_confirm(&self.label, &format!("'{}'", msg.topic), confirm).await
    }

    fn queue_name(&self, req: &SubscribeRequest) -> Result<String> {
        if let Some(q) = req
            .metadata
            .get(QUEUE_NAME_KEY)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            return Ok(q.to_owned());
        }
        let group = req
            .metadata
            .get(CONSUMER_ID_KEY)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| self.settings.consumer_id.clone())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: consumerID is required for subscriptions that don't specify a queue name",
                    self.label
                ))
            })?;
        Ok(format!("{group}-{}", req.topic))
    }
}

#[async_trait]
impl Component for RabbitMqPubSub {
    /// Connects. Errors: unavailable when the broker cannot be reached or refuses the login.
    async fn init(&self) -> Result<()> {
        self.connection().await.map(|_| ())
    }

    async fn health(&self) -> Health {
        self.connector.health().await
    }

    /// Stops every subscription (closing its channel, so the broker requeues what it held)
    /// and closes the connection.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        self.connector.close().await;
        Ok(())
    }
}

#[async_trait]
impl PubSub for RabbitMqPubSub {
    /// Declares the topic's exchange and publishes, waiting for the broker's confirm; a broken
    /// connection is reopened and the publish tried again (3 attempts, as daprd). Errors:
    /// invalid argument for an empty topic or a bad `ttlInSeconds` / `priority`; unavailable
    /// when the broker does not confirm.
    async fn publish(&self, msg: Message) -> Result<()> {
        if msg.topic.is_empty() {
            return Err(Error::empty_field("topic").context(&self.label));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.publish_once(&msg).await;
            if result.is_err() {
                // The exchange may have gone (auto-deleted with its last queue): declare it
                // again next time, as daprd resets its cache on errors.
                self.declared.lock().await.remove(&msg.topic);
            }
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == layotto_core::ErrorKind::InvalidArgument => return Err(e),
                Err(e) if attempt >= PUBLISH_ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "{}: publish failed; retrying", self.label);
                    tokio::time::sleep(self.settings.reconnect_wait.min(Duration::from_secs(2)))
                        .await;
                }
            }
        }
    }

    /// Declares the exchange, the queue (and dead-letter pair) and the bindings, and starts
    /// consuming; returns once the first consumer is registered. Errors: invalid argument
    /// for an empty topic, a missing consumer group or bad subscription metadata;
    /// unavailable when the broker cannot be reached.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        if req.topic.is_empty() {
            return Err(Error::empty_field("topic").context(&self.label));
        }
        let queue = self.queue_name(&req)?;
        // Bad subscription metadata is the caller's error, found before any I/O.
        self.settings.queue_args(&req, None)?;
        let sub = Arc::new(Sub {
            connector: Arc::clone(&self.connector),
            settings: self.settings.clone(),
            req,
            queue,
            handler,
            cancel: self.closed.child_token(),
        });
        let conn = self.connection().await?;
        let (ch, consumer) = sub.consume(&conn).await?;
        tokio::spawn(Arc::clone(&sub).run(ch, consumer));
        let cancel = sub.cancel.clone();
        Ok(Subscription::new(move || cancel.cancel()))
    }
}

/// One subscription: a consumer on its own channel.
struct Sub {
    connector: Arc<Connector>,
    settings: Settings,
    req: SubscribeRequest,
    queue: String,
    handler: Handler,
    cancel: CancellationToken,
}

impl Sub {
    /// Opens a channel, declares the topology and starts a consumer.
    async fn consume(&self, conn: &Connection) -> Result<(Channel, lapin::Consumer)> {
        let (label, s) = (&self.connector.label, &self.settings);
        let e = |what: &str| {
            let what = format!("{label}: {what} (queue '{}')", self.queue);
            move |err: lapin::Error| amqp_err(&what, &err)
        };
        let ch = conn.create_channel().await.map_err(e("open channel"))?;
        let declare_exchange = |name: String, kind: ExchangeKind, durable: bool| {
            let ch = ch.clone();
            async move {
                ch.exchange_declare(
                    name.as_str().into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable,
                        auto_delete: s.auto_delete,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
            }
        };
        declare_exchange(self.req.topic.clone(), s.exchange_kind.clone(), s.durable)
            .await
            .map_err(e("declare exchange"))?;
        let dlx = if s.dead_letter {
            let (dlx, dlq) = (format!("dlx-{}", self.queue), format!("dlq-{}", self.queue));
            declare_exchange(dlx.clone(), ExchangeKind::Fanout, true)
                .await
                .map_err(e("declare dead-letter exchange"))?;
            let mut args = FieldTable::default();
            if let Some(n) = s.max_len {
                args.insert("x-max-length".into(), AMQPValue::LongLongInt(n));
            }
            if let Some(n) = s.max_len_bytes {
                args.insert("x-max-length-bytes".into(), AMQPValue::LongLongInt(n));
            }
            args.insert(
                "x-queue-mode".into(),
                AMQPValue::LongString(LongString::from("lazy")),
            );
            ch.queue_declare(
                dlq.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    auto_delete: s.auto_delete,
                    ..Default::default()
                },
                args,
            )
            .await
            .map_err(e("declare dead-letter queue"))?;
            ch.queue_bind(
                dlq.as_str().into(),
                dlx.as_str().into(),
                ShortString::from(""),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(e("bind dead-letter queue"))?;
            Some(dlx)
        } else {
            None
        };
        let args = s.queue_args(&self.req, dlx.as_deref())?;
        ch.queue_declare(
            self.queue.as_str().into(),
            QueueDeclareOptions {
                durable: s.durable,
                auto_delete: s.auto_delete,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(e("declare queue"))?;
        // `prefetchCount: 0` would let the broker push the whole backlog into this process
        // (and starve the group's other consumers): bounded by the handler slots instead.
        let prefetch = if s.prefetch > 0 {
            s.prefetch
        } else {
            u16::try_from(s.slots).unwrap_or(u16::MAX)
        };
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(e("set prefetch"))?;
        let keys = self
            .req
            .metadata
            .get(ROUTING_KEY)
            .cloned()
            .unwrap_or_default();
        for key in keys.split(',') {
            ch.queue_bind(
                self.queue.as_str().into(),
                self.req.topic.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(e("bind queue"))?;
        }
        let consumer = ch
            .basic_consume(
                self.queue.as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions {
                    no_ack: s.auto_ack,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(e("consume"))?;
        Ok((ch, consumer))
    }

    /// Consumes until cancelled (see [`consume_loop`]), up to `slots` handlers at once.
    async fn run(self: Arc<Self>, ch: Channel, consumer: lapin::Consumer) {
        let this = Arc::clone(&self);
        consume_loop(
            &self.connector,
            self.settings.reconnect_wait,
            self.settings.slots,
            &self.cancel,
            (ch, consumer),
            || {
                let this = Arc::clone(&this);
                async move {
                    let (c, _) = this.connector.get().await?;
                    this.consume(&c).await
                }
            },
            |d, slot| {
                tokio::spawn(Arc::clone(&this).handle(d, slot));
            },
        )
        .await;
    }

    async fn handle(
        self: Arc<Self>,
        d: lapin::message::Delivery,
        _slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let s = &self.settings;
        let msg = Message {
            topic: self.req.topic.clone(),
            data: Bytes::from(d.data.clone()),
            metadata: Metadata::new(),
        };
        let run = (self.handler)(msg);
        if s.auto_ack {
            // The broker forgot the message when it sent it: nothing to settle.
            tokio::select! {
                () = self.cancel.cancelled() => {}
                _ = std::panic::AssertUnwindSafe(run).catch_unwind() => {}
            }
            return;
        }
        settle(&self.connector.label, d, run, s.requeue, &self.cancel).await;
    }
}
