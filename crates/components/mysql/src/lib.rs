//! MySQL components of layotto-rs (tested against MariaDB): the `mysql` sequencer (ids from a
//! table, segments for WEAK requests), the `snowflake` sequencer (ids made in the sidecar
//! from a worker id leased in MySQL) and Dapr's `state.mysql` state store in daprd's table
//! layout ([`state`]).
//!
//! Both read the connection keys of Layotto's MySQL components (`mysqlHost` / `mysqlUrl` /
//! `connectionString`, `userName`, `password`, `databaseName`, `tableName`; see [`config`])
//! into typed metadata and a validated [`MySqlConfig`], and share [`MySqlClient`], an `sqlx`
//! connection pool opened in `init` (one real round trip; the database is created when
//! missing) whose connections are tested before use and reopened after an outage. Every call
//! is bounded by `timeoutInSeconds`; an unreachable server fails with
//! [`layotto_core::ErrorKind::Unavailable`]. The tables each component creates are documented
//! in [`sequencer`] and [`worker`]. [`register`] adds both types to a
//! [`layotto_core::Registries`].

mod client;
pub mod config;
pub mod idgen;
pub mod sequencer;
pub mod snowflake;
pub mod state;
pub mod worker;

use std::sync::Arc;

use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use client::MySqlClient;
pub use config::{
    CONNECTION_STRING_KEY, ConnectionMetadata, DATABASE_NAME_KEY, DEFAULT_PORT, DEFAULT_TIMEOUT,
    MYSQL_HOST_KEY, MYSQL_URL_KEY, MySqlConfig, PASSWORD_KEY, TABLE_NAME_KEY, TIMEOUT_KEY,
    USER_NAME_KEY,
};
pub use sequencer::{MySqlSequencer, MySqlSequencerMetadata};
pub use snowflake::{SnowflakeMetadata, SnowflakeSequencer};
pub use state::{MySqlStateMetadata, MySqlStateStore};

/// Type string of the MySQL sequencer, as Layotto's config files name it.
pub const MYSQL_TYPE: &str = "mysql";
/// Type string of the snowflake sequencer, as Layotto's config files name it.
pub const SNOWFLAKE_TYPE: &str = "snowflake";
/// Type string of the state store: Dapr's `state.mysql` (`mysql` in a Layotto config's `state`
/// section).
pub const STATE_TYPE: &str = "state.mysql";

/// Registers the `mysql` and `snowflake` sequencers and the `state.mysql` state store.
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn Sequencer>(
        &[MYSQL_TYPE],
        MetadataKeys::of::<MySqlSequencerMetadata>(),
        |s| Ok(Arc::new(MySqlSequencer::from_spec(s)?) as Arc<dyn Sequencer>),
    )?;
    r.register::<dyn Sequencer>(
        &[SNOWFLAKE_TYPE],
        MetadataKeys::of::<SnowflakeMetadata>(),
        |s| Ok(Arc::new(SnowflakeSequencer::from_spec(s)?) as Arc<dyn Sequencer>),
    )?;
    r.register::<dyn StateStore>(
        &[MYSQL_TYPE, STATE_TYPE],
        MetadataKeys::of::<MySqlStateMetadata>(),
        |s| Ok(Arc::new(MySqlStateStore::from_spec(s)?) as Arc<dyn StateStore>),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use layotto_core::{ComponentSpec, Kind};

    use super::*;

    #[test]
    fn registers_both_types_without_io() {
        let mut r = Registries::new();
        register(&mut r).expect("no duplicates");
        assert_eq!(r.types(Kind::Sequencer), ["mysql", "snowflake"]);
        let spec = |t: &str| {
            ComponentSpec::new("c", t)
                .with("mysqlHost", "127.0.0.1:1")
                .with("userName", "u")
                .with("databaseName", "d")
        };
        for t in ["mysql", "snowflake"] {
            r.create::<dyn Sequencer>(&spec(t)).expect(t);
            let built = r
                .create_any(Kind::Sequencer, &spec(t).with("unknownKey", "1"))
                .expect("unknown keys are ignored");
            assert!(
                built.warnings.iter().any(|w| w.contains("'unknownKey'")),
                "{t}: {:?}",
                built.warnings
            );
            // The snowflake defaults (28 time bits from 2022) run out in 2030: one more line.
            let want = if t == "snowflake" { 2 } else { 1 };
            assert_eq!(built.warnings.len(), want, "{t}: {:?}", built.warnings);
        }
    }
}
