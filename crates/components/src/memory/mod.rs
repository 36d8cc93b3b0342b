//! In-memory components (type `in-memory`, alias `memory`): state, lock, sequencer,
//! configuration and pub/sub. Everything lives in process memory and is lost on restart; they
//! serve development, tests and the conformance suite.

mod configuration;
mod lock;
mod pubsub;
mod sequencer;
mod state;

pub use configuration::{DEFAULT_GROUP_KEY, DEFAULT_LABEL_KEY, MemoryConfigStore};
pub use lock::MemoryLock;
pub use pubsub::{
    CONCURRENCY_KEY, DEFAULT_CONCURRENCY, DEFAULT_GROUP, MAX_CONCURRENCY, MemoryPubSub,
};
pub use sequencer::MemorySequencer;
pub use state::{MemoryStateStore, TTL_EXPIRE_TIME_KEY};

/// The type string of every in-memory component.
pub const TYPE: &str = "in-memory";
/// The alias type string of every in-memory component.
pub const TYPE_ALIAS: &str = "memory";
