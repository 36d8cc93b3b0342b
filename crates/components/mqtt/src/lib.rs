//! MQTT components of layotto-rs: Dapr's `pubsub.mqtt3` ([`pubsub`]) on MQTT 3.1.1 with the
//! `rumqttc` client. [`register`] adds the type `mqtt3` to a [`layotto_core::Registries`] (a
//! Dapr Component YAML names it `pubsub.mqtt3`).

pub mod pubsub;

use std::sync::Arc;

use layotto_core::pubsub::PubSub;
use layotto_core::{MetadataKeys, Registries, Result};

pub use pubsub::{MqttMetadata, MqttPubSub};

/// Type string of the MQTT pub/sub (Dapr's `pubsub.mqtt3`).
pub const MQTT3_TYPE: &str = "mqtt3";

/// Registers the `mqtt3` pub/sub.
///
/// # Errors
/// Invalid argument when the type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn PubSub>(&[MQTT3_TYPE], MetadataKeys::of::<MqttMetadata>(), |s| {
        Ok(Arc::new(MqttPubSub::from_spec(s)?) as Arc<dyn PubSub>)
    })
}
