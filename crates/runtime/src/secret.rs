//! Secret stores.

use std::collections::HashMap;

use layotto_core::secret::{Secret, SecretStore};
use layotto_core::{Error, Metadata, Result};

use crate::Runtime;

impl Runtime {
    /// The secret `key` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty key, a key the store's secret scope denies (`PermissionDenied`,
    /// daprd's message `access denied by policy to get "key" from "store"`), not found,
    /// component failure.
    pub async fn get_secret(&self, store: &str, key: &str, metadata: &Metadata) -> Result<Secret> {
        let s = self.components.target::<dyn SecretStore>(store)?;
        if key.is_empty() {
            return Err(Error::empty_field("key"));
        }
        if !self.secret_allowed(store, key) {
            return Err(Error::permission_denied(format!(
                "access denied by policy to get {key:?} from {store:?}"
            )));
        }
        s.run("get", || s.component.get(key, metadata)).await
    }

    /// Every secret of `store` its secret scope allows; denied keys are left out, as daprd
    /// does.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn get_bulk_secret(
        &self,
        store: &str,
        metadata: &Metadata,
    ) -> Result<HashMap<String, Secret>> {
        let s = self.components.target::<dyn SecretStore>(store)?;
        let mut all = s.run("bulk_get", || s.component.bulk_get(metadata)).await?;
        all.retain(|key, _| self.secret_allowed(store, key));
        Ok(all)
    }

    /// Whether the secrets API may hand out `key` of `store` (Dapr's `spec.secrets.scopes`).
    /// Secret references in component metadata are resolved without this check, as in daprd.
    fn secret_allowed(&self, store: &str, key: &str) -> bool {
        self.secret_scopes.get(store).is_none_or(|s| s.allows(key))
    }
}
