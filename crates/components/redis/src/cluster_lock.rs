//! Redlock over N independent Redis hosts (Layotto's `redis_cluster` lock, types
//! `redis_cluster` and `lock.redis_cluster`).
//!
//! Every operation runs the single-node command of [`crate::RedisLock`] (`SET NX PX`, the
//! owner-checked unlock and keep-alive scripts) on all hosts concurrently, each call bounded
//! by `dialTimeout + readTimeout`, and decides by majority (`quorum = N/2 + 1`):
//!
//! - `try_lock` is granted iff at least `quorum` hosts took it and the lease left after the
//!   round trip, `lease - elapsed - drift` with `drift = lease/100 + 2 ms`, is positive.
//!   Otherwise the hosts that took it are released (owner-checked) and the answer is
//!   `Ok(false)`, or `Err(Unavailable)` when at least `quorum` hosts failed.
//! - `unlock` and `keep_alive` return the status at least `quorum` hosts agree on (`Success`,
//!   `LockBelongToOthers` or `LockUnexist`); `Err(Unavailable)` when at least `quorum` hosts
//!   failed; `InternalError` when the answers are split with no majority.
//! - `health` is UP iff at least `quorum` hosts answer PING.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::{Component, ComponentSpec, Error, Health, HealthStatus, Result};

use crate::client::RedisClient;
use crate::config::{RedisConfig, decode_redis, redis_metadata};
use crate::lock::{KEEP_ALIVE, UNLOCK, owner_script, set_nx, validate};

/// Type string of the Redlock lock store (Layotto's name).
pub const CLUSTER_TYPE: &str = "redis_cluster";
/// Dapr-style type string of the Redlock lock store.
pub const LOCK_CLUSTER_TYPE: &str = "lock.redis_cluster";
/// Metadata key: comma-separated `host:port` list of the independent Redis hosts (required).
pub const HOSTS_KEY: &str = "redisHosts";

redis_metadata! {
    /// Metadata of [`RedisClusterLock`]: `redisHosts` plus the connection keys (except
    /// `redisHost`, refused), applied to every host.
    pub struct RedisClusterLockMetadata {
        /// `redisHosts`: comma-separated `host:port` list of the independent hosts (required).
        pub redis_hosts: Option<String>,
    }
}

/// Hosts that must agree: a strict majority of `n`.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The lease left after `elapsed`, minus the clock drift allowance (`lease/100 + 2 ms`);
/// `None` when nothing is left.
fn validity(lease: Duration, elapsed: Duration) -> Option<Duration> {
    let drift = lease / 100 + Duration::from_millis(2);
    lease
        .checked_sub(elapsed)
        .and_then(|d| d.checked_sub(drift))
        .filter(|d| !d.is_zero())
}

/// Whether `successes` of `n` hosts taking the lock within `elapsed` grants it.
fn granted(successes: usize, n: usize, lease: Duration, elapsed: Duration) -> bool {
    successes >= quorum(n) && validity(lease, elapsed).is_some()
}

/// The majority answer of owner-checked unlock / keep-alive results (see the module doc).
fn majority_status(
    results: &[Result<LockStatus>],
    what: &str,
    hosts: &[String],
) -> Result<LockStatus> {
    let q = quorum(results.len());
    let count = |s: LockStatus| {
        results
            .iter()
            .filter(|r| matches!(r, Ok(x) if *x == s))
            .count()
    };
    for s in [
        LockStatus::Success,
        LockStatus::LockBelongToOthers,
        LockStatus::LockUnexist,
    ] {
        if count(s) >= q {
            return Ok(s);
        }
    }
    let failed = failures(results, hosts);
    if failed.len() >= q {
        return Err(unavailable(what, &failed, results.len()));
    }
    Ok(LockStatus::InternalError)
}

/// `host:port: error` of every failed result.
fn failures<T>(results: &[Result<T>], hosts: &[String]) -> Vec<String> {
    results
        .iter()
        .zip(hosts)
        .filter_map(|(r, h)| r.as_ref().err().map(|e| format!("{h}: {}", e.message)))
        .collect()
}

fn unavailable(what: &str, failed: &[String], n: usize) -> Error {
    Error::unavailable(format!(
        "{what}: {} of {n} redis hosts failed (a majority of {} must answer): {}",
        failed.len(),
        quorum(n),
        failed.join("; ")
    ))
}

/// Redlock lock store over the independent Redis hosts of `redisHosts`.
#[derive(Debug)]
pub struct RedisClusterLock {
    label: String,
    clients: Vec<RedisClient>,
    /// `host:port` of each client, for messages.
    hosts: Vec<String>,
}

impl RedisClusterLock {
    /// Factory: [`RedisClusterLockMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: RedisClusterLockMetadata = decode_redis(spec)?;
        let cfgs = RedisConfig::from_meta_hosts(
            spec,
            &meta.connection(),
            HOSTS_KEY,
            meta.redis_hosts.as_deref(),
        )?;
        let label = format!("lock store '{}'", spec.name);
        let hosts = cfgs
            .iter()
            .map(|c| format!("{}:{}", c.host, c.port))
            .collect();
        let clients = cfgs
            .into_iter()
            .map(|c| RedisClient::new(label.clone(), c))
            .collect();
        Ok(Self {
            label,
            clients,
            hosts,
        })
    }

    /// Runs `f` on every host concurrently, connecting first a host not connected yet.
    async fn on_all<'a, T, F, Fut>(&'a self, f: F) -> Vec<Result<T>>
    where
        F: Fn(&'a RedisClient) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        join_all(self.clients.iter().map(|c| {
            let fut = f(c);
            async move {
                c.connect().await?;
                fut.await
            }
        }))
        .await
    }

    fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }
}

#[async_trait]
impl Component for RedisClusterLock {
    /// Connects to every host; succeeds when a majority is reachable (the others are
    /// connected again on each call).
    async fn init(&self) -> Result<()> {
        let results = join_all(self.clients.iter().map(RedisClient::connect)).await;
        let failed = failures(&results, &self.hosts);
        if failed.len() >= quorum(self.clients.len()) {
            return Err(self.err(unavailable("init", &failed, self.clients.len())));
        }
        Ok(())
    }

    /// UP iff a majority of the hosts answers PING.
    async fn health(&self) -> Health {
        let results: Vec<Result<()>> = self
            .on_all(|c| async move {
                let h = c.health().await;
                if h.status == HealthStatus::Up {
                    Ok(())
                } else {
                    let reason = h.details.get("reason").map_or("down", String::as_str);
                    Err(Error::unavailable(reason))
                }
            })
            .await;
        let failed = failures(&results, &self.hosts);
        if failed.len() >= quorum(self.clients.len()) {
            Health::down(format!(
                "{}: {} of {} redis hosts failing: {}",
                self.label,
                failed.len(),
                self.clients.len(),
                failed.join("; ")
            ))
        } else {
            Health::up()
        }
    }

    /// Drops every host's connection.
    async fn close(&self) -> Result<()> {
        for c in &self.clients {
            c.close();
        }
        Ok(())
    }
}

#[async_trait]
impl LockStore for RedisClusterLock {
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        let ms = validate(&self.clients[0], resource, owner, Some(lease))?;
        let started = Instant::now();
        let results = self.on_all(|c| set_nx(c, resource, owner, ms)).await;
        let elapsed = started.elapsed();
        let n = self.clients.len();
        let successes = results.iter().filter(|r| matches!(r, Ok(true))).count();
        if granted(successes, n, lease, elapsed) {
            return Ok(true);
        }
        // Release what was taken; keys on hosts that failed expire with their lease.
        join_all(
            self.clients
                .iter()
                .zip(&results)
                .filter(|(_, r)| matches!(r, Ok(true)))
                .map(|(c, _)| owner_script(c, &UNLOCK, "release", resource, owner, 0)),
        )
        .await;
        let failed = failures(&results, &self.hosts);
        if failed.len() >= quorum(n) {
            return Err(self.err(unavailable("try_lock", &failed, n)));
        }
        Ok(false)
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus> {
        validate(&self.clients[0], resource, owner, None)?;
        let results = self
            .on_all(|c| owner_script(c, &UNLOCK, "unlock", resource, owner, 0))
            .await;
        majority_status(&results, "unlock", &self.hosts).map_err(|e| self.err(e))
    }

    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus> {
        let ms = validate(&self.clients[0], resource, owner, Some(lease))?;
        let results = self
            .on_all(|c| owner_script(c, &KEEP_ALIVE, "keep_alive", resource, owner, ms))
            .await;
        majority_status(&results, "keep_alive", &self.hosts).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(non_snake_case)]
    fn MS(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn quorum_and_validity() {
        assert_eq!(
            [1, 2, 3, 4, 5, 6, 7].map(quorum),
            [1, 2, 2, 3, 3, 4, 4],
            "strict majority"
        );
        // 10 s lease: drift is 100 ms + 2 ms.
        assert_eq!(validity(MS(10_000), MS(0)), Some(MS(9_898)));
        assert_eq!(validity(MS(10_000), MS(898)), Some(MS(9_000)));
        assert_eq!(validity(MS(10_000), MS(9_898)), None, "exactly zero left");
        assert_eq!(
            validity(MS(10_000), MS(20_000)),
            None,
            "slower than the lease"
        );
        // 1 ms lease: drift alone (2 ms) exceeds it.
        assert_eq!(validity(MS(1), MS(0)), None);
        assert!(granted(2, 3, MS(1000), MS(10)));
        assert!(!granted(1, 3, MS(1000), MS(10)), "minority");
        assert!(!granted(2, 4, MS(1000), MS(10)), "half is no majority");
        assert!(granted(3, 5, MS(1000), MS(10)));
        assert!(!granted(3, 3, MS(1000), MS(988)), "validity used up");
        assert!(granted(3, 3, MS(1000), MS(987)));
        assert!(granted(1, 1, MS(1000), MS(0)));
    }

    #[test]
    fn majority_rule() {
        use LockStatus::{InternalError, LockBelongToOthers as Others, LockUnexist, Success};
        let hosts: Vec<String> = (1..=5).map(|i| format!("h{i}:1")).collect();
        let down = || Err(Error::unavailable("refused"));
        let st = |r: Vec<Result<LockStatus>>| majority_status(&r, "unlock", &hosts[..r.len()]);
        assert_eq!(
            st(vec![Ok(Success), Ok(Success), down()]).ok(),
            Some(Success)
        );
        assert_eq!(
            st(vec![Ok(Success), Ok(LockUnexist), Ok(Success)]).ok(),
            Some(Success)
        );
        assert_eq!(
            st(vec![Ok(Others), Ok(LockUnexist), Ok(Others)]).ok(),
            Some(Others)
        );
        assert_eq!(
            st(vec![Ok(LockUnexist), down(), Ok(LockUnexist)]).ok(),
            Some(LockUnexist)
        );
        assert_eq!(
            st(vec![Ok(Success), Ok(Others), Ok(LockUnexist)]).ok(),
            Some(InternalError),
            "split"
        );
        assert_eq!(
            st(vec![Ok(Success), Ok(Success), down(), down()]).ok(),
            Some(InternalError),
            "half is no majority"
        );
        let e = st(vec![Ok(Success), down(), down()]).expect_err("majority down");
        assert_eq!(e.kind, layotto_core::ErrorKind::Unavailable);
        assert!(e.message.contains("2 of 3"), "{e}");
        assert!(
            e.message.contains("h2:1") && e.message.contains("h3:1"),
            "{e}"
        );
    }
}
