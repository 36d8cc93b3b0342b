//! ZooKeeper sequencer in Layotto's layout (`mosn/layotto:components/sequencer/zookeeper/
//! zookeeper_sequencer.go`).
//!
//! The ids of a key are the data *version* of the persistent node `<keyPrefixPath>/<key>`
//! (default prefix `/`, so `/sequencer|||<appid>||<key>`): each id is one `setData(path, "",
//! -1)` and the id is the version it returns, as Layotto does, so Layotto sidecars and this one
//! share a key's ids. Layotto never creates the node (its first `setData` fails with `NoNode`);
//! here a missing node is created empty (version 0), so the first id is 1.
//!
//! Versions are 32-bit: a key whose version wrapped fails with an error instead of repeating
//! ids. No segments (`get_segment` answers `None`; Layotto's has none either).
//!
//! `biggerThan` floors: upstream refuses to start when a key's version is below its floor. Here
//! `init` raises the version to the floor by writing the node, for gaps up to
//! [`MAX_FLOOR_GAP`], and refuses larger gaps (and floors beyond 32 bits) naming the key.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::StreamExt;
use layotto_core::metadata::{GoDuration, decode, spec_context};
use layotto_core::sequencer::{BIGGER_THAN_KEY, Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Result};
use zookeeper_client as zk;

use crate::client::ZkClient;
use crate::config::{HOSTS_KEY, LOG_INFO_KEY, ZkConfig, key_prefix, node_path};

/// The largest gap between a key's version and its `biggerThan` floor that `init` closes by
/// writing the node; larger gaps fail start-up.
pub const MAX_FLOOR_GAP: i64 = 100_000;

/// Writes in flight while raising a version to its floor.
const FLOOR_PARALLELISM: usize = 64;

/// Metadata of [`ZkSequencer`]: the connection keys, `keyPrefixPath` and `biggerThan`.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ZkSequencerMetadata {
    /// `zookeeperHosts`: `;`-separated `host[:port]` list (required).
    pub zookeeper_hosts: Option<String>,
    /// `zookeeperPassword`: `user:password` for digest authentication.
    pub zookeeper_password: Option<String>,
    /// `sessionTimeout`: seconds or a Go duration (default 5 s); bounds every call.
    pub session_timeout: Option<GoDuration>,
    /// `keyPrefixPath`: parent path of the sequencer nodes (default `/`).
    pub key_prefix_path: Option<String>,
    /// `biggerThan`: a JSON object key -> integer; every id of a key is greater than its value.
    pub bigger_than: Option<String>,
}

impl ComponentMetadata for ZkSequencerMetadata {
    const NO_EFFECT: &'static [&'static str] = &[LOG_INFO_KEY, "segmentCacheEnable", "segmentStep"];
}

/// Sequencer on ZooKeeper (type `zookeeper`). See the module documentation.
#[derive(Debug)]
pub struct ZkSequencer {
    client: ZkClient,
    prefix: String,
    floors: HashMap<String, i64>,
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

impl ZkSequencer {
    /// Factory: [`ZkSequencerMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: ZkSequencerMetadata = decode(spec)?;
        let cfg = ZkConfig::new(
            spec,
            HOSTS_KEY,
            m.zookeeper_hosts.as_deref(),
            m.zookeeper_password.as_deref(),
            m.session_timeout,
        )?;
        let ctx = |e: Error| spec_context(spec, e);
        let floors = parse_bigger_than(m.bigger_than.as_deref()).map_err(ctx)?;
        for (k, floor) in &floors {
            if *floor >= i64::from(i32::MAX) {
                return Err(ctx(Error::invalid(format!(
                    "metadata '{BIGGER_THAN_KEY}': floor {floor} of key '{k}' is beyond ZooKeeper's \
                     32-bit versions"
                ))));
            }
        }
        Ok(Self {
            client: ZkClient::new(format!("sequencer '{}'", spec.name), cfg),
            prefix: key_prefix(spec, m.key_prefix_path.as_deref())?,
            floors,
        })
    }

    /// The node path of `key`.
    ///
    /// # Errors
    /// Invalid argument for an empty key.
    pub fn path(&self, key: &str) -> Result<String> {
        node_path(&self.prefix, key, "key").map_err(|e| self.client.err(e))
    }

    /// One write of node `path` (created when missing); its version after the write.
    async fn bump(&self, path: &str) -> Result<i64> {
        let p = path.to_owned();
        let version = self
            .client
            .call("get_next_id", |c| async move {
                loop {
                    match c.set_data(&p, b"", None).await {
                        Ok(stat) => return Ok(stat.version),
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                    match c.create(&p, b"", &persistent()).await {
                        Ok(_) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
            })
            .await?;
        if version <= 0 {
            return Err(self.client.err(Error::internal(format!(
                "get_next_id: the ids of node '{path}' are exhausted (ZooKeeper versions are \
                 32-bit and this one wrapped to {version})"
            ))));
        }
        Ok(i64::from(version))
    }

    async fn version(&self, path: &str) -> Result<i64> {
        let p = path.to_owned();
        let stat = self
            .client
            .call(BIGGER_THAN_KEY, |c| async move { c.check_stat(&p).await })
            .await?;
        Ok(stat.map_or(0, |s| i64::from(s.version)))
    }

    /// Raises the version of node `path` to at least `floor`.
    async fn raise(&self, key: &str, path: &str, floor: i64) -> Result<()> {
        loop {
            let current = self.version(path).await?;
            if current >= floor {
                return Ok(());
            }
            let gap = floor - current;
            if gap > MAX_FLOOR_GAP {
                return Err(self.client.err(Error::invalid(format!(
                    "metadata '{BIGGER_THAN_KEY}': key '{key}' (node '{path}') is at id \
                     {current}, {gap} below its floor {floor}; ids are node versions and this \
                     sequencer raises a version by at most {MAX_FLOOR_GAP} at start-up"
                ))));
            }
            let writes = futures::stream::iter(0..gap)
                .map(|_| self.bump(path))
                .buffer_unordered(FLOOR_PARALLELISM);
            futures::pin_mut!(writes);
            while let Some(r) = writes.next().await {
                r?;
            }
        }
    }
}

#[async_trait]
impl Component for ZkSequencer {
    /// Opens the session, then raises every key with a `biggerThan` floor to at least that
    /// floor. Errors: unavailable; invalid argument for a floor too far above the version.
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        for (k, floor) in &self.floors {
            if *floor > 0 {
                let path = self.path(k)?;
                self.raise(k, &path, *floor).await?;
            }
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Closes the session.
    async fn close(&self) -> Result<()> {
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl Sequencer for ZkSequencer {
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        let path = self.path(key)?;
        self.bump(&path).await
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
        let spec = ComponentSpec::new("s", "zookeeper")
            .with("zookeeperHosts", "127.0.0.1")
            .with("keyPrefixPath", "/")
            .with("logInfo", "false")
            .with("biggerThan", r#"{"k": 5}"#);
        let s = ZkSequencer::from_spec(&spec).expect("valid");
        assert_eq!(
            s.path("sequencer|||app||k").expect("p"),
            "/sequencer|||app||k"
        );
        assert_eq!(s.floors.get("k"), Some(&5));
        let e = ZkSequencer::from_spec(&spec.clone().with("biggerThan", r#"{"k": 3000000000}"#))
            .expect_err("beyond 32 bits");
        assert!(
            e.message.contains("biggerThan") && e.message.contains("'s'"),
            "{e}"
        );
        let e = ZkSequencer::from_spec(&spec.with("biggerThan", "nope")).expect_err("bad");
        assert!(
            e.message.contains("biggerThan") && e.message.contains("'s'"),
            "{e}"
        );
    }
}
