//! ZooKeeper components of layotto-rs, in Layotto's and Dapr's node layouts: lock (ephemeral
//! nodes on one shared session, a working keep-alive), sequencer (ids are node versions) and
//! state store (Dapr's `state.zookeeper`, ETags are node versions, transactions by `multi`).
//!
//! All of them read the connection keys of Layotto's ZooKeeper components
//! (`mosn/layotto:components/pkg/utils/zookeeper.go`: `zookeeperHosts`, `zookeeperPassword`,
//! `sessionTimeout`, `logInfo`; see [`config`]) into typed metadata and a validated
//! [`ZkConfig`], and share [`ZkClient`], one `zookeeper-client` session per component, opened
//! in `init` (one real round trip), reconnecting by itself and replaced when it expires. Every
//! call is bounded by the session timeout; an unreachable server fails with
//! [`layotto_core::ErrorKind::Unavailable`]. [`register`] adds every type to a
//! [`layotto_core::Registries`].

mod client;
pub mod config;
mod lock;
mod sequencer;
mod state;

use std::sync::Arc;

use layotto_core::lock::LockStore;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use client::ZkClient;
pub use config::{
    DEFAULT_SESSION_TIMEOUT, HOSTS_KEY, KEY_PREFIX_PATH_KEY, LOG_INFO_KEY, PASSWORD_KEY,
    SERVERS_KEY, SESSION_TIMEOUT_KEY, ZkConfig, node_path,
};
pub use lock::{ZkLock, ZkLockMetadata};
pub use sequencer::{MAX_FLOOR_GAP, ZkSequencer, ZkSequencerMetadata};
pub use state::{ZkStateMetadata, ZkStateStore};

/// Type string of every ZooKeeper component, as Layotto's config files name it.
pub const TYPE: &str = "zookeeper";

/// Dapr's type of the state store (a Component resource's `spec.type`).
pub const STATE_TYPE: &str = "state.zookeeper";

/// Registers the ZooKeeper lock store and sequencer under `zookeeper`, and the state store
/// under `zookeeper` and `state.zookeeper`.
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn LockStore>(&[TYPE], MetadataKeys::of::<ZkLockMetadata>(), |s| {
        Ok(Arc::new(ZkLock::from_spec(s)?) as Arc<dyn LockStore>)
    })?;
    r.register::<dyn Sequencer>(&[TYPE], MetadataKeys::of::<ZkSequencerMetadata>(), |s| {
        Ok(Arc::new(ZkSequencer::from_spec(s)?) as Arc<dyn Sequencer>)
    })?;
    r.register::<dyn StateStore>(
        &[TYPE, STATE_TYPE],
        MetadataKeys::of::<ZkStateMetadata>(),
        |s| Ok(Arc::new(ZkStateStore::from_spec(s)?) as Arc<dyn StateStore>),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use layotto_core::{ComponentSpec, Kind};

    use super::*;

    #[test]
    fn registers_every_type_without_io() {
        let mut r = Registries::new();
        register(&mut r).expect("no duplicates");
        assert_eq!(r.types(Kind::Lock), ["zookeeper"]);
        assert_eq!(r.types(Kind::Sequencer), ["zookeeper"]);
        assert_eq!(r.types(Kind::State), ["state.zookeeper", "zookeeper"]);
        let spec = |t: &str| {
            ComponentSpec::new("c", t)
                .with("zookeeperHosts", "127.0.0.1")
                .with("zookeeperPassword", "")
                .with("sessionTimeout", "3")
                .with("logInfo", "false")
                .with("keyPrefixPath", "/")
        };
        for kind in [Kind::Lock, Kind::Sequencer, Kind::State] {
            let built = r
                .create_any(kind, &spec("zookeeper"))
                .expect("Layotto's keys");
            assert!(
                built.warnings.len() == 1 && built.warnings[0].contains("no effect"),
                "{kind}: {:?}",
                built.warnings
            );
            let built = r
                .create_any(kind, &spec("zookeeper").with("unknownKey", "1"))
                .expect("unknown keys are ignored");
            assert!(
                built.warnings.iter().any(|w| w.contains("'unknownKey'")),
                "{kind}: {:?}",
                built.warnings
            );
        }
    }
}
