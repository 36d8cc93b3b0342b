//! Redis sequencer: `INCR` for single ids, `INCRBY` for segments, `biggerThan` floors set in
//! `init`.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use layotto_core::sequencer::{Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentSpec, Error, Health, Result};
use redis::Script;

use crate::client::RedisClient;
use crate::config::{RedisConfig, decode_redis, redis_metadata};

redis_metadata! {
    /// Metadata of [`RedisSequencer`]: the connection keys plus `biggerThan`.
    pub struct RedisSequencerMetadata {
        /// `biggerThan`: a JSON object key -> integer; every id of a key is greater than its
        /// value (applied in `init`).
        pub bigger_than: Option<String>,
    }
}

/// Raises KEYS[1] to ARGV[1] if it is lower (or absent).
static FLOOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if cur < floor then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
",
    )
});

/// Sequencer on Redis (types `redis`, `sequencer.redis`). Each key is an integer counter; ids
/// start at 1 or just above the key's `biggerThan` floor.
#[derive(Debug)]
pub struct RedisSequencer {
    client: RedisClient,
    floors: HashMap<String, i64>,
}

impl RedisSequencer {
    /// Factory: [`RedisSequencerMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: RedisSequencerMetadata = decode_redis(spec)?;
        let cfg = RedisConfig::from_meta(spec, &meta.connection())?;
        cfg.refuse_cluster(
            spec,
            "Redis replication is asynchronous, so ids handed out by a master that fails over before its replica has the counter would be handed out again",
        )?;
        let floors = parse_bigger_than(meta.bigger_than.as_deref())
            .map_err(|e| e.context(format_args!("sequencer '{}'", spec.name)))?;
        Ok(Self {
            client: RedisClient::new(format!("sequencer '{}'", spec.name), cfg),
            floors,
        })
    }

    async fn incr(&self, key: &str, by: i64) -> Result<i64> {
        if key.is_empty() {
            return Err(self.client.err(Error::empty_field("key")));
        }
        let key = key.to_owned();
        self.client
            .call("incr", |mut c| async move {
                redis::cmd("INCRBY")
                    .arg(key)
                    .arg(by)
                    .query_async(&mut c)
                    .await
            })
            .await
    }
}

#[async_trait]
impl Component for RedisSequencer {
    /// Connects, then raises every key with a `biggerThan` floor to at least that floor.
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        for (key, floor) in &self.floors {
            let mut inv = FLOOR.prepare_invoke();
            inv.key(key.as_str()).arg(*floor);
            let _: i64 = self
                .client
                .call("biggerThan", |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await?;
        }
        Ok(())
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
impl Sequencer for RedisSequencer {
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        self.incr(key, 1).await
    }

    async fn get_segment(&self, key: &str, size: u32) -> Result<Option<Segment>> {
        if size == 0 {
            return Err(self
                .client
                .err(Error::invalid("segment size must be greater than 0")));
        }
        let to = self.incr(key, i64::from(size)).await?;
        Ok(Some(Segment {
            from: to - i64::from(size) + 1,
            to,
        }))
    }
}
