//! etcd configuration store in Layotto's layout
//! (`mosn/layotto:components/configstores/etcdv3/etcdv3.go`).
//!
//! - An item is the key `/<appId>/<group>/<label>/<key>` holding its content (Layotto's
//!   `ParseKey`); a blank group or label is `default` (Layotto's `GetDefaultGroup` /
//!   `GetDefaultLabel`).
//! - A tag is the key `/<appId>/<group>/<label>/<key>/<tag name>` holding the tag value, which
//!   Layotto's `Get` reads back as that tag (`Tags[segment] = value`). Layotto's own `Set`
//!   writes the tag *value* as the segment and the item's content as the value, so its tags read
//!   back (there and here alike) as `{value: content}`.
//! - `get` reads the scope's range and keeps items of four segments (tags: five); `*` as group
//!   or label matches any, as Layotto's `All`.
//! - `set` writes one item, its tags and the removal of its stale tags in one transaction
//!   (applied only if no tag of the item changed since they were read, else retried);
//!   `delete` removes the item and its tags (all items of the group and label when no key is
//!   named). Keys, groups, labels, app ids and tag names must not contain `/`.
//! - `subscribe` watches the scope's prefix from the revision it was created at; a watch lost
//!   with the connection is re-established from the last revision seen, so changes made during
//!   an outage are delivered after it (unless etcd compacted them away meanwhile).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Compare, CompareOp, DeleteOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use layotto_core::configuration::{
    ConfigChanges, ConfigItem, ConfigQuery, ConfigStore, or_default,
};
use layotto_core::metadata::{GoDuration, decode, spec_error};
use layotto_core::pubsub::retry_delay;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Metadata, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::EtcdClient;
use crate::config::{DIAL_TIMEOUT_KEY, ENDPOINTS_KEY, EtcdConfig, etcd_metadata, split_list};

/// Metadata key of Layotto's configuration store section: the etcd endpoints, a JSON array
/// (`"address": ["127.0.0.1:2379"]`) or a `;`/`,`-separated list; same as `endpoints`.
pub const ADDRESS_KEY: &str = "address";
/// Metadata key of Layotto's configuration store section: the dial timeout in seconds (default
/// 10, Layotto's); same as `dialTimeout`.
pub const TIMEOUT_KEY: &str = "timeout";
/// Group and label of requests that leave them blank.
pub const DEFAULT_GROUP: &str = "default";
/// Layotto's wildcard for a group or label in `get`.
pub const ALL: &str = "*";
/// The configuration store's default timeout (Layotto's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Capacity (batches) of each subscription's channel.
const SUBSCRIPTION_CAPACITY: usize = 64;

etcd_metadata! {
    /// Metadata of [`EtcdConfigStore`]: the connection keys plus Layotto's section keys
    /// `address` and `timeout`.
    pub struct EtcdConfigMetadata {
        /// `address`: the endpoints (Layotto's configuration store key).
        pub address: Option<String>,
        /// `timeout`: dial timeout, seconds (Layotto's configuration store key, default 10).
        pub timeout: Option<GoDuration>,
    }
}

impl ComponentMetadata for EtcdConfigMetadata {}

/// Configuration store on etcd (type `etcd`). See the module
/// documentation for the layout.
#[derive(Debug)]
pub struct EtcdConfigStore {
    client: Arc<EtcdClient>,
    /// Parent of every subscription's token; cancelled by `close`.
    closed: CancellationToken,
}

/// (app id, group, label) of one request, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Scope {
    app_id: String,
    group: String,
    label: String,
}

/// One etcd key of the layout, split.
struct Parsed<'a> {
    group: &'a str,
    label: &'a str,
    key: &'a str,
    tag: Option<&'a str>,
}

impl Scope {
    /// The range prefix: up to the first wildcard.
    fn prefix(&self) -> String {
        let mut p = format!("/{}/", self.app_id);
        if self.group != ALL {
            p.push_str(&self.group);
            p.push('/');
            if self.label != ALL {
                p.push_str(&self.label);
                p.push('/');
            }
        }
        p
    }

    fn item_key(&self, key: &str) -> String {
        format!("/{}/{}/{}/{key}", self.app_id, self.group, self.label)
    }

    /// `raw` split into the layout when it lies in this scope.
    fn parse<'a>(&self, raw: &'a str) -> Option<Parsed<'a>> {
        let segs: Vec<&str> = raw.strip_prefix('/')?.split('/').collect();
        if !(4..=5).contains(&segs.len()) || segs[0] != self.app_id {
            return None;
        }
        let matches = |want: &str, got: &str| want == ALL || want == got;
        if !matches(&self.group, segs[1]) || !matches(&self.label, segs[2]) {
            return None;
        }
        Some(Parsed {
            group: segs[1],
            label: segs[2],
            key: segs[3],
            tag: segs.get(4).copied(),
        })
    }
}

/// Items assembled from item and tag keys, in key order.
#[derive(Default)]
struct Items {
    items: BTreeMap<(String, String, String), ConfigItem>,
    tags: Vec<((String, String, String), String, String)>,
}

impl Items {
    fn add(&mut self, p: &Parsed<'_>, value: String) {
        let id = (p.group.to_owned(), p.label.to_owned(), p.key.to_owned());
        match p.tag {
            None => {
                self.items.insert(
                    id,
                    ConfigItem {
                        key: p.key.to_owned(),
                        content: value,
                        group: p.group.to_owned(),
                        label: p.label.to_owned(),
                        ..Default::default()
                    },
                );
            }
            Some(t) => self.tags.push((id, t.to_owned(), value)),
        }
    }

    fn finish(mut self) -> Vec<ConfigItem> {
        for (id, name, value) in self.tags {
            if let Some(item) = self.items.get_mut(&id) {
                item.tags.insert(name, value);
            }
        }
        self.items.into_values().collect()
    }
}

fn check_segment(what: &str, v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::empty_field(what));
    }
    if v.contains('/') {
        return Err(Error::invalid(format!(
            "{what} '{v}' must not contain '/' (etcd keys are /appId/group/label/key)"
        )));
    }
    Ok(())
}

impl EtcdConfigStore {
    /// Factory: [`EtcdConfigMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: EtcdConfigMetadata = decode(spec)?;
        let mut conn = meta.connection();
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        if given(&meta.address) && given(&meta.endpoints) {
            return Err(spec_error(
                spec,
                format!("metadata '{ADDRESS_KEY}' and '{ENDPOINTS_KEY}' mean the same; give one"),
            ));
        }
        if meta.timeout.is_some() && meta.dial_timeout.is_some() {
            return Err(spec_error(
                spec,
                format!(
                    "metadata '{TIMEOUT_KEY}' and '{DIAL_TIMEOUT_KEY}' mean the same; give one"
                ),
            ));
        }
        conn.dial_timeout = meta
            .timeout
            .or(meta.dial_timeout)
            .or(Some(GoDuration(DEFAULT_TIMEOUT)));
        let endpoints = meta
            .address
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|a| (ADDRESS_KEY, split_list(a)));
        let cfg = EtcdConfig::from_meta(spec, &conn, endpoints)
            .map_err(|e| rename_timeout(e, meta.timeout.is_some()))?;
        Ok(Self {
            client: Arc::new(EtcdClient::new(
                format!("configuration store '{}'", spec.name),
                cfg,
            )),
            closed: CancellationToken::new(),
        })
    }

    fn scope(&self, app_id: &str, group: &str, label: &str) -> Scope {
        Scope {
            app_id: app_id.to_owned(),
            group: or_default(group, DEFAULT_GROUP),
            label: or_default(label, DEFAULT_GROUP),
        }
    }

    fn query_scope(&self, q: &ConfigQuery) -> Result<Scope> {
        check_segment("app_id", &q.app_id).map_err(|e| self.client.err(e))?;
        let s = self.scope(&q.app_id, &q.group, &q.label);
        for (what, v) in [("group", &s.group), ("label", &s.label)] {
            check_segment(what, v).map_err(|e| self.client.err(e))?;
        }
        for k in &q.keys {
            check_segment("key", k).map_err(|e| self.client.err(e))?;
        }
        Ok(s)
    }

    /// The tag keys stored under `item_key`, and the revision they were read at.
    async fn tag_keys(&self, item_key: &str) -> Result<(Vec<String>, i64)> {
        let prefix = format!("{item_key}/");
        let resp = self
            .client
            .call("set", |mut c| async move {
                c.get(
                    prefix,
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                )
                .await
            })
            .await?;
        let keys = resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok().map(str::to_owned))
            .collect();
        Ok((keys, resp.header().map_or(0, |h| h.revision())))
    }

    /// Writes one item and its tags, deleting the tags it no longer has, in one transaction
    /// that applies only if no tag key changed since they were read (retried otherwise).
    async fn write_item(&self, item_key: &str, item: &ConfigItem) -> Result<()> {
        const ATTEMPTS: u32 = 20;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Jittered back-off, so concurrent writers of one item take turns.
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() % 10);
                tokio::time::sleep(Duration::from_millis(u64::from(attempt * 5 + jitter))).await;
            }
            let (existing, revision) = self.tag_keys(item_key).await?;
            let mut ops: Vec<TxnOp> = existing
                .iter()
                .filter(|k| !item.tags.contains_key(&k[item_key.len() + 1..]))
                .map(|k| TxnOp::delete(k.as_str(), None))
                .collect();
            ops.push(TxnOp::put(item_key, item.content.as_str(), None));
            for (name, value) in &item.tags {
                ops.push(TxnOp::put(
                    format!("{item_key}/{name}"),
                    value.as_str(),
                    None,
                ));
            }
            let unchanged =
                Compare::mod_revision(format!("{item_key}/"), CompareOp::Less, revision + 1)
                    .with_prefix();
            let txn = Txn::new().when([unchanged]).and_then(ops);
            let resp = self
                .client
                .call("set", |mut c| async move { c.txn(txn).await })
                .await?;
            if resp.succeeded() {
                return Ok(());
            }
        }
        Err(self.client.err(Error::unavailable(format!(
            "set: the tags of '{item_key}' kept changing under {ATTEMPTS} attempts"
        ))))
    }
}

/// The error of a bad `timeout` names `timeout` (it was decoded as `dialTimeout`).
fn rename_timeout(e: Error, timeout_given: bool) -> Error {
    if timeout_given && e.message.contains(DIAL_TIMEOUT_KEY) {
        Error::new(e.kind, e.message.replace(DIAL_TIMEOUT_KEY, TIMEOUT_KEY))
    } else {
        e
    }
}

#[async_trait]
impl Component for EtcdConfigStore {
    /// Connects. Errors: unavailable when etcd cannot be reached within the timeout.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Ends every subscription and drops the client.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for EtcdConfigStore {
    /// The items of the query's scope named by `keys` (all when empty) with their tags, sorted
    /// by group, label and key; absent keys are left out.
    async fn get(&self, query: &ConfigQuery) -> Result<Vec<ConfigItem>> {
        let scope = self.query_scope(query)?;
        let prefix = scope.prefix();
        let resp = self
            .client
            .call("get", |mut c| async move {
                c.get(prefix, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        let mut items = Items::default();
        for kv in resp.kvs() {
            let (Ok(k), Ok(v)) = (kv.key_str(), kv.value_str()) else {
                continue;
            };
            if let Some(p) = scope.parse(k)
                && (query.keys.is_empty() || query.keys.iter().any(|q| q == p.key))
            {
                items.add(&p, v.to_owned());
            }
        }
        Ok(items.finish())
    }

    /// Writes each item with its tags in one transaction, removing tags it no longer has.
    /// Errors: invalid argument naming a bad item (nothing is written then); unavailable.
    async fn set(&self, app_id: &str, items: Vec<ConfigItem>, _metadata: &Metadata) -> Result<()> {
        check_segment("app_id", app_id).map_err(|e| self.client.err(e))?;
        let mut writes = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let scope = self.scope(app_id, &item.group, &item.label);
            let mut check = vec![
                ("key", item.key.as_str()),
                ("group", scope.group.as_str()),
                ("label", scope.label.as_str()),
            ];
            check.extend(item.tags.keys().map(|t| ("tag name", t.as_str())));
            for (what, v) in check {
                check_segment(what, v)
                    .map_err(|e| self.client.err(e.context(format_args!("item {i}"))))?;
            }
            writes.push((scope.item_key(&item.key), item));
        }
        for (item_key, item) in writes {
            self.write_item(&item_key, &item).await?;
        }
        Ok(())
    }

    /// Deletes the named items and their tags (every item of the group and label when no key
    /// is named); absent keys are ignored.
    async fn delete(&self, query: &ConfigQuery) -> Result<()> {
        let scope = self.query_scope(query)?;
        let ops: Vec<TxnOp> = if query.keys.is_empty() {
            vec![TxnOp::delete(
                scope.prefix(),
                Some(DeleteOptions::new().with_prefix()),
            )]
        } else {
            query
                .keys
                .iter()
                .flat_map(|k| {
                    let item = scope.item_key(k);
                    [
                        TxnOp::delete(format!("{item}/"), Some(DeleteOptions::new().with_prefix())),
                        TxnOp::delete(item, None),
                    ]
                })
                .collect()
        };
        let txn = Txn::new().and_then(ops);
        self.client
            .call("delete", |mut c| async move { c.txn(txn).await })
            .await?;
        Ok(())
    }

    /// Watches the scope's prefix; ends when the receiver is dropped or the store closed.
    /// Must be called within a Tokio runtime. Errors: unavailable when etcd cannot be reached.
    async fn subscribe(&self, query: &ConfigQuery) -> Result<ConfigChanges> {
        let scope = self.query_scope(query)?;
        let (stream, revision) = open_watch(&self.client, &scope.prefix(), None).await?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let watcher = Watcher {
            client: Arc::clone(&self.client),
            scope,
            keys: query.keys.clone(),
            tx,
            cancel: self.closed.child_token(),
        };
        tokio::spawn(watcher.run(stream, revision));
        Ok(rx)
    }
}

/// A watch of `prefix` from `start` (else from now), once etcd confirmed it; with the revision
/// after which it reports changes.
async fn open_watch(
    client: &EtcdClient,
    prefix: &str,
    start: Option<i64>,
) -> Result<(WatchStream, i64)> {
    let mut opts = WatchOptions::new().with_prefix();
    if let Some(r) = start {
        opts = opts.with_start_revision(r);
    }
    let key = prefix.to_owned();
    client
        .call("subscribe", |mut c| async move {
            let mut stream = c.watch(key, Some(opts)).await?;
            let created = stream.message().await?.ok_or_else(|| {
                etcd_client::Error::WatchError("the watch ended before it was created".into())
            })?;
            let revision = created.header().map_or(0, |h| h.revision());
            Ok((stream, start.map_or(revision, |s| s - 1)))
        })
        .await
}

/// Forwards the changes of one subscription.
struct Watcher {
    client: Arc<EtcdClient>,
    scope: Scope,
    /// Empty = every key of the scope.
    keys: Vec<String>,
    tx: mpsc::Sender<Vec<ConfigItem>>,
    /// Cancelled when the store is closed.
    cancel: CancellationToken,
}

impl Watcher {
    async fn run(self, stream: WatchStream, revision: i64) {
        let prefix = self.scope.prefix();
        let mut stream = Some(stream);
        // The last revision whose changes were forwarded.
        let mut seen = revision;
        let mut failures = 0u32;
        loop {
            let mut current = match stream.take() {
                Some(s) => s,
                None => {
                    tokio::select! {
                        () = self.tx.closed() => return,
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(retry_delay(failures.max(1))) => {}
                    }
                    match open_watch(&self.client, &prefix, Some(seen + 1)).await {
                        Ok((s, _)) => s,
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            tracing::warn!(%prefix, error = %e, "configuration watch: re-watch failed");
                            continue;
                        }
                    }
                }
            };
            loop {
                let msg = tokio::select! {
                    () = self.tx.closed() => return,
                    () = self.cancel.cancelled() => return,
                    m = current.message() => m,
                };
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(_) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(%prefix, "configuration watch lost; re-watching from revision {}", seen + 1);
                        break;
                    }
                };
                failures = 0;
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        tracing::warn!(%prefix, compacted = resp.compact_revision(), "configuration watch: changes up to the compaction were lost");
                        seen = resp.compact_revision() - 1;
                    }
                    break;
                }
                let batch = self.batch(resp.events(), &mut seen);
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

    fn batch(&self, events: &[etcd_client::Event], seen: &mut i64) -> Vec<ConfigItem> {
        let mut items = Items::default();
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            *seen = (*seen).max(kv.mod_revision());
            let Ok(k) = kv.key_str() else { continue };
            let Some(p) = self.scope.parse(k) else {
                continue;
            };
            if !self.keys.is_empty() && !self.keys.iter().any(|q| q == p.key) {
                continue;
            }
            let value = match ev.event_type() {
                EventType::Put => kv.value_str().unwrap_or_default().to_owned(),
                EventType::Delete => String::new(),
            };
            if p.tag.is_some() && ev.event_type() == EventType::Delete {
                continue;
            }
            items.add(&p, value);
        }
        items.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_layotto_keys() {
        let s = EtcdConfigStore::from_spec(
            &ComponentSpec::new("c", "etcd")
                .with(ADDRESS_KEY, r#"["127.0.0.1:2379"]"#)
                .with(TIMEOUT_KEY, "10"),
        )
        .expect("Layotto's section keys");
        assert_eq!(s.client.config().endpoints, ["127.0.0.1:2379"]);
        assert_eq!(s.client.config().dial_timeout, Duration::from_secs(10));
        let scope = s.scope("app", "", " ");
        assert_eq!(scope.item_key("k"), "/app/default/default/k");
        assert_eq!(scope.prefix(), "/app/default/default/");
        let p = scope.parse("/app/default/default/k/env").expect("tag key");
        assert_eq!((p.key, p.tag), ("k", Some("env")));
        assert!(scope.parse("/app/default/other/k").is_none());
        assert!(scope.parse("/app2/default/default/k").is_none());
        let all = s.scope("app", ALL, "x");
        assert_eq!(all.prefix(), "/app/");
        assert!(all.parse("/app/g/x/k").is_some());
        for (spec, key) in [
            (ComponentSpec::new("c", "etcd"), ENDPOINTS_KEY),
            (
                ComponentSpec::new("c", "etcd")
                    .with(ADDRESS_KEY, "a:1")
                    .with(ENDPOINTS_KEY, "a:1"),
                ADDRESS_KEY,
            ),
            (
                ComponentSpec::new("c", "etcd").with(ADDRESS_KEY, "nohost"),
                ADDRESS_KEY,
            ),
            (
                ComponentSpec::new("c", "etcd")
                    .with(ADDRESS_KEY, "a:1")
                    .with(TIMEOUT_KEY, "0"),
                TIMEOUT_KEY,
            ),
            (
                ComponentSpec::new("c", "etcd")
                    .with(ADDRESS_KEY, "a:1")
                    .with(TIMEOUT_KEY, "x"),
                TIMEOUT_KEY,
            ),
        ] {
            let e = EtcdConfigStore::from_spec(&spec).expect_err(key);
            assert!(
                e.message.contains(key) && e.message.contains("'c'"),
                "{key}: {e}"
            );
        }
    }
}
