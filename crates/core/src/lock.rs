//! Distributed lock: non-blocking try-lock with a lease, owner-checked unlock and keep-alive.
//!
//! Follows `mosn/layotto:components/lock/lock_store.go`: a lock is held by one owner at a time,
//! is not re-entrant (a second `try_lock` by the same owner fails while held), and expires after
//! its lease. Unlike Layotto, `keep_alive` is real: it extends the owner's lease.

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// Outcome of an unlock or keep-alive (Layotto's `UnlockResponse.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Done.
    Success,
    /// No such lock (never taken, released or expired).
    LockUnexist,
    /// Held by another owner.
    LockBelongToOthers,
    /// The store failed.
    InternalError,
}

/// A lock store component. Keys arrive already prefixed by the runtime.
#[async_trait]
pub trait LockStore: Component {
    /// Takes `resource` for `owner` for `lease`; `Ok(false)` if anyone holds it.
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool>;
    /// Releases `resource` if `owner` holds it.
    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus>;
    /// Sets the lease of `resource` to `lease` from now if `owner` holds it.
    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus>;
}

impl Contract for dyn LockStore {
    const KIND: Kind = Kind::Lock;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
