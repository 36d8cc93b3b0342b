//! Redis lock store: `SET key owner NX PX lease`; unlock and keep-alive check the owner in Lua.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::{Component, ComponentSpec, Error, Health, Result};
use redis::Script;

use crate::client::RedisClient;
use crate::config::{ConnectionMetadata, RedisConfig, decode_redis};

/// Metadata of [`RedisLock`]: the connection keys alone.
pub type RedisLockMetadata = ConnectionMetadata;

/// Deletes KEYS[1] if it holds ARGV[1]: 1 done, 0 absent, 2 held by another owner.
pub(crate) static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v ~= ARGV[1] then return 2 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// Sets the lease of KEYS[1] to ARGV[2] ms if it holds ARGV[1]: 1 done, 0 absent, 2 other.
pub(crate) static KEEP_ALIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v ~= ARGV[1] then return 2 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// Lock store on Redis (types `redis`, `lock.redis`). A lock is a string key holding the
/// owner, with the lease as its expiry.
#[derive(Debug)]
pub struct RedisLock {
    client: RedisClient,
}

impl RedisLock {
    /// Factory: [`RedisLockMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: RedisLockMetadata = decode_redis(spec)?;
        let cfg = RedisConfig::from_meta(spec, &meta)?;
        cfg.refuse_cluster(
            spec,
            "Redis replication is asynchronous, so a lock granted by a master that fails over before its replica has it is granted again (Dapr's lock.redis refuses replicas for this reason); use 'lock.redis_cluster', Redlock over independent servers",
        )?;
        Ok(Self {
            client: RedisClient::new(format!("lock store '{}'", spec.name), cfg),
        })
    }
}

/// Checks the request fields; returns the lease in milliseconds (at least 1; 0 without lease).
pub(crate) fn validate(
    client: &RedisClient,
    resource: &str,
    owner: &str,
    lease: Option<Duration>,
) -> Result<u64> {
    if resource.is_empty() {
        return Err(client.err(Error::empty_field("resource_id")));
    }
    if owner.is_empty() {
        return Err(client.err(Error::empty_field("lock_owner")));
    }
    match lease {
        None => Ok(0),
        Some(l) if l.is_zero() => Err(client.err(Error::invalid(
            "lease (expire, seconds) must be greater than 0",
        ))),
        Some(l) => u64::try_from(l.as_millis())
            .map(|ms| ms.max(1))
            .map_err(|_| client.err(Error::invalid("lease is too large"))),
    }
}

/// `SET resource owner NX PX lease_ms`: whether the lock was taken.
pub(crate) async fn set_nx(
    client: &RedisClient,
    resource: &str,
    owner: &str,
    lease_ms: u64,
) -> Result<bool> {
    let (resource, owner) = (resource.to_owned(), owner.to_owned());
    let reply: Option<String> = client
        .call("try_lock", |mut c| async move {
            redis::cmd("SET")
                .arg(resource)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query_async(&mut c)
                .await
        })
        .await?;
    Ok(reply.is_some())
}

/// Runs an owner-checked script ([`UNLOCK`] or [`KEEP_ALIVE`]) and maps its code.
pub(crate) async fn owner_script(
    client: &RedisClient,
    script: &'static Script,
    what: &str,
    resource: &str,
    owner: &str,
    lease_ms: u64,
) -> Result<LockStatus> {
    let mut inv = script.prepare_invoke();
    inv.key(resource).arg(owner).arg(lease_ms);
    let code: i64 = client
        .call(what, |mut c| async move { inv.invoke_async(&mut c).await })
        .await?;
    Ok(match code {
        1 => LockStatus::Success,
        0 => LockStatus::LockUnexist,
        2 => LockStatus::LockBelongToOthers,
        _ => LockStatus::InternalError,
    })
}

#[async_trait]
impl Component for RedisLock {
    /// Connects. Errors: unavailable when Redis cannot be reached within the timeouts.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Drops the connection.
    async fn close(&self) -> Result<()> {
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl LockStore for RedisLock {
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        let ms = validate(&self.client, resource, owner, Some(lease))?;
        set_nx(&self.client, resource, owner, ms).await
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus> {
        validate(&self.client, resource, owner, None)?;
        owner_script(&self.client, &UNLOCK, "unlock", resource, owner, 0).await
    }

    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus> {
        let ms = validate(&self.client, resource, owner, Some(lease))?;
        owner_script(&self.client, &KEEP_ALIVE, "keep_alive", resource, owner, ms).await
    }
}
