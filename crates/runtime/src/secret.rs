//! Secret stores.

use std::collections::HashMap;

use layotto_core::secret::{Secret, SecretStore};
use layotto_core::{Error, Metadata, Result};

use crate::Runtime;

impl Runtime {
    /// The secret `key` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty key, not found, component failure.
    pub async fn get_secret(&self, store: &str, key: &str, metadata: &Metadata) -> Result<Secret> {
        let s = self.components.target::<dyn SecretStore>(store)?;
        if key.is_empty() {
            return Err(Error::empty_field("key"));
        }
        s.run("get", s.component.get(key, metadata)).await
    }

    /// Every secret of `store`.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn get_bulk_secret(
        &self,
        store: &str,
        metadata: &Metadata,
    ) -> Result<HashMap<String, Secret>> {
        let s = self.components.target::<dyn SecretStore>(store)?;
        s.run("bulk_get", s.component.bulk_get(metadata)).await
    }
}
