//! Kafka components of layotto-rs: Dapr's `pubsub.kafka` ([`pubsub`]) and `bindings.kafka`
//! ([`binding`], input and output) on librdkafka (the
//! `rdkafka` crate, built from its bundled source), with consumer groups whose offsets are
//! committed only after the app acknowledged ([`consumer`]). [`register`] adds the type
//! `kafka` to a [`layotto_core::Registries`] (a Dapr Component YAML names it `pubsub.kafka`).

pub mod binding;
pub mod config;
pub mod consumer;
pub mod pubsub;

use std::sync::Arc;

use layotto_core::binding::OutputBinding;
use layotto_core::pubsub::PubSub;
use layotto_core::{MetadataKeys, Registries, Result};

pub use binding::KafkaBinding;
pub use config::{KafkaMetadata, KafkaSettings};
pub use pubsub::KafkaPubSub;

/// Type string of the Kafka components (Dapr's `pubsub.kafka`, `bindings.kafka`).
pub const KAFKA_TYPE: &str = "kafka";

/// Registers the `kafka` pub/sub and binding.
///
/// # Errors
/// Invalid argument when the type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn PubSub>(&[KAFKA_TYPE], MetadataKeys::of::<KafkaMetadata>(), |s| {
        Ok(Arc::new(KafkaPubSub::from_spec(s)?) as Arc<dyn PubSub>)
    })?;
    r.register::<dyn OutputBinding>(&[KAFKA_TYPE], MetadataKeys::of::<KafkaMetadata>(), |s| {
        Ok(Arc::new(KafkaBinding::from_spec(s)?) as Arc<dyn OutputBinding>)
    })
}
