//! The metadata API's view of the runtime: components, attributes, the app connection.

use std::collections::BTreeMap;

use layotto_core::{Error, Result};

use crate::{AppConnection, RegisteredComponent, Runtime, TopicSubscription, lock};

impl Runtime {
    /// Every configured component, in configuration order (as of now: a reload may change
    /// them).
    pub fn components(&self) -> Vec<RegisteredComponent> {
        self.components
            .snapshot()
            .entries()
            .iter()
            .map(|e| e.registered.clone())
            .collect()
    }

    /// `None` when block `kind` has no component, else whether one is named `name` (without
    /// copying the component list, for per-request checks).
    pub fn has_component(&self, kind: layotto_core::Kind, name: &str) -> Option<bool> {
        self.components.has(kind, name)
    }

    /// The attributes set through the metadata API (Dapr `SetMetadata`), sorted by key.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        lock(&self.attributes).clone()
    }

    /// Sets attribute `key` to `value` (Dapr `SetMetadata`); later calls overwrite.
    ///
    /// # Errors
    /// An empty key.
    pub fn set_attribute(&self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::empty_field("key"));
        }
        lock(&self.attributes).insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// The topics the app subscribed to through its app channel.
    pub fn app_subscriptions(&self) -> Vec<TopicSubscription> {
        lock(&self.app_topics).clone()
    }

    /// Records how the app is reached (for the metadata API).
    pub fn set_app_connection(&self, connection: AppConnection) {
        *lock(&self.app_connection) = Some(connection);
    }

    /// How the app is reached, when an app channel is configured.
    pub fn app_connection(&self) -> Option<AppConnection> {
        lock(&self.app_connection).clone()
    }
}
