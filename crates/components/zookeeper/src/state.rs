//! ZooKeeper state store in Dapr's layout (`dapr/components-contrib:state/zookeeper/zk.go`,
//! which Layotto registers as `zookeeper` and `config_integrate_test.json` configures).
//!
//! A key is the persistent node `path.Join(keyPrefixPath, key)` (the runtime has already made
//! the key `<appid>||<key>`; default prefix `/`) holding the raw value; the ETag is the node's
//! data version in decimal. Keys that are no valid node name are stored under an encoded name
//! (see [`crate::node_path`]); Dapr cannot store them at all.
//!
//! - `set`: with an ETag, `setData` at that version (`BadVersion` or a missing node is an ETag
//!   mismatch: Dapr would create the missing node); first-write without ETag, `create`
//!   (`NodeExists` is a mismatch); otherwise `setData`, or `create` when the node is missing.
//! - `delete`: with an ETag, `delete` at that version; without, any version, a missing node
//!   being no error.
//! - `transact`: one ZooKeeper `multi`, all or nothing; upserts and deletes without ETag look
//!   the nodes up first and the whole `multi` is retried when a concurrent writer created or
//!   deleted one of them meanwhile.
//!
//! Claims `ETAG` and `TRANSACTIONAL`. ZooKeeper's TTL nodes expire lazily (on a minutes-long
//! sweep) and need `extendedTypesEnabled`, so `ttlInSeconds` is refused (`UNIMPLEMENTED`)
//! rather than silently ignored as Dapr does.

use std::collections::HashMap;

use async_trait::async_trait;
use layotto_core::metadata::{GoDuration, decode};
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateStore, TTL_METADATA_KEY, TransactionOp,
    parse_ttl,
};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, Error, Feature, Health, Metadata, Result,
};
use zookeeper_client as zk;

use crate::client::ZkClient;
use crate::config::{HOSTS_KEY, LOG_INFO_KEY, SERVERS_KEY, ZkConfig, key_prefix, node_path};

/// How often a transaction is retried when concurrent writers keep changing its nodes.
const TX_ATTEMPTS: usize = 8;

/// Metadata of [`ZkStateStore`]: Dapr's `state.zookeeper` keys plus Layotto's.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ZkStateMetadata {
    /// `servers` (Dapr, `,`-separated) or `zookeeperHosts` (Layotto): required.
    #[serde(alias = "zookeeperHosts")]
    pub servers: Option<String>,
    /// `zookeeperPassword`: `user:password` for digest authentication.
    pub zookeeper_password: Option<String>,
    /// `sessionTimeout`: a Go duration or seconds (default 5 s); bounds every call.
    pub session_timeout: Option<GoDuration>,
    /// `keyPrefixPath`: parent path of the state nodes (default `/`).
    pub key_prefix_path: Option<String>,
}

impl ComponentMetadata for ZkStateMetadata {
    const NO_EFFECT: &'static [&'static str] =
        &[LOG_INFO_KEY, "maxBufferSize", "maxConnBufferSize"];
}

/// State store on ZooKeeper (type `zookeeper`). See the module documentation.
#[derive(Debug)]
pub struct ZkStateStore {
    client: ZkClient,
    prefix: String,
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Outcome of one write attempt.
enum Write {
    Done,
    Mismatch,
}

impl ZkStateStore {
    /// Factory: [`ZkStateMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: ZkStateMetadata = decode(spec)?;
        // Errors name the key the file wrote: Dapr's `servers` or Layotto's `zookeeperHosts`.
        let hosts_key = if spec.get_ci(SERVERS_KEY).is_none() && spec.get_ci(HOSTS_KEY).is_some() {
            HOSTS_KEY
        } else {
            SERVERS_KEY
        };
        let cfg = ZkConfig::new(
            spec,
            hosts_key,
            m.servers.as_deref(),
            m.zookeeper_password.as_deref(),
            m.session_timeout,
        )?;
        Ok(Self {
            client: ZkClient::new(format!("state store '{}'", spec.name), cfg),
            prefix: key_prefix(spec, m.key_prefix_path.as_deref())?,
        })
    }

    /// The node path of `key`.
    ///
    /// # Errors
    /// Invalid argument for an empty key.
    pub fn path(&self, key: &str) -> Result<String> {
        node_path(&self.prefix, key, "key").map_err(|e| self.client.err(e))
    }

    fn no_ttl(&self, metadata: &Metadata) -> Result<()> {
        if parse_ttl(metadata)
            .map_err(|e| self.client.err(e))?
            .is_some()
        {
            return Err(self.client.err(Error::unsupported(format!(
                "metadata '{TTL_METADATA_KEY}': the ZooKeeper state store has no TTL"
            ))));
        }
        Ok(())
    }

    /// The version an ETag names; `None` (a mismatch) when it is no version.
    fn version(etag: &str) -> Option<i32> {
        etag.trim().parse::<i32>().ok().filter(|v| *v >= 0)
    }

    fn mismatch(&self, key: &str) -> Error {
        self.client.err(Error::etag_mismatch(key))
    }
}

#[async_trait]
impl Component for ZkStateStore {
    /// Opens the session. Errors: unavailable when ZooKeeper cannot be reached within the
    /// session timeout.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Closes the session.
    async fn close(&self) -> Result<()> {
        self.client.close();
        Ok(())
    }

    fn features(&self) -> &'static [Feature] {
        &[Feature::Etag, Feature::Transactional]
    }
}

#[async_trait]
impl StateStore for ZkStateStore {
    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Option<StateItem>> {
        let p = self.path(key)?;
        let got = self
            .client
            .call("get", |c| async move {
                match c.get_data(&p).await {
                    Ok(v) => Ok(Some(v)),
                    Err(zk::Error::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(got.map(|(data, stat)| StateItem {
            data: data.into(),
            etag: Some(stat.version.to_string()),
            metadata: Metadata::new(),
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        self.no_ttl(&req.metadata)?;
        let p = self.path(&req.key)?;
        let expected = match req.etag_to_check() {
            Some(e) => Some(Self::version(e).ok_or_else(|| self.mismatch(&req.key))?),
            None => None,
        };
        let first = req.options.concurrency == Concurrency::FirstWrite;
        let data = req.value.to_vec();
        let r = self
            .client
            .call("set", |c| async move {
                if let Some(v) = expected {
                    return match c.set_data(&p, &data, Some(v)).await {
                        Ok(_) => Ok(Write::Done),
                        Err(zk::Error::BadVersion | zk::Error::NoNode) => Ok(Write::Mismatch),
                        Err(e) => Err(e),
                    };
                }
                if first {
                    return match c.create(&p, &data, &persistent()).await {
                        Ok(_) => Ok(Write::Done),
                        Err(zk::Error::NodeExists) => Ok(Write::Mismatch),
                        Err(e) => Err(e),
                    };
                }
                loop {
                    match c.set_data(&p, &data, None).await {
                        Ok(_) => return Ok(Write::Done),
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                    match c.create(&p, &data, &persistent()).await {
                        Ok(_) => return Ok(Write::Done),
                        Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
            })
            .await?;
        match r {
            Write::Done => Ok(()),
            Write::Mismatch => Err(self.mismatch(&req.key)),
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let p = self.path(&req.key)?;
        let expected = match req.etag_to_check() {
            Some(e) => Some(Self::version(e).ok_or_else(|| self.mismatch(&req.key))?),
            None => None,
        };
        let r = self
            .client
            .call("delete", |c| async move {
                match c.delete(&p, expected).await {
                    Ok(()) => Ok(Write::Done),
                    Err(zk::Error::NoNode) if expected.is_none() => Ok(Write::Done),
                    Err(zk::Error::NoNode | zk::Error::BadVersion) => Ok(Write::Mismatch),
                    Err(e) => Err(e),
                }
            })
            .await?;
        match r {
            Write::Done => Ok(()),
            Write::Mismatch => Err(self.mismatch(&req.key)),
        }
    }

    async fn transact(&self, ops: Vec<TransactionOp>, _metadata: &Metadata) -> Result<()> {
        let mut plan = Vec::with_capacity(ops.len());
        for op in &ops {
            let (key, etag, meta) = match op {
                TransactionOp::Upsert(r) => (&r.key, r.etag_to_check(), Some(&r.metadata)),
                TransactionOp::Delete(r) => (&r.key, r.etag_to_check(), None),
            };
            if let Some(m) = meta {
                self.no_ttl(m)?;
            }
            let version = match etag {
                Some(e) => Some(Self::version(e).ok_or_else(|| self.mismatch(key))?),
                None => None,
            };
            let step = match op {
                TransactionOp::Upsert(r) => Step::Upsert {
                    data: r.value.to_vec(),
                    version,
                    first: r.options.concurrency == Concurrency::FirstWrite,
                },
                TransactionOp::Delete(_) => Step::Delete { version },
            };
            plan.push((key.clone(), self.path(key)?, step));
        }
        if plan.is_empty() {
            return Ok(());
        }
        for _ in 0..TX_ATTEMPTS {
            let plan_ref = &plan;
            let outcome = self
                .client
                .call("transact", |c| async move { run_multi(&c, plan_ref).await })
                .await?;
            match outcome {
                Tx::Done => return Ok(()),
                Tx::Mismatch(i) => return Err(self.mismatch(&plan[i].0)),
                Tx::Retry => {}
            }
        }
        Err(self.client.err(Error::unavailable(format!(
            "transact: concurrent writers changed its keys {TX_ATTEMPTS} times in a row"
        ))))
    }
}

/// One operation of a planned transaction.
enum Step {
    Upsert {
        data: Vec<u8>,
        version: Option<i32>,
        first: bool,
    },
    Delete {
        version: Option<i32>,
    },
}

/// Outcome of one `multi` attempt.
enum Tx {
    Done,
    /// The op at this index failed its ETag (or first-write) check.
    Mismatch(usize),
    /// A node looked up before changed meanwhile: plan again.
    Retry,
}

/// Looks up the nodes the unconditional ops need, then commits one `multi`.
async fn run_multi(
    c: &zk::Client,
    plan: &[(String, String, Step)],
) -> std::result::Result<Tx, zk::Error> {
    // Whether each node exists, as the ops before see it.
    let mut exists: HashMap<&str, bool> = HashMap::new();
    for (_, path, step) in plan {
        let unconditional = matches!(
            step,
            Step::Upsert {
                version: None,
                first: false,
                ..
            } | Step::Delete { version: None }
        );
        if unconditional && !exists.contains_key(path.as_str()) {
            let found = c.check_stat(path).await?.is_some();
            exists.insert(path, found);
        }
    }
    let mut w = c.new_multi_writer();
    // For each op of the multi, the plan index it came from and whether its failure is an
    // ETag mismatch (conditional) or a race (unconditional, retried).
    let mut origin: Vec<(usize, bool)> = Vec::new();
    for (i, (_, path, step)) in plan.iter().enumerate() {
        match step {
            Step::Upsert {
                data,
                version: Some(v),
                ..
            } => {
                w.add_set_data(path, data, Some(*v))?;
                origin.push((i, true));
                exists.insert(path, true);
            }
            Step::Upsert {
                data, first: true, ..
            } => {
                w.add_create(path, data, &persistent())?;
                origin.push((i, true));
                exists.insert(path, true);
            }
            Step::Upsert { data, .. } => {
                if exists.get(path.as_str()).copied().unwrap_or(false) {
                    w.add_set_data(path, data, None)?;
                } else {
                    w.add_create(path, data, &persistent())?;
                }
                origin.push((i, false));
                exists.insert(path, true);
            }
            Step::Delete { version: Some(v) } => {
                w.add_delete(path, Some(*v))?;
                origin.push((i, true));
                exists.insert(path, false);
            }
            Step::Delete { version: None } => {
                if exists.get(path.as_str()).copied().unwrap_or(false) {
                    w.add_delete(path, None)?;
                    origin.push((i, false));
                }
                exists.insert(path, false);
            }
        }
    }
    if origin.is_empty() {
        return Ok(Tx::Done);
    }
    match w.commit().await {
        Ok(_) => Ok(Tx::Done),
        Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
        Err(zk::MultiWriteError::OperationFailed { index, source }) => {
            let (i, conditional) = origin.get(index).copied().unwrap_or((0, false));
            match source {
                zk::Error::BadVersion | zk::Error::NoNode | zk::Error::NodeExists
                    if conditional =>
                {
                    Ok(Tx::Mismatch(i))
                }
                zk::Error::NoNode | zk::Error::NodeExists => Ok(Tx::Retry),
                e => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_keys() {
        let spec = ComponentSpec::new("st", "zookeeper")
            .with("servers", "127.0.0.1")
            .with("zookeeperPassword", "")
            .with("sessionTimeout", "3s")
            .with("logInfo", "false")
            .with("keyPrefixPath", "/");
        let s = ZkStateStore::from_spec(&spec).expect("valid");
        assert_eq!(s.path("app1||k").expect("p"), "/app1||k");
        let s = ZkStateStore::from_spec(
            &ComponentSpec::new("st", "zookeeper")
                .with("zookeeperHosts", "h:1")
                .with("keyPrefixPath", "dapr"),
        )
        .expect("Layotto's hosts key");
        assert_eq!(s.path("k").expect("p"), "/dapr/k");
        assert_eq!(ZkStateStore::version("3"), Some(3));
        assert_eq!(ZkStateStore::version("3-x"), None);
        let e = ZkStateStore::from_spec(&ComponentSpec::new("st", "zookeeper")).expect_err("no");
        assert!(
            e.message.contains("'servers'") && e.message.contains("'st'"),
            "{e}"
        );
    }
}
