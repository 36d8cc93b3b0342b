//! Configuration: items addressed by app id, group, label and key, with change subscription.
//!
//! Follows `mosn/layotto:components/configstores/store.go`. A blank group or label takes the
//! store's default. A subscriber receives every later change to the keys it asked for (all keys
//! of the group when it named none); a deleted item arrives with empty `content`.

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::component::Metadata;
use crate::error::Result;

/// One configuration item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigItem {
    /// Key.
    pub key: String,
    /// Content; empty when deleted.
    pub content: String,
    /// Group.
    pub group: String,
    /// Label.
    pub label: String,
    /// Tags.
    pub tags: HashMap<String, String>,
    /// Metadata.
    pub metadata: Metadata,
}

/// Which items a get, delete or subscription addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigQuery {
    /// Owning application.
    pub app_id: String,
    /// Group; blank = store default.
    pub group: String,
    /// Label; blank = store default.
    pub label: String,
    /// Keys; empty = every key of the group and label.
    pub keys: Vec<String>,
    /// Request metadata.
    pub metadata: Metadata,
}

/// A live subscription: batches of changed items. Dropping it unsubscribes.
pub type ConfigChanges = mpsc::Receiver<Vec<ConfigItem>>;

/// `value`, or `default` when `value` is blank: how a store resolves a request's group and
/// label against its defaults.
pub fn or_default(value: &str, default: &str) -> String {
    if value.trim().is_empty() {
        default.to_owned()
    } else {
        value.to_owned()
    }
}

/// A configuration store component.
#[async_trait]
pub trait ConfigStore: Component {
    /// Reads the items matching `query`; absent keys are left out.
    async fn get(&self, query: &ConfigQuery) -> Result<Vec<ConfigItem>>;
    /// Creates or replaces `items` of `app_id`.
    async fn set(&self, app_id: &str, items: Vec<ConfigItem>, metadata: &Metadata) -> Result<()>;
    /// Deletes the keys named by `query`.
    async fn delete(&self, query: &ConfigQuery) -> Result<()>;
    /// Subscribes to later changes of the items matching `query`.
    async fn subscribe(&self, query: &ConfigQuery) -> Result<ConfigChanges>;
}

impl Contract for dyn ConfigStore {
    const KIND: Kind = Kind::Configuration;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
