//! In-memory distributed lock (valid within one process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::metadata::decode;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Result};

use crate::lock;

/// Metadata of [`MemoryLock`]: no keys of its own (`keyPrefix` is the runtime's).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MemoryLockMetadata {}

impl ComponentMetadata for MemoryLockMetadata {}

#[derive(Debug)]
struct Held {
    owner: String,
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    locks: HashMap<String, Held>,
    ops_since_sweep: usize,
}

/// Lock store kept in process memory (type `in-memory`).
///
/// A lock is held by one owner until it is unlocked or its lease (a duration; the API gives
/// seconds) runs out. Not re-entrant: the holder's second `try_lock` fails too.
#[derive(Debug)]
pub struct MemoryLock {
    name: String,
    inner: Mutex<Inner>,
}

impl MemoryLock {
    /// An empty lock store named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Factory: [`MemoryLockMetadata`] (no keys of its own).
    ///
    /// # Errors
    /// None today; the signature matches every factory.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let MemoryLockMetadata {} = decode(spec)?;
        Ok(Self::new(spec.name.clone()))
    }

    fn validate(&self, resource: &str, owner: &str, lease: Option<Duration>) -> Result<()> {
        let ctx = || format!("lock store '{}'", self.name);
        if resource.is_empty() {
            return Err(Error::empty_field("resource_id").context(ctx()));
        }
        if owner.is_empty() {
            return Err(Error::empty_field("lock_owner").context(ctx()));
        }
        if lease.is_some_and(|l| l.is_zero()) {
            return Err(Error::invalid(format!(
                "{}: lease (expire, seconds) must be greater than 0",
                ctx()
            )));
        }
        Ok(())
    }

    fn deadline(&self, now: Instant, lease: Duration) -> Result<Instant> {
        now.checked_add(lease).ok_or_else(|| {
            Error::invalid(format!(
                "lock store '{}': lease of {}s is too large",
                self.name,
                lease.as_secs()
            ))
        })
    }

    /// Checks `owner` against the live holder of `resource`.
    fn status(inner: &Inner, resource: &str, owner: &str, now: Instant) -> LockStatus {
        match inner.locks.get(resource) {
            Some(h) if h.expires_at > now => {
                if h.owner == owner {
                    LockStatus::Success
                } else {
                    LockStatus::LockBelongToOthers
                }
            }
            _ => LockStatus::LockUnexist,
        }
    }
}

impl Component for MemoryLock {}

#[async_trait]
impl LockStore for MemoryLock {
    /// Takes `resource` for `owner` for `lease`; `Ok(false)` if it is held and not expired.
    /// Errors: invalid argument for an empty resource or owner or a zero lease.
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        self.validate(resource, owner, Some(lease))?;
        let now = Instant::now();
        let expires_at = self.deadline(now, lease)?;
        let mut inner = lock(&self.inner);
        if inner
            .locks
            .get(resource)
            .is_some_and(|h| h.expires_at > now)
        {
            return Ok(false);
        }
        inner.locks.insert(
            resource.to_owned(),
            Held {
                owner: owner.to_owned(),
                expires_at,
            },
        );
        inner.ops_since_sweep += 1;
        if inner.ops_since_sweep >= inner.locks.len().max(64) {
            inner.ops_since_sweep = 0;
            inner.locks.retain(|_, h| h.expires_at > now);
        }
        Ok(true)
    }

    /// Releases `resource`: `LockUnexist` if not held (or expired), `LockBelongToOthers` if
    /// another owner holds it, else `Success`.
    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus> {
        self.validate(resource, owner, None)?;
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let status = Self::status(&inner, resource, owner, now);
        if matches!(status, LockStatus::Success | LockStatus::LockUnexist) {
            inner.locks.remove(resource);
        }
        Ok(status)
    }

    /// Sets the lease of `resource` to `lease` from now if `owner` holds it; same statuses as
    /// [`LockStore::unlock`].
    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus> {
        self.validate(resource, owner, Some(lease))?;
        let now = Instant::now();
        let expires_at = self.deadline(now, lease)?;
        let mut inner = lock(&self.inner);
        let status = Self::status(&inner, resource, owner, now);
        if status == LockStatus::Success
            && let Some(h) = inner.locks.get_mut(resource)
        {
            h.expires_at = expires_at;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn exclusive_not_reentrant_and_owner_checked() {
        let l = MemoryLock::new("l");
        assert!(l.try_lock("r", "a", LEASE).await.expect("lock"));
        assert!(!l.try_lock("r", "b", LEASE).await.expect("held"));
        assert!(!l.try_lock("r", "a", LEASE).await.expect("not re-entrant"));
        assert_eq!(
            l.unlock("r", "b").await.expect("unlock"),
            LockStatus::LockBelongToOthers
        );
        assert_eq!(
            l.keep_alive("r", "b", LEASE).await.expect("keep"),
            LockStatus::LockBelongToOthers
        );
        assert_eq!(
            l.unlock("r", "a").await.expect("unlock"),
            LockStatus::Success
        );
        assert_eq!(
            l.unlock("r", "a").await.expect("unlock"),
            LockStatus::LockUnexist
        );
        assert!(l.try_lock("r", "b", LEASE).await.expect("free again"));
        assert_eq!(
            l.keep_alive("other", "b", LEASE).await.expect("keep"),
            LockStatus::LockUnexist
        );
    }

    #[tokio::test]
    async fn lease_expires_and_keep_alive_extends() {
        let l = MemoryLock::new("l");
        // Margins of 400 ms keep this robust on a loaded machine.
        let lease = Duration::from_millis(1000);
        let step = Duration::from_millis(600);
        assert!(l.try_lock("r", "a", lease).await.expect("lock"));
        tokio::time::sleep(step).await;
        assert_eq!(
            l.keep_alive("r", "a", lease).await.expect("keep"),
            LockStatus::Success
        );
        tokio::time::sleep(step).await;
        // 1.2 s after locking, past the first lease: still held thanks to the keep-alive.
        assert!(!l.try_lock("r", "b", lease).await.expect("still held"));
        tokio::time::sleep(step).await;
        assert_eq!(
            l.unlock("r", "a").await.expect("unlock"),
            LockStatus::LockUnexist
        );
        assert!(l.try_lock("r", "b", lease).await.expect("expired"));
    }

    #[tokio::test]
    async fn bad_input_names_the_field() {
        let l = MemoryLock::new("l");
        let e = l
            .try_lock("", "a", LEASE)
            .await
            .expect_err("empty resource");
        assert!(e.message.contains("resource_id"), "{e}");
        let e = l.try_lock("r", "", LEASE).await.expect_err("empty owner");
        assert!(e.message.contains("lock_owner"), "{e}");
        let e = l
            .try_lock("r", "a", Duration::ZERO)
            .await
            .expect_err("zero");
        assert!(e.message.contains("expire"), "{e}");
    }
}
