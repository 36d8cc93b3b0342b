//! Configuration stores: a blank app id means this app.

use layotto_core::configuration::{ConfigChanges, ConfigItem, ConfigQuery, ConfigStore};
use layotto_core::{Error, Metadata, Result};

use crate::Runtime;

impl Runtime {
    fn config_query(&self, mut q: ConfigQuery) -> ConfigQuery {
        if q.app_id.is_empty() {
            q.app_id.clone_from(&self.app_id);
        }
        q
    }

    /// Reads configuration items.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn get_configuration(
        &self,
        store: &str,
        query: ConfigQuery,
    ) -> Result<Vec<ConfigItem>> {
        let c = self.components.target::<dyn ConfigStore>(store)?;
        let q = self.config_query(query);
        c.run("get", || c.component.get(&q)).await
    }

    /// Saves configuration items of `app_id` (blank = this app).
    ///
    /// # Errors
    /// Unknown store, an item with an empty key, component failure.
    pub async fn save_configuration(
        &self,
        store: &str,
        app_id: &str,
        items: Vec<ConfigItem>,
        metadata: &Metadata,
    ) -> Result<()> {
        let c = self.components.target::<dyn ConfigStore>(store)?;
        if items.iter().any(|i| i.key.is_empty()) {
            return Err(Error::empty_field("items.key"));
        }
        let app = if app_id.is_empty() {
            &self.app_id
        } else {
            app_id
        };
        c.run("set", || c.component.set(app, items.clone(), metadata))
            .await
    }

    /// Deletes configuration items.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn delete_configuration(&self, store: &str, query: ConfigQuery) -> Result<()> {
        let c = self.components.target::<dyn ConfigStore>(store)?;
        let q = self.config_query(query);
        c.run("delete", || c.component.delete(&q)).await
    }

    /// Subscribes to changes.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn subscribe_configuration(
        &self,
        store: &str,
        query: ConfigQuery,
    ) -> Result<ConfigChanges> {
        let c = self.components.target::<dyn ConfigStore>(store)?;
        let q = self.config_query(query);
        c.run("subscribe", || c.component.subscribe(&q)).await
    }
}
