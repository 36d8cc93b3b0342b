//! RabbitMQ components of layotto-rs: Dapr's `pubsub.rabbitmq` ([`pubsub`]) in daprd's broker
//! layout and `bindings.rabbitmq` ([`binding`]), on the `lapin` AMQP 0-9-1 client.
//! [`register`] adds the type `rabbitmq` to a [`layotto_core::Registries`] (a Dapr Component
//! YAML names them `pubsub.rabbitmq` and `bindings.rabbitmq`).

pub mod binding;
mod connector;
pub mod pubsub;
mod tls;

use std::sync::Arc;

use layotto_core::binding::OutputBinding;
use layotto_core::pubsub::PubSub;
use layotto_core::{MetadataKeys, Registries, Result};

pub use binding::{RabbitMqBinding, RabbitMqBindingMetadata};
pub use pubsub::{RabbitMqMetadata, RabbitMqPubSub};

/// Type string of the RabbitMQ pub/sub (Dapr's `pubsub.rabbitmq`).
pub const RABBITMQ_TYPE: &str = "rabbitmq";

/// Registers the `rabbitmq` pub/sub and binding.
///
/// # Errors
/// Invalid argument when a type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn PubSub>(
        &[RABBITMQ_TYPE],
        MetadataKeys::of::<RabbitMqMetadata>(),
        |s| Ok(Arc::new(RabbitMqPubSub::from_spec(s)?) as Arc<dyn PubSub>),
    )?;
    r.register::<dyn OutputBinding>(
        &[RABBITMQ_TYPE],
        MetadataKeys::of::<RabbitMqBindingMetadata>(),
        |s| Ok(Arc::new(RabbitMqBinding::from_spec(s)?) as Arc<dyn OutputBinding>),
    )
}
