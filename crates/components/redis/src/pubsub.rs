//! Redis Streams pub/sub, following Dapr's `pubsub.redis` (components-contrib).
//!
//! Layout (shared with Dapr): the stream key is the topic; each entry has the field `data`
//! (payload bytes) and, when the message has metadata, `metadata` (a JSON object of strings).
//! A consumer group is a Redis stream consumer group; every subscription is a separate
//! consumer named `<group>-<uuid>`, so subscriptions of one group (in one or many sidecars)
//! compete for entries.
//!
//! Delivery: a reader task per subscription runs `XREADGROUP ... COUNT queueDepth BLOCK 1000
//! STREAMS topic >` on its own connection and hands entries to the handler, at most
//! `concurrency` at once. `Ok` is acknowledged with `XACK`. `Err` (or a panic) leaves the entry
//! pending; it is redelivered in process after [`retry_delay`], and before every retry the
//! subscription re-claims the entry with `XCLAIM ... JUSTID` (which resets its idle time and
//! stops the retries once another member acknowledged it). A reclaim task runs every
//! `redeliverInterval` `XAUTOCLAIM topic group consumer processingTimeout` and delivers entries
//! left pending longer than `processingTimeout`, e.g. by a dropped subscription or a killed
//! sidecar. Dropping the [`Subscription`] stops both tasks (within about one second) and aborts
//! running handlers; what they had not acknowledged stays pending for the other members.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::metadata::MillisDuration;
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription, retry_delay,
};
use layotto_core::{Component, ComponentSpec, Error, Health, Metadata, Result};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{RedisResult, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::client::RedisClient;
use crate::config::{RedisConfig, decode_redis, redis_metadata, spec_err};
use crate::lock;

/// Metadata key: idle time after which a pending entry is reclaimed (default 60 s).
pub const PROCESSING_TIMEOUT_KEY: &str = "processingTimeout";
/// Metadata key: how often the reclaim runs (default 15 s; `0` disables it).
pub const REDELIVER_INTERVAL_KEY: &str = "redeliverInterval";
/// Metadata key: entries read per `XREADGROUP` / `XAUTOCLAIM` (default 100).
pub const QUEUE_DEPTH_KEY: &str = "queueDepth";
/// Metadata key: handler calls in flight per subscription (default 10).
pub const CONCURRENCY_KEY: &str = "concurrency";
/// Metadata key: `XADD MAXLEN ~ n` trimming (default 0 = no trimming).
pub const MAX_LEN_APPROX_KEY: &str = "maxLenApprox";
/// Consumer group of subscriptions without `consumerID` (subscription or component metadata).
pub const DEFAULT_GROUP: &str = "default";
/// How long one `XREADGROUP` blocks; bounds how late a dropped subscription notices.
const BLOCK: Duration = Duration::from_millis(1000);
/// Largest accepted `concurrency`.
const MAX_CONCURRENCY: usize = 1024;
/// Attempts to acknowledge a handled entry before leaving it to the reclaim.
const ACK_ATTEMPTS: u32 = 8;

redis_metadata! {
    /// Metadata of [`RedisPubSub`]: the connection keys plus Dapr's `pubsub.redis` delivery
    /// settings (durations are milliseconds or Go durations, as Dapr's Redis settings).
    pub struct RedisPubSubMetadata {
        /// `consumerID`: the consumer group of subscriptions that name none (default
        /// `"default"`).
        #[serde(rename = "consumerID")]
        pub consumer_id: Option<String>,
        /// `processingTimeout`: idle time after which a pending entry is reclaimed (default
        /// 60 s; must be positive).
        pub processing_timeout: Option<MillisDuration>,
        /// `redeliverInterval`: how often the reclaim runs (default 15 s; `0` disables it).
        pub redeliver_interval: Option<MillisDuration>,
        /// `queueDepth`: entries read per `XREADGROUP` / `XAUTOCLAIM` (default 100; positive).
        pub queue_depth: Option<usize>,
        /// `concurrency`: handler calls in flight per subscription (default 10; 1 to 1024).
        pub concurrency: Option<usize>,
        /// `maxLenApprox`: `XADD MAXLEN ~ n` trimming (default 0 = no trimming).
        pub max_len_approx: Option<u64>,
        /// `waitForReplicas`: replicas that must hold a published entry before the publish
        /// is acknowledged (Redis `WAIT`; default 0). See
        /// [`crate::config::WAIT_FOR_REPLICAS_KEY`].
        pub wait_for_replicas: Option<usize>,
    }
}

/// Settings beyond the connection.
#[derive(Debug, Clone)]
struct Settings {
    consumer_id: Option<String>,
    processing_timeout: Duration,
    redeliver_interval: Duration,
    queue_depth: usize,
    concurrency: usize,
    max_len_approx: u64,
    wait_for_replicas: usize,
}

/// Pub/sub on Redis Streams (types `redis`, `pubsub.redis`). See the module documentation.
///
/// The consumer group is the subscription metadata `consumerID` (the runtime sets the app id),
/// else the component metadata `consumerID`, else `"default"`.
#[derive(Debug)]
pub struct RedisPubSub {
    client: Arc<RedisClient>,
    settings: Settings,
    /// Parent of every subscription's token; cancelled by `close`.
    closed: CancellationToken,
}

impl RedisPubSub {
    /// Factory: [`RedisPubSubMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: RedisPubSubMetadata = decode_redis(spec)?;
        let cfg = RedisConfig::from_meta(spec, &meta.connection())?;
        let processing_timeout = meta
            .processing_timeout
            .map_or(Duration::from_secs(60), |d| d.0);
        if processing_timeout.is_zero() {
            return Err(spec_err(
                spec,
                format!("metadata '{PROCESSING_TIMEOUT_KEY}' must be greater than 0"),
            ));
        }
        let redeliver_interval = meta
            .redeliver_interval
            .map_or(Duration::from_secs(15), |d| d.0);
        let queue_depth = meta.queue_depth.unwrap_or(100);
        if queue_depth == 0 {
            return Err(spec_err(
                spec,
                format!("metadata '{QUEUE_DEPTH_KEY}' must be greater than 0"),
            ));
        }
        let concurrency = meta.concurrency.unwrap_or(10);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(spec_err(
                spec,
                format!(
                    "metadata '{CONCURRENCY_KEY}' must be from 1 to {MAX_CONCURRENCY}, got {concurrency}"
                ),
            ));
        }
        let settings = Settings {
            consumer_id: meta
                .consumer_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            processing_timeout,
            redeliver_interval,
            queue_depth,
            concurrency,
            max_len_approx: meta.max_len_approx.unwrap_or(0),
            wait_for_replicas: meta.wait_for_replicas.unwrap_or(0),
        };
        Ok(Self {
            client: Arc::new(RedisClient::new(format!("pubsub '{}'", spec.name), cfg)),
            settings,
            closed: CancellationToken::new(),
        })
    }

    fn group(&self, req: &SubscribeRequest) -> String {
        req.metadata
            .get(CONSUMER_ID_KEY)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .or(self.settings.consumer_id.as_deref())
            .unwrap_or(DEFAULT_GROUP)
            .to_owned()
    }
}

/// `XGROUP CREATE topic group $ MKSTREAM`; an existing group is fine.
async fn ensure_group(client: &RedisClient, topic: &str, group: &str) -> Result<()> {
    let (topic, group) = (topic.to_owned(), group.to_owned());
    client
        .call("create consumer group", |mut c| async move {
            let r: RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(topic)
                .arg(group)
                .arg("$")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await;
            match r {
                Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                other => other,
            }
        })
        .await
}

#[async_trait]
impl Component for RedisPubSub {
    /// Connects. Errors: unavailable when Redis cannot be reached within the timeouts.
    async fn init(&self) -> Result<()> {
        self.client.connect().await
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Stops every subscription's tasks (what they had not acknowledged stays pending for the
    /// group) and drops the connection.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        self.client.close();
        Ok(())
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    /// `XADD topic [MAXLEN ~ n] * data <bytes> [metadata <json>]`; returns once Redis stored
    /// the entry (and, with `waitForReplicas`, once that many replicas hold it). On a Redis
    /// Cluster the stream lives on the master of the topic's hash slot. Errors: invalid
    /// argument for an empty topic; unavailable when Redis cannot be reached within
    /// `dialTimeout + readTimeout` or the replicas did not confirm.
    async fn publish(&self, msg: Message) -> Result<()> {
        if msg.topic.is_empty() {
            return Err(self.client.err(Error::empty_field("topic")));
        }
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&msg.topic);
        if self.settings.max_len_approx > 0 {
            cmd.arg("MAXLEN").arg("~").arg(self.settings.max_len_approx);
        }
        cmd.arg("*").arg("data").arg(msg.data.as_ref());
        if !msg.metadata.is_empty() {
            let json = serde_json::to_string(&msg.metadata)
                .map_err(|e| self.client.err(Error::internal(e.to_string())))?;
            cmd.arg("metadata").arg(json);
        }
        let _id: String = self
            .client
            .call(
                "publish",
                |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await?;
        self.client
            .wait_replicas(msg.topic.as_bytes(), self.settings.wait_for_replicas)
            .await
    }

    /// Creates the consumer group if needed and starts the reader and reclaim tasks. Must be
    /// called within a Tokio runtime. Errors: invalid argument for an empty topic; unavailable
    /// when Redis cannot be reached.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        if req.topic.is_empty() {
            return Err(self.client.err(Error::empty_field("topic")));
        }
        let group = self.group(&req);
        ensure_group(&self.client, &req.topic, &group).await?;
        // The reader blocks in XREADGROUP: it gets its own connection with room for BLOCK.
        let mut reader_cfg = self.client.config().clone();
        reader_cfg.read_timeout += BLOCK;
        let consumer = format!("{group}-{}", uuid::Uuid::new_v4());
        let sub = Arc::new(Sub {
            reader: RedisClient::new(self.client.label.clone(), reader_cfg),
            client: Arc::clone(&self.client),
            topic: req.topic,
            group,
            consumer,
            settings: self.settings.clone(),
            handler,
            permits: Arc::new(Semaphore::new(self.settings.concurrency)),
            in_flight: Mutex::new(HashSet::new()),
            cancel: self.closed.child_token(),
        });
        tracing::debug!(topic = %sub.topic, group = %sub.group, consumer = %sub.consumer, "redis subscription started");
        tokio::spawn(Arc::clone(&sub).read_loop());
        tokio::spawn(Arc::clone(&sub).reclaim_loop());
        let cancel = sub.cancel.clone();
        Ok(Subscription::new(move || cancel.cancel()))
    }
}

/// One subscription: a consumer in a group.
struct Sub {
    /// Shared connection: XACK, XCLAIM, XAUTOCLAIM, XGROUP.
    client: Arc<RedisClient>,
    /// Dedicated connection for the blocking XREADGROUP.
    reader: RedisClient,
    topic: String,
    group: String,
    consumer: String,
    settings: Settings,
    handler: Handler,
    permits: Arc<Semaphore>,
    /// Entry ids being handled here (the reclaim skips them).
    in_flight: Mutex<HashSet<String>>,
    cancel: CancellationToken,
}

impl Sub {
    /// Sleeps `d` unless cancelled first (`false`).
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }

    async fn read_batch(&self) -> Result<Vec<StreamId>> {
        self.reader.connect().await?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.settings.queue_depth)
            .arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&self.topic)
            .arg(">");
        let reply: Option<StreamReadReply> = self
            .reader
            .call("read", |mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }

    /// Reads new entries until cancelled; backs off while Redis fails.
    async fn read_loop(self: Arc<Self>) {
        let mut failures = 0u32;
        while !self.cancel.is_cancelled() {
            match self.read_batch().await {
                Ok(entries) => {
                    failures = 0;
                    for e in entries {
                        if !Arc::clone(&self).dispatch(e).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(topic = %self.topic, group = %self.group, attempt = failures, error = %e, "redis pubsub read failed; retrying");
                    if e.message.contains("NOGROUP") {
                        // The stream or group vanished (e.g. a server without persistence).
                        let _ = ensure_group(&self.client, &self.topic, &self.group).await;
                    }
                    if !self.pause(retry_delay(failures)).await {
                        return;
                    }
                }
            }
        }
    }

    async fn autoclaim(&self, start: &str) -> Result<StreamAutoClaimReply> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.topic)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(u64::try_from(self.settings.processing_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg(start)
            .arg("COUNT")
            .arg(self.settings.queue_depth);
        self.client
            .call(
                "reclaim",
                |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await
    }

    /// Every `redeliverInterval`: takes over entries idle longer than `processingTimeout`.
    async fn reclaim_loop(self: Arc<Self>) {
        let every = self.settings.redeliver_interval;
        if every.is_zero() {
            return;
        }
        loop {
            if !self.pause(every).await {
                return;
            }
            let mut start = "0-0".to_owned();
            loop {
                match self.autoclaim(&start).await {
                    Ok(reply) => {
                        for e in reply.claimed {
                            if !Arc::clone(&self).dispatch(e).await {
                                return;
                            }
                        }
                        if reply.next_stream_id == "0-0" || reply.next_stream_id == start {
                            break;
                        }
                        start = reply.next_stream_id;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, group = %self.group, error = %e, "redis pubsub reclaim failed");
                        break;
                    }
                }
            }
        }
    }

    /// Starts delivering `entry` once a concurrency permit is free; `false` when cancelled.
    async fn dispatch(self: Arc<Self>, entry: StreamId) -> bool {
        let permit = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return false,
            p = Arc::clone(&self.permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return false,
            },
        };
        if !lock(&self.in_flight).insert(entry.id.clone()) {
            return true; // Already being handled here.
        }
        let msg = self.message(&entry);
        tokio::spawn(self.deliver(entry.id, msg, permit));
        true
    }

    fn message(&self, entry: &StreamId) -> Message {
        let bytes = |v: &Value| -> Option<Vec<u8>> { redis::from_redis_value_ref(v).ok() };
        let data = entry.map.get("data").and_then(bytes).unwrap_or_default();
        let metadata: Metadata = entry
            .map
            .get("metadata")
            .and_then(bytes)
            .and_then(|b| serde_json::from_slice::<HashMap<String, String>>(&b).ok())
            .unwrap_or_default();
        Message {
            topic: self.topic.clone(),
            data: Bytes::from(data),
            metadata,
        }
    }

    /// Calls the handler until it acknowledges, the entry is gone, or the subscription ends.
    async fn deliver(self: Arc<Self>, id: String, msg: Message, _permit: OwnedSemaphorePermit) {
        let mut attempt: u32 = 0;
        loop {
            let (h, m) = (Arc::clone(&self.handler), msg.clone());
            // Own task, so that a panic is caught as a JoinError.
            let mut task = tokio::spawn(async move { h(m).await });
            let outcome = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    task.abort();
                    break;
                }
                r = &mut task => r,
            };
            attempt = attempt.saturating_add(1);
            match outcome {
                Ok(Ok(())) => {
                    self.ack(&id).await;
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(topic = %self.topic, id = %id, attempt, error = %e, "handler failed; redelivering");
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, id = %id, attempt, error = %e, "handler panicked; redelivering");
                }
            }
            if !self.pause(retry_delay(attempt)).await {
                break;
            }
            match self.claim(&id).await {
                Ok(true) => {}
                Ok(false) => break, // Acknowledged by another member or trimmed.
                Err(e) => {
                    tracing::debug!(topic = %self.topic, id = %id, error = %e, "re-claim before redelivery failed");
                }
            }
        }
        lock(&self.in_flight).remove(&id);
    }

    /// `XCLAIM topic group consumer 0 id JUSTID`: keeps the entry ours and resets its idle
    /// time. `false` when it is no longer pending.
    async fn claim(&self, id: &str) -> Result<bool> {
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.topic)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(id)
            .arg("JUSTID");
        let ids: Vec<String> = self
            .client
            .call(
                "claim",
                |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await?;
        Ok(!ids.is_empty())
    }

    /// `XACK`, retried while Redis fails; a lost ack means one more delivery, nothing worse.
    async fn ack(&self, id: &str) {
        for attempt in 1..=ACK_ATTEMPTS {
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&self.topic).arg(&self.group).arg(id);
            let r: Result<i64> = self
                .client
                .call("ack", |mut c| async move { cmd.query_async(&mut c).await })
                .await;
            match r {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, id = %id, attempt, error = %e, "XACK failed");
                    if !self.pause(retry_delay(attempt)).await {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ComponentSpec {
        ComponentSpec::new("p", "pubsub.redis").with("redisHost", "127.0.0.1:6379")
    }

    #[test]
    fn parses_settings_and_names_bad_keys() {
        let p = RedisPubSub::from_spec(
            &spec()
                .with(PROCESSING_TIMEOUT_KEY, "2s")
                .with(REDELIVER_INTERVAL_KEY, "0")
                .with(MAX_LEN_APPROX_KEY, "10")
                .with(CONSUMER_ID_KEY, "app"),
        )
        .expect("valid");
        assert_eq!(p.settings.processing_timeout, Duration::from_secs(2));
        assert!(p.settings.redeliver_interval.is_zero());
        assert_eq!(
            (
                p.settings.queue_depth,
                p.settings.concurrency,
                p.settings.max_len_approx
            ),
            (100, 10, 10)
        );
        assert_eq!(p.group(&SubscribeRequest::default()), "app");
        let d = RedisPubSub::from_spec(&spec()).expect("defaults");
        assert_eq!(d.settings.processing_timeout, Duration::from_secs(60));
        assert_eq!(d.settings.redeliver_interval, Duration::from_secs(15));
        assert_eq!(d.group(&SubscribeRequest::default()), DEFAULT_GROUP);
        for (key, bad) in [
            (PROCESSING_TIMEOUT_KEY, "0"),
            (PROCESSING_TIMEOUT_KEY, "soon"),
            (REDELIVER_INTERVAL_KEY, "x"),
            (QUEUE_DEPTH_KEY, "0"),
            (CONCURRENCY_KEY, "0"),
            (CONCURRENCY_KEY, "-1"),
            (MAX_LEN_APPROX_KEY, "many"),
        ] {
            let e = RedisPubSub::from_spec(&spec().with(key, bad)).expect_err(key);
            assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument);
            assert!(e.message.contains(key), "{key}: {e}");
        }
    }
}
