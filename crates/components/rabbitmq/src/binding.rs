//! Dapr's `bindings.rabbitmq` (`dapr/components-contrib:bindings/rabbitmq`): one queue,
//! `queueName`, declared at init with daprd's arguments (`durable`, `deleteWhenUnused`,
//! `exclusive`, `x-message-ttl` from `ttlInSeconds`, `x-max-priority` from `maxPriority`).
//!
//! - **Output** (`create`): publishes the request data to the queue through the default
//!   exchange, persistent, with the request metadata as headers, `contentType` (default
//!   `text/plain`), `ttlInSeconds` as expiration and `priority`. Unlike daprd, which publishes
//!   without confirms, `create` returns once the broker confirmed the message.
//! - **Input**: consumes the queue and hands the app one message at a time, in order, with the
//!   message's string headers as metadata (key and value query-escaped, as daprd does). A
//!   message is acknowledged after the app took it; a failure is requeued after a short delay
//!   (daprd requeues at once).
//!
//! The connection is reopened after `reconnectWaitInSeconds` (default 5 s) when it breaks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel};
use layotto_core::binding::{
    BindingRequest, BindingResponse, InputBinding, InputEvent, InputHandler, OutputBinding,
};
use layotto_core::metadata::{ComponentMetadata, GoDuration, decode, spec_error};
use layotto_core::pubsub::Subscription;
use layotto_core::{Component, ComponentSpec, Error, Health, Metadata, Result};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::connector::{
    Connector, amqp_err, await_confirm, consume_loop, expiry_and_priority, nonempty, settle,
};
use crate::tls::{AmqpTls, TlsKeys};

/// The output operation (Dapr's `create`).
pub const CREATE: &str = "create";
/// Messages the broker sends ahead of the app when `prefetchCount` is 0 (daprd: no limit).
const DEFAULT_PREFETCH: u16 = 100;

/// Metadata of [`RabbitMqBinding`]: Dapr's `bindings.rabbitmq` keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RabbitMqBindingMetadata {
    /// `host`: the connection string, `amqp://user:password@host:port/vhost` (required).
    pub host: Option<String>,
    /// `queueName`: the queue read and written (required).
    #[serde(rename = "queueName")]
    pub queue_name: Option<String>,
    /// `durable`: a durable queue (default false, as Dapr).
    pub durable: Option<bool>,
    /// `deleteWhenUnused`: an auto-delete queue (default false).
    #[serde(rename = "deleteWhenUnused")]
    pub delete_when_unused: Option<bool>,
    /// `exclusive`: an exclusive queue (default false).
    pub exclusive: Option<bool>,
    /// `prefetchCount`: unacknowledged messages the broker sends ahead (default 0, which here
    /// means 100 rather than daprd's "no limit").
    #[serde(rename = "prefetchCount")]
    pub prefetch_count: Option<u16>,
    /// `maxPriority`: the queue's `x-max-priority` (values above 255 mean 255, as Dapr).
    #[serde(rename = "maxPriority")]
    pub max_priority: Option<u64>,
    /// `ttlInSeconds`: the queue's message TTL (`x-message-ttl`), in seconds.
    #[serde(rename = "ttlInSeconds")]
    pub ttl_in_seconds: Option<u64>,
    /// `ttl`: the same as a duration (Dapr's other spelling).
    pub ttl: Option<GoDuration>,
    /// `reconnectWaitInSeconds`: wait before reopening a broken connection (default 5 s).
    #[serde(rename = "reconnectWaitInSeconds")]
    pub reconnect_wait_in_seconds: Option<GoDuration>,
    /// `caCert`: PEM text of a CA the broker's certificate may chain to (`amqps` only; Dapr's
    /// page fills the certificate keys with the placeholder `null`, read as not given).
    #[serde(rename = "caCert")]
    pub ca_cert: Option<String>,
    /// `clientCert`: PEM text of the client certificate (`amqps` only; needs `clientKey`).
    #[serde(rename = "clientCert")]
    pub client_cert: Option<String>,
    /// `clientKey`: PEM text of the client certificate's private key.
    #[serde(rename = "clientKey")]
    pub client_key: Option<String>,
    /// `externalSasl`: log in with the client certificate (SASL `EXTERNAL`); needs `amqps`,
    /// `caCert`, `clientCert` and `clientKey`.
    #[serde(rename = "externalSasl")]
    pub external_sasl: Option<bool>,
}

impl ComponentMetadata for RabbitMqBindingMetadata {
    /// Dapr's page lists `contentType` for the component; daprd reads it only from the
    /// request metadata, as here.
    const NO_EFFECT: &'static [&'static str] = &["contentType"];
}

/// Settings read from the metadata.
#[derive(Debug, Clone)]
struct Settings {
    queue: String,
    durable: bool,
    auto_delete: bool,
    exclusive: bool,
    prefetch: u16,
    max_priority: Option<u8>,
    ttl_ms: Option<i64>,
    reconnect_wait: Duration,
}

/// The queue of a binding and the connection to its broker, shared with the input side.
struct Queue {
    label: String,
    settings: Settings,
    connector: Connector,
}

/// Dapr's `bindings.rabbitmq` (type `rabbitmq`). See the module documentation.
pub struct RabbitMqBinding {
    queue: Arc<Queue>,
    /// The confirm-mode channel of `create`, on which the queue was declared.
    publisher: Mutex<Option<Channel>>,
    closed: CancellationToken,
}

impl std::fmt::Debug for RabbitMqBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqBinding")
            .field("label", &self.queue.label)
            .field("queue", &self.queue.settings.queue)
            .finish_non_exhaustive()
    }
}

impl RabbitMqBinding {
    /// Factory: [`RabbitMqBindingMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the key: no `host` or one that is no `amqp://` URI, no
    /// `queueName`, a TLS key that is no PEM or lacks its pair, `externalSasl` without the
    /// three certificate keys or an `amqps` URI.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: RabbitMqBindingMetadata = decode(spec)?;
        let host = nonempty(m.host)
            .ok_or_else(|| spec_error(spec, "metadata 'host' is required (amqp://...)"))?;
        if !host.starts_with("amqp://") && !host.starts_with("amqps://") {
            return Err(spec_error(
                spec,
                format!("metadata 'host' must be an amqp:// or amqps:// URI, got '{host}'"),
            ));
        }
        let (tls, warning) = AmqpTls::from_metadata(
            &host,
            TlsKeys {
                ca_cert: m.ca_cert,
                client_cert: m.client_cert,
                client_key: m.client_key,
                external: (m.external_sasl.unwrap_or(false), "externalSasl"),
            },
        )
        .map_err(|e| spec_error(spec, e))?;
        if let Some(w) = warning {
            tracing::warn!(component = %spec.name, "rabbitmq binding: {w}");
        }
        let queue = nonempty(m.queue_name)
            .ok_or_else(|| spec_error(spec, "metadata 'queueName' is required"))?;
        let ttl_ms = match (m.ttl_in_seconds, m.ttl) {
            (Some(s), _) => Some(s.saturating_mul(1000)),
            (None, Some(d)) => Some(u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)),
            (None, None) => None,
        }
        .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        let label = format!("binding '{}'", spec.name);
        let queue = Queue {
            connector: Connector::new(label.clone(), host, None, Duration::from_secs(10), tls),
            label,
            settings: Settings {
                queue,
                durable: m.durable.unwrap_or(false),
                auto_delete: m.delete_when_unused.unwrap_or(false),
                exclusive: m.exclusive.unwrap_or(false),
                prefetch: m
                    .prefetch_count
                    .filter(|n| *n > 0)
                    .unwrap_or(DEFAULT_PREFETCH),
                max_priority: m.max_priority.map(|p| u8::try_from(p).unwrap_or(u8::MAX)),
                ttl_ms,
                reconnect_wait: m
                    .reconnect_wait_in_seconds
                    .map_or(Duration::from_secs(5), |d| d.0),
            },
        };
        Ok(Self {
            queue: Arc::new(queue),
            publisher: Mutex::new(None),
            closed: CancellationToken::new(),
        })
    }

    /// The confirm-mode publisher channel, opened (and the queue declared) when there is
    /// none or it broke.
    async fn publisher(&self) -> Result<Channel> {
        let q = &self.queue;
        let mut slot = self.publisher.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(c.clone());
        }
        let (conn, _) = q.connector.get().await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| amqp_err(&q.label, &e))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_err(&q.label, &e))?;
        q.declare(&ch).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }
}

impl Queue {
    /// Declares the queue on `ch` with daprd's arguments.
    async fn declare(&self, ch: &Channel) -> Result<()> {
        let s = &self.settings;
        let mut args = FieldTable::default();
        if let Some(ms) = s.ttl_ms {
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
        }
        if let Some(p) = s.max_priority {
            args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(p));
        }
        ch.queue_declare(
            s.queue.as_str().into(),
            QueueDeclareOptions {
                durable: s.durable,
                auto_delete: s.auto_delete,
                exclusive: s.exclusive,
                ..Default::default()
            },
            args,
        )
        .await
        .map(|_| ())
        .map_err(|e| amqp_err(&format!("{}: declare queue '{}'", self.label, s.queue), &e))
    }

    /// A channel consuming the queue (declared again), with the prefetch set.
    async fn consume(&self) -> Result<(Channel, lapin::Consumer)> {
        let (conn, _) = self.connector.get().await?;
        let e = |what: &'static str| {
            let what = format!("{}: {what} (queue '{}')", self.label, self.settings.queue);
            move |err: lapin::Error| amqp_err(&what, &err)
        };
        let ch = conn.create_channel().await.map_err(e("open channel"))?;
        self.declare(&ch).await?;
        ch.basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
            .map_err(e("set prefetch"))?;
        let consumer = ch
            .basic_consume(
                self.settings.queue.as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(e("consume"))?;
        Ok((ch, consumer))
    }
}

/// The message properties of `create`: persistent, the request metadata as headers,
/// `contentType`, `ttlInSeconds` (expiration) and `priority` from it.
fn properties(metadata: &Metadata) -> Result<BasicProperties> {
    let get = |k: &str| {
        metadata
            .iter()
            .find(|(key, v)| key.eq_ignore_ascii_case(k) && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    };
    let mut headers = FieldTable::default();
    for (k, v) in metadata {
        headers.insert(
            k.as_str().into(),
            AMQPValue::LongString(LongString::from(v.as_str())),
        );
    }
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(get("contentType").unwrap_or("text/plain").into())
        .with_headers(headers);
    expiry_and_priority(props, get("ttlInSeconds"), None, get("priority"))
}

/// Go's `url.QueryEscape`: what daprd applies to each header key and value it hands the app.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The string headers of a delivery, query-escaped as daprd passes them.
fn delivery_metadata(d: &lapin::message::Delivery) -> Metadata {
    let mut m = Metadata::new();
    if let Some(headers) = d.properties.headers() {
        for (k, v) in headers {
            let value = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_owned(),
                _ => continue,
            };
            m.insert(query_escape(k.as_str()), query_escape(&value));
        }
    }
    m
}

#[async_trait]
impl Component for RabbitMqBinding {
    /// Connects and declares the queue. Errors: unavailable when the broker cannot be reached,
    /// refuses the login or refuses the queue (e.g. declared before with other arguments).
    async fn init(&self) -> Result<()> {
        self.publisher().await.map(|_| ())
    }

    async fn health(&self) -> Health {
        self.queue.connector.health().await
    }

    /// Stops reading (the broker requeues what was not acknowledged) and closes the
    /// connection.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        self.queue.connector.close().await;
        Ok(())
    }
}

#[async_trait]
impl OutputBinding for RabbitMqBinding {
    fn operations(&self) -> Vec<String> {
        vec![CREATE.to_owned()]
    }

    /// `create`: publishes `req.data` to the queue and waits for the broker's confirm.
    /// Errors: invalid argument for another operation or a bad `ttlInSeconds` / `priority`;
    /// unavailable when the broker does not confirm (a broken publisher channel is reopened
    /// on the next call).
    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse> {
        let q = &self.queue;
        if req.operation != CREATE {
            return Err(Error::invalid(format!(
                "{}: operation '{}' is not supported (supported: {CREATE})",
                q.label, req.operation
            )));
        }
        let props = properties(&req.metadata).map_err(|e| e.context(&q.label))?;
        let ch = self.publisher().await?;
        let confirm = ch
            .basic_publish(
                ShortString::from(""),
                q.settings.queue.as_str().into(),
                BasicPublishOptions::default(),
                &req.data,
                props,
            )
            .await
            .map_err(|e| amqp_err(&format!("{}: publish", q.label), &e))?;
        await_confirm(&q.label, &format!("queue '{}'", q.settings.queue), confirm).await?;
        Ok(BindingResponse::default())
    }

    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        Some(self)
    }
}

#[async_trait]
impl InputBinding for RabbitMqBinding {
    /// Starts consuming the queue; returns once the consumer is registered. Errors:
    /// unavailable when the broker cannot be reached.
    async fn read(&self, handler: InputHandler) -> Result<Subscription> {
        let first = self.queue.consume().await?;
        let cancel = self.closed.child_token();
        let reader = Reader {
            queue: Arc::clone(&self.queue),
            handler,
            cancel: cancel.clone(),
        };
        tokio::spawn(Arc::new(reader).run(first));
        Ok(Subscription::new(move || cancel.cancel()))
    }
}

/// The input side while it reads: one delivery at a time, in order.
struct Reader {
    queue: Arc<Queue>,
    handler: InputHandler,
    cancel: CancellationToken,
}

impl Reader {
    async fn run(self: Arc<Self>, first: (Channel, lapin::Consumer)) {
        let this = Arc::clone(&self);
        consume_loop(
            &self.queue.connector,
            self.queue.settings.reconnect_wait,
            1,
            &self.cancel,
            first,
            || {
                let this = Arc::clone(&this);
                async move { this.queue.consume().await }
            },
            |d, slot| {
                let this = Arc::clone(&this);
                tokio::spawn(async move {
                    this.handle(d).await;
                    drop(slot);
                });
            },
        )
        .await;
    }

    /// Hands `d` to the app; acknowledges it when the app took it, else requeues it after
    /// [`retry_delay`](layotto_core::pubsub::retry_delay).
    async fn handle(&self, d: lapin::message::Delivery) {
        let event = InputEvent {
            data: Bytes::from(d.data.clone()),
            metadata: delivery_metadata(&d),
        };
        let run = (self.handler)(event);
        let handled = async move { run.await.map(|_| ()) };
        settle(&self.queue.label, d, handled, true, &self.cancel).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_checked_without_io() {
        let spec = |kv: &[(&str, &str)]| {
            let mut s = ComponentSpec::new("b", "bindings.rabbitmq");
            for (k, v) in kv {
                s = s.with(*k, *v);
            }
            s
        };
        let ok = RabbitMqBinding::from_spec(&spec(&[
            ("host", "amqp://guest:guest@127.0.0.1:5672"),
            ("queueName", "q"),
            ("maxPriority", "300"),
            ("ttlInSeconds", "60"),
        ]))
        .expect("valid");
        assert_eq!(ok.queue.settings.max_priority, Some(255));
        assert_eq!(ok.queue.settings.ttl_ms, Some(60_000));
        assert_eq!(ok.queue.settings.prefetch, DEFAULT_PREFETCH);
        for (kv, named) in [
            (vec![("queueName", "q")], "host"),
            (vec![("host", "amqp://h")], "queueName"),
            (vec![("host", "http://h"), ("queueName", "q")], "amqp://"),
            (
                vec![
                    ("host", "amqp://h"),
                    ("queueName", "q"),
                    ("externalSasl", "true"),
                ],
                "caCert, clientCert, clientKey",
            ),
            (
                vec![("host", "amqps://h"), ("queueName", "q"), ("caCert", "x")],
                "'caCert'",
            ),
        ] {
            let e = RabbitMqBinding::from_spec(&spec(&kv)).expect_err(named);
            assert!(e.message.contains(named), "{named}: {e}");
        }
        assert_eq!(query_escape("a b/ü~"), "a+b%2F%C3%BC~");
        let e = properties(&Metadata::from([("priority".into(), "x".into())])).expect_err("bad");
        assert!(e.message.contains("priority"), "{e}");
    }
}
