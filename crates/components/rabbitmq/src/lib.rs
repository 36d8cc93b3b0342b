//! RabbitMQ components of layotto-rs: Dapr's `pubsub.rabbitmq` ([`pubsub`]) in daprd's broker
//! layout, on the `lapin` AMQP 0-9-1 client. [`register`] adds the type `rabbitmq` to a
//! [`layotto_core::Registries`] (a Dapr Component YAML names it `pubsub.rabbitmq`).

pub mod pubsub;

use std::sync::Arc;

use layotto_core::pubsub::PubSub;
use layotto_core::{MetadataKeys, Registries, Result};

pub use pubsub::{RabbitMqMetadata, RabbitMqPubSub};

/// Type string of the RabbitMQ pub/sub (Dapr's `pubsub.rabbitmq`).
pub const RABBITMQ_TYPE: &str = "rabbitmq";

/// Registers the `rabbitmq` pub/sub.
///
/// # Errors
/// Invalid argument when the type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn PubSub>(
        &[RABBITMQ_TYPE],
        MetadataKeys::of::<RabbitMqMetadata>(),
        |s| Ok(Arc::new(RabbitMqPubSub::from_spec(s)?) as Arc<dyn PubSub>),
    )
}
