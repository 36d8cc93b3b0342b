//! In-memory configuration store with change subscriptions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use layotto_core::configuration::{
    ConfigChanges, ConfigItem, ConfigQuery, ConfigStore, or_default,
};
use layotto_core::metadata::decode;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Metadata, Result};
use tokio::sync::mpsc;

use crate::lock;

/// Component metadata key of the group used when a request leaves it blank.
pub const DEFAULT_GROUP_KEY: &str = "defaultGroup";
/// Component metadata key of the label used when a request leaves it blank.
pub const DEFAULT_LABEL_KEY: &str = "defaultLabel";
/// Capacity (batches) of each subscription's channel.
const SUBSCRIPTION_CAPACITY: usize = 64;

/// Metadata of [`MemoryConfigStore`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemoryConfigMetadata {
    /// `defaultGroup`: the group of requests that leave it blank (default `"default"`).
    pub default_group: Option<String>,
    /// `defaultLabel`: the label of requests that leave it blank (default `"default"`).
    pub default_label: Option<String>,
}

impl ComponentMetadata for MemoryConfigMetadata {}

/// (app id, group, label).
type Scope = (String, String, String);

#[derive(Debug)]
struct Subscriber {
    scope: Scope,
    /// Empty = every key of the scope.
    keys: Vec<String>,
    /// Unbounded hop to a forwarding task: writers never block and batches keep their order.
    tx: mpsc::UnboundedSender<Vec<ConfigItem>>,
}

impl Subscriber {
    fn wants(&self, scope: &Scope, key: &str) -> bool {
        self.scope == *scope && (self.keys.is_empty() || self.keys.iter().any(|k| k == key))
    }
}

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<Scope, BTreeMap<String, ConfigItem>>,
    subscribers: Vec<Subscriber>,
}

impl Inner {
    /// Sends each subscriber the changed items it watches; prunes closed subscriptions.
    fn notify(&mut self, scope: &Scope, changed: &[ConfigItem]) {
        self.subscribers.retain(|s| !s.tx.is_closed());
        for s in &self.subscribers {
            let batch: Vec<ConfigItem> = changed
                .iter()
                .filter(|i| s.wants(scope, &i.key))
                .cloned()
                .collect();
            if !batch.is_empty() {
                // A send fails only when the forwarder has ended, i.e. the receiver is gone.
                let _ = s.tx.send(batch);
            }
        }
    }
}

/// Configuration store kept in process memory (type `in-memory`).
///
/// Items are addressed by (app id, group, label, key); a blank group or label takes metadata
/// `defaultGroup` / `defaultLabel` (both default `"default"`). Subscribers get every later
/// change of the keys they asked for, in order; deleted items arrive with empty content.
#[derive(Debug)]
pub struct MemoryConfigStore {
    name: String,
    default_group: String,
    default_label: String,
    inner: Mutex<Inner>,
}

impl MemoryConfigStore {
    /// An empty store named `name` with the given defaults for blank groups and labels.
    pub fn new(
        name: impl Into<String>,
        default_group: impl Into<String>,
        default_label: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            default_group: default_group.into(),
            default_label: default_label.into(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Factory: [`MemoryConfigMetadata`] (`defaultGroup`, `defaultLabel`, both optional).
    ///
    /// # Errors
    /// None today; the signature matches every factory.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: MemoryConfigMetadata = decode(spec)?;
        Ok(Self::new(
            spec.name.clone(),
            meta.default_group.as_deref().unwrap_or("default").trim(),
            meta.default_label.as_deref().unwrap_or("default").trim(),
        ))
    }

    fn scope(&self, app_id: &str, group: &str, label: &str) -> Scope {
        (
            app_id.to_owned(),
            or_default(group, &self.default_group),
            or_default(label, &self.default_label),
        )
    }

    fn query_scope(&self, q: &ConfigQuery) -> Scope {
        self.scope(&q.app_id, &q.group, &q.label)
    }
}

#[async_trait]
impl Component for MemoryConfigStore {
    /// Ends every subscription: its channel closes once the changes already sent are read.
    async fn close(&self) -> Result<()> {
        lock(&self.inner).subscribers.clear();
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    /// The items of the query's scope named by `keys` (all when empty), sorted by key; absent
    /// keys are left out. Never fails.
    async fn get(&self, query: &ConfigQuery) -> Result<Vec<ConfigItem>> {
        let scope = self.query_scope(query);
        let inner = lock(&self.inner);
        let Some(items) = inner.items.get(&scope) else {
            return Ok(Vec::new());
        };
        if query.keys.is_empty() {
            return Ok(items.values().cloned().collect());
        }
        let mut keys: Vec<&String> = query.keys.iter().collect();
        keys.sort();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter_map(|k| items.get(k).cloned())
            .collect())
    }

    /// Creates or replaces `items`; blank group/label take the defaults. Errors: invalid
    /// argument naming the index of an item with an empty key (nothing is written then).
    async fn set(&self, app_id: &str, items: Vec<ConfigItem>, _metadata: &Metadata) -> Result<()> {
        if let Some(i) = items.iter().position(|i| i.key.trim().is_empty()) {
            return Err(Error::invalid(format!(
                "configuration store '{}': item {i} has an empty key",
                self.name
            )));
        }
        let mut inner = lock(&self.inner);
        let mut by_scope: Vec<(Scope, Vec<ConfigItem>)> = Vec::new();
        for mut item in items {
            let scope = self.scope(app_id, &item.group, &item.label);
            item.group.clone_from(&scope.1);
            item.label.clone_from(&scope.2);
            inner
                .items
                .entry(scope.clone())
                .or_default()
                .insert(item.key.clone(), item.clone());
            match by_scope.iter_mut().find(|(s, _)| *s == scope) {
                Some((_, v)) => v.push(item),
                None => by_scope.push((scope, vec![item])),
            }
        }
        for (scope, changed) in by_scope {
            inner.notify(&scope, &changed);
        }
        Ok(())
    }

    /// Deletes the keys named by `query` (all of its group and label when empty); absent keys
    /// are ignored. Subscribers get the deleted items with empty content. Never fails.
    async fn delete(&self, query: &ConfigQuery) -> Result<()> {
        let scope = self.query_scope(query);
        let mut inner = lock(&self.inner);
        let Some(items) = inner.items.get_mut(&scope) else {
            return Ok(());
        };
        let removed: Vec<ConfigItem> = if query.keys.is_empty() {
            std::mem::take(items).into_values().collect()
        } else {
            query.keys.iter().filter_map(|k| items.remove(k)).collect()
        };
        if items.is_empty() {
            inner.items.remove(&scope);
        }
        let changed: Vec<ConfigItem> = removed
            .into_iter()
            .map(|i| ConfigItem {
                key: i.key,
                group: i.group,
                label: i.label,
                ..Default::default()
            })
            .collect();
        if !changed.is_empty() {
            inner.notify(&scope, &changed);
        }
        Ok(())
    }

    /// Subscribes to later changes of the query's keys (all keys of its scope when empty).
    /// Must be called within a Tokio runtime. Never fails.
    async fn subscribe(&self, query: &ConfigQuery) -> Result<ConfigChanges> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let (utx, mut urx) = mpsc::unbounded_channel::<Vec<ConfigItem>>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tx.closed() => break,
                    batch = urx.recv() => match batch {
                        Some(b) => {
                            if tx.send(b).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                }
            }
        });
        let sub = Subscriber {
            scope: self.query_scope(query),
            keys: query.keys.clone(),
            tx: utx,
        };
        let mut inner = lock(&self.inner);
        inner.subscribers.retain(|s| !s.tx.is_closed());
        inner.subscribers.push(sub);
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn item(key: &str, content: &str) -> ConfigItem {
        ConfigItem {
            key: key.into(),
            content: content.into(),
            ..Default::default()
        }
    }

    fn query(keys: &[&str]) -> ConfigQuery {
        ConfigQuery {
            app_id: "app".into(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..Default::default()
        }
    }

    async fn next(rx: &mut ConfigChanges) -> Vec<ConfigItem> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("change within 5 s")
            .expect("channel open")
    }

    #[tokio::test]
    async fn get_set_delete_with_defaults() {
        let spec = ComponentSpec::new("c", "in-memory").with(DEFAULT_GROUP_KEY, "g");
        let s = MemoryConfigStore::from_spec(&spec).expect("spec");
        let md = Metadata::new();
        s.set("app", vec![item("b", "2"), item("a", "1")], &md)
            .await
            .expect("set");
        let all = s.get(&query(&[])).await.expect("get");
        let keys: Vec<_> = all.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(all[0].group, "g");
        assert_eq!(all[0].label, "default");
        let explicit = ConfigQuery {
            group: "g".into(),
            label: "default".into(),
            ..query(&["b", "zzz"])
        };
        let got = s.get(&explicit).await.expect("get");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].content, "2");
        let other_app = ConfigQuery {
            app_id: "other".into(),
            ..query(&[])
        };
        assert!(s.get(&other_app).await.expect("get").is_empty());

        s.delete(&query(&["a"])).await.expect("delete");
        assert_eq!(s.get(&query(&[])).await.expect("get").len(), 1);
        s.delete(&query(&[])).await.expect("delete all");
        assert!(s.get(&query(&[])).await.expect("get").is_empty());

        let e = s
            .set("app", vec![item("", "x")], &md)
            .await
            .expect_err("empty key");
        assert!(e.message.contains("empty key"), "{e}");
    }

    #[tokio::test]
    async fn subscribers_receive_changes_and_deletions() {
        let s = MemoryConfigStore::new("c", "default", "default");
        let md = Metadata::new();
        let mut only_a = s.subscribe(&query(&["a"])).await.expect("sub");
        let mut all = s.subscribe(&query(&[])).await.expect("sub");
        let dropped = s.subscribe(&query(&[])).await.expect("sub");
        drop(dropped);

        s.set("app", vec![item("a", "1"), item("b", "2")], &md)
            .await
            .expect("set");
        let batch = next(&mut only_a).await;
        assert_eq!(
            batch,
            vec![ConfigItem {
                group: "default".into(),
                label: "default".into(),
                ..item("a", "1")
            }]
        );
        assert_eq!(next(&mut all).await.len(), 2);

        // Another app's change is not seen.
        s.set("other", vec![item("a", "x")], &md)
            .await
            .expect("set");
        s.delete(&query(&["a"])).await.expect("delete");
        let batch = next(&mut only_a).await;
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].key, "a");
        assert_eq!(batch[0].content, "");
        let batch = next(&mut all).await;
        assert_eq!(
            (batch[0].key.as_str(), batch[0].content.as_str()),
            ("a", "")
        );

        // More changes than the channel holds are all delivered, in order.
        for i in 0..(SUBSCRIPTION_CAPACITY * 2) {
            s.set("app", vec![item("b", &i.to_string())], &md)
                .await
                .expect("set");
        }
        for i in 0..(SUBSCRIPTION_CAPACITY * 2) {
            assert_eq!(next(&mut all).await[0].content, i.to_string());
        }
        assert!(lock(&s.inner).subscribers.len() <= 2);

        // Closing the store ends the subscriptions.
        s.close().await.expect("close");
        let end = tokio::time::timeout(Duration::from_secs(5), all.recv()).await;
        assert_eq!(end.expect("ends within 5 s"), None);
    }
}
