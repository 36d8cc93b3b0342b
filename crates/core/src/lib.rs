//! Contracts of layotto-rs.
//!
//! One async trait per building block (state, lock, sequencer, configuration, pub/sub, secrets,
//! files, bindings, hello), plain domain types and a single error type. This crate depends on
//! nothing of ours and on no transport (no tonic, no axum) and no backend client: components
//! implement these traits, the runtime calls them, the edge translates them to the wire.

pub mod binding;
pub mod component;
pub mod configuration;
pub mod error;
pub mod file;
pub mod hello;
pub mod lock;
pub mod pubsub;
pub mod secret;
pub mod sequencer;
pub mod state;

pub use component::{ComponentSpec, Health, HealthStatus, Metadata, Registry};
pub use error::{Error, ErrorKind, Result};
