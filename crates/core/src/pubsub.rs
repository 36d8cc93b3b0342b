//! Pub/sub: publish to a topic; deliver to subscribers grouped by consumer group.
//!
//! Delivery is at-least-once. Subscriptions that share a consumer group (metadata
//! [`CONSUMER_ID_KEY`], by default the app id) compete: each message goes to one of them. Every
//! group gets every message (fan-out). A handler that returns `Err` has not acknowledged the
//! message: the component redelivers it after a backoff ([`retry_delay`]).

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::component::Metadata;
use crate::error::Result;

/// Subscription metadata key naming the consumer group (Dapr's `consumerID`).
pub const CONSUMER_ID_KEY: &str = "consumerID";

/// Subscription metadata key the runtime sets on a bulk subscription (Dapr's
/// `bulkSubscribe.maxMessagesCount`, default 100): the app takes up to this many events in
/// one envelope, so a pub/sub that hands messages one at a time by default may hand up to
/// this many at once (Dapr passes it to components as `BulkSubscribeConfig`).
pub const BULK_MAX_MESSAGES_KEY: &str = "maxBulkSubCount";
/// Subscription metadata key the runtime sets on a bulk subscription: how long, in
/// milliseconds, an envelope may wait to fill (Dapr's `bulkSubscribe.maxAwaitDurationMs`,
/// default 1000).
pub const BULK_MAX_AWAIT_MS_KEY: &str = "maxBulkSubAwaitDurationMs";

/// A message as published and as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// Payload; the runtime puts a CloudEvent JSON envelope here.
    pub data: Bytes,
    /// Message metadata.
    pub metadata: Metadata,
}

/// Handles one delivery. `Ok` acknowledges; `Err` asks for redelivery.
pub type Handler = Arc<dyn Fn(Message) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// What to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeRequest {
    /// Topic.
    pub topic: String,
    /// Subscription metadata, e.g. `consumerID`.
    pub metadata: Metadata,
}

/// A live subscription; dropping it stops delivery to its handler. Messages it had not
/// acknowledged go back to the other members of its group.
pub struct Subscription {
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Subscription {
    /// A subscription that runs `on_drop` when dropped.
    pub fn new(on_drop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            on_drop: Some(Box::new(on_drop)),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// Delay before redelivery attempt number `attempt` (1-based): exponential from 100 ms,
/// capped at 5 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(6));
    Duration::from_millis(ms.min(5_000))
}

/// A pub/sub component.
#[async_trait]
pub trait PubSub: Component {
    /// Publishes `msg`; returns once the backend has accepted it.
    async fn publish(&self, msg: Message) -> Result<()>;
    /// Starts delivering messages of `req.topic` to `handler` until the subscription is dropped.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription>;
}

impl Contract for dyn PubSub {
    const KIND: Kind = Kind::PubSub;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(retry_delay(1), Duration::from_millis(100));
        assert_eq!(retry_delay(2), Duration::from_millis(200));
        assert_eq!(retry_delay(30), Duration::from_secs(5));
    }
}
