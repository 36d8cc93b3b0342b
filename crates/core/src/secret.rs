//! Secrets: read-only named secrets, each a map of strings.
//!
//! Follows the Dapr secret store contract (`GetSecret`, `BulkGetSecret`).

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::collections::HashMap;

use async_trait::async_trait;

use crate::component::Metadata;
use crate::error::Result;

/// A secret: one or more named values.
pub type Secret = HashMap<String, String>;

/// A secret store component.
#[async_trait]
pub trait SecretStore: Component {
    /// The secret named `key`; [`crate::ErrorKind::NotFound`] if there is none.
    async fn get(&self, key: &str, metadata: &Metadata) -> Result<Secret>;
    /// Every secret of the store, by name.
    async fn bulk_get(&self, metadata: &Metadata) -> Result<HashMap<String, Secret>>;
}

impl Contract for dyn SecretStore {
    const KIND: Kind = Kind::Secret;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
