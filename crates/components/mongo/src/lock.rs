//! MongoDB lock store in Layotto's layout (`mosn/layotto:components/lock/mongo/mongo_lock.go`).
//!
//! A lock is the document `{_id: RESOURCE, LockOwner: OWNER, Expire: DATE}` in the component's
//! collection (default `layottoStore.layottoCollection`; the runtime has already made the
//! resource `lock|||<appid>||<id>` or whatever its key layout says). `Expire` is the lease
//! deadline, a BSON date from the sidecar's clock.
//!
//! Upstream wraps each call in a multi-document transaction and relies on a TTL index to delete
//! expired locks (up to a minute late, during which the resource stays locked). Neither exists
//! on a standalone server or on FerretDB, so here each step is a single-document operation,
//! expiry is checked by the component, and every write names the exact lock instance it read
//! (owner and deadline):
//!
//! - `try_lock`: `insertOne` (a duplicate `_id` is atomic everywhere); when taken, read it, and
//!   if it expired `replaceOne({_id, LockOwner, Expire})` takes over that instance only.
//! - `unlock`: read; absent or expired is `LockUnexist`, another owner `LockBelongToOthers`,
//!   else `deleteOne({_id, LockOwner, Expire})`.
//! - `keep_alive` (absent upstream): the same, `updateOne` setting a new `Expire`.
//!
//! The read-modify-writes run inside [`crate::MongoClient::guarded`], which on FerretDB (whose
//! updates are not atomic) keeps two components from interleaving them. An owner's lock with
//! less than [`OWNER_MARGIN`] left counts as expired for its owner, so an owner's write never
//! races a take-over at the deadline.
//!
//! The TTL index on `Expire` is still asked for (so a real MongoDB removes expired documents, as
//! upstream's does); a server without TTL indexes is no error, the queries do not need it.

use std::time::Duration;

use async_trait::async_trait;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::metadata::decode;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Health, Result};
use mongodb::bson::{Document, doc};

use crate::client::{MongoClient, is_duplicate_key, now_plus};

/// Declares a metadata struct with the connection keys of Layotto's MongoDB components
/// (`mosn/layotto:components/pkg/utils/mongo.go`, see [`crate::config`]) plus the given fields,
/// and its `config` method.
macro_rules! layotto_mongo_metadata {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$fattr:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Default, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            /// `mongoHost`: `host[:port]`, comma-separated for several.
            pub mongo_host: Option<String>,
            /// `server`: a `mongodb+srv` seed list (not supported yet).
            pub server: Option<String>,
            /// `username`.
            pub username: Option<String>,
            /// `mongoPassword`.
            pub mongo_password: Option<String>,
            /// `databaseName` (default `layottoStore`).
            pub database_name: Option<String>,
            /// `collectionName` (default `layottoCollection`).
            pub collection_name: Option<String>,
            /// `writeConcern`: `majority` or a number of nodes.
            pub write_concern: Option<String>,
            /// `readConcern`: local, majority, available, linearizable or snapshot.
            pub read_concern: Option<String>,
            /// `operationTimeout`: a Go duration (default 5 s); bounds every call.
            pub operation_timeout: Option<layotto_core::metadata::GoDuration>,
            /// `params`: appended to the connection string (`?tls=true`).
            pub params: Option<String>,
            $( $(#[$fattr])* pub $field: $ty, )*
        }

        impl $name {
            /// The connection settings, with Layotto's defaults.
            ///
            /// # Errors
            /// As [`crate::config::MongoConfig::new`].
            pub fn config(
                &self,
                spec: &layotto_core::ComponentSpec,
            ) -> layotto_core::Result<$crate::config::MongoConfig> {
                let raw = $crate::config::RawConfig {
                    host: ("mongoHost", self.mongo_host.as_deref()),
                    password: ("mongoPassword", self.mongo_password.as_deref()),
                    server: self.server.as_deref(),
                    username: self.username.as_deref(),
                    database_name: self.database_name.as_deref(),
                    collection_name: self.collection_name.as_deref(),
                    write_concern: self.write_concern.as_deref(),
                    read_concern: self.read_concern.as_deref(),
                    operation_timeout: self.operation_timeout,
                    params: self.params.as_deref(),
                    connection_string: None,
                };
                $crate::config::MongoConfig::new(spec, &raw, $crate::config::LAYOTTO_DEFAULTS)
            }
        }
    };
}
pub(crate) use layotto_mongo_metadata;

layotto_mongo_metadata! {
    /// Metadata of [`MongoLock`]: the connection keys.
    pub struct MongoLockMetadata {}
}

impl ComponentMetadata for MongoLockMetadata {}

/// How often `unlock` / `keep_alive` look again when the owner's lock changed between their
/// read and their write.
const ATTEMPTS: usize = 3;

/// An owner's lock with less lease left than this is treated as expired by `unlock` and
/// `keep_alive`, so their write never races a take-over at the deadline.
pub const OWNER_MARGIN: Duration = Duration::from_millis(50);

/// Field of the owner.
pub const OWNER_FIELD: &str = "LockOwner";
/// Field of the lease deadline.
pub const EXPIRE_FIELD: &str = "Expire";

/// Lock store on MongoDB (type `mongo`). See the module documentation.
#[derive(Debug)]
pub struct MongoLock {
    client: MongoClient,
}

impl MongoLock {
    /// Factory: [`MongoLockMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: MongoLockMetadata = decode(spec)?;
        Ok(Self {
            client: MongoClient::new(format!("lock store '{}'", spec.name), m.config(spec)?),
        })
    }

    /// The lock document of `resource`, if any.
    async fn read(&self, what: &str, resource: &str) -> Result<Option<Document>> {
        let id = resource.to_owned();
        self.client
            .call(
                what,
                |c, _| async move { c.find_one(doc! { "_id": id }).await },
            )
            .await
    }

    /// `try_lock` when `resource` is taken or was: takes over an expired lock (only that
    /// instance: the filter names its owner and deadline), inserts when the document is gone.
    async fn take_over(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        self.client
            .guarded("try_lock", resource, |g| async move {
                let Some(d) = self.read("try_lock", resource).await? else {
                    g.check("try_lock").map_err(|e| self.client.err(e))?;
                    return self.insert(resource, owner, lease).await;
                };
                if live(&d, now_plus(Duration::ZERO)) {
                    return Ok(false);
                }
                g.check("try_lock").map_err(|e| self.client.err(e))?;
                let filter = instance(resource, &d);
                let new = doc! { OWNER_FIELD: owner, EXPIRE_FIELD: now_plus(lease) };
                let r = self
                    .client
                    .call("try_lock", |c, _| async move {
                        c.replace_one(filter, new).await
                    })
                    .await?;
                Ok(r.matched_count == 1)
            })
            .await
    }

    async fn insert(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        let fresh = doc! { "_id": resource, OWNER_FIELD: owner, EXPIRE_FIELD: now_plus(lease) };
        self.client
            .call("try_lock", |c, _| async move {
                match c.insert_one(fresh).await {
                    Ok(_) => Ok(true),
                    Err(e) if is_duplicate_key(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// `unlock` (`lease` `None`) or `keep_alive`: reads the lock, classifies it, and deletes or
    /// extends the owner's live instance (the filter names its owner and deadline, so an
    /// instance that changed meanwhile is left alone and the call looks again).
    async fn owner_op(
        &self,
        what: &'static str,
        resource: &str,
        owner: &str,
        lease: Option<Duration>,
    ) -> Result<LockStatus> {
        for _ in 0..ATTEMPTS {
            let done = self
                .client
                .guarded(what, resource, |g| async move {
                    let Some(d) = self.read(what, resource).await? else {
                        return Ok(Some(LockStatus::LockUnexist));
                    };
                    if !live(&d, now_plus(OWNER_MARGIN)) {
                        return Ok(Some(LockStatus::LockUnexist));
                    }
                    if d.get_str(OWNER_FIELD).ok() != Some(owner) {
                        return Ok(Some(LockStatus::LockBelongToOthers));
                    }
                    g.check(what).map_err(|e| self.client.err(e))?;
                    let filter = instance(resource, &d);
                    let matched = match lease {
                        None => {
                            self.client
                                .call(what, |c, _| async move { c.delete_one(filter).await })
                                .await?
                                .deleted_count
                        }
                        Some(l) => {
                            let set = doc! { "$set": { EXPIRE_FIELD: now_plus(l) } };
                            self.client
                                .call(what, |c, _| async move { c.update_one(filter, set).await })
                                .await?
                                .matched_count
                        }
                    };
                    Ok((matched == 1).then_some(LockStatus::Success))
                })
                .await?;
            if let Some(s) = done {
                return Ok(s);
            }
        }
        Ok(LockStatus::LockUnexist)
    }
}

/// The filter matching exactly the lock instance `d` of `resource`: its owner and deadline.
fn instance(resource: &str, d: &Document) -> Document {
    let mut f = doc! { "_id": resource };
    for k in [OWNER_FIELD, EXPIRE_FIELD] {
        if let Some(v) = d.get(k) {
            f.insert(k, v.clone());
        }
    }
    f
}

/// Whether the lock document `d` is unexpired at `now`.
fn live(d: &Document, now: mongodb::bson::DateTime) -> bool {
    d.get_datetime(EXPIRE_FIELD).is_ok_and(|e| *e > now)
}

#[async_trait]
impl Component for MongoLock {
    /// Connects, pings, and asks for the TTL index on `Expire` (best effort).
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        self.client.ttl_index(EXPIRE_FIELD).await;
        Ok(())
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    async fn close(&self) -> Result<()> {
        self.client.close().await;
        Ok(())
    }
}

#[async_trait]
impl LockStore for MongoLock {
    async fn try_lock(&self, resource: &str, owner: &str, lease: Duration) -> Result<bool> {
        if self.insert(resource, owner, lease).await? {
            return Ok(true);
        }
        self.take_over(resource, owner, lease).await
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<LockStatus> {
        self.owner_op("unlock", resource, owner, None).await
    }

    async fn keep_alive(&self, resource: &str, owner: &str, lease: Duration) -> Result<LockStatus> {
        self.owner_op("keep_alive", resource, owner, Some(lease))
            .await
    }
}
