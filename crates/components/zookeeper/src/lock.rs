//! ZooKeeper lock store in Layotto's layout (`mosn/layotto:components/lock/zookeeper/
//! zookeeper_lock.go`).
//!
//! A lock is the ephemeral node `<keyPrefixPath>/<resource>` (default prefix `/`, so
//! `/lock|||<appid>||<id>` as Layotto writes it) holding the owner, open ACL:
//!
//! - `try_lock`: create the ephemeral node; `NodeExists` means held. Layotto opens one session
//!   per lock and closes it at the expiry; here every lock of a component shares one session
//!   (ZooKeeper's default `maxClientCnxns` is 60 per client address), and the component deletes
//!   the node at the lease deadline (only the node it created: same creation zxid). When the
//!   sidecar dies, the session expires and the server deletes its nodes.
//! - `unlock`: read the node; absent is `LockUnexist`, another owner `LockBelongToOthers`,
//!   else delete it at the version read (as Layotto).
//! - `keep_alive` (absent upstream): the owner's node gets a new deadline. A node of the owner
//!   held by another session (a Layotto sidecar, another of ours) is moved into this
//!   component's session in one `multi` (delete at the version read, create), so this
//!   component's deadline rules it.
//!
//! A lock whose session expired (an outage longer than the session timeout) is gone from the
//! server: its owner learns it at the next `keep_alive` or `unlock` (`LockUnexist`, or
//! `LockBelongToOthers` when someone took it since), and two nodes never coexist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use layotto_core::lock::{DeadlineTimers, LockStatus, LockStore};
use layotto_core::metadata::{GoDuration, decode};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, ErrorKind, Health, Result};
use zookeeper_client as zk;

use crate::client::ZkClient;
use crate::config::{HOSTS_KEY, LOG_INFO_KEY, ZkConfig, key_prefix, node_path};

/// Metadata of [`ZkLock`] (and of [`crate::ZkSequencer`], which adds `biggerThan`).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ZkLockMetadata {
    /// `zookeeperHosts`: `;`-separated `host[:port]` list (required).
    pub zookeeper_hosts: Option<String>,
    /// `zookeeperPassword`: `user:password` for digest authentication.
    pub zookeeper_password: Option<String>,
    /// `sessionTimeout`: seconds or a Go duration (default 5 s); bounds every call.
    pub session_timeout: Option<GoDuration>,
    /// `keyPrefixPath`: parent path of the lock nodes (default `/`).
    pub key_prefix_path: Option<String>,
}

impl ComponentMetadata for ZkLockMetadata {
    const NO_EFFECT: &'static [&'static str] = &[LOG_INFO_KEY];
}

/// Lock store on ZooKeeper (type `zookeeper`). See the module documentation.
pub struct ZkLock {
    client: Arc<ZkClient>,
    prefix: String,
    /// The lock nodes this component created, by path, under their creation ids.
    held: DeadlineTimers,
}

impl std::fmt::Debug for ZkLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkLock")
            .field("client", &self.client)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

impl ZkLock {
    /// Factory: [`ZkLockMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: ZkLockMetadata = decode(spec)?;
        let cfg = ZkConfig::new(
            spec,
            HOSTS_KEY,
            m.zookeeper_hosts.as_deref(),
            m.zookeeper_password.as_deref(),
            m.session_timeout,
        )?;
        Ok(Self {
            client: Arc::new(ZkClient::new(format!("lock store '{}'", spec.name), cfg)),
            prefix: key_prefix(spec, m.key_prefix_path.as_deref())?,
            held: DeadlineTimers::default(),
        })
    }

    /// The node path of `resource`.
    ///
    /// # Errors
    /// Invalid argument for an empty resource.
    pub fn path(&self, resource: &str) -> Result<String> {
        node_path(&self.prefix, resource, "resource_id").map_err(|e| self.client.err(e))
    }

    /// The id of this component's ZooKeeper session, if one is open.
    pub fn session_id(&self) -> Option<i64> {
        self.client.session_id()
    }

    fn validate(&self, resource: &str, owner: &str, lease: Option<Duration>) -> Result<String> {
        if owner.is_empty() {
            return Err(self.client.err(Error::empty_field("lock_owner")));
        }
        if lease.is_some_and(|l| l.is_zero()) {
            return Err(self.client.err(Error::invalid(
                "lease (expire, seconds) must be greater than 0",
            )));
        }
        self.path(resource)
    }

    /// Deletes node `path` at `deadline` if it is still the one created at `czxid`; retried
    /// while the server is unreachable (the session's expiry is the backstop).
    fn schedule_expiry(&self, path: String, czxid: i64, deadline: Instant) {
        let client = Arc::clone(&self.client);
        let stop = Arc::clone(&self.client);
        let give_up_after = 3 * client.config().session_timeout + Duration::from_secs(5);
        let node = path.clone();
        self.held.schedule(
            path,
            czxid,
            deadline,
            give_up_after,
            move || stop.is_closed(),
            move || {
                let (client, p) = (Arc::clone(&client), node.clone());
                async move {
                    client
                        .call("delete expired lock", |c| async move {
                            match c.get_data(&p).await {
                                Ok((_, stat)) if stat.czxid == czxid => {
                                    match c.delete(&p, Some(stat.version)).await {
                                        Ok(()) | Err(zk::Error::NoNode | zk::Error::BadVersion) => {
                                            Ok(())
                                        }
                                        Err(e) => Err(e),
                                    }
                                }
                                Ok(_) | Err(zk::Error::NoNode) => Ok(()),
                                Err(e) => Err(e),
                            }
                        })
                        .await
                }
            },
        );
    }

    fn forget(&self, path: &str) {
        self.held.forget(path);
    }

    /// After a failed (unacknowledged) create: once the server answers, deletes the node if
    /// this session created it for `owner` anyway and no deadline rules it.
    fn clean_unacknowledged(&self, path: String, owner: String) {
        let client = Arc::clone(&self.client);
        let held = self.held.clone();
        let give_up = Instant::now() + 3 * client.config().session_timeout;
        tokio::spawn(async move {
            while Instant::now() < give_up && !client.is_closed() {
                let Some(session) = client.session_id() else {
                    // The session ended: its nodes are gone with it.
                    return;
                };
                let (p, o, h) = (path.clone(), owner.clone(), held.clone());
                let r = client
                    .call("clean up a failed lock", |c| async move {
                        match c.get_data(&p).await {
                            Ok((data, stat))
                                if stat.ephemeral_owner == session
                                    && data == o.as_bytes()
                                    && !h.is_held(&p) =>
                            {
                                match c.delete(&p, Some(stat.version)).await {
                                    Ok(()) | Err(zk::Error::NoNode | zk::Error::BadVersion) => {
                                        Ok(())
                                    }
                                    Err(e) => Err(e),
                                }
                            }
                            Ok(_) | Err(zk::Error::NoNode) => Ok(()),
                            Err(e) => Err(e),
                        }
                    })
                    .await;
                if r.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}

/// What `keep_alive` found at the lock node.
enum Renew {
    Status(LockStatus),
    Ours(i64),
}

#[async_trait]
impl Component for ZkLock {
    /// Opens the session. Errors: unavailable when ZooKeeper cannot be reached within the
    /// session timeout.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Stops the deadline timers and closes the session, which deletes its lock nodes.
    async fn close(&self) -> Result<()> {
        self.held.clear();
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl LockStore for ZkLock {
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        let path = self.validate(resource, owner, Some(lease))?;
        let started = Instant::now();
        let (p, o) = (path.clone(), owner.to_owned());
        let r = self
            .client
            .call("try_lock", |c| async move {
                match c.create(&p, o.as_bytes(), &ephemeral()).await {
                    Ok((stat, _)) => Ok(Some(stat.czxid)),
                    Err(zk::Error::NodeExists) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await;
        match r {
            Ok(Some(czxid)) => {
                self.schedule_expiry(path, czxid, started + lease);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                if e.kind == ErrorKind::Unavailable {
                    self.clean_unacknowledged(path, owner.to_owned());
                }
                Err(e)
            }
        }
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus> {
        let path = self.validate(resource, owner, None)?;
        let (p, o) = (path.clone(), owner.to_owned());
        let status = self
            .client
            .call("unlock", |c| async move {
                let (data, stat) = match c.get_data(&p).await {
                    Ok(v) => v,
                    Err(zk::Error::NoNode) => return Ok(LockStatus::LockUnexist),
                    Err(e) => return Err(e),
                };
                if data != o.as_bytes() {
                    return Ok(LockStatus::LockBelongToOthers);
                }
                match c.delete(&p, Some(stat.version)).await {
                    Ok(()) => Ok(LockStatus::Success),
                    Err(zk::Error::NoNode) => Ok(LockStatus::LockUnexist),
                    Err(zk::Error::BadVersion) => Ok(LockStatus::LockBelongToOthers),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if status == LockStatus::Success {
            self.forget(&path);
        }
        Ok(status)
    }

    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus> {
        let path = self.validate(resource, owner, Some(lease))?;
        let started = Instant::now();
        let (p, o) = (path.clone(), owner.to_owned());
        let renew = self
            .client
            .call("keep_alive", |c| async move {
                let session = c.session_id().0;
                for _ in 0..3 {
                    let (data, stat) = match c.get_data(&p).await {
                        Ok(v) => v,
                        Err(zk::Error::NoNode) => {
                            return Ok(Renew::Status(LockStatus::LockUnexist));
                        }
                        Err(e) => return Err(e),
                    };
                    if data != o.as_bytes() {
                        return Ok(Renew::Status(LockStatus::LockBelongToOthers));
                    }
                    if stat.ephemeral_owner == session {
                        return Ok(Renew::Ours(stat.czxid));
                    }
                    // Held by another session: move it into ours, atomically.
                    let mut w = c.new_multi_writer();
                    w.add_delete(&p, Some(stat.version))?;
                    w.add_create(&p, o.as_bytes(), &ephemeral())?;
                    match w.commit().await {
                        Ok(results) => {
                            let czxid = results
                                .into_iter()
                                .find_map(|r| match r {
                                    zk::MultiWriteResult::Create { stat, .. } => Some(stat.czxid),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            return Ok(Renew::Ours(czxid));
                        }
                        Err(zk::MultiWriteError::OperationFailed { .. }) => continue,
                        Err(zk::MultiWriteError::RequestFailed { source }) => return Err(source),
                    }
                }
                Ok(Renew::Status(LockStatus::LockBelongToOthers))
            })
            .await?;
        match renew {
            Renew::Status(s) => Ok(s),
            Renew::Ours(czxid) => {
                self.schedule_expiry(path, czxid, started + lease);
                Ok(LockStatus::Success)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let l = ZkLock::from_spec(
            &ComponentSpec::new("l", "zookeeper").with("zookeeperHosts", "127.0.0.1"),
        )
        .expect("valid");
        assert_eq!(l.path("lock|||app||r").expect("path"), "/lock|||app||r");
        let l = ZkLock::from_spec(
            &ComponentSpec::new("l", "zookeeper")
                .with("zookeeperHosts", "127.0.0.1")
                .with("keyPrefixPath", "/locks/"),
        )
        .expect("valid");
        assert_eq!(l.path("r").expect("path"), "/locks/r");
        assert!(l.path("").is_err());
    }
}
