//! MongoDB components of layotto-rs, in Layotto's and Dapr's document layouts: lock
//! (`{_id, LockOwner, Expire}`), sequencer (`{_id, sequencer_value}`) and state store (Dapr's
//! `state.mongodb`: `{_id, value, _etag, _ttl}`).
//!
//! Upstream's components wrap single-document changes in multi-document transactions and lean on
//! TTL indexes; these run on atomic single-document operations with expiry checked in the
//! queries, so they work on a standalone MongoDB and on FerretDB, which have neither. All read
//! the connection keys of [`config`] and share [`MongoClient`] (the official `mongodb` driver,
//! one connection pool per component), created in `init` and checked with a `ping`. Every call
//! is bounded by `operationTimeout`; an unreachable server fails with
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

pub use client::{DUPLICATE_KEY, MongoClient};
pub use config::{DAPR_DEFAULTS, DEFAULT_TIMEOUT, LAYOTTO_DEFAULTS, MongoConfig};
pub use lock::{EXPIRE_FIELD, MongoLock, MongoLockMetadata, OWNER_FIELD};
pub use sequencer::{MongoSequencer, MongoSequencerMetadata, VALUE_FIELD as SEQUENCER_FIELD};
pub use state::{ETAG_FIELD, MongoStateMetadata, MongoStateStore, TTL_FIELD, VALUE_FIELD};

/// Type string of every MongoDB component, as Layotto's config files name it.
pub const TYPE: &str = "mongo";

/// Dapr's type of the state store (a Component resource's `spec.type`).
pub const STATE_TYPE: &str = "state.mongodb";

/// Registers the MongoDB lock store and sequencer under `mongo`, and the state store under
/// `mongo` and `state.mongodb`.
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn LockStore>(&[TYPE], MetadataKeys::of::<MongoLockMetadata>(), |s| {
        Ok(Arc::new(MongoLock::from_spec(s)?) as Arc<dyn LockStore>)
    })?;
    r.register::<dyn Sequencer>(&[TYPE], MetadataKeys::of::<MongoSequencerMetadata>(), |s| {
        Ok(Arc::new(MongoSequencer::from_spec(s)?) as Arc<dyn Sequencer>)
    })?;
    r.register::<dyn StateStore>(
        &[TYPE, STATE_TYPE],
        MetadataKeys::of::<MongoStateMetadata>(),
        |s| Ok(Arc::new(MongoStateStore::from_spec(s)?) as Arc<dyn StateStore>),
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
        assert_eq!(r.types(Kind::Lock), ["mongo"]);
        assert_eq!(r.types(Kind::Sequencer), ["mongo"]);
        assert_eq!(r.types(Kind::State), ["mongo", "state.mongodb"]);
        // Layotto's config_mongo.json, keys as written (with its two misspelt keys).
        let spec = ComponentSpec::new("c", "mongo")
            .with("mongoHost", "localhost:27017")
            .with("mongoPassword", "")
            .with("username", "")
            .with("databaseName ", "")
            .with("collecttionName", "")
            .with("params", "");
        for kind in [Kind::Lock, Kind::Sequencer] {
            let built = r.create_any(kind, &spec).expect("Layotto's keys");
            assert!(
                built
                    .warnings
                    .iter()
                    .any(|w| w.contains("'collecttionName'")),
                "{kind}: {:?}",
                built.warnings
            );
        }
    }
}
