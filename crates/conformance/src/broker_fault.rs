//! The broker-fault run of the pub/sub contract: the broker is killed and restarted while
//! messages flow to a consumer group of two members; every message the broker acknowledged
//! to the publisher must be delivered at least once. Duplicates are allowed (at least once)
//! and reported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use layotto_core::Metadata;
use layotto_core::pubsub::{CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest};

/// How long the run waits for the acknowledged messages to be delivered after the last
/// publish.
const DELIVERY_WAIT: Duration = Duration::from_secs(90);
/// How long one message may stay unacknowledged by the broker (retried meanwhile).
const PUBLISH_WAIT: Duration = Duration::from_secs(90);

/// What a broker-fault run saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReport {
    /// Messages the broker acknowledged (all of them, since the publisher retries).
    pub acknowledged: usize,
    /// Messages delivered more than once.
    pub duplicates: usize,
    /// Publish attempts that failed (and were retried) while the broker was down.
    pub failed_attempts: usize,
}

impl std::fmt::Display for FaultReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged, all delivered, {} delivered more than once, {} publish attempts \
             failed during the restart",
            self.acknowledged, self.duplicates, self.failed_attempts
        )
    }
}

/// A `restart` for [`survives_broker_restart`] that kills the broker held in `server` (SIGKILL,
/// through `kill`), leaves it down for 300 ms so clients see it gone, and starts it again
/// (`start`, on the same ports and data).
pub fn kill_then_start<S: Send + 'static>(
    server: Arc<Mutex<S>>,
    kill: fn(&mut S),
    start: fn(&mut S),
) -> impl FnOnce() + Send + 'static {
    move || {
        let mut s = server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kill(&mut s);
        std::thread::sleep(Duration::from_millis(300));
        start(&mut s);
    }
}

/// Publishes `n` messages (`payload(i)`, distinct) to `topic` through `publisher`, retrying
/// each until the broker acknowledges it, while `members` (components, one per sidecar)
/// consume them as consumer group `group`. When half are acknowledged, `restart` runs on a
/// blocking thread (it kills the broker and starts it again) while publishing goes on.
///
/// # Panics
/// When a message is not acknowledged within 90 s of retries, `restart` panics, or an
/// acknowledged message is not delivered within 90 s of the last publish.
pub async fn survives_broker_restart(
    publisher: &dyn PubSub,
    members: &[Arc<dyn PubSub>],
    topic: &str,
    group: &str,
    n: usize,
    payload: impl Fn(usize) -> Bytes,
    restart: impl FnOnce() + Send + 'static,
) -> FaultReport {
    let counts: Arc<Mutex<HashMap<Bytes, u32>>> = Arc::default();
    let mut subs = Vec::new();
    for m in members {
        let counts = Arc::clone(&counts);
        let handler: Handler = Arc::new(move |msg: Message| {
            *counts.lock().expect("lock").entry(msg.data).or_default() += 1;
            Box::pin(async { Ok(()) })
        });
        let req = SubscribeRequest {
            topic: topic.to_owned(),
            metadata: Metadata::from([(CONSUMER_ID_KEY.to_owned(), group.to_owned())]),
        };
        subs.push(m.subscribe(req, handler).await.expect("subscribe a member"));
    }
    let progress = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&progress);
    let fault = tokio::task::spawn_blocking(move || {
        while seen.load(Ordering::SeqCst) < n / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        restart();
    });
    let mut acknowledged = Vec::with_capacity(n);
    let mut failed_attempts = 0;
    for i in 0..n {
        let data = payload(i);
        let deadline = Instant::now() + PUBLISH_WAIT;
        loop {
            let msg = Message {
                topic: topic.to_owned(),
                data: data.clone(),
                metadata: Metadata::new(),
            };
            match publisher.publish(msg).await {
                Ok(()) => break,
                Err(e) => {
                    failed_attempts += 1;
                    assert!(
                        Instant::now() < deadline,
                        "message {i} never acknowledged: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        acknowledged.push(data);
        progress.store(i + 1, Ordering::SeqCst);
    }
    fault.await.expect("the restart ran");
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let missing = {
            let c = counts.lock().expect("lock");
            acknowledged.iter().filter(|d| !c.contains_key(*d)).count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {n} acknowledged messages were never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(subs);
    let duplicates = counts
        .lock()
        .expect("lock")
        .values()
        .filter(|c| **c > 1)
        .count();
    FaultReport {
        acknowledged: n,
        duplicates,
        failed_attempts,
    }
}
