//! Contracts of layotto-rs.
//!
//! One async trait per building block (state, lock, sequencer, configuration, pub/sub, secrets,
//! files, bindings, hello), plain domain types and a single error type. This crate depends on
//! nothing of ours and on no transport (no tonic, no axum) and no backend client: components
//! implement these traits, the runtime calls them, the edge translates them to the wire.
//!
//! [`block`] is the block table (each building block declared once); [`Component`] is the
//! supertrait of every contract (lifecycle and [`Feature`]s); [`Registries`] builds components
//! by type string; [`metadata`] decodes component metadata into typed structs.

pub mod binding;
pub mod block;
pub mod component;
pub mod configuration;
pub mod error;
pub mod file;
pub mod hello;
pub mod lock;
pub mod metadata;
pub mod nameresolution;
pub mod pubsub;
pub mod query;
pub mod secret;
pub mod sequencer;
pub mod state;

pub use block::{BLOCKS, BlockInfo, Kind};
pub use component::{
    Built, Component, ComponentSpec, Contract, Feature, Health, HealthStatus, Metadata, Registries,
    Registry,
};
pub use error::{Error, ErrorKind, Result};
pub use metadata::{ComponentMetadata, MetadataKeys};
pub use nameresolution::{NameResolver, Registration, ResolveRequest};
