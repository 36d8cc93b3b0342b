//! PostgreSQL components of layotto-rs: Dapr's `state.postgresql` state store in daprd's v1
//! and v2 table layouts ([`state`]; the query API on v1), over an `sqlx` pool ([`client`]) opened in `init`.
//! [`register`] adds the types `postgresql` and `postgres` (Dapr's `state.postgresql` and
//! `state.postgres`) to a [`layotto_core::Registries`].

pub mod client;
mod query;
pub mod state;

use std::sync::Arc;

use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use client::{PgClient, PgConfig, parse_connection_string};
pub use state::{PgStateMetadata, PgStateStore};

/// Type strings of the state store (Dapr's `state.postgresql` and its alias).
pub const STATE_TYPES: [&str; 2] = ["postgresql", "postgres"];

/// Registers the `postgresql` state store (and its alias `postgres`).
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn StateStore>(&STATE_TYPES, MetadataKeys::of::<PgStateMetadata>(), |s| {
        Ok(Arc::new(PgStateStore::from_spec(s)?) as Arc<dyn StateStore>)
    })
}
