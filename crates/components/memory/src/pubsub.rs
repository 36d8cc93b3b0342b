//! In-memory pub/sub with consumer groups, competing consumers and redelivery.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use layotto_core::metadata::decode;
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription, retry_delay,
};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Result};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::lock;

/// Metadata of [`MemoryPubSub`]: no keys of its own (`consumerID` and `concurrency` are
/// subscription metadata).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MemoryPubSubMetadata {}

impl ComponentMetadata for MemoryPubSubMetadata {}

/// Subscription metadata key: number of messages one subscription handles at once.
pub const CONCURRENCY_KEY: &str = "concurrency";
/// Default of [`CONCURRENCY_KEY`].
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// Largest accepted [`CONCURRENCY_KEY`].
pub const MAX_CONCURRENCY: u32 = 1024;
/// Consumer group of subscriptions without [`CONSUMER_ID_KEY`].
pub const DEFAULT_GROUP: &str = "default";

/// One consumer group of one topic: a shared queue its members' workers pull from.
#[derive(Debug, Default)]
struct Group {
    queue: Mutex<VecDeque<Message>>,
    notify: Notify,
}

impl Group {
    fn push_back(&self, msg: Message) {
        lock(&self.queue).push_back(msg);
        self.notify.notify_one();
    }

    /// Puts an unacknowledged message back at the head for the other members.
    fn requeue(&self, msg: Message) {
        lock(&self.queue).push_front(msg);
        self.notify.notify_one();
    }

    /// Passes a wake-up on if messages wait (a cancelled worker may have taken one).
    fn wake_if_pending(&self) {
        if !lock(&self.queue).is_empty() {
            self.notify.notify_one();
        }
    }

    /// Waits for and takes the next message. Cancel-safe: a message is only taken in the poll
    /// that returns it.
    async fn pop(&self) -> Message {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = lock(&self.queue).pop_front() {
                return m;
            }
            notified.await;
        }
    }
}

/// topic -> consumer group -> group.
type Topics = HashMap<String, HashMap<String, Arc<Group>>>;

/// Pub/sub kept in process memory (type `in-memory`).
///
/// Every consumer group of a topic (subscription metadata `consumerID`, default `"default"`)
/// gets every message; the subscriptions of one group compete for them. Each subscription runs
/// `concurrency` workers (subscription metadata, default 8). A handler error or panic leads to
/// redelivery after [`retry_delay`], without limit, until the handler succeeds or its
/// subscription is dropped; then the message goes back to the head of the group's queue.
/// A group keeps queueing messages after its last member leaves, for the next one. Messages
/// published to a topic no one ever subscribed to are dropped.
#[derive(Debug)]
pub struct MemoryPubSub {
    name: String,
    topics: Mutex<Topics>,
    /// Parent of every subscription's token; cancelled by `close`.
    closed: CancellationToken,
}

impl MemoryPubSub {
    /// An empty pub/sub named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            topics: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
        }
    }

    /// Factory: [`MemoryPubSubMetadata`] (no keys of its own).
    ///
    /// # Errors
    /// None today; the signature matches every factory.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let MemoryPubSubMetadata {} = decode(spec)?;
        Ok(Self::new(spec.name.clone()))
    }

    fn concurrency(&self, req: &SubscribeRequest) -> Result<u32> {
        let Some(raw) = req.metadata.get(CONCURRENCY_KEY) else {
            // A bulk subscription takes up to `maxBulkSubCount` events at once.
            let bulk = req
                .metadata
                .get(layotto_core::pubsub::BULK_MAX_MESSAGES_KEY)
                .and_then(|v| v.trim().parse::<u32>().ok())
                .map_or(DEFAULT_CONCURRENCY, |n| n.clamp(1, MAX_CONCURRENCY));
            return Ok(bulk.max(DEFAULT_CONCURRENCY));
        };
        match raw.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
            _ => Err(Error::invalid(format!(
                "pubsub '{}': subscription metadata '{CONCURRENCY_KEY}' must be an integer \
                 from 1 to {MAX_CONCURRENCY}, got '{raw}'",
                self.name
            ))),
        }
    }
}

#[async_trait]
impl Component for MemoryPubSub {
    /// Stops every subscription's workers; later subscriptions fail.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        Ok(())
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    /// Queues `msg` for every consumer group of its topic. Errors: invalid argument for an
    /// empty topic.
    async fn publish(&self, msg: Message) -> Result<()> {
        if msg.topic.is_empty() {
            return Err(Error::empty_field("topic").context(format_args!("pubsub '{}'", self.name)));
        }
        let topics = lock(&self.topics);
        match topics.get(&msg.topic) {
            None => {
                tracing::debug!(pubsub = %self.name, topic = %msg.topic, "no subscribers; message dropped");
            }
            Some(groups) => {
                for g in groups.values() {
                    g.push_back(msg.clone());
                }
            }
        }
        Ok(())
    }

    /// Starts `concurrency` workers delivering the topic's messages of the subscription's
    /// group to `handler`; dropping the returned [`Subscription`] stops them and requeues what
    /// they had not acknowledged. Must be called within a Tokio runtime. Errors: invalid
    /// argument for an empty topic or a bad `concurrency`.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        if req.topic.is_empty() {
            return Err(Error::empty_field("topic").context(format_args!("pubsub '{}'", self.name)));
        }
        if self.closed.is_cancelled() {
            return Err(Error::unavailable(format!(
                "pubsub '{}' is closed",
                self.name
            )));
        }
        let workers = self.concurrency(&req)?;
        let group_name = req
            .metadata
            .get(CONSUMER_ID_KEY)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_GROUP)
            .to_owned();
        let group = {
            let mut topics = lock(&self.topics);
            Arc::clone(
                topics
                    .entry(req.topic.clone())
                    .or_default()
                    .entry(group_name)
                    .or_default(),
            )
        };
        let cancel = self.closed.child_token();
        for _ in 0..workers {
            tokio::spawn(worker(
                Arc::clone(&group),
                Arc::clone(&handler),
                cancel.clone(),
                req.topic.clone(),
            ));
        }
        Ok(Subscription::new(move || cancel.cancel()))
    }
}

/// Pulls messages of `group` and delivers them until `cancel` fires.
async fn worker(group: Arc<Group>, handler: Handler, cancel: CancellationToken, topic: String) {
    loop {
        let msg = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                group.wake_if_pending();
                return;
            }
            m = group.pop() => m,
        };
        if !deliver(&group, &handler, &cancel, msg, &topic).await {
            return;
        }
    }
}

/// Delivers `msg` until the handler acknowledges it (`true`) or `cancel` fires (`false`,
/// after requeueing the message).
async fn deliver(
    group: &Group,
    handler: &Handler,
    cancel: &CancellationToken,
    msg: Message,
    topic: &str,
) -> bool {
    let mut attempt: u32 = 0;
    loop {
        let h = Arc::clone(handler);
        let m = msg.clone();
        // The handler runs in its own task so that a panic is caught as a JoinError.
        let mut task = tokio::spawn(async move { h(m).await });
        let outcome = tokio::select! {
            biased;
            r = &mut task => r,
            () = cancel.cancelled() => {
                task.abort();
                group.requeue(msg);
                return false;
            }
        };
        attempt = attempt.saturating_add(1);
        match outcome {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                tracing::warn!(%topic, attempt, error = %e, "handler failed; redelivering");
            }
            Err(e) => {
                tracing::warn!(%topic, attempt, error = %e, "handler panicked; redelivering");
            }
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                group.requeue(msg);
                return false;
            }
            () = tokio::time::sleep(retry_delay(attempt)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures::FutureExt;
    use layotto_core::Metadata;
    use tokio::sync::mpsc;

    use super::*;

    fn msg(topic: &str, data: &str) -> Message {
        Message {
            topic: topic.into(),
            data: Bytes::from(data.to_owned()),
            metadata: Metadata::new(),
        }
    }

    fn sub_req(topic: &str, group: &str, concurrency: u32) -> SubscribeRequest {
        let mut metadata = Metadata::new();
        metadata.insert(CONSUMER_ID_KEY.into(), group.into());
        metadata.insert(CONCURRENCY_KEY.into(), concurrency.to_string());
        SubscribeRequest {
            topic: topic.into(),
            metadata,
        }
    }

    /// A handler that acknowledges and reports (tag, data).
    fn recorder(tag: &'static str, tx: mpsc::UnboundedSender<(&'static str, String)>) -> Handler {
        Arc::new(move |m: Message| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((tag, String::from_utf8_lossy(&m.data).into_owned()));
                Ok(())
            }
            .boxed()
        })
    }

    async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivery within 5 s")
            .expect("open")
    }

    async fn assert_quiet<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>) {
        let extra = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        assert!(extra.is_err(), "unexpected extra delivery {extra:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn competing_consumers_and_fan_out() {
        let ps = MemoryPubSub::new("p");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _a1 = ps
            .subscribe(sub_req("t", "g1", 2), recorder("g1", tx.clone()))
            .await
            .expect("sub");
        let _a2 = ps
            .subscribe(sub_req("t", "g1", 2), recorder("g1", tx.clone()))
            .await
            .expect("sub");
        let _b = ps
            .subscribe(sub_req("t", "g2", 1), recorder("g2", tx.clone()))
            .await
            .expect("sub");
        const N: usize = 40;
        for i in 0..N {
            ps.publish(msg("t", &i.to_string())).await.expect("publish");
        }
        let mut g1 = HashSet::new();
        let mut g2 = HashSet::new();
        for _ in 0..(2 * N) {
            let (tag, data) = recv(&mut rx).await;
            let fresh = if tag == "g1" {
                g1.insert(data)
            } else {
                g2.insert(data)
            };
            assert!(fresh, "duplicate delivery within group {tag}");
        }
        assert_eq!(g1.len(), N);
        assert_eq!(g2.len(), N);
        assert_quiet(&mut rx).await;
    }

    #[tokio::test]
    async fn failed_and_panicking_handlers_get_redelivery() {
        let ps = MemoryPubSub::new("p");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let handler: Handler = Arc::new(move |m: Message| {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let tx = tx.clone();
            async move {
                let _ = tx.send((n, Instant::now(), m.data));
                match n {
                    1 => Err(Error::internal("try again")),
                    2 => panic!("handler bug"),
                    _ => Ok(()),
                }
            }
            .boxed()
        });
        let _s = ps
            .subscribe(sub_req("t", "g", 1), handler)
            .await
            .expect("sub");
        ps.publish(msg("t", "x")).await.expect("publish");
        let (n1, t1, d1) = recv(&mut rx).await;
        let (n2, t2, d2) = recv(&mut rx).await;
        let (n3, t3, d3) = recv(&mut rx).await;
        assert_eq!((n1, n2, n3), (1, 2, 3));
        assert!(d1 == d2 && d2 == d3 && d1 == Bytes::from_static(b"x"));
        assert!(t2 - t1 >= retry_delay(1), "backoff after the first failure");
        assert!(t3 - t2 >= retry_delay(2), "backoff after the panic");
        assert_quiet(&mut rx).await;
    }

    #[tokio::test]
    async fn dropped_subscriber_requeues_unacked_message() {
        let ps = MemoryPubSub::new("p");
        // Member A takes the message and never finishes.
        let (got_tx, mut got_rx) = mpsc::unbounded_channel();
        let hang: Handler = Arc::new(move |m: Message| {
            let _ = got_tx.send(m.data);
            futures::future::pending().boxed()
        });
        let a = ps
            .subscribe(sub_req("t", "g", 1), hang)
            .await
            .expect("sub a");
        ps.publish(msg("t", "m1")).await.expect("publish");
        assert_eq!(recv(&mut got_rx).await, Bytes::from_static(b"m1"));

        // Member B of the same group joins; A leaves: B gets m1.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _b = ps
            .subscribe(sub_req("t", "g", 1), recorder("b", tx))
            .await
            .expect("sub b");
        assert_quiet(&mut rx).await;
        drop(a);
        assert_eq!(recv(&mut rx).await, ("b", "m1".to_owned()));
        ps.publish(msg("t", "m2")).await.expect("publish");
        assert_eq!(recv(&mut rx).await, ("b", "m2".to_owned()));
        assert_quiet(&mut rx).await;
        assert!(got_rx.try_recv().is_err(), "A got nothing after leaving");
    }

    #[tokio::test]
    async fn bad_requests_name_the_field() {
        let ps = MemoryPubSub::new("p");
        let h = recorder("x", mpsc::unbounded_channel().0);
        let e = ps.publish(msg("", "x")).await.expect_err("empty topic");
        assert!(e.message.contains("topic"), "{e}");
        let mut req = sub_req("t", "g", 1);
        req.metadata.insert(CONCURRENCY_KEY.into(), "0".into());
        let e = ps.subscribe(req, h).await.expect_err("zero workers");
        assert!(e.message.contains(CONCURRENCY_KEY), "{e}");
        // Publishing where no one listens is fine.
        ps.publish(msg("nobody", "x")).await.expect("dropped");
    }

    #[tokio::test]
    async fn close_stops_subscriptions() {
        let ps = MemoryPubSub::new("p");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _s = ps
            .subscribe(sub_req("t", "g", 1), recorder("a", tx.clone()))
            .await
            .expect("sub");
        ps.close().await.expect("close");
        ps.publish(msg("t", "x")).await.expect("publish");
        assert_quiet(&mut rx).await;
        let e = ps
            .subscribe(sub_req("t", "g", 1), recorder("b", tx))
            .await
            .expect_err("closed");
        assert_eq!(e.kind, layotto_core::ErrorKind::Unavailable);
    }
}
