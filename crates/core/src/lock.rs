//! Distributed lock: non-blocking try-lock with a lease, owner-checked unlock and keep-alive.
//!
//! Follows `mosn/layotto:components/lock/lock_store.go`: a lock is held by one owner at a time,
//! is not re-entrant (a second `try_lock` by the same owner fails while held), and expires after
//! its lease. Unlike Layotto, `keep_alive` is real: it extends the owner's lease.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::AbortHandle;

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

/// The locks a component holds in this process, each with a timer that releases it at its
/// lease deadline unless it is replaced or forgotten first: for backends whose own expiry is
/// coarser than the lease (etcd's minimum lease and reaping interval, a ZooKeeper session).
///
/// Each holding carries a `token` (an etcd lease id, a ZooKeeper node's creation id), so a
/// timer removes only the holding it was scheduled for.
#[derive(Clone, Default)]
pub struct DeadlineTimers {
    held: Arc<Mutex<HashMap<String, (i64, AbortHandle)>>>,
}

impl std::fmt::Debug for DeadlineTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineTimers")
            .field("held", &self.map().len())
            .finish()
    }
}

/// How often a release that found the backend unreachable is tried again.
const RELEASE_RETRY: Duration = Duration::from_millis(250);

impl DeadlineTimers {
    fn map(&self) -> MutexGuard<'_, HashMap<String, (i64, AbortHandle)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `key` under `token` until `deadline`, then runs `release`: again every 250 ms
    /// while it fails [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable), until
    /// `give_up_after` past the deadline or until `stopped()` (the backend's own expiry is
    /// the backstop). Any other outcome ends it. The holding is then forgotten if it is still
    /// this one. Scheduling `key` again replaces (cancels) the earlier timer.
    pub fn schedule<R, Fut>(
        &self,
        key: String,
        token: i64,
        deadline: Instant,
        give_up_after: Duration,
        stopped: impl Fn() -> bool + Send + 'static,
        release: R,
    ) where
        R: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let timers = self.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            let give_up = deadline + give_up_after;
            loop {
                match release().await {
                    Err(e) if e.kind == crate::ErrorKind::Unavailable => {
                        if Instant::now() >= give_up || stopped() {
                            break;
                        }
                        tokio::time::sleep(RELEASE_RETRY).await;
                    }
                    _ => break,
                }
            }
            let mut map = timers.map();
            if map.get(&task_key).is_some_and(|(t, _)| *t == token) {
                map.remove(&task_key);
            }
        });
        if let Some((_, previous)) = self.map().insert(key, (token, task.abort_handle())) {
            previous.abort();
        }
    }

    /// Whether `key` is held (its timer has not run yet).
    pub fn is_held(&self, key: &str) -> bool {
        self.map().contains_key(key)
    }

    /// Forgets `key` (released, or its holding replaced) and cancels its timer.
    pub fn forget(&self, key: &str) {
        if let Some((_, timer)) = self.map().remove(key) {
            timer.abort();
        }
    }

    /// Cancels every timer (at close: the backend's own expiry still ends the locks).
    pub fn clear(&self) {
        for (_, (_, timer)) in self.map().drain() {
            timer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::Error;

    #[tokio::test]
    async fn a_timer_releases_once_retrying_while_unavailable_and_forgets_only_its_holding() {
        let timers = DeadlineTimers::default();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        timers.schedule(
            "k".into(),
            1,
            Instant::now() + Duration::from_millis(20),
            Duration::from_secs(5),
            || false,
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(Error::unavailable("down"))
                    } else {
                        Ok(())
                    }
                }
            },
        );
        assert!(timers.is_held("k"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "retried once after Unavailable"
        );
        assert!(!timers.is_held("k"));

        // A replaced holding: the first timer is cancelled and the second stays held.
        let released = Arc::new(AtomicU32::new(0));
        for token in [1, 2] {
            let r = released.clone();
            timers.schedule(
                "k".into(),
                token,
                Instant::now() + Duration::from_secs(60),
                Duration::ZERO,
                || false,
                move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    async { Ok(()) }
                },
            );
        }
        timers.forget("k");
        assert!(!timers.is_held("k"));
        timers.clear();
        assert_eq!(released.load(Ordering::SeqCst), 0);
    }
}
