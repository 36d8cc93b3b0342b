//! etcd lock store in Layotto's layout (`mosn/layotto:components/lock/etcd/etcd_lock.go`).
//!
//! A lock is the key `<keyPrefixPath><resource>` (default prefix `/layotto/`; the runtime has
//! already made the resource `lock|||<appid>||<id>`) holding the owner, attached to a lease of
//! the requested expiry:
//!
//! - `try_lock`: grant a lease, then `Txn(If createRevision(key) == 0, Then Put(key, owner,
//!   lease), Else Get(key))`, as Layotto does; a lost race revokes the unused lease (Layotto
//!   leaks it until it expires).
//! - `unlock`: `Txn(If value(key) == owner, Then Get, Delete, Else Get)`: an empty `Get` means
//!   `LockUnexist`, another value `LockBelongToOthers`.
//! - `keep_alive` (a stub upstream): grant a lease of the new expiry, then `Txn(If value(key) ==
//!   owner, Then Get, Put(key, owner, new lease), Else Get)` and revoke the old lease; the lock
//!   keeps its key and owner, so Layotto sidecars sharing the etcd see it held.
//!
//! etcd leases count whole seconds and have a cluster minimum (1.5 x election timeout, 2 s with
//! etcd's defaults), and expired leases are reaped every 500 ms. So that a lock ends when it
//! was asked to, the sidecar that took it revokes its lease at the exact deadline; etcd's own
//! lease expiry is the backstop when that sidecar is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use layotto_core::lock::{DeadlineTimers, LockStatus, LockStore};
use layotto_core::metadata::decode;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Result};

use crate::client::{EtcdClient, spawn_cleanup};
use crate::config::{EtcdConfig, etcd_metadata, key_prefix};

etcd_metadata! {
    /// Metadata of [`EtcdLock`]: the connection keys plus `keyPrefixPath`.
    pub struct EtcdLockMetadata {
        /// `keyPrefixPath`: prefix of every lock key (default `/layotto/`).
        pub key_prefix_path: Option<String>,
    }
}

impl ComponentMetadata for EtcdLockMetadata {}

/// Lock store on etcd (type `etcd`). See the module documentation.
pub struct EtcdLock {
    client: Arc<EtcdClient>,
    prefix: String,
    /// The locks this sidecar holds, by key, under their lease ids.
    held: DeadlineTimers,
}

impl std::fmt::Debug for EtcdLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLock")
            .field("client", &self.client)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Whole seconds of `lease`, rounded up, at least 1.
fn ttl_secs(lease: Duration) -> i64 {
    let s = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
    i64::try_from(s.max(1)).unwrap_or(i64::MAX)
}

/// The first `Get` of a transaction's responses.
fn first_get(resp: &TxnResponse) -> Option<etcd_client::KeyValue> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => Some(g.kvs().first().cloned()),
        _ => None,
    })?
}

/// The status of a failed owner check: no key, or another owner.
fn not_owner(resp: &TxnResponse) -> LockStatus {
    match first_get(resp) {
        None => LockStatus::LockUnexist,
        Some(_) => LockStatus::LockBelongToOthers,
    }
}

impl EtcdLock {
    /// Factory: [`EtcdLockMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: EtcdLockMetadata = decode(spec)?;
        let cfg = EtcdConfig::from_meta(spec, &meta.connection(), None)?;
        Ok(Self {
            client: Arc::new(EtcdClient::new(format!("lock store '{}'", spec.name), cfg)),
            prefix: key_prefix(meta.key_prefix_path.as_deref()),
            held: DeadlineTimers::default(),
        })
    }

    /// The etcd key of `resource`.
    pub fn key(&self, resource: &str) -> String {
        format!("{}{resource}", self.prefix)
    }

    fn validate(&self, resource: &str, owner: &str, lease: Option<Duration>) -> Result<()> {
        if resource.is_empty() {
            return Err(self.client.err(Error::empty_field("resource_id")));
        }
        if owner.is_empty() {
            return Err(self.client.err(Error::empty_field("lock_owner")));
        }
        if lease.is_some_and(|l| l.is_zero()) {
            return Err(self.client.err(Error::invalid(
                "lease (expire, seconds) must be greater than 0",
            )));
        }
        Ok(())
    }

    async fn grant(&self, lease: Duration) -> Result<i64> {
        let ttl = ttl_secs(lease);
        let resp = self
            .client
            .call("grant lease", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        Ok(resp.id())
    }

    fn revoke_later(&self, lease: i64) {
        if lease == 0 {
            return;
        }
        let client = Arc::clone(&self.client);
        spawn_cleanup("revoking an unused lease", async move {
            client
                .call("revoke lease", |mut c| async move {
                    c.lease_revoke(lease).await
                })
                .await
                .map(|_| ())
        });
    }

    /// Revokes `lease` of `key` at `deadline` unless replaced or released before; retried
    /// while etcd is unreachable, until etcd's own expiry would have ended it.
    fn schedule_expiry(&self, key: String, lease: i64, deadline: Instant, ttl: Duration) {
        let client = Arc::clone(&self.client);
        let stop = Arc::clone(&self.client);
        self.held.schedule(
            key,
            lease,
            deadline,
            ttl + Duration::from_secs(5),
            move || stop.is_closed(),
            move || {
                let client = Arc::clone(&client);
                async move {
                    // A lease already gone (expired in etcd, or revoked) answers an error
                    // that is not Unavailable: nothing left to do.
                    client
                        .call("revoke expired lease", |mut c| async move {
                            c.lease_revoke(lease).await
                        })
                        .await
                        .map(|_| ())
                }
            },
        );
    }

    /// Forgets the deadline of `key` (released, or its lease replaced).
    fn forget(&self, key: &str) {
        self.held.forget(key);
    }
}

#[async_trait]
impl Component for EtcdLock {
    /// Connects. Errors: unavailable when etcd cannot be reached within `dialTimeout`.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Stops the deadline timers (etcd's lease expiry still ends the locks) and drops the
    /// client.
    async fn close(&self) -> Result<()> {
        self.held.clear();
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl LockStore for EtcdLock {
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        self.validate(resource, owner, Some(lease))?;
        let started = Instant::now();
        let key = self.key(resource);
        let lease_id = self.grant(lease).await?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                owner,
                Some(PutOptions::new().with_lease(lease_id)),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self
            .client
            .call("try_lock", |mut c| async move { c.txn(txn).await })
            .await;
        match resp {
            Ok(r) if r.succeeded() => {
                let ttl = Duration::from_secs(ttl_secs(lease).unsigned_abs());
                self.schedule_expiry(key, lease_id, started + lease, ttl);
                Ok(true)
            }
            Ok(_) => {
                self.revoke_later(lease_id);
                Ok(false)
            }
            Err(e) => {
                // Not acknowledged: make sure a lock taken anyway does not outlive the error.
                self.revoke_later(lease_id);
                Err(e)
            }
        }
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus> {
        self.validate(resource, owner, None)?;
        let key = self.key(resource);
        let txn = Txn::new()
            .when([Compare::value(key.as_str(), CompareOp::Equal, owner)])
            .and_then([
                TxnOp::get(key.as_str(), None),
                TxnOp::delete(key.as_str(), None),
            ])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self
            .client
            .call("unlock", |mut c| async move { c.txn(txn).await })
            .await?;
        if !resp.succeeded() {
            return Ok(not_owner(&resp));
        }
        self.forget(&key);
        if let Some(kv) = first_get(&resp) {
            self.revoke_later(kv.lease());
        }
        Ok(LockStatus::Success)
    }

    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus> {
        self.validate(resource, owner, Some(lease))?;
        let started = Instant::now();
        let key = self.key(resource);
        let lease_id = self.grant(lease).await?;
        let txn = Txn::new()
            .when([Compare::value(key.as_str(), CompareOp::Equal, owner)])
            .and_then([
                TxnOp::get(key.as_str(), None),
                TxnOp::put(
                    key.as_str(),
                    owner,
                    Some(PutOptions::new().with_lease(lease_id)),
                ),
            ])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self
            .client
            .call("keep_alive", |mut c| async move { c.txn(txn).await });
        let resp = match resp.await {
            Ok(r) => r,
            Err(e) => {
                self.revoke_later(lease_id);
                return Err(e);
            }
        };
        if !resp.succeeded() {
            self.revoke_later(lease_id);
            return Ok(not_owner(&resp));
        }
        let old = first_get(&resp).map(|kv| kv.lease()).unwrap_or(0);
        let ttl = Duration::from_secs(ttl_secs(lease).unsigned_abs());
        self.schedule_expiry(key, lease_id, started + lease, ttl);
        if old != lease_id {
            self.revoke_later(old);
        }
        Ok(LockStatus::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_ttl() {
        let l = EtcdLock::from_spec(
            &ComponentSpec::new("l", "etcd")
                .with("endpoints", "localhost:2379")
                .with("keyPrefixPath", "/lock"),
        )
        .expect("valid");
        assert_eq!(l.key("lock|||app||r"), "/lock/lock|||app||r");
        let d = EtcdLock::from_spec(&ComponentSpec::new("l", "etcd").with("endpoints", "h:1"))
            .expect("valid");
        assert_eq!(d.key("r"), "/layotto/r");
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(10)), 10);
    }
}
