//! etcd components of layotto-rs, in Layotto's key layouts: lock (leases, a working
//! keep-alive), sequencer (ids are etcd key versions) and configuration store
//! (`/appId/group/label/key`, subscriptions by watch); and Dapr's `state.etcd` in daprd's
//! layout, versions v1 and v2 ([`state`]).
//!
//! All of them read the connection keys of Layotto's etcd components
//! (`mosn/layotto:components/pkg/utils/etcd.go`: `endpoints`, `dialTimeout`, `username`,
//! `password`, `tlsCa`, `tlsCert`, `tlsCertKey`; see [`config`]) into typed metadata and a
//! validated [`EtcdConfig`], and share [`EtcdClient`], an `etcd-client` connection made in
//! `init` (one real round trip) whose gRPC channel reconnects by itself. Every call is bounded
//! by `dialTimeout`; an unreachable cluster fails with
//! [`layotto_core::ErrorKind::Unavailable`]. [`register`] adds every type to a
//! [`layotto_core::Registries`].

mod client;
pub mod config;
mod configuration;
mod lock;
mod sequencer;
pub mod state;

use std::sync::Arc;

use layotto_core::configuration::ConfigStore;
use layotto_core::lock::LockStore;
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use client::EtcdClient;
pub use config::{
    ConnectionMetadata, DEFAULT_DIAL_TIMEOUT, DEFAULT_KEY_PREFIX, DIAL_TIMEOUT_KEY, ENDPOINTS_KEY,
    EtcdConfig, EtcdTls, KEY_PREFIX_PATH_KEY, PASSWORD_KEY, TLS_CA_KEY, TLS_CERT_KEY,
    TLS_CERT_KEY_KEY, USERNAME_KEY,
};
pub use configuration::{
    ADDRESS_KEY, ALL, DEFAULT_GROUP, EtcdConfigMetadata, EtcdConfigStore, TIMEOUT_KEY,
};
pub use lock::{EtcdLock, EtcdLockMetadata};
pub use sequencer::{EtcdSequencer, EtcdSequencerMetadata, MAX_FLOOR_GAP};
pub use state::{EtcdStateMetadata, EtcdStateStore};

/// Type string of every etcd component, as Layotto's config files name it. Dapr has no etcd
/// lock, sequencer or configuration store, so no Dapr-style (`lock.etcd`...) type is invented.
pub const TYPE: &str = "etcd";
/// Dapr's type of the etcd state store ([`state`]).
pub const STATE_TYPE: &str = "state.etcd";

/// Registers the etcd lock store, sequencer and configuration store under `etcd`, and the
/// state store under `etcd` and `state.etcd`.
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn LockStore>(&[TYPE], MetadataKeys::of::<EtcdLockMetadata>(), |s| {
        Ok(Arc::new(EtcdLock::from_spec(s)?) as Arc<dyn LockStore>)
    })?;
    r.register::<dyn Sequencer>(&[TYPE], MetadataKeys::of::<EtcdSequencerMetadata>(), |s| {
        Ok(Arc::new(EtcdSequencer::from_spec(s)?) as Arc<dyn Sequencer>)
    })?;
    r.register::<dyn ConfigStore>(&[TYPE], MetadataKeys::of::<EtcdConfigMetadata>(), |s| {
        Ok(Arc::new(EtcdConfigStore::from_spec(s)?) as Arc<dyn ConfigStore>)
    })?;
    r.register::<dyn StateStore>(
        &[TYPE, STATE_TYPE],
        MetadataKeys::of::<EtcdStateMetadata>(),
        |s| Ok(Arc::new(EtcdStateStore::from_spec(s)?) as Arc<dyn StateStore>),
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
        assert_eq!(r.types(Kind::Lock), ["etcd"]);
        assert_eq!(r.types(Kind::Sequencer), ["etcd"]);
        assert_eq!(r.types(Kind::Configuration), ["etcd"]);
        let spec = |t: &str| ComponentSpec::new("c", t).with("endpoints", "127.0.0.1:1");
        r.create::<dyn LockStore>(&spec("etcd")).expect("lock");
        r.create::<dyn Sequencer>(&spec("etcd")).expect("sequencer");
        r.create::<dyn ConfigStore>(
            &ComponentSpec::new("c", "etcd")
                .with("address", r#"["127.0.0.1:2379"]"#)
                .with("timeout", "10"),
        )
        .expect("configuration, Layotto's section keys");
        for kind in [Kind::Lock, Kind::Sequencer, Kind::Configuration] {
            let built = r
                .create_any(kind, &spec("etcd").with("unknownKey", "1"))
                .expect("unknown keys are ignored");
            assert!(
                built.warnings.len() == 1 && built.warnings[0].contains("'unknownKey'"),
                "{kind}: {:?}",
                built.warnings
            );
        }
    }
}
