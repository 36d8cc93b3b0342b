//! etcd sequencer in Layotto's layout (`mosn/layotto:components/sequencer/etcd/store.go`).
//!
//! The ids of a key are the etcd *version* of `<keyPrefixPath><key>` (default prefix
//! `/layotto/`; the runtime has already made the key `sequencer|||<appid>||<key>`): each id is
//! one `Txn(Put(key, ""), Get(key))` and the id is the version the `Get` sees, as Layotto
//! does, so Layotto sidecars and this one share a key's ids without repeating one. Deleting the
//! key restarts its ids at 1 (in Layotto too).
//!
//! Versions cannot grow by more than one per write, so there are no segments: `get_segment`
//! answers `None` and the runtime serves WEAK requests one id at a time (Layotto's etcd
//! sequencer does not support segments either).
//!
//! `biggerThan` floors: upstream refuses to start when a key's version is below its floor. Here
//! `init` raises the version to the floor by writing the key (in parallel batches) as long as
//! the gap is at most [`MAX_FLOOR_GAP`], and refuses larger gaps naming the key.

use std::collections::HashMap;

use async_trait::async_trait;
use etcd_client::{Txn, TxnOp, TxnOpResponse};
use futures::StreamExt;
use layotto_core::metadata::{decode, spec_context};
use layotto_core::sequencer::{BIGGER_THAN_KEY, Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Result};

use crate::client::EtcdClient;
use crate::config::{EtcdConfig, etcd_metadata, key_prefix};

/// The largest gap between a key's current version and its `biggerThan` floor that `init`
/// closes by writing the key; larger gaps fail start-up.
pub const MAX_FLOOR_GAP: i64 = 100_000;

/// Writes in flight while raising a version to its floor.
const FLOOR_PARALLELISM: usize = 64;

etcd_metadata! {
    /// Metadata of [`EtcdSequencer`]: the connection keys plus `keyPrefixPath` and
    /// `biggerThan`. Layotto's files also set `segmentCacheEnable` and `segmentStep`, which no
    /// Layotto component reads: accepted without effect.
    pub struct EtcdSequencerMetadata {
        /// `keyPrefixPath`: prefix of every sequencer key (default `/layotto/`).
        pub key_prefix_path: Option<String>,
        /// `biggerThan`: a JSON object key -> integer; every id of a key is greater than its
        /// value (applied in `init`).
        pub bigger_than: Option<String>,
    }
}

impl ComponentMetadata for EtcdSequencerMetadata {
    const NO_EFFECT: &'static [&'static str] = &["segmentCacheEnable", "segmentStep"];
}

/// Sequencer on etcd (type `etcd`). See the module documentation.
#[derive(Debug)]
pub struct EtcdSequencer {
    client: EtcdClient,
    prefix: String,
    floors: HashMap<String, i64>,
}

impl EtcdSequencer {
    /// Factory: [`EtcdSequencerMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: EtcdSequencerMetadata = decode(spec)?;
        let cfg = EtcdConfig::from_meta(spec, &meta.connection(), None)?;
        let floors =
            parse_bigger_than(meta.bigger_than.as_deref()).map_err(|e| spec_context(spec, e))?;
        Ok(Self {
            client: EtcdClient::new(format!("sequencer '{}'", spec.name), cfg),
            prefix: key_prefix(meta.key_prefix_path.as_deref()),
            floors,
        })
    }

    /// The etcd key of `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// One write of `key`; its version after the write.
    async fn bump(&self, key: &str) -> Result<i64> {
        let txn = Txn::new().and_then([TxnOp::put(key, "", None), TxnOp::get(key, None)]);
        let resp = self
            .client
            .call("get_next_id", |mut c| async move { c.txn(txn).await })
            .await?;
        resp.op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(etcd_client::KeyValue::version),
                _ => None,
            })
            .ok_or_else(|| {
                self.client.err(Error::internal(format!(
                    "get_next_id: etcd returned no version for '{key}'"
                )))
            })
    }

    async fn version(&self, key: &str) -> Result<i64> {
        let k = key.to_owned();
        let resp = self
            .client
            .call(BIGGER_THAN_KEY, |mut c| async move { c.get(k, None).await })
            .await?;
        Ok(resp.kvs().first().map_or(0, etcd_client::KeyValue::version))
    }

    /// Raises the version of `key` (an etcd key) to at least `floor`.
    async fn raise(&self, user_key: &str, key: &str, floor: i64) -> Result<()> {
        loop {
            let current = self.version(key).await?;
            if current >= floor {
                return Ok(());
            }
            let gap = floor - current;
            if gap > MAX_FLOOR_GAP {
                return Err(self.client.err(Error::invalid(format!(
                    "metadata '{BIGGER_THAN_KEY}': key '{user_key}' (etcd key '{key}') is at id \
                     {current}, {gap} below its floor {floor}; ids are etcd versions and this \
                     sequencer raises a version by at most {MAX_FLOOR_GAP} at start-up"
                ))));
            }
            let writes = futures::stream::iter(0..gap)
                .map(|_| self.bump(key))
                .buffer_unordered(FLOOR_PARALLELISM);
            futures::pin_mut!(writes);
            while let Some(r) = writes.next().await {
                r?;
            }
        }
    }
}

#[async_trait]
impl Component for EtcdSequencer {
    /// Connects, then raises every key with a `biggerThan` floor to at least that floor.
    /// Errors: unavailable; invalid argument for a floor too far above the key's version.
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        for (k, floor) in &self.floors {
            if *floor > 0 {
                self.raise(k, &self.key(k), *floor).await?;
            }
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Drops the client.
    async fn close(&self) -> Result<()> {
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl Sequencer for EtcdSequencer {
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        if key.is_empty() {
            return Err(self.client.err(Error::empty_field("key")));
        }
        self.bump(&self.key(key)).await
    }

    /// Always `None`: ids are versions, which grow one write at a time.
    async fn get_segment(&self, _key: &str, size: u32) -> Result<Option<Segment>> {
        if size == 0 {
            return Err(self
                .client
                .err(Error::invalid("segment size must be greater than 0")));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_keys() {
        let spec = ComponentSpec::new("s", "etcd")
            .with("endpoints", "localhost:2379")
            .with("segmentCacheEnable", "false")
            .with("segmentStep", "1")
            .with("biggerThan", r#"{"k": 5}"#);
        let s = EtcdSequencer::from_spec(&spec).expect("valid");
        assert_eq!(s.key("sequencer|||app||k"), "/layotto/sequencer|||app||k");
        assert_eq!(s.floors.get("k"), Some(&5));
        let w = layotto_core::MetadataKeys::of::<EtcdSequencerMetadata>().warnings_with(
            &spec.metadata,
            layotto_core::Kind::Sequencer.info().runtime_keys,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|l| l.contains("no effect")), "{w:?}");
        let e = EtcdSequencer::from_spec(&spec.with("biggerThan", "nope")).expect_err("bad");
        assert!(
            e.message.contains("biggerThan") && e.message.contains("'s'"),
            "{e}"
        );
    }
}
