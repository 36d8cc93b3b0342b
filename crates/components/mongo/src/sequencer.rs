//! MongoDB sequencer in Layotto's layout
//! (`mosn/layotto:components/sequencer/mongo/mongo_sequencer.go`).
//!
//! The last id handed out for a key is the document `{_id: KEY, sequencer_value: N}` (Int64) in
//! the component's collection (default `layottoStore.layottoCollection`; the runtime has already
//! made the key `sequencer|||<appid>||<key>` or whatever its key layout says). Each id is one
//! `findOneAndUpdate({_id}, {$inc: {sequencer_value: 1}}, upsert, return after)`, as upstream
//! (without upstream's transaction, which a single-document update does not need); a segment of
//! `size` ids is one `$inc` by `size`, answering `N - size + 1 ..= N`. On FerretDB, whose updates
//! are not atomic, each runs inside [`crate::MongoClient::guarded`].
//!
//! `biggerThan` floors: upstream refuses to start when a key is below its floor. Here `init`
//! raises the key to its floor in one `$max` update, so the next id is above it.

use std::collections::HashMap;

use async_trait::async_trait;
use layotto_core::metadata::{decode, spec_context};
use layotto_core::sequencer::{BIGGER_THAN_KEY, Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Result};
use mongodb::bson::{Bson, doc};
use mongodb::options::ReturnDocument;

use crate::client::{MongoClient, is_duplicate_key};
use crate::lock::layotto_mongo_metadata;

/// Field of the last id handed out.
pub const VALUE_FIELD: &str = "sequencer_value";

/// How often an id request retries after losing an upsert race (each loss means another
/// writer created the key, so the next attempt is an ordinary increment).
const UPSERT_ATTEMPTS: usize = 3;

layotto_mongo_metadata! {
    /// Metadata of [`MongoSequencer`]: the connection keys plus `biggerThan`.
    pub struct MongoSequencerMetadata {
        /// `biggerThan`: a JSON object key -> integer; every id of a key is greater than its
        /// value (applied in `init`).
        pub bigger_than: Option<String>,
    }
}

impl ComponentMetadata for MongoSequencerMetadata {}

/// Sequencer on MongoDB (type `mongo`). See the module documentation.
#[derive(Debug)]
pub struct MongoSequencer {
    client: MongoClient,
    floors: HashMap<String, i64>,
}

impl MongoSequencer {
    /// Factory: [`MongoSequencerMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: MongoSequencerMetadata = decode(spec)?;
        let floors =
            parse_bigger_than(m.bigger_than.as_deref()).map_err(|e| spec_context(spec, e))?;
        Ok(Self {
            client: MongoClient::new(format!("sequencer '{}'", spec.name), m.config(spec)?),
            floors,
        })
    }

    /// Adds `n` to `key`'s value (creating it at `n`); the new value.
    async fn add(&self, what: &str, key: &str, n: i64) -> Result<i64> {
        self.client
            .guarded(what, key, |g| async move {
                for _ in 0..UPSERT_ATTEMPTS {
                    g.check(what).map_err(|e| self.client.err(e))?;
                    let k = key.to_owned();
                    let got = self
                        .client
                        .call(what, |c, _| async move {
                            match c
                                .find_one_and_update(
                                    doc! { "_id": k },
                                    doc! { "$inc": { VALUE_FIELD: n } },
                                )
                                .upsert(true)
                                .return_document(ReturnDocument::After)
                                .await
                            {
                                Ok(d) => Ok(Some(d)),
                                Err(e) if is_duplicate_key(&e) => Ok(None),
                                Err(e) => Err(e),
                            }
                        })
                        .await?;
                    let Some(got) = got else { continue };
                    return match got.as_ref().and_then(|d| d.get(VALUE_FIELD)) {
                        Some(Bson::Int64(v)) => Ok(*v),
                        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
                        other => Err(self.client.err(Error::internal(format!(
                            "{what}: document '{key}' holds no integer '{VALUE_FIELD}' \
                             ({other:?})"
                        )))),
                    };
                }
                Err(self.client.err(Error::unavailable(format!(
                    "{what}: creating '{key}' raced with other writers {UPSERT_ATTEMPTS} times"
                ))))
            })
            .await
    }

    /// Raises `key` to at least `floor`.
    async fn raise(&self, key: &str, floor: i64) -> Result<()> {
        self.client
            .guarded(BIGGER_THAN_KEY, key, |g| async move {
                g.check(BIGGER_THAN_KEY).map_err(|e| self.client.err(e))?;
                let k = key.to_owned();
                self.client
                    .call(BIGGER_THAN_KEY, |c, _| async move {
                        c.update_one(doc! { "_id": k }, doc! { "$max": { VALUE_FIELD: floor } })
                            .upsert(true)
                            .await
                            .map(|_| ())
                    })
                    .await
            })
            .await
    }
}

#[async_trait]
impl Component for MongoSequencer {
    /// Connects, then raises every key with a `biggerThan` floor to at least that floor.
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        for (k, floor) in &self.floors {
            if *floor > 0 {
                self.raise(k, *floor).await?;
            }
        }
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
impl Sequencer for MongoSequencer {
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        self.add("get_next_id", key, 1).await
    }

    async fn get_segment(&self, key: &str, size: u32) -> Result<Option<Segment>> {
        if size == 0 {
            return Ok(None);
        }
        let n = i64::from(size);
        let to = self.add("get_segment", key, n).await?;
        Ok(Some(Segment {
            from: to - n + 1,
            to,
        }))
    }
}
