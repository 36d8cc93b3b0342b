//! Secrets: read-only named secrets, each a map of strings.
//!
//! Follows the Dapr secret store contract (`GetSecret`, `BulkGetSecret`).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::component::{Health, Metadata};
use crate::error::Result;

/// A secret: one or more named values.
pub type Secret = HashMap<String, String>;

/// A secret store component.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Loads or connects.
    async fn init(&self) -> Result<()> {
        Ok(())
    }
    /// The secret named `key`; [`crate::ErrorKind::NotFound`] if there is none.
    async fn get(&self, key: &str, metadata: &Metadata) -> Result<Secret>;
    /// Every secret of the store, by name.
    async fn bulk_get(&self, metadata: &Metadata) -> Result<HashMap<String, Secret>>;
    /// Health.
    async fn health(&self) -> Health {
        Health::up()
    }
}
