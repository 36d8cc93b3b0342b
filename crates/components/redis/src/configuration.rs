//! Redis configuration store with change notifications over Redis pub/sub.
//!
//! Layout: the items of one (app id, group, label) live in one hash
//! `config|||<app_id>|<group>|<label>`; the field is the item key and the value a JSON object
//! `{"content": "...", "tags": {...}, "metadata": {...}}`. Every `set` and `delete` publishes the
//! changed items on the channel of the same name as a JSON array of
//! `{"key": "...", "content": "...", "tags": {...}, "metadata": {...}}` (a deleted item has empty
//! content). Subscribers listen on that channel over a dedicated connection, so they also see
//! changes made by other sidecars sharing the Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use futures::StreamExt;
use layotto_core::configuration::{
    ConfigChanges, ConfigItem, ConfigQuery, ConfigStore, or_default,
};
use layotto_core::pubsub::retry_delay;
use layotto_core::{Component, ComponentSpec, Error, Health, Metadata, Result};
use redis::Script;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::RedisClient;
use crate::config::{RedisConfig, decode_redis, redis_metadata};

/// Component metadata key of the group used when a request leaves it blank.
pub const DEFAULT_GROUP_KEY: &str = "defaultGroup";
/// Component metadata key of the label used when a request leaves it blank.
pub const DEFAULT_LABEL_KEY: &str = "defaultLabel";

redis_metadata! {
    /// Metadata of [`RedisConfigStore`]: the connection keys plus `defaultGroup` and
    /// `defaultLabel`.
    pub struct RedisConfigMetadata {
        /// `defaultGroup`: the group of requests that leave it blank (default `"default"`).
        pub default_group: Option<String>,
        /// `defaultLabel`: the label of requests that leave it blank (default `"default"`).
        pub default_label: Option<String>,
    }
}

/// Capacity (batches) of each subscription's channel.
const SUBSCRIPTION_CAPACITY: usize = 64;

/// Deletes ARGV (every field when empty) from hash KEYS[1]; returns the fields it removed.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local fields = ARGV
if #fields == 0 then fields = redis.call('HKEYS', KEYS[1]) end
local removed = {}
for _, f in ipairs(fields) do
  if redis.call('HDEL', KEYS[1], f) == 1 then table.insert(removed, f) end
end
return removed
",
    )
});

/// The stored value of one item.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tags: HashMap<String, String>,
    #[serde(default)]
    metadata: Metadata,
}

/// One entry of a change notification.
#[derive(Debug, Serialize, Deserialize)]
struct Change {
    key: String,
    #[serde(flatten)]
    value: Stored,
}

/// (app id, group, label) with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Scope {
    app_id: String,
    group: String,
    label: String,
}

impl Scope {
    /// Hash key and notification channel.
    fn key(&self) -> String {
        format!("config|||{}|{}|{}", self.app_id, self.group, self.label)
    }

    fn item(&self, key: String, s: Stored) -> ConfigItem {
        ConfigItem {
            key,
            content: s.content,
            group: self.group.clone(),
            label: self.label.clone(),
            tags: s.tags,
            metadata: s.metadata,
        }
    }
}

/// Configuration store on Redis (types `redis`, `configuration.redis`). See the module
/// documentation for the layout. A blank group or label takes metadata `defaultGroup` /
/// `defaultLabel` (both default `"default"`).
#[derive(Debug)]
pub struct RedisConfigStore {
    client: Arc<RedisClient>,
    default_group: String,
    default_label: String,
    /// Parent of every subscription's token; cancelled by `close`.
    closed: CancellationToken,
}

impl RedisConfigStore {
    /// Factory: [`RedisConfigMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: RedisConfigMetadata = decode_redis(spec)?;
        let cfg = RedisConfig::from_meta(spec, &meta.connection())?;
        cfg.refuse_cluster(
            spec,
            "its change subscriptions use a pub/sub connection to one server",
        )?;
        let default = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned()
        };
        Ok(Self {
            client: Arc::new(RedisClient::new(
                format!("configuration store '{}'", spec.name),
                cfg,
            )),
            default_group: default(meta.default_group.as_deref()),
            default_label: default(meta.default_label.as_deref()),
            closed: CancellationToken::new(),
        })
    }

    fn scope(&self, app_id: &str, group: &str, label: &str) -> Scope {
        Scope {
            app_id: app_id.to_owned(),
            group: or_default(group, &self.default_group),
            label: or_default(label, &self.default_label),
        }
    }

    fn query_scope(&self, q: &ConfigQuery) -> Scope {
        self.scope(&q.app_id, &q.group, &q.label)
    }

    fn json<T: Serialize>(&self, v: &T) -> Result<String> {
        serde_json::to_string(v).map_err(|e| self.client.err(Error::internal(e.to_string())))
    }

    async fn publish(&self, scope: &Scope, changes: &[Change]) -> Result<()> {
        let payload = self.json(&changes)?;
        let channel = scope.key();
        let _receivers: i64 = self
            .client
            .call("publish change", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Component for RedisConfigStore {
    /// Connects. Errors: unavailable when Redis cannot be reached within the timeouts.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Ends every subscription and drops the connection.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for RedisConfigStore {
    /// The items of the query's scope named by `keys` (all when empty), sorted by key; absent
    /// keys are left out. Errors: unavailable; internal for a stored value that is not ours.
    async fn get(&self, query: &ConfigQuery) -> Result<Vec<ConfigItem>> {
        let scope = self.query_scope(query);
        let hash = scope.key();
        let raw: BTreeMap<String, String> = if query.keys.is_empty() {
            self.client
                .call("get", |mut c| async move {
                    redis::cmd("HGETALL").arg(hash).query_async(&mut c).await
                })
                .await?
        } else {
            let mut keys = query.keys.clone();
            keys.sort();
            keys.dedup();
            let args = keys.clone();
            let values: Vec<Option<String>> = self
                .client
                .call("get", |mut c| async move {
                    redis::cmd("HMGET")
                        .arg(hash)
                        .arg(args)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            keys.into_iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect()
        };
        raw.into_iter()
            .map(|(k, v)| {
                let stored: Stored = serde_json::from_str(&v).map_err(|e| {
                    self.client.err(Error::internal(format!(
                        "item '{k}' of {} is not a stored configuration item: {e}",
                        scope.key()
                    )))
                })?;
                Ok(scope.item(k, stored))
            })
            .collect()
    }

    /// Creates or replaces `items` (one atomic HSET per scope), then notifies subscribers.
    /// Errors: invalid argument naming the index of an item with an empty key (nothing is
    /// written then); unavailable.
    async fn set(&self, app_id: &str, items: Vec<ConfigItem>, _metadata: &Metadata) -> Result<()> {
        if let Some(i) = items.iter().position(|i| i.key.trim().is_empty()) {
            return Err(self
                .client
                .err(Error::invalid(format!("item {i} has an empty key"))));
        }
        let mut by_scope: BTreeMap<Scope, Vec<Change>> = BTreeMap::new();
        for item in items {
            by_scope
                .entry(self.scope(app_id, &item.group, &item.label))
                .or_default()
                .push(Change {
                    key: item.key,
                    value: Stored {
                        content: item.content,
                        tags: item.tags,
                        metadata: item.metadata,
                    },
                });
        }
        for (scope, changes) in by_scope {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(scope.key());
            for c in &changes {
                cmd.arg(&c.key).arg(self.json(&c.value)?);
            }
            let _added: i64 = self
                .client
                .call("set", |mut c| async move { cmd.query_async(&mut c).await })
                .await?;
            self.publish(&scope, &changes).await?;
        }
        Ok(())
    }

    /// Deletes the keys named by `query` (all of its group and label when empty); absent keys
    /// are ignored. Subscribers get the deleted items with empty content. Errors: unavailable.
    async fn delete(&self, query: &ConfigQuery) -> Result<()> {
        let scope = self.query_scope(query);
        let mut inv = DELETE.prepare_invoke();
        inv.key(scope.key());
        for k in &query.keys {
            inv.arg(k);
        }
        let removed: Vec<String> = self
            .client
            .call(
                "delete",
                |mut c| async move { inv.invoke_async(&mut c).await },
            )
            .await?;
        if removed.is_empty() {
            return Ok(());
        }
        let changes: Vec<Change> = removed
            .into_iter()
            .map(|key| Change {
                key,
                value: Stored::default(),
            })
            .collect();
        self.publish(&scope, &changes).await
    }

    /// Subscribes on a dedicated pub/sub connection (re-established with backoff when lost);
    /// ends when the receiver is dropped. Must be called within a Tokio runtime. Errors:
    /// unavailable when Redis cannot be reached.
    async fn subscribe(&self, query: &ConfigQuery) -> Result<ConfigChanges> {
        let scope = self.query_scope(query);
        let channel = scope.key();
        let conn = subscribed(&self.client, &channel).await?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let watcher = Watcher {
            client: Arc::clone(&self.client),
            scope,
            keys: query.keys.clone(),
            tx,
            cancel: self.closed.child_token(),
        };
        tokio::spawn(watcher.run(conn));
        Ok(rx)
    }
}

/// A pub/sub connection subscribed to `channel`.
async fn subscribed(client: &RedisClient, channel: &str) -> Result<redis::aio::PubSub> {
    let mut conn = client.pubsub_connection().await?;
    let timeout = client.config().call_timeout();
    match tokio::time::timeout(timeout, conn.subscribe(channel)).await {
        Err(_) => Err(client.timeout_err("subscribe")),
        Ok(Err(e)) => Err(client.map_err(&e).context("subscribe")),
        Ok(Ok(())) => Ok(conn),
    }
}

/// Forwards the notifications of one subscription.
struct Watcher {
    client: Arc<RedisClient>,
    scope: Scope,
    /// Empty = every key of the scope.
    keys: Vec<String>,
    tx: mpsc::Sender<Vec<ConfigItem>>,
    /// Cancelled when the store is closed.
    cancel: CancellationToken,
}

impl Watcher {
    async fn run(self, conn: redis::aio::PubSub) {
        let channel = self.scope.key();
        let mut conn = Some(conn);
        let mut failures = 0u32;
        loop {
            let current = match conn.take() {
                Some(c) => c,
                None => {
                    // Reconnect with backoff; changes made meanwhile are not replayed.
                    tokio::select! {
                        () = self.tx.closed() => return,
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(retry_delay(failures.max(1))) => {}
                    }
                    match subscribed(&self.client, &channel).await {
                        Ok(c) => {
                            failures = 0;
                            c
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            tracing::warn!(%channel, error = %e, "configuration subscription: reconnect failed");
                            continue;
                        }
                    }
                }
            };
            let mut messages = current.into_on_message();
            loop {
                let msg = tokio::select! {
                    () = self.tx.closed() => return,
                    () = self.cancel.cancelled() => return,
                    m = messages.next() => m,
                };
                let Some(msg) = msg else {
                    tracing::warn!(%channel, "configuration subscription: connection lost; reconnecting");
                    failures = failures.saturating_add(1);
                    break;
                };
                let batch = self.batch(msg.get_payload_bytes());
                if batch.is_empty() {
                    continue;
                }
                tokio::select! {
                    () = self.tx.closed() => return,
                    r = self.tx.send(batch) => if r.is_err() { return },
                }
            }
        }
    }

    fn batch(&self, payload: &[u8]) -> Vec<ConfigItem> {
        let changes: Vec<Change> = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(channel = %self.scope.key(), error = %e, "ignoring a malformed configuration notification");
                return Vec::new();
            }
        };
        changes
            .into_iter()
            .filter(|c| self.keys.is_empty() || self.keys.contains(&c.key))
            .map(|c| self.scope.item(c.key, c.value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_layout() {
        let s = RedisConfigStore::from_spec(
            &ComponentSpec::new("c", "configuration.redis")
                .with("redisHost", "127.0.0.1:6379")
                .with(DEFAULT_GROUP_KEY, "g"),
        )
        .expect("valid");
        let scope = s.scope("app", "", " ");
        assert_eq!(scope.key(), "config|||app|g|default");
        // An unknown key is no error, only a warning naming it.
        let spec = ComponentSpec::new("c", "redis")
            .with("redisHost", "127.0.0.1:6379")
            .with("bogus", "1");
        RedisConfigStore::from_spec(&spec).expect("unknown keys are ignored");
        let w = layotto_core::MetadataKeys::of::<RedisConfigMetadata>().warnings_with(
            &spec.metadata,
            layotto_core::Kind::Configuration.info().runtime_keys,
        );
        assert!(w.len() == 1 && w[0].contains("'bogus'"), "{w:?}");
    }
}
