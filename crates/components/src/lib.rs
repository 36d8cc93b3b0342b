//! Built-in components of layotto-rs and the registries that build them by type string.
//!
//! Modules: [`memory`] (state, lock, sequencer, configuration, pub/sub kept in process memory),
//! [`hello`], `redis` (feature `redis`: state, lock, Redlock lock, sequencer, pub/sub, configuration), [`file_local`] (files under a root directory), [`secret_local`] (JSON file and
//! environment variables) and [`binding_http`] (HTTP output binding). Factories only parse and
//! validate metadata; I/O happens in each component's `init`. Every component accepts the
//! metadata key `keyPrefix` (read by the runtime) and rejects unknown keys.

pub mod binding_http;
pub mod file_local;
pub mod hello;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod secret_local;
mod util;

pub use util::KEY_PREFIX;

use std::sync::Arc;

use layotto_core::binding::OutputBinding;
use layotto_core::configuration::ConfigStore;
use layotto_core::file::FileStore;
use layotto_core::hello::Hello;
use layotto_core::lock::LockStore;
use layotto_core::pubsub::PubSub;
use layotto_core::secret::SecretStore;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{Registry, Result};

/// One factory registry per building block.
pub struct Registries {
    /// Hello components (API name `hellos`).
    pub hellos: Registry<dyn Hello>,
    /// State stores (API name `state`).
    pub state: Registry<dyn StateStore>,
    /// Lock stores (API name `lock`).
    pub lock: Registry<dyn LockStore>,
    /// Sequencers (API name `sequencer`).
    pub sequencer: Registry<dyn Sequencer>,
    /// Configuration stores (API name `config_store`).
    pub configuration: Registry<dyn ConfigStore>,
    /// Pub/subs (API name `pub_subs`).
    pub pubsub: Registry<dyn PubSub>,
    /// Secret stores (API name `secret_store`).
    pub secrets: Registry<dyn SecretStore>,
    /// File stores (API name `file`).
    pub file: Registry<dyn FileStore>,
    /// Output bindings (API name `bindings`).
    pub bindings: Registry<dyn OutputBinding>,
}

impl Registries {
    /// Empty registries.
    pub fn empty() -> Self {
        Self {
            hellos: Registry::new("hellos"),
            state: Registry::new("state"),
            lock: Registry::new("lock"),
            sequencer: Registry::new("sequencer"),
            configuration: Registry::new("config_store"),
            pubsub: Registry::new("pub_subs"),
            secrets: Registry::new("secret_store"),
            file: Registry::new("file"),
            bindings: Registry::new("bindings"),
        }
    }

    /// Registries holding every built-in component:
    ///
    /// | block | types |
    /// |---|---|
    /// | hellos | `helloworld` |
    /// | state, lock, sequencer, config_store, pub_subs | `in-memory`, `memory` |
    /// | state, lock, sequencer, pub_subs, config_store (feature `redis`) | `redis`, `state.redis` / `lock.redis` / `sequencer.redis` / `pubsub.redis` / `configuration.redis` |
    /// | lock (feature `redis`, Redlock over `redisHosts`) | `redis_cluster`, `lock.redis_cluster` |
    /// | secret_store | `local.file`, `local.env` |
    /// | file | `local` |
    /// | bindings | `http` |
    ///
    /// # Errors
    /// Invalid argument if a type is registered twice (a bug in this function).
    pub fn builtin() -> Result<Self> {
        let mut r = Self::empty();
        r.hellos.register(hello::TYPE, |s| {
            Ok(Arc::new(hello::HelloWorld::from_spec(s)?) as Arc<dyn Hello>)
        })?;
        for t in [memory::TYPE, memory::TYPE_ALIAS] {
            r.state.register(t, |s| {
                Ok(Arc::new(memory::MemoryStateStore::from_spec(s)?) as Arc<dyn StateStore>)
            })?;
            r.lock.register(t, |s| {
                Ok(Arc::new(memory::MemoryLock::from_spec(s)?) as Arc<dyn LockStore>)
            })?;
            r.sequencer.register(t, |s| {
                Ok(Arc::new(memory::MemorySequencer::from_spec(s)?) as Arc<dyn Sequencer>)
            })?;
            r.configuration.register(t, |s| {
                Ok(Arc::new(memory::MemoryConfigStore::from_spec(s)?) as Arc<dyn ConfigStore>)
            })?;
            r.pubsub.register(t, |s| {
                Ok(Arc::new(memory::MemoryPubSub::from_spec(s)?) as Arc<dyn PubSub>)
            })?;
        }
        #[cfg(feature = "redis")]
        register_redis(&mut r)?;
        r.secrets.register(secret_local::FILE_TYPE, |s| {
            Ok(Arc::new(secret_local::LocalFileSecretStore::from_spec(s)?) as Arc<dyn SecretStore>)
        })?;
        r.secrets.register(secret_local::ENV_TYPE, |s| {
            Ok(Arc::new(secret_local::LocalEnvSecretStore::from_spec(s)?) as Arc<dyn SecretStore>)
        })?;
        r.file.register(file_local::TYPE, |s| {
            Ok(Arc::new(file_local::LocalFileStore::from_spec(s)?) as Arc<dyn FileStore>)
        })?;
        r.bindings.register(binding_http::TYPE, |s| {
            Ok(Arc::new(binding_http::HttpBinding::from_spec(s)?) as Arc<dyn OutputBinding>)
        })?;
        Ok(r)
    }
}

/// Registers the Redis state, lock, sequencer, pub/sub and configuration store under `redis`
/// and their Dapr-style types, and the Redlock lock under `redis_cluster` /
/// `lock.redis_cluster`.
#[cfg(feature = "redis")]
fn register_redis(r: &mut Registries) -> Result<()> {
    for t in [redis::TYPE, redis::STATE_TYPE] {
        r.state.register(t, |s| {
            Ok(Arc::new(redis::RedisStateStore::from_spec(s)?) as Arc<dyn StateStore>)
        })?;
    }
    for t in [redis::TYPE, redis::LOCK_TYPE] {
        r.lock.register(t, |s| {
            Ok(Arc::new(redis::RedisLock::from_spec(s)?) as Arc<dyn LockStore>)
        })?;
    }
    for t in [redis::CLUSTER_TYPE, redis::LOCK_CLUSTER_TYPE] {
        r.lock.register(t, |s| {
            Ok(Arc::new(redis::RedisClusterLock::from_spec(s)?) as Arc<dyn LockStore>)
        })?;
    }
    for t in [redis::TYPE, redis::SEQUENCER_TYPE] {
        r.sequencer.register(t, |s| {
            Ok(Arc::new(redis::RedisSequencer::from_spec(s)?) as Arc<dyn Sequencer>)
        })?;
    }
    for t in [redis::TYPE, redis::PUBSUB_TYPE] {
        r.pubsub.register(t, |s| {
            Ok(Arc::new(redis::RedisPubSub::from_spec(s)?) as Arc<dyn PubSub>)
        })?;
    }
    for t in [redis::TYPE, redis::CONFIGURATION_TYPE] {
        r.configuration.register(t, |s| {
            Ok(Arc::new(redis::RedisConfigStore::from_spec(s)?) as Arc<dyn ConfigStore>)
        })?;
    }
    Ok(())
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("hellos", &self.hellos.types())
            .field("state", &self.state.types())
            .field("lock", &self.lock.types())
            .field("sequencer", &self.sequencer.types())
            .field("configuration", &self.configuration.types())
            .field("pubsub", &self.pubsub.types())
            .field("secrets", &self.secrets.types())
            .field("file", &self.file.types())
            .field("bindings", &self.bindings.types())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use layotto_core::ComponentSpec;

    use super::*;

    #[tokio::test]
    async fn builtin_builds_every_type_and_rejects_bad_config() {
        let r = Registries::builtin().expect("no duplicates");
        let with_prefix = |t: &str| ComponentSpec::new("c", t).with(KEY_PREFIX, "appid");
        #[cfg(not(feature = "redis"))]
        assert_eq!(r.state.types(), ["in-memory", "memory"]);
        #[cfg(feature = "redis")]
        {
            assert_eq!(
                r.state.types(),
                ["in-memory", "memory", "redis", "state.redis"]
            );
            let redis = |t: &str| with_prefix(t).with("redisHost", "127.0.0.1:1");
            r.state
                .create(&redis("state.redis"))
                .expect("factory does no I/O");
            r.lock.create(&redis("lock.redis")).expect("lock");
            for t in ["redis_cluster", "lock.redis_cluster"] {
                r.lock
                    .create(&with_prefix(t).with("redisHosts", "127.0.0.1:1,127.0.0.1:2"))
                    .expect("redlock factory does no I/O");
            }
            r.sequencer.create(&redis("redis")).expect("sequencer");
            r.pubsub.create(&redis("pubsub.redis")).expect("pubsub");
            r.pubsub.create(&redis("redis")).expect("pubsub");
            r.configuration
                .create(&redis("configuration.redis"))
                .expect("configuration");
        }
        assert_eq!(r.secrets.types(), ["local.env", "local.file"]);
        let hello = r.hellos.create(&with_prefix("helloworld")).expect("hello");
        assert_eq!(hello.say_hello("x").await.expect("hi"), "greeting, x");
        for t in ["in-memory", "memory"] {
            r.state.create(&with_prefix(t)).expect("state");
            r.lock.create(&with_prefix(t)).expect("lock");
            r.sequencer.create(&with_prefix(t)).expect("sequencer");
            r.configuration.create(&with_prefix(t)).expect("config");
            r.pubsub.create(&with_prefix(t)).expect("pubsub");
        }
        r.secrets.create(&with_prefix("local.env")).expect("env");
        r.secrets
            .create(&with_prefix("local.file").with("secretsFile", "/does/not/matter"))
            .expect("factory does no I/O");
        r.file
            .create(&with_prefix("local").with("root", "/does/not/exist/yet"))
            .expect("factory does no I/O");
        r.bindings
            .create(&with_prefix("http").with("url", "http://localhost:1"))
            .expect("http");
        let e = r
            .state
            .create(&with_prefix("in-memory").with("redisHost", "x"))
            .err()
            .expect("unknown key");
        assert!(e.message.contains("redisHost"), "{e}");
        let e = r
            .file
            .create(&ComponentSpec::new("f", "s3"))
            .err()
            .expect("unknown type");
        assert!(e.message.contains("known types: local"), "{e}");
    }
}
