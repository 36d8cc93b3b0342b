//! Dapr's `pubsub.kafka` (`dapr/components-contrib:pubsub/kafka` over
//! `common/component/kafka`), on librdkafka.
//!
//! **Publish.** A record's value is the message (the CloudEvent), its key the metadata
//! `partitionKey` (or `__key`), and every metadata entry is also a record header, as daprd
//! writes them. `publish` returns once every in-sync replica has the record (`acks=all`, an
//! idempotent producer, so librdkafka's own retries never duplicate).
//!
//! **Subscribe.** Each subscription is one member of a consumer group ([`crate::consumer`]):
//! the component's `consumerGroup`, else the subscription's `consumerID` (the runtime sets the
//! app id, or the component's `consumerID`), else `default`. Records reach the handler with
//! the metadata daprd gives them: `__key` (when there is one), `__topic`, `__partition`,
//! `__offset`, `__timestamp` (Unix milliseconds) and each header.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription,
};
use layotto_core::{Component, ComponentSpec, Error, Health, Metadata, Result};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message as _};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaSettings;
use crate::consumer::{Member, RecordHandler};

/// Publish metadata keys whose value becomes the record key (Dapr's `partitionKey`, `__key`).
pub const KEY_METADATA_KEYS: [&str; 2] = ["partitionKey", "__key"];
/// Consumer group of subscriptions without one.
pub const DEFAULT_GROUP: &str = "default";
/// How long a publish may wait for the brokers' acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `init` waits for the cluster's metadata.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the producer every publish shares: `acks=all`, idempotent, no linger.
pub(crate) fn producer(settings: &KafkaSettings, label: &str) -> Result<FutureProducer> {
    let mut cfg: ClientConfig = settings.client.clone();
    cfg.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set(
            "message.timeout.ms",
            crate::config::millis(PUBLISH_TIMEOUT).to_string(),
        );
    if let Some(n) = settings.max_message_bytes {
        cfg.set("message.max.bytes", n.to_string());
    }
    let p: FutureProducer = cfg
        .create()
        .map_err(|e| Error::unavailable(format!("{label}: kafka producer: {e}")))?;
    p.client()
        .fetch_metadata(None, CONNECT_TIMEOUT)
        .map_err(|e| Error::unavailable(format!("{label}: kafka brokers unreachable: {e}")))?;
    Ok(p)
}

/// Sends one record and waits for its acknowledgement.
pub(crate) async fn send(
    producer: &FutureProducer,
    topic: &str,
    data: &[u8],
    metadata: &Metadata,
    label: &str,
) -> Result<()> {
    let mut headers = OwnedHeaders::new_with_capacity(metadata.len());
    let mut key: Option<&str> = None;
    for (k, v) in metadata {
        if KEY_METADATA_KEYS.contains(&k.as_str()) {
            key = Some(v);
        }
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let mut record: FutureRecord<'_, str, [u8]> =
        FutureRecord::to(topic).payload(data).headers(headers);
    if let Some(k) = key {
        record = record.key(k);
    }
    producer
        .send(record, PUBLISH_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|(e, _)| {
            Error::unavailable(format!(
                "{label}: publish to '{topic}' was not acknowledged: {e}"
            ))
        })
}

/// Makes sure `topic` exists before a consumer subscribes to it: a producer's metadata request
/// has the brokers create a missing topic (when they allow it), and this waits up to 10 s
/// until every partition has a leader. A consumer would otherwise see a new topic only at its
/// next metadata refresh (minutes). Logs, and returns, when the topic does not appear.
pub(crate) async fn ensure_topic(producer: &FutureProducer, topic: &str, label: &str) {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let client = producer.clone();
        let name = topic.to_owned();
        let ready = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(2))
                .map(|md| {
                    md.topics().iter().any(|t| {
                        t.name() == name
                            && t.error().is_none()
                            && !t.partitions().is_empty()
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
        })
        .await;
        if matches!(ready, Ok(Ok(true))) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "{label}: topic '{topic}' does not exist and was not created (is auto.create.topics.enable off?); subscribing anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The metadata daprd gives a consumed record (`GetEventMetadata`).
pub(crate) fn record_metadata(m: &OwnedMessage) -> Metadata {
    let mut md = Metadata::new();
    if let Some(k) = m.key() {
        md.insert("__key".into(), String::from_utf8_lossy(k).into_owned());
    }
    md.insert("__offset".into(), m.offset().to_string());
    md.insert("__topic".into(), m.topic().to_owned());
    md.insert(
        "__timestamp".into(),
        m.timestamp().to_millis().unwrap_or(0).to_string(),
    );
    md.insert("__partition".into(), m.partition().to_string());
    if let Some(h) = m.headers() {
        for header in h.iter() {
            let value = header
                .value
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            md.insert(header.key.to_owned(), value.into_owned());
        }
    }
    md
}

/// Dapr's `pubsub.kafka` (type `kafka`). See the module documentation.
pub struct KafkaPubSub {
    label: String,
    settings: KafkaSettings,
    producer: OnceLock<FutureProducer>,
    closed: CancellationToken,
}

impl std::fmt::Debug for KafkaPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPubSub")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl KafkaPubSub {
    /// Factory: [`crate::KafkaMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// As [`KafkaSettings::from_spec`].
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        Ok(Self {
            label: format!("pubsub '{}'", spec.name),
            settings: KafkaSettings::from_spec(spec, true)?,
            producer: OnceLock::new(),
            closed: CancellationToken::new(),
        })
    }

    fn producer(&self) -> Result<&FutureProducer> {
        self.producer
            .get()
            .ok_or_else(|| Error::unavailable(format!("{}: not initialised", self.label)))
    }

    fn group(&self, req: &SubscribeRequest) -> String {
        self.settings
            .consumer_group
            .clone()
            .or_else(|| {
                req.metadata
                    .get(CONSUMER_ID_KEY)
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| self.settings.consumer_id.clone())
            .unwrap_or_else(|| DEFAULT_GROUP.to_owned())
    }
}

#[async_trait]
impl Component for KafkaPubSub {
    /// Creates the producer and reads the cluster's metadata. Errors: unavailable when no
    /// broker answers within 10 s.
    async fn init(&self) -> Result<()> {
        let settings = self.settings.clone();
        let label = self.label.clone();
        let p = tokio::task::spawn_blocking(move || producer(&settings, &label))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        let _ = self.producer.set(p);
        Ok(())
    }

    async fn health(&self) -> Health {
        let Some(p) = self.producer.get().cloned() else {
            return Health::down("not initialised");
        };
        let probe = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
        })
        .await;
        match probe {
            Ok(Ok(())) => Health::up(),
            Ok(Err(e)) => Health::down(format!("kafka brokers unreachable: {e}")),
            Err(e) => Health::down(e.to_string()),
        }
    }

    /// Makes every subscription leave its group (committing what was acknowledged) and
    /// flushes the producer.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        if let Some(p) = self.producer.get().cloned() {
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
        }
        Ok(())
    }
}

#[async_trait]
impl PubSub for KafkaPubSub {
    /// Produces one record (see the module documentation). Errors: invalid argument for an
    /// empty topic; unavailable when the brokers do not acknowledge it within 30 s.
    async fn publish(&self, msg: Message) -> Result<()> {
        if msg.topic.is_empty() {
            return Err(Error::empty_field("topic").context(&self.label));
        }
        send(
            self.producer()?,
            &msg.topic,
            &msg.data,
            &msg.metadata,
            &self.label,
        )
        .await
    }

    /// Joins the consumer group and waits for its first assignment. Records are handed over
    /// one at a time, or for a bulk subscription (subscription metadata `maxBulkSubCount`,
    /// set by the runtime) up to that many at once, offsets stored once all of them are
    /// handled. Errors: invalid argument for an empty topic; unavailable when the consumer
    /// cannot be created.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        if req.topic.is_empty() {
            return Err(Error::empty_field("topic").context(&self.label));
        }
        ensure_topic(self.producer()?, &req.topic, &self.label).await;
        let group = self.group(&req);
        // A bulk subscription takes up to this many records at once (one at a time else).
        let batch = req
            .metadata
            .get(layotto_core::pubsub::BULK_MAX_MESSAGES_KEY)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let topic = req.topic.clone();
        let records: RecordHandler = Arc::new(move |m: OwnedMessage| {
            let msg = Message {
                topic: m.topic().to_owned(),
                data: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                metadata: record_metadata(&m),
            };
            handler(msg)
        });
        let cancel = self.closed.child_token();
        Member::join(
            &self.settings,
            &group,
            &[topic],
            records,
            batch,
            cancel.clone(),
            self.label.clone(),
        )
        .await?;
        Ok(Subscription::new(move || cancel.cancel()))
    }
}
