//! Dapr's `bindings.kafka` (`dapr/components-contrib:bindings/kafka`): the output operation
//! `create` produces a record on `publishTopic` (key and headers from the request metadata, as
//! the pub/sub writes them); the input side reads `topics` as one member of `consumerGroup`
//! (else `consumerID`) and hands each record to the app with daprd's metadata (`__key`,
//! `__topic`, `__partition`, `__offset`, `__timestamp` and the headers). Failed deliveries are
//! skipped unless `consumeRetryEnabled` is true (Dapr's binding default is false).

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::binding::{
    BindingRequest, BindingResponse, InputBinding, InputEvent, InputHandler, OutputBinding,
};
use layotto_core::pubsub::Subscription;
use layotto_core::{Component, ComponentSpec, Error, Health, Result};
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaSettings;
use crate::consumer::{Member, RecordHandler};
use crate::pubsub::{ensure_topic, producer, record_metadata, send};

/// The output operation (Dapr's `create`).
pub const CREATE: &str = "create";

/// Dapr's `bindings.kafka` (type `kafka`). See the module documentation.
pub struct KafkaBinding {
    label: String,
    settings: KafkaSettings,
    producer: OnceLock<FutureProducer>,
    closed: CancellationToken,
}

impl std::fmt::Debug for KafkaBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBinding")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl KafkaBinding {
    /// Factory: [`crate::KafkaMetadata`] (with `topics` and `publishTopic`). Does no I/O.
    ///
    /// # Errors
    /// As [`KafkaSettings::from_spec`].
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        Ok(Self {
            label: format!("binding '{}'", spec.name),
            settings: KafkaSettings::from_spec(spec, false)?,
            producer: OnceLock::new(),
            closed: CancellationToken::new(),
        })
    }

    fn producer(&self) -> Result<&FutureProducer> {
        self.producer
            .get()
            .ok_or_else(|| Error::unavailable(format!("{}: not initialised", self.label)))
    }
}

#[async_trait]
impl Component for KafkaBinding {
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
        if self.producer.get().is_some() {
            Health::up()
        } else {
            Health::down("not initialised")
        }
    }

    /// Stops reading (committing what was acknowledged).
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        Ok(())
    }
}

#[async_trait]
impl OutputBinding for KafkaBinding {
    fn operations(&self) -> Vec<String> {
        vec![CREATE.to_owned()]
    }

    /// `create`: produces `req.data` on `publishTopic`. Errors: invalid argument for another
    /// operation or when `publishTopic` is not set; unavailable when the brokers do not
    /// acknowledge the record.
    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse> {
        if req.operation != CREATE {
            return Err(Error::invalid(format!(
                "{}: operation '{}' is not supported (supported: {CREATE})",
                self.label, req.operation
            )));
        }
        let topic = self.settings.publish_topic.as_deref().ok_or_else(|| {
            Error::invalid(format!(
                "{}: metadata 'publishTopic' is required for operation '{CREATE}'",
                self.label
            ))
        })?;
        send(
            self.producer()?,
            topic,
            &req.data,
            &req.metadata,
            &self.label,
        )
        .await?;
        Ok(BindingResponse::default())
    }

    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        Some(self)
    }
}

#[async_trait]
impl InputBinding for KafkaBinding {
    /// Joins the consumer group on `topics`. With no `topics` nothing is read (logged, as
    /// Dapr). Errors: invalid argument without `consumerGroup` or `consumerID`; unavailable
    /// when the consumer cannot be created.
    async fn read(&self, handler: InputHandler) -> Result<Subscription> {
        let cancel = self.closed.child_token();
        if self.settings.topics.is_empty() {
            tracing::warn!(
                "{}: no topics defined; the input binding reads nothing",
                self.label
            );
            return Ok(Subscription::new(move || cancel.cancel()));
        }
        let group = self
            .settings
            .consumer_group
            .clone()
            .or_else(|| self.settings.consumer_id.clone())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: metadata 'consumerGroup' (or 'consumerID') is required to read topics",
                    self.label
                ))
            })?;
        let producer = self.producer()?;
        for t in &self.settings.topics {
            ensure_topic(producer, t, &self.label).await;
        }
        let records: RecordHandler = Arc::new(move |m: OwnedMessage| {
            let event = InputEvent {
                data: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                metadata: record_metadata(&m),
            };
            let call = handler(event);
            Box::pin(async move { call.await.map(|_| ()) })
        });
        Member::join(
            &self.settings,
            &group,
            &self.settings.topics,
            records,
            1,
            cancel.clone(),
            self.label.clone(),
        )
        .await?;
        Ok(Subscription::new(move || cancel.cancel()))
    }
}
