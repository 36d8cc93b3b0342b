//! Redis components of layotto-rs: state (Dapr's hash layout), lock, Redlock lock over
//! independent hosts (Layotto's `redis_cluster`), sequencer, pub/sub (Redis Streams, Dapr's
//! `pubsub.redis`) and configuration.
//!
//! All of them share the connection keys of the peers' Redis components (`redisHost`,
//! `redisPassword`, `redisUsername`, `db`, `enableTLS`, `clientCert`, `clientKey`, `caCert`,
//! `insecureSkipVerify`, `maxRetries`, `dialTimeout`, `readTimeout`; see [`config`]), decoded
//! into each component's typed metadata struct and validated into a [`RedisConfig`], and
//! [`RedisClient`], a [`redis::aio::ConnectionManager`] created in `init` that reconnects by
//! itself and is dropped by `close`. Every call is bounded by `dialTimeout + readTimeout`; a
//! backend that cannot be reached fails with [`layotto_core::ErrorKind::Unavailable`].
//! [`register`] adds every type to a [`layotto_core::Registries`].

mod client;
mod cluster_lock;
pub mod config;
mod configuration;
mod lock;
mod pubsub;
mod sequencer;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use layotto_core::configuration::ConfigStore;
use layotto_core::lock::LockStore;
use layotto_core::pubsub::PubSub;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use client::RedisClient;
pub use cluster_lock::{
    CLUSTER_TYPE, HOSTS_KEY, LOCK_CLUSTER_TYPE, RedisClusterLock, RedisClusterLockMetadata,
};
pub use config::{
    CA_CERT_KEY, CLIENT_CERT_KEY, CLIENT_KEY_KEY, ConnectionMetadata, DAPR_TOLERATED_KEYS, DB_KEY,
    DIAL_TIMEOUT_KEY, ENABLE_TLS_KEY, HOST_KEY, INSECURE_SKIP_VERIFY_KEY, MAX_RETRIES_KEY,
    PASSWORD_KEY, READ_TIMEOUT_KEY, RedisConfig, RedisTls, USERNAME_KEY,
};
pub use configuration::{
    DEFAULT_GROUP_KEY, DEFAULT_LABEL_KEY, RedisConfigMetadata, RedisConfigStore,
};
pub use lock::{RedisLock, RedisLockMetadata};
pub use pubsub::{
    CONCURRENCY_KEY, MAX_LEN_APPROX_KEY, PROCESSING_TIMEOUT_KEY, QUEUE_DEPTH_KEY,
    REDELIVER_INTERVAL_KEY, RedisPubSub, RedisPubSubMetadata,
};
pub use sequencer::{RedisSequencer, RedisSequencerMetadata};
pub use state::{MAX_VALUE_BYTES_KEY, RedisStateMetadata, RedisStateStore};

/// Type string of every Redis component.
pub const TYPE: &str = "redis";
/// Dapr-style type string of the Redis state store.
pub const STATE_TYPE: &str = "state.redis";
/// Dapr-style type string of the Redis lock store.
pub const LOCK_TYPE: &str = "lock.redis";
/// Dapr-style type string of the Redis sequencer.
pub const SEQUENCER_TYPE: &str = "sequencer.redis";
/// Dapr-style type string of the Redis pub/sub.
pub const PUBSUB_TYPE: &str = "pubsub.redis";
/// Dapr-style type string of the Redis configuration store.
pub const CONFIGURATION_TYPE: &str = "configuration.redis";

/// Registers the Redis state store, lock, sequencer, pub/sub and configuration store under
/// `redis` and their Dapr-style types (`state.redis`, `lock.redis`, `sequencer.redis`,
/// `pubsub.redis`, `configuration.redis`), and the Redlock lock under `redis_cluster` /
/// `lock.redis_cluster`.
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn StateStore>(
        &[TYPE, STATE_TYPE],
        MetadataKeys::of::<RedisStateMetadata>(),
        |s| Ok(Arc::new(RedisStateStore::from_spec(s)?) as Arc<dyn StateStore>),
    )?;
    r.register::<dyn LockStore>(
        &[TYPE, LOCK_TYPE],
        MetadataKeys::of::<RedisLockMetadata>(),
        |s| Ok(Arc::new(RedisLock::from_spec(s)?) as Arc<dyn LockStore>),
    )?;
    r.register::<dyn LockStore>(
        &[CLUSTER_TYPE, LOCK_CLUSTER_TYPE],
        MetadataKeys::of::<RedisClusterLockMetadata>(),
        |s| Ok(Arc::new(RedisClusterLock::from_spec(s)?) as Arc<dyn LockStore>),
    )?;
    r.register::<dyn Sequencer>(
        &[TYPE, SEQUENCER_TYPE],
        MetadataKeys::of::<RedisSequencerMetadata>(),
        |s| Ok(Arc::new(RedisSequencer::from_spec(s)?) as Arc<dyn Sequencer>),
    )?;
    r.register::<dyn PubSub>(
        &[TYPE, PUBSUB_TYPE],
        MetadataKeys::of::<RedisPubSubMetadata>(),
        |s| Ok(Arc::new(RedisPubSub::from_spec(s)?) as Arc<dyn PubSub>),
    )?;
    r.register::<dyn ConfigStore>(
        &[TYPE, CONFIGURATION_TYPE],
        MetadataKeys::of::<RedisConfigMetadata>(),
        |s| Ok(Arc::new(RedisConfigStore::from_spec(s)?) as Arc<dyn ConfigStore>),
    )?;
    Ok(())
}

/// Locks `m`, ignoring poisoning: no component panics while holding its locks, and the data
/// behind them stays consistent at every await-free step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use layotto_core::{ComponentSpec, Feature, Kind};

    use super::*;

    #[test]
    fn registers_every_type_without_io() {
        let mut r = Registries::new();
        register(&mut r).expect("no duplicates");
        assert_eq!(r.types(Kind::State), ["redis", "state.redis"]);
        assert_eq!(
            r.types(Kind::Lock),
            ["lock.redis", "lock.redis_cluster", "redis", "redis_cluster"]
        );
        let redis = |t: &str| {
            ComponentSpec::new("c", t)
                .with("keyPrefix", "appid")
                .with("redisHost", "127.0.0.1:1")
        };
        let state = r
            .create::<dyn StateStore>(&redis("state.redis"))
            .expect("factory does no I/O");
        assert_eq!(
            state.features(),
            [Feature::Etag, Feature::Transactional, Feature::Ttl]
        );
        r.create::<dyn LockStore>(&redis("lock.redis"))
            .expect("lock");
        for t in ["redis_cluster", "lock.redis_cluster"] {
            r.create::<dyn LockStore>(
                &ComponentSpec::new("c", t).with("redisHosts", "127.0.0.1:1,127.0.0.1:2"),
            )
            .expect("redlock factory does no I/O");
        }
        r.create::<dyn Sequencer>(&redis("redis"))
            .expect("sequencer");
        r.create::<dyn PubSub>(&redis("pubsub.redis"))
            .expect("pubsub");
        r.create::<dyn PubSub>(&redis("redis")).expect("pubsub");
        r.create::<dyn ConfigStore>(&redis("configuration.redis"))
            .expect("configuration");
        let built = r
            .create_any(
                Kind::PubSub,
                &ComponentSpec::new("c", "redis")
                    .with("redisHost", "127.0.0.1:1")
                    .with("consumerID", "g")
                    .with("keyPrefix", "appid")
                    .with("x", "1"),
            )
            .expect("pubsub");
        // keyPrefix lays out state, lock and sequencer keys; on a pub/sub it means nothing.
        assert_eq!(built.warnings.len(), 2, "{:?}", built.warnings);
        assert!(
            built.warnings[0].contains("'keyPrefix'"),
            "{:?}",
            built.warnings
        );
        assert!(built.warnings[1].contains("'x'"), "{:?}", built.warnings);
        assert!(built.component.features().is_empty());
    }
}
