//! Distributed locks: leases in seconds, owner-checked unlock and keep-alive.

use std::time::Duration;

use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::{Error, Result};

use crate::Runtime;
use crate::call::Target;

/// The lease of `expire` seconds.
fn lease(expire: i32) -> Result<Duration> {
    if expire <= 0 {
        return Err(Error::invalid(format!(
            "expire must be a positive number of seconds, got {expire}"
        )));
    }
    Ok(Duration::from_secs(expire.unsigned_abs().into()))
}

impl Runtime {
    fn lock_target<'a>(
        &'a self,
        store: &'a str,
        resource: &str,
        owner: &str,
    ) -> Result<(Target<'a, dyn LockStore>, String)> {
        let l = self.components.target::<dyn LockStore>(store)?;
        let key = l.key(resource, "resource_id")?;
        if owner.is_empty() {
            return Err(Error::empty_field("lock_owner"));
        }
        Ok((l, key))
    }

    /// Tries to take `resource` for `owner` for `expire` seconds; `Ok(false)` if held.
    ///
    /// # Errors
    /// Unknown store, empty resource or owner, non-positive expire, component failure.
    pub async fn try_lock(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
        expire: i32,
    ) -> Result<bool> {
        let (l, key) = self.lock_target(store, resource, owner)?;
        let lease = lease(expire)?;
        l.run("try_lock", || l.component.try_lock(&key, owner, lease))
            .await
    }

    /// Releases `resource` held by `owner`.
    ///
    /// # Errors
    /// Unknown store, empty resource or owner, component failure.
    pub async fn unlock(&self, store: &str, resource: &str, owner: &str) -> Result<LockStatus> {
        let (l, key) = self.lock_target(store, resource, owner)?;
        l.run("unlock", || l.component.unlock(&key, owner)).await
    }

    /// Extends the lease of `resource` held by `owner` to `expire` seconds from now.
    ///
    /// # Errors
    /// Unknown store, empty resource or owner, non-positive expire, component failure.
    pub async fn lock_keep_alive(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
        expire: i32,
    ) -> Result<LockStatus> {
        let (l, key) = self.lock_target(store, resource, owner)?;
        let lease = lease(expire)?;
        l.run("keep_alive", || l.component.keep_alive(&key, owner, lease))
            .await
    }
}
