//! PostgreSQL components of layotto-rs: Dapr's `state.postgresql` state store in daprd's v1
//! and v2 table layouts ([`state`]; the query API on v1) and Dapr's `configuration.postgresql`
//! ([`configuration`]: a user's table, changes by `LISTEN`/`NOTIFY`), over an `sqlx` pool
//! ([`client`]) opened in `init`. [`register`] adds the types `postgresql` and `postgres` of both
//! blocks to a [`layotto_core::Registries`].

pub mod client;
pub mod configuration;
mod query;
pub mod state;

use std::sync::Arc;

use layotto_core::configuration::ConfigStore;
use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use client::{PgClient, PgConfig, parse_connection_string};
pub use configuration::{PgConfigMetadata, PgConfigStore};
pub use state::{PgStateMetadata, PgStateStore};

/// Type strings of the state and configuration stores (Dapr's `state.postgresql`,
/// `configuration.postgresql` and their `postgres` aliases).
pub const TYPES: [&str; 2] = ["postgresql", "postgres"];

/// Registers the `postgresql` state and configuration stores (and their alias `postgres`).
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn StateStore>(&TYPES, MetadataKeys::of::<PgStateMetadata>(), |s| {
        Ok(Arc::new(PgStateStore::from_spec(s)?) as Arc<dyn StateStore>)
    })?;
    r.register::<dyn ConfigStore>(&TYPES, MetadataKeys::of::<PgConfigMetadata>(), |s| {
        Ok(Arc::new(PgConfigStore::from_spec(s)?) as Arc<dyn ConfigStore>)
    })
}
