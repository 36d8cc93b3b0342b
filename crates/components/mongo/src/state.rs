//! MongoDB state store in Dapr's layout (`dapr/components-contrib:state/mongodb/mongodb.go`,
//! which Layotto registers as `mongo`).
//!
//! A key is the document `{_id: KEY, value: VALUE, _etag: UUID, _ttl: DATE | null}` in the
//! component's collection (default `daprStore.daprCollection`; the runtime has already made the
//! key `<appid>||<key>`). `value` is a string holding the bytes, as Dapr stores the bytes of its
//! API; bytes that are no UTF-8 are stored as BSON binary (Dapr would store an invalid string).
//! Reading also takes what other writers leave: a string, binary data, or a document or array
//! (answered as relaxed extended JSON, as Dapr does). Reads of keys with an expiry report
//! `ttlExpireTime`. `_etag` is a fresh UUID at every write;
//! `_ttl` is the expiry from `ttlInSeconds`, from the sidecar's clock.
//!
//! Every operation is a single-document operation, so it runs on a standalone server and on
//! FerretDB (whose updates are not atomic: there writes run inside
//! [`crate::MongoClient::guarded`]):
//!
//! - `get`: `findOne({_id})`; a document whose `_ttl` has passed is absent (MongoDB's TTL index
//!   removes it up to a minute late; FerretDB has none).
//! - `set`: with an ETag, `updateOne({_id, _etag})` (nothing matched: mismatch; Dapr would
//!   insert a missing key); first-write without ETag, `insertOne` (a duplicate `_id` that has
//!   not expired: mismatch; an expired one is replaced by `updateOne({_id, _ttl <= now})`);
//!   otherwise an upsert on `_id`.
//! - `delete`: `deleteOne({_id[, _etag]})`; with an ETag, nothing deleted is a mismatch.
//!
//! Claims `ETAG` and `TTL`. Not `TRANSACTIONAL`: multi-document transactions need a replica set
//! (Dapr refuses them without one too), and FerretDB has none, so `transact` is refused as
//! unsupported rather than run as a non-atomic sequence.

use std::time::Duration;

use async_trait::async_trait;
use layotto_core::metadata::{GoDuration, decode};
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateStore, TTL_EXPIRE_TIME_KEY,
    TransactionOp, parse_ttl, rfc3339,
};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, Error, Feature, Health, Metadata, Result,
};
use mongodb::bson::{Binary, Bson, Document, doc, spec::BinarySubtype};

use crate::client::{MongoClient, is_duplicate_key, now_plus};
use crate::config::{DAPR_DEFAULTS, MongoConfig, RawConfig};

/// Field of the value.
pub const VALUE_FIELD: &str = "value";
/// Field of the ETag.
pub const ETAG_FIELD: &str = "_etag";
/// Field of the expiry.
pub const TTL_FIELD: &str = "_ttl";

/// Metadata of [`MongoStateStore`]: Dapr's `state.mongodb` keys (Layotto's `mongoHost` and
/// `mongoPassword` spellings are accepted too).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MongoStateMetadata {
    /// `host`: `host[:port]`, comma-separated for several.
    #[serde(alias = "mongoHost")]
    pub host: Option<String>,
    /// `server`: a `mongodb+srv` seed list (not supported yet).
    pub server: Option<String>,
    /// `connectionString`: a whole `mongodb://` string, instead of the keys above.
    pub connection_string: Option<String>,
    /// `username`.
    pub username: Option<String>,
    /// `password`.
    #[serde(alias = "mongoPassword")]
    pub password: Option<String>,
    /// `databaseName` (default `daprStore`).
    pub database_name: Option<String>,
    /// `collectionName` (default `daprCollection`).
    pub collection_name: Option<String>,
    /// `writeConcern`: `majority` or a number of nodes.
    pub write_concern: Option<String>,
    /// `readConcern`: local, majority, available, linearizable or snapshot.
    pub read_concern: Option<String>,
    /// `operationTimeout`: a Go duration (default 5 s); bounds every call.
    pub operation_timeout: Option<GoDuration>,
    /// `params`: appended to the connection string (`?tls=true`).
    pub params: Option<String>,
}

impl ComponentMetadata for MongoStateMetadata {
    const NO_EFFECT: &'static [&'static str] = &["actorStateStore"];
}

/// State store on MongoDB (types `mongo` and `state.mongodb`). See the module documentation.
#[derive(Debug)]
pub struct MongoStateStore {
    client: MongoClient,
}

/// Outcome of one write attempt.
enum Write {
    Done,
    Mismatch,
}

impl MongoStateStore {
    /// Factory: [`MongoStateMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: MongoStateMetadata = decode(spec)?;
        let host_key = if spec.get_ci("host").is_none() && spec.get_ci("mongoHost").is_some() {
            "mongoHost"
        } else {
            "host"
        };
        let raw = RawConfig {
            host: (host_key, m.host.as_deref()),
            password: ("password", m.password.as_deref()),
            server: m.server.as_deref(),
            username: m.username.as_deref(),
            database_name: m.database_name.as_deref(),
            collection_name: m.collection_name.as_deref(),
            write_concern: m.write_concern.as_deref(),
            read_concern: m.read_concern.as_deref(),
            operation_timeout: m.operation_timeout,
            params: m.params.as_deref(),
            connection_string: m.connection_string.as_deref(),
        };
        Ok(Self {
            client: MongoClient::new(
                format!("state store '{}'", spec.name),
                MongoConfig::new(spec, &raw, DAPR_DEFAULTS)?,
            ),
        })
    }

    fn mismatch(&self, key: &str) -> Error {
        self.client.err(Error::etag_mismatch(key))
    }

    /// The fields a write sets: value, fresh ETag, expiry (or null).
    fn fields(&self, req: &SetRequest) -> Result<Document> {
        let ttl = parse_ttl(&req.metadata).map_err(|e| self.client.err(e))?;
        let value = match std::str::from_utf8(&req.value) {
            Ok(s) => Bson::String(s.to_owned()),
            Err(_) => Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: req.value.to_vec(),
            }),
        };
        Ok(doc! {
            VALUE_FIELD: value,
            ETAG_FIELD: uuid::Uuid::new_v4().to_string(),
            TTL_FIELD: ttl.map_or(Bson::Null, |t| Bson::DateTime(now_plus(t))),
        })
    }
}

/// The bytes a stored `value` stands for.
fn value_bytes(v: Option<&Bson>) -> Vec<u8> {
    match v {
        None | Some(Bson::Null) => Vec::new(),
        Some(Bson::String(s)) => s.clone().into_bytes(),
        Some(Bson::Binary(b)) => b.bytes.clone(),
        Some(other) => other
            .clone()
            .into_relaxed_extjson()
            .to_string()
            .into_bytes(),
    }
}

/// Whether document `d` has expired by `now`.
fn expired(d: &Document, now: mongodb::bson::DateTime) -> bool {
    d.get_datetime(TTL_FIELD).is_ok_and(|t| *t <= now)
}

#[async_trait]
impl Component for MongoStateStore {
    /// Connects, pings, and asks for the TTL index on `_ttl` (best effort: expiry is checked in
    /// every read anyway).
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        self.client.ttl_index(TTL_FIELD).await;
        Ok(())
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    async fn close(&self) -> Result<()> {
        self.client.close().await;
        Ok(())
    }

    fn features(&self) -> &'static [Feature] {
        &[Feature::Etag, Feature::Ttl]
    }
}

#[async_trait]
impl StateStore for MongoStateStore {
    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Option<StateItem>> {
        let k = key.to_owned();
        let found = self
            .client
            .call(
                "get",
                |c, _| async move { c.find_one(doc! { "_id": k }).await },
            )
            .await?;
        let now = now_plus(Duration::ZERO);
        Ok(found.filter(|d| !expired(d, now)).map(|d| {
            let mut metadata = Metadata::new();
            if let Ok(t) = d.get_datetime(TTL_FIELD) {
                metadata.insert(TTL_EXPIRE_TIME_KEY.to_owned(), rfc3339(t.to_system_time()));
            }
            StateItem {
                data: value_bytes(d.get(VALUE_FIELD)).into(),
                etag: d.get_str(ETAG_FIELD).ok().map(str::to_owned),
                metadata,
            }
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        let fields = self.fields(&req)?;
        let key = req.key.as_str();
        let req = &req;
        let outcome = self
            .client
            .guarded("set", key, |g| async move {
                g.check("set").map_err(|e| self.client.err(e))?;
                if let Some(etag) = req.etag_to_check() {
                    let filter = doc! { "_id": key, ETAG_FIELD: etag };
                    let r = self
                        .client
                        .call("set", |c, _| async move {
                            c.update_one(filter, doc! { "$set": fields }).await
                        })
                        .await?;
                    return Ok(if r.matched_count == 1 {
                        Write::Done
                    } else {
                        Write::Mismatch
                    });
                }
                if req.options.concurrency == Concurrency::FirstWrite {
                    let mut fresh = doc! { "_id": key };
                    fresh.extend(fields.clone());
                    let inserted = self
                        .client
                        .call("set", |c, _| async move {
                            match c.insert_one(fresh).await {
                                Ok(_) => Ok(true),
                                Err(e) if is_duplicate_key(&e) => Ok(false),
                                Err(e) => Err(e),
                            }
                        })
                        .await?;
                    if inserted {
                        return Ok(Write::Done);
                    }
                    // Taken, unless it expired.
                    let filter =
                        doc! { "_id": key, TTL_FIELD: { "$lte": now_plus(Duration::ZERO) } };
                    let r = self
                        .client
                        .call("set", |c, _| async move {
                            c.update_one(filter, doc! { "$set": fields }).await
                        })
                        .await?;
                    return Ok(if r.matched_count == 1 {
                        Write::Done
                    } else {
                        Write::Mismatch
                    });
                }
                let filter = doc! { "_id": key };
                self.client
                    .call("set", |c, _| async move {
                        // Two upserts creating the same key race on `_id`: the loser updates.
                        let mut last = None;
                        for _ in 0..3 {
                            match c
                                .update_one(filter.clone(), doc! { "$set": fields.clone() })
                                .upsert(true)
                                .await
                            {
                                Err(e) if is_duplicate_key(&e) => last = Some(e),
                                r => return r.map(|_| ()),
                            }
                        }
                        Err(last.unwrap_or_else(|| mongodb::error::Error::custom("upsert")))
                    })
                    .await?;
                Ok(Write::Done)
            })
            .await?;
        match outcome {
            Write::Done => Ok(()),
            Write::Mismatch => Err(self.mismatch(key)),
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let key = req.key.as_str();
        let etag = req.etag_to_check().map(str::to_owned);
        let deleted = self
            .client
            .guarded("delete", key, |g| async move {
                g.check("delete").map_err(|e| self.client.err(e))?;
                let mut filter = doc! { "_id": key };
                if let Some(e) = &etag {
                    filter.insert(ETAG_FIELD, e);
                }
                self.client
                    .call("delete", |c, _| async move { c.delete_one(filter).await })
                    .await
            })
            .await?;
        if req.etag_to_check().is_some() && deleted.deleted_count == 0 {
            return Err(self.mismatch(key));
        }
        Ok(())
    }

    async fn transact(&self, _ops: Vec<TransactionOp>, _metadata: &Metadata) -> Result<()> {
        Err(self.client.err(Error::unsupported(
            "transactions: the MongoDB state store runs on single-document operations; \
             multi-document transactions need a replica set and are not supported yet",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_other_writers_store() {
        assert_eq!(value_bytes(Some(&Bson::String("v".into()))), b"v");
        assert_eq!(value_bytes(None), b"");
        let d = doc! { "a": 1, "b": "x" };
        assert_eq!(
            String::from_utf8(value_bytes(Some(&Bson::Document(d)))).expect("utf8"),
            r#"{"a":1,"b":"x"}"#
        );
        let b = Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![0xff, 0],
        });
        assert_eq!(value_bytes(Some(&b)), [0xff, 0]);
    }

    #[test]
    fn keys_of_dapr_and_layotto() {
        let s = MongoStateStore::from_spec(
            &ComponentSpec::new("st", "state.mongodb")
                .with("host", "localhost:27017")
                .with("databaseName", "d"),
        )
        .expect("Dapr's keys");
        assert_eq!(s.client.config().database, "d");
        assert_eq!(s.client.config().collection, "daprCollection");
        let s = MongoStateStore::from_spec(
            &ComponentSpec::new("st", "mongo").with("mongoHost", "localhost:27017"),
        )
        .expect("Layotto's host key");
        assert_eq!(s.client.config().host_key, "mongoHost");
        let e = MongoStateStore::from_spec(&ComponentSpec::new("st", "mongo")).expect_err("no");
        assert!(
            e.message.contains("'host' is required") && e.message.contains("'st'"),
            "{e}"
        );
    }
}
