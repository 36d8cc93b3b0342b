//! In-memory components of layotto-rs (type `in-memory`, alias `memory`): state, lock,
//! sequencer, configuration and pub/sub, plus the `helloworld` [`hello`] component.
//!
//! Everything lives in process memory and is lost on restart; they serve development, tests
//! and the conformance suite. Factories only decode and validate metadata (typed, with
//! [`layotto_core::metadata::decode`]); [`register`] adds every type to a
//! [`layotto_core::Registries`].

mod configuration;
pub mod hello;
mod lock;
mod pubsub;
mod sequencer;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use layotto_core::configuration::ConfigStore;
use layotto_core::hello::Hello;
use layotto_core::lock::LockStore;
use layotto_core::pubsub::PubSub;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use configuration::{
    DEFAULT_GROUP_KEY, DEFAULT_LABEL_KEY, MemoryConfigMetadata, MemoryConfigStore,
};
pub use lock::{MemoryLock, MemoryLockMetadata};
pub use pubsub::{
    CONCURRENCY_KEY, DEFAULT_CONCURRENCY, DEFAULT_GROUP, MAX_CONCURRENCY, MemoryPubSub,
    MemoryPubSubMetadata,
};
pub use sequencer::{MemorySequencer, MemorySequencerMetadata};
pub use state::{MemoryStateMetadata, MemoryStateStore};

/// The type string of every in-memory component.
pub const TYPE: &str = "in-memory";
/// The alias type string of every in-memory component.
pub const TYPE_ALIAS: &str = "memory";

/// Registers the in-memory state store, lock, sequencer, configuration store and pub/sub
/// under [`TYPE`] and [`TYPE_ALIAS`], and the hello component under [`hello::TYPE`].
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    let types = &[TYPE, TYPE_ALIAS];
    r.register::<dyn Hello>(
        &[hello::TYPE],
        MetadataKeys::of::<hello::HelloMetadata>(),
        |s| Ok(Arc::new(hello::HelloWorld::from_spec(s)?) as Arc<dyn Hello>),
    )?;
    r.register::<dyn StateStore>(types, MetadataKeys::of::<MemoryStateMetadata>(), |s| {
        Ok(Arc::new(MemoryStateStore::from_spec(s)?) as Arc<dyn StateStore>)
    })?;
    r.register::<dyn LockStore>(types, MetadataKeys::of::<MemoryLockMetadata>(), |s| {
        Ok(Arc::new(MemoryLock::from_spec(s)?) as Arc<dyn LockStore>)
    })?;
    r.register::<dyn Sequencer>(types, MetadataKeys::of::<MemorySequencerMetadata>(), |s| {
        Ok(Arc::new(MemorySequencer::from_spec(s)?) as Arc<dyn Sequencer>)
    })?;
    r.register::<dyn ConfigStore>(types, MetadataKeys::of::<MemoryConfigMetadata>(), |s| {
        Ok(Arc::new(MemoryConfigStore::from_spec(s)?) as Arc<dyn ConfigStore>)
    })?;
    r.register::<dyn PubSub>(types, MetadataKeys::of::<MemoryPubSubMetadata>(), |s| {
        Ok(Arc::new(MemoryPubSub::from_spec(s)?) as Arc<dyn PubSub>)
    })?;
    Ok(())
}

/// Locks `m`, ignoring poisoning: no component panics while holding its locks, and the data
/// behind them stays consistent at every await-free step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use layotto_core::{ComponentSpec, Kind};

    use super::*;

    #[tokio::test]
    async fn registers_every_type_and_warns_about_unknown_keys() {
        let mut r = Registries::new();
        register(&mut r).expect("no duplicates");
        assert!(
            register(&mut r).is_err(),
            "a second registration is refused"
        );
        let with_prefix = |t: &str| ComponentSpec::new("c", t).with("keyPrefix", "appid");
        for kind in [
            Kind::State,
            Kind::Lock,
            Kind::Sequencer,
            Kind::Configuration,
            Kind::PubSub,
        ] {
            assert_eq!(r.types(kind), ["in-memory", "memory"], "{kind}");
        }
        let hello = r
            .create::<dyn Hello>(&with_prefix("helloworld"))
            .expect("hello");
        assert_eq!(hello.say_hello("x").await.expect("hi"), "greeting, x");
        for t in [TYPE, TYPE_ALIAS] {
            r.create::<dyn StateStore>(&with_prefix(t)).expect("state");
            r.create::<dyn LockStore>(&with_prefix(t)).expect("lock");
            r.create::<dyn Sequencer>(&with_prefix(t))
                .expect("sequencer");
            r.create::<dyn ConfigStore>(&with_prefix(t))
                .expect("config");
            r.create::<dyn PubSub>(&with_prefix(t)).expect("pubsub");
        }
        // An unknown key is no error, only a warning naming it.
        let spec = with_prefix(TYPE).with("redisHost", "x");
        let built = r
            .create_any(Kind::State, &spec)
            .expect("unknown keys are ignored");
        assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
        assert!(
            built.warnings[0].contains("redisHost"),
            "{:?}",
            built.warnings
        );
        assert_eq!(
            built.component.features(),
            [
                layotto_core::Feature::Etag,
                layotto_core::Feature::Transactional,
                layotto_core::Feature::Ttl,
                layotto_core::Feature::QueryApi
            ]
        );
    }
}
