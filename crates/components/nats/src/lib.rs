//! NATS components of layotto-rs: Dapr's `pubsub.jetstream` ([`jetstream`]), on the
//! `async-nats` client. [`register`] adds the type `jetstream` to a
//! [`layotto_core::Registries`] (a Dapr Component YAML names it `pubsub.jetstream`).

pub mod jetstream;

use std::sync::Arc;

use layotto_core::pubsub::PubSub;
use layotto_core::{MetadataKeys, Registries, Result};

pub use jetstream::{JetStreamMetadata, JetStreamPubSub};

/// Type string of the JetStream pub/sub (Dapr's `pubsub.jetstream`).
pub const JETSTREAM_TYPE: &str = "jetstream";

/// Registers the `jetstream` pub/sub.
///
/// # Errors
/// Invalid argument when the type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn PubSub>(
        &[JETSTREAM_TYPE],
        MetadataKeys::of::<JetStreamMetadata>(),
        |s| Ok(Arc::new(JetStreamPubSub::from_spec(s)?) as Arc<dyn PubSub>),
    )
}
