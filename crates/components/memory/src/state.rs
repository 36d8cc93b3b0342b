//! In-memory state store with ETags, TTL and atomic transactions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::metadata::decode;
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateStore, TTL_EXPIRE_TIME_KEY,
    TransactionOp, parse_ttl, rfc3339,
};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Feature, Metadata, Result};

use crate::lock;

/// Metadata of [`MemoryStateStore`]: no keys of its own (`keyPrefix` is the runtime's).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MemoryStateMetadata {}

impl ComponentMetadata for MemoryStateMetadata {}

#[derive(Debug, Clone)]
struct Entry {
    data: Bytes,
    version: u64,
    /// Monotonic deadline and the wall-clock time shown to clients.
    expires: Option<(Instant, SystemTime)>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|(at, _)| at > now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Last version handed out; ETags are this number in decimal.
    version: u64,
    /// Writes since the last sweep of expired entries.
    writes_since_sweep: usize,
}

impl Inner {
    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.live(now))
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Drops expired entries once the number of writes since the last sweep reaches the map
    /// size, so the cost is amortised O(1) per write.
    fn maybe_sweep(&mut self, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= self.map.len().max(64) {
            self.writes_since_sweep = 0;
            self.map.retain(|_, e| e.live(now));
        }
    }
}

/// A planned change to one key, computed before anything is applied.
enum Change {
    Put(String, Entry),
    Remove(String),
}

/// State store kept in process memory (type `in-memory`). Data is lost on restart.
///
/// ETags are a store-wide increasing version number rendered in decimal. Request metadata
/// `ttlInSeconds` (seconds; `-1` or `0` = no expiry) sets an expiry; expired keys read as absent
/// and a read of a key with expiry reports `ttlExpireTime` (RFC 3339, UTC).
#[derive(Debug)]
pub struct MemoryStateStore {
    name: String,
    inner: Mutex<Inner>,
}

impl MemoryStateStore {
    /// An empty store named `name` (used in error messages).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Factory: [`MemoryStateMetadata`] (no keys of its own; unknown keys are ignored, the
    /// registry warns about them).
    ///
    /// # Errors
    /// None today; the signature matches every factory.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let MemoryStateMetadata {} = decode(spec)?;
        Ok(Self::new(spec.name.clone()))
    }

    fn err(&self, e: Error) -> Error {
        e.context(format_args!("state store '{}'", self.name))
    }

    /// Validates a write against the current view of `key` and returns the entry to store.
    fn plan_set(
        &self,
        current: Option<&Entry>,
        req: &SetRequest,
        version: u64,
        now: Instant,
    ) -> Result<Entry> {
        if req.key.is_empty() {
            return Err(self.err(Error::empty_field("key")));
        }
        match req.etag_to_check() {
            Some(etag) => {
                if current.is_none_or(|c| c.version.to_string() != etag) {
                    return Err(self.err(Error::etag_mismatch(&req.key)));
                }
            }
            None => {
                if req.options.concurrency == Concurrency::FirstWrite && current.is_some() {
                    return Err(self.err(Error::new(
                        layotto_core::ErrorKind::EtagMismatch,
                        format!(
                            "key '{}' already exists and first-write concurrency needs an etag",
                            req.key
                        ),
                    )));
                }
            }
        }
        let ttl = parse_ttl(&req.metadata).map_err(|e| self.err(e))?;
        let expires = match ttl {
            Some(d) if d > Duration::ZERO => {
                let at = now.checked_add(d).ok_or_else(|| {
                    self.err(Error::invalid(format!(
                        "metadata 'ttlInSeconds' of key '{}' is too large",
                        req.key
                    )))
                })?;
                Some((at, SystemTime::now() + d))
            }
            _ => None,
        };
        Ok(Entry {
            data: req.value.clone(),
            version,
            expires,
        })
    }

    /// Validates a delete against the current view of its key.
    fn check_delete(&self, current: Option<&Entry>, req: &DeleteRequest) -> Result<()> {
        if req.key.is_empty() {
            return Err(self.err(Error::empty_field("key")));
        }
        if let Some(etag) = req.etag_to_check()
            && current.is_none_or(|c| c.version.to_string() != etag)
        {
            return Err(self.err(Error::etag_mismatch(&req.key)));
        }
        Ok(())
    }
}

#[async_trait]
impl Component for MemoryStateStore {
    /// ETags, transactions and `ttlInSeconds`.
    fn features(&self) -> &'static [Feature] {
        &[
            Feature::Etag,
            Feature::Transactional,
            Feature::Ttl,
            Feature::QueryApi,
        ]
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    /// The query API, which Dapr's in-memory store lacks: the live JSON values, filtered,
    /// sorted and paged in memory ([`layotto_core::query::Query::apply`]).
    async fn query(
        &self,
        query: &layotto_core::query::Query,
    ) -> Result<layotto_core::query::QueryResponse> {
        let now = Instant::now();
        let items: Vec<layotto_core::query::QueryItem> = lock(&self.inner)
            .map
            .iter()
            .filter(|(k, e)| e.live(now) && k.starts_with(&query.key_prefix))
            .map(|(k, e)| layotto_core::query::QueryItem {
                key: k.clone(),
                data: e.data.clone(),
                etag: Some(e.version.to_string()),
            })
            .collect();
        Ok(query.apply(items))
    }

    /// Reads `key`; `Ok(None)` when absent or expired. Never fails.
    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Option<StateItem>> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let Some(entry) = inner.map.get(key) else {
            return Ok(None);
        };
        if !entry.live(now) {
            inner.map.remove(key);
            return Ok(None);
        }
        let mut metadata = Metadata::new();
        if let Some((_, wall)) = entry.expires {
            metadata.insert(TTL_EXPIRE_TIME_KEY.to_owned(), rfc3339(wall));
        }
        Ok(Some(StateItem {
            data: entry.data.clone(),
            etag: Some(entry.version.to_string()),
            metadata,
        }))
    }

    /// Writes one key. Errors: `EtagMismatch` on a wrong ETag or a first-write conflict,
    /// `InvalidArgument` for an empty key or a bad `ttlInSeconds`.
    async fn set(&self, req: SetRequest) -> Result<()> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let version = inner.version + 1;
        let entry = self.plan_set(inner.live(&req.key, now), &req, version, now)?;
        inner.next_version();
        inner.map.insert(req.key, entry);
        inner.maybe_sweep(now);
        Ok(())
    }

    /// Deletes one key; a missing key without ETag is fine. Errors: `EtagMismatch`.
    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        self.check_delete(inner.live(&req.key, now), &req)?;
        inner.map.remove(&req.key);
        Ok(())
    }

    /// Validates every op against the state as it evolves through the ops in order, then
    /// applies all of them under one lock; any failure leaves the store unchanged.
    async fn transact(&self, ops: Vec<TransactionOp>, _metadata: &Metadata) -> Result<()> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        // The evolving view: key -> Some(entry) written / None deleted in this transaction.
        let mut view: HashMap<&str, Option<Entry>> = HashMap::new();
        let mut changes = Vec::with_capacity(ops.len());
        let mut version = inner.version;
        for op in &ops {
            match op {
                TransactionOp::Upsert(req) => {
                    let current = match view.get(req.key.as_str()) {
                        Some(v) => v.as_ref(),
                        None => inner.live(&req.key, now),
                    };
                    let entry = self.plan_set(current, req, version + 1, now)?;
                    version += 1;
                    view.insert(req.key.as_str(), Some(entry.clone()));
                    changes.push(Change::Put(req.key.clone(), entry));
                }
                TransactionOp::Delete(req) => {
                    let current = match view.get(req.key.as_str()) {
                        Some(v) => v.as_ref(),
                        None => inner.live(&req.key, now),
                    };
                    self.check_delete(current, req)?;
                    view.insert(req.key.as_str(), None);
                    changes.push(Change::Remove(req.key.clone()));
                }
            }
        }
        inner.version = version;
        for c in changes {
            match c {
                Change::Put(k, e) => {
                    inner.map.insert(k, e);
                    inner.maybe_sweep(now);
                }
                Change::Remove(k) => {
                    inner.map.remove(&k);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layotto_core::ErrorKind;
    use layotto_core::state::StateOptions;

    fn set(key: &str, value: &str) -> SetRequest {
        SetRequest {
            key: key.into(),
            value: Bytes::from(value.to_owned()),
            ..Default::default()
        }
    }

    fn with_etag(mut r: SetRequest, etag: &str, c: Concurrency) -> SetRequest {
        r.etag = Some(etag.into());
        r.options = StateOptions {
            concurrency: c,
            ..Default::default()
        };
        r
    }

    async fn value(s: &MemoryStateStore, key: &str) -> Option<(String, String)> {
        s.get(key, &Metadata::new()).await.expect("get").map(|i| {
            (
                String::from_utf8_lossy(&i.data).into_owned(),
                i.etag.unwrap_or_default(),
            )
        })
    }

    #[tokio::test]
    async fn etag_rules() {
        let s = MemoryStateStore::new("s");
        assert_eq!(value(&s, "k").await, None);
        s.set(set("k", "v1")).await.expect("plain set");
        let (v, e1) = value(&s, "k").await.expect("present");
        assert_eq!(v, "v1");

        // Matching etag succeeds and changes the etag.
        s.set(with_etag(set("k", "v2"), &e1, Concurrency::Unspecified))
            .await
            .expect("matching etag");
        let (_, e2) = value(&s, "k").await.expect("present");
        assert_ne!(e1, e2);

        // Stale etag fails.
        let err = s
            .set(with_etag(set("k", "v3"), &e1, Concurrency::FirstWrite))
            .await
            .expect_err("stale etag");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);
        assert!(err.message.contains("'k'"), "{err}");

        // Last-write checks an etag it is given too (only a request without one overwrites).
        let err = s
            .set(with_etag(set("k", "v4"), &e1, Concurrency::LastWrite))
            .await
            .expect_err("stale etag under last-write");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);
        let mut lw = set("k", "v4");
        lw.options.concurrency = Concurrency::LastWrite;
        s.set(lw).await.expect("last write without etag");
        assert_eq!(value(&s, "k").await.expect("present").0, "v4");

        // First-write without etag: insert only.
        let mut fw = set("k", "v5");
        fw.options.concurrency = Concurrency::FirstWrite;
        let err = s.set(fw.clone()).await.expect_err("exists");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);
        fw.key = "new".into();
        s.set(fw).await.expect("insert");

        // Etag for a missing key fails.
        let err = s
            .set(with_etag(
                set("missing", "x"),
                "1",
                Concurrency::Unspecified,
            ))
            .await
            .expect_err("missing key with etag");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);

        // Deletes.
        s.delete(DeleteRequest {
            key: "absent".into(),
            ..Default::default()
        })
        .await
        .expect("delete missing without etag");
        let err = s
            .delete(DeleteRequest {
                key: "absent".into(),
                etag: Some("1".into()),
                ..Default::default()
            })
            .await
            .expect_err("delete missing with etag");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);
        let (_, e) = value(&s, "k").await.expect("present");
        let err = s
            .delete(DeleteRequest {
                key: "k".into(),
                etag: Some(format!("{e}0")),
                ..Default::default()
            })
            .await
            .expect_err("wrong etag");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);
        s.delete(DeleteRequest {
            key: "k".into(),
            etag: Some(e),
            ..Default::default()
        })
        .await
        .expect("right etag");
        assert_eq!(value(&s, "k").await, None);
    }

    #[tokio::test]
    async fn ttl_expires() {
        let s = MemoryStateStore::new("s");
        let mut r = set("t", "v");
        r.metadata.insert("ttlInSeconds".into(), "1".into());
        s.set(r).await.expect("set with ttl");
        let item = s
            .get("t", &Metadata::new())
            .await
            .expect("get")
            .expect("live");
        let exp = item.metadata.get(TTL_EXPIRE_TIME_KEY).expect("expire time");
        assert!(exp.ends_with('Z') && exp.len() == 20, "{exp}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(value(&s, "t").await, None);

        let mut r = set("t", "v");
        r.metadata.insert("ttlInSeconds".into(), "soon".into());
        let err = s.set(r).await.expect_err("bad ttl");
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(err.message.contains("ttlInSeconds"), "{err}");
    }

    #[tokio::test]
    async fn transaction_is_atomic() {
        let s = MemoryStateStore::new("s");
        s.set(set("a", "1")).await.expect("seed");
        let (_, ea) = value(&s, "a").await.expect("a");

        // The third op fails: nothing of the first two is applied.
        let ops = vec![
            TransactionOp::Upsert(set("b", "2")),
            TransactionOp::Delete(DeleteRequest {
                key: "a".into(),
                ..Default::default()
            }),
            TransactionOp::Upsert(with_etag(set("c", "3"), "999", Concurrency::Unspecified)),
        ];
        let err = s
            .transact(ops, &Metadata::new())
            .await
            .expect_err("bad etag");
        assert_eq!(err.kind, ErrorKind::EtagMismatch);
        assert_eq!(value(&s, "b").await, None);
        assert_eq!(value(&s, "a").await, Some(("1".into(), ea.clone())));

        // Etag checks see the state as it evolves: upsert a, then its new etag is required.
        let ops = vec![
            TransactionOp::Upsert(with_etag(set("a", "2"), &ea, Concurrency::Unspecified)),
            TransactionOp::Upsert(with_etag(set("a", "3"), &ea, Concurrency::Unspecified)),
        ];
        assert!(s.transact(ops, &Metadata::new()).await.is_err());
        assert_eq!(value(&s, "a").await, Some(("1".into(), ea.clone())));

        let ops = vec![
            TransactionOp::Upsert(set("b", "2")),
            TransactionOp::Delete(DeleteRequest {
                key: "a".into(),
                etag: Some(ea),
                ..Default::default()
            }),
            TransactionOp::Upsert(set("c", "3")),
        ];
        s.transact(ops, &Metadata::new()).await.expect("commit");
        assert_eq!(value(&s, "a").await, None);
        assert_eq!(value(&s, "b").await.expect("b").0, "2");
        assert_eq!(value(&s, "c").await.expect("c").0, "3");
    }

    #[test]
    fn unknown_keys_are_warnings_not_errors() {
        let spec = ComponentSpec::new("s", "in-memory").with("keyPrefix", "appid");
        assert!(MemoryStateStore::from_spec(&spec).is_ok());
        let spec = spec.with("bogus", "1");
        MemoryStateStore::from_spec(&spec).expect("unknown keys are ignored");
        let w = layotto_core::MetadataKeys::of::<MemoryStateMetadata>().warnings_with(
            &spec.metadata,
            layotto_core::Kind::State.info().runtime_keys,
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("bogus"), "{w:?}");
    }
}
