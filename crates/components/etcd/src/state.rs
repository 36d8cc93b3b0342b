//! Dapr's `state.etcd` state store in daprd's key and value layout
//! (`dapr/components-contrib:state/etcd`, v1.14), so a daprd on the same etcd reads and writes
//! the same keys.
//!
//! - Key: `keyPrefixPath + "/" + key` (the key as the runtime prefixes it, `appid||key`; with
//!   the default empty `keyPrefixPath` the etcd key starts with `/`).
//! - Value: component version `v1` (daprd's default when the Component YAML names none) stores
//!   the raw bytes; `v2` stores the protobuf `dapr.proto.components.state.v2.Value {bytes data =
//!   1; google.protobuf.Timestamp ts = 2; optional google.protobuf.Duration ttl = 3}` with the
//!   write time and the TTL (0 s without one, as daprd writes it), and reads report
//!   `ttlExpireTime` = `ts + ttl` (so, as daprd's, the write time for a value without TTL).
//! - ETag: the key's `ModRevision`, in decimal. A write or delete with an ETag is one
//!   transaction comparing it, and first-write without an ETag one comparing
//!   `CreateRevision == 0`: unlike daprd's check-then-write (whose transaction result is never
//!   read, so a lost race is silently dropped), a write that loses the race fails as an ETag
//!   mismatch.
//! - TTL: `ttlInSeconds` > 0 puts the value under a fresh lease of that many seconds (daprd
//!   passes `-1` and `0` to etcd, which turns them into its minimum lease of about 2 s; here
//!   they mean no expiry, as everywhere in the state API). etcd never grants less than its
//!   minimum lease (1.5 election timeouts: 2 s by default), so under `v1` a shorter TTL lasts
//!   that long; a `v2` value is not read past the expiry its envelope records.
//! - Transactions: one etcd transaction whose conditions are every ETag and first-write check:
//!   all operations apply, or none and the answer is an ETag mismatch (daprd nests each
//!   operation in its own conditional transaction and reports success when one is skipped).
//!
//! Keys as daprd's: `endpoints` (comma-separated `host:port`; required), `keyPrefixPath`,
//! `tlsEnable` with `ca`, `cert`, `key` (PEM text), `maxTxnOps` (default 128, the most
//! operations in one transaction, as etcd's `--max-txn-ops`); Layotto's `dialTimeout`,
//! `username`, `password`, `tlsCa`, `tlsCert`, `tlsCertKey` work too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use layotto_core::metadata::{decode, spec_error};
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateStore, TTL_EXPIRE_TIME_KEY,
    TransactionOp, parse_ttl, rfc3339,
};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, Error, ErrorKind, Feature, Health, Metadata,
    Result,
};

use crate::client::EtcdClient;
use crate::config::{EtcdConfig, etcd_metadata};

/// daprd's default most operations in one transaction.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

etcd_metadata! {
    /// Metadata of [`EtcdStateStore`]: the connection keys (see [`crate::config`]) plus
    /// daprd's `keyPrefixPath`, `tlsEnable`, `ca`, `cert`, `key` and `maxTxnOps`.
    pub struct EtcdStateMetadata {
        /// `keyPrefixPath`: prefix of every key (default empty).
        pub key_prefix_path: Option<String>,
        /// `tlsEnable`: TLS with `ca`, `cert` and `key`.
        pub tls_enable: Option<bool>,
        /// `ca`: PEM of the CA certificate(s).
        pub ca: Option<String>,
        /// `cert`: PEM of the client certificate.
        pub cert: Option<String>,
        /// `key`: PEM of the client certificate's key.
        pub key: Option<String>,
        /// `maxTxnOps`: the most operations in one transaction.
        pub max_txn_ops: Option<String>,
    }
}

impl ComponentMetadata for EtcdStateMetadata {
    const VERSIONS: &'static [&'static str] = &["v1", "v2"];
}

/// daprd's v2 value envelope (`common/proto/state/etcd/v2/value.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct ValueV2 {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    ts: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "3")]
    ttl: Option<prost_types::Duration>,
}

/// Dapr's etcd state store (type `state.etcd`). See the module documentation.
#[derive(Debug)]
pub struct EtcdStateStore {
    client: Arc<EtcdClient>,
    prefix: String,
    v2: bool,
    max_txn_ops: usize,
}

impl EtcdStateStore {
    /// Factory: [`EtcdStateMetadata`]; `spec.version` `v2` for the protobuf envelope. Does no
    /// I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: EtcdStateMetadata = decode(spec)?;
        let mut conn = meta.connection();
        if meta.tls_enable == Some(true) {
            let pem = |v: &Option<String>, k: &str| {
                v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                    spec_error(
                        spec,
                        format!("metadata 'tlsEnable' needs '{k}' (tls authentication information is incomplete)"),
                    )
                })
            };
            conn.tls_ca = Some(pem(&meta.ca, "ca")?);
            conn.tls_cert = Some(pem(&meta.cert, "cert")?);
            conn.tls_cert_key = Some(pem(&meta.key, "key")?);
        }
        let cfg = EtcdConfig::from_meta(spec, &conn, None)?;
        let max_txn_ops = match meta.max_txn_ops.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_MAX_TXN_OPS,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    spec_error(
                        spec,
                        format!("metadata 'maxTxnOps' must be a positive integer, got '{raw}'"),
                    )
                })?,
        };
        Ok(Self {
            client: Arc::new(EtcdClient::new(format!("state store '{}'", spec.name), cfg)),
            prefix: meta.key_prefix_path.unwrap_or_default(),
            v2: spec.version == "v2",
            max_txn_ops,
        })
    }

    /// The etcd key of state key `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(self.client.err(Error::empty_field("key")));
        }
        Ok(())
    }

    /// The stored bytes of `value` with `ttl` seconds.
    fn encode(&self, value: &[u8], ttl: Option<i64>) -> Vec<u8> {
        if !self.v2 {
            return value.to_vec();
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        prost::Message::encode_to_vec(&ValueV2 {
            data: value.to_vec(),
            ts: Some(prost_types::Timestamp {
                seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
            }),
            ttl: Some(prost_types::Duration {
                seconds: ttl.unwrap_or(0),
                nanos: 0,
            }),
        })
    }

    /// The value and metadata of stored `bytes`, and whether a v2 envelope says it expired.
    fn decode(&self, key: &str, bytes: &[u8]) -> Result<(Bytes, Metadata, bool)> {
        if !self.v2 {
            return Ok((Bytes::copy_from_slice(bytes), Metadata::new(), false));
        }
        let v = <ValueV2 as prost::Message>::decode(bytes).map_err(|e| {
            self.client.err(Error::internal(format!(
                "get '{key}': the stored value is no v2 envelope ({e}); was it written by a v1 \
                 component?"
            )))
        })?;
        let mut metadata = Metadata::new();
        let mut expired = false;
        if let (Some(ts), Some(ttl)) = (&v.ts, &v.ttl) {
            let secs = ts.seconds.saturating_add(ttl.seconds);
            if let Ok(secs) = u64::try_from(secs) {
                let at = SystemTime::UNIX_EPOCH
                    + Duration::from_secs(secs)
                    + Duration::from_nanos(u64::try_from(ts.nanos).unwrap_or(0));
                expired = ttl.seconds > 0 && SystemTime::now() >= at;
                metadata.insert(TTL_EXPIRE_TIME_KEY.to_owned(), rfc3339(at));
            }
        }
        Ok((Bytes::from(v.data), metadata, expired))
    }

    /// The condition an operation carries: its ETag, or absence for first-write.
    fn condition(&self, op: &TransactionOp) -> Result<Option<Compare>> {
        let (etag, first_write) = match op {
            TransactionOp::Upsert(r) => (
                r.etag_to_check(),
                r.options.concurrency == Concurrency::FirstWrite,
            ),
            TransactionOp::Delete(r) => (r.etag_to_check(), false),
        };
        let key = self.key(op.key());
        Ok(match etag {
            Some(etag) => {
                // A non-numeric ETag can match no revision: compare with one no key has.
                let rev = etag.parse::<i64>().unwrap_or(-1);
                Some(Compare::mod_revision(key, CompareOp::Equal, rev))
            }
            None if first_write => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
            None => None,
        })
    }

    fn mismatch(&self, keys: &[String]) -> Error {
        self.client.err(Error::new(
            ErrorKind::EtagMismatch,
            format!(
                "possible etag mismatch: the ETag (or first-write) check of {} failed",
                keys.join(", ")
            ),
        ))
    }
}

#[async_trait]
impl Component for EtcdStateStore {
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    async fn close(&self) -> Result<()> {
        self.client.close();
        Ok(())
    }

    fn features(&self) -> &'static [Feature] {
        &[Feature::Etag, Feature::Transactional, Feature::Ttl]
    }
}

#[async_trait]
impl StateStore for EtcdStateStore {
    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Option<StateItem>> {
        self.check_key(key)?;
        let k = self.key(key);
        let resp = self
            .client
            .call("get", |mut c| async move { c.get(k, None).await })
            .await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        let (data, metadata, expired) = self.decode(key, kv.value())?;
        if expired {
            // Past its TTL, its lease not yet revoked (etcd's minimum lease, its lessor's
            // check interval).
            return Ok(None);
        }
        Ok(Some(StateItem {
            data,
            etag: Some(kv.mod_revision().to_string()),
            metadata,
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        self.transact(vec![TransactionOp::Upsert(req)], &Metadata::new())
            .await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        self.transact(vec![TransactionOp::Delete(req)], &Metadata::new())
            .await
    }

    async fn transact(&self, ops: Vec<TransactionOp>, _metadata: &Metadata) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        if ops.len() > self.max_txn_ops {
            return Err(self.client.err(Error::invalid(format!(
                "a transaction of {} operations is over metadata 'maxTxnOps' ({})",
                ops.len(),
                self.max_txn_ops
            ))));
        }
        // etcd refuses a key twice in one transaction: the last operation on a key is the one
        // written (what applying them in order leaves), and only the first may carry a check
        // (a later one would check a revision this transaction has not made yet).
        let mut compares = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut last = std::collections::HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let key = op.key().to_owned();
            self.check_key(&key)?;
            let condition = self.condition(op)?;
            if seen.insert(key.clone()) {
                compares.extend(condition);
            } else if condition.is_some() {
                return Err(self.client.err(Error::invalid(format!(
                    "key '{key}': an ETag or first-write check on a key an earlier operation of \
                     the same transaction writes"
                ))));
            }
            last.insert(key, i);
        }
        // One lease per distinct TTL, revoked again unless the transaction applied.
        let mut leases: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        let mut keys = Vec::with_capacity(last.len());
        let applied = self
            .run(&ops, &last, compares, &mut leases, &mut keys)
            .await;
        if !matches!(applied, Ok(true)) {
            for id in leases.into_values() {
                let client = self.client.clone();
                tokio::spawn(async move {
                    let _ = client
                        .call("revoke an unused lease", |mut c| async move {
                            c.lease_revoke(id).await
                        })
                        .await;
                });
            }
        }
        match applied {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.mismatch(&keys)),
            Err(e) => Err(e),
        }
    }
}

impl EtcdStateStore {
    /// Grants the leases (into `leases`, TTL seconds to lease id) and runs one transaction of
    /// the last operation on each key (`last`: key to index) under `compares`; whether they
    /// held.
    async fn run(
        &self,
        ops: &[TransactionOp],
        last: &std::collections::HashMap<String, usize>,
        compares: Vec<Compare>,
        leases: &mut std::collections::HashMap<i64, i64>,
        keys: &mut Vec<String>,
    ) -> Result<bool> {
        let mut writes = Vec::with_capacity(last.len());
        for (i, op) in ops.iter().enumerate() {
            match op {
                TransactionOp::Upsert(r) if last.get(&r.key) == Some(&i) => {
                    let ttl = parse_ttl(&r.metadata)
                        .map_err(|e| self.client.err(e))?
                        .filter(|d| !d.is_zero())
                        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                    let options = match ttl {
                        Some(secs) => {
                            let id = match leases.get(&secs) {
                                Some(id) => *id,
                                None => {
                                    let lease = self
                                        .client
                                        .call("grant lease", |mut c| async move {
                                            c.lease_grant(secs, None).await
                                        })
                                        .await?;
                                    leases.insert(secs, lease.id());
                                    lease.id()
                                }
                            };
                            Some(PutOptions::new().with_lease(id))
                        }
                        None => None,
                    };
                    writes.push(TxnOp::put(
                        self.key(&r.key),
                        self.encode(&r.value, ttl),
                        options,
                    ));
                    keys.push(r.key.clone());
                }
                TransactionOp::Delete(r) if last.get(&r.key) == Some(&i) => {
                    writes.push(TxnOp::delete(self.key(&r.key), None));
                    keys.push(r.key.clone());
                }
                _ => {}
            }
        }
        let txn = Txn::new().when(compares).and_then(writes);
        let what = if ops.len() == 1 {
            "write"
        } else {
            "transaction"
        };
        let resp = self
            .client
            .call(what, |mut c| async move { c.txn(txn).await })
            .await?;
        Ok(resp.succeeded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_envelope_as_daprd_writes_it() {
        // daprd's bytes for data {"a":1}, ts 2024-07-01T12:00:00.123456789Z, no TTL (the
        // empty Duration is written): fields 1, 2, and `1a 00`.
        let v = ValueV2 {
            data: br#"{"a":1}"#.to_vec(),
            ts: Some(prost_types::Timestamp {
                seconds: 1_719_835_200,
                nanos: 123_456_789,
            }),
            ttl: Some(prost_types::Duration::default()),
        };
        let bytes = prost::Message::encode_to_vec(&v);
        assert!(bytes.starts_with(b"\x0a\x07{\"a\":1}\x12"), "{bytes:?}");
        assert!(bytes.ends_with(b"\x1a\x00"), "{bytes:?}");

        let spec = ComponentSpec::new("s", "state.etcd")
            .with("endpoints", "127.0.0.1:2379")
            .with_version("v2");
        let s = EtcdStateStore::from_spec(&spec).expect("valid");
        let (data, md, expired) = s.decode("k", &bytes).expect("decode");
        assert!(!expired, "no TTL: never expired");
        assert_eq!(data.as_ref(), br#"{"a":1}"#);
        assert_eq!(
            md.get(TTL_EXPIRE_TIME_KEY).map(String::as_str),
            Some("2024-07-01T12:00:00Z")
        );
        assert_eq!(s.key("app||k"), "/app||k");
    }

    #[test]
    fn keys_as_daprd() {
        let spec = ComponentSpec::new("s", "state.etcd").with("endpoints", "a:2379,b:2379");
        let s =
            EtcdStateStore::from_spec(&spec.clone().with("keyPrefixPath", "dapr")).expect("valid");
        assert_eq!(s.key("app||k"), "dapr/app||k");
        assert!(!s.v2, "v1 unless the YAML names v2");
        let e = EtcdStateStore::from_spec(&spec.clone().with("tlsEnable", "true"))
            .expect_err("tls without pem");
        assert!(e.message.contains("'ca'"), "{e}");
        let e = EtcdStateStore::from_spec(&spec.with("maxTxnOps", "x")).expect_err("bad");
        assert!(e.message.contains("maxTxnOps"), "{e}");
    }
}
