//! Bulk delivery to an HTTP app (Dapr's `bulkSubscribe`): events of one subscription route
//! that arrive close together go to the app in one envelope (Dapr's `BulkSubscribeMessage`),
//! sent once `maxMessagesCount` events are in it or `maxAwaitDurationMs` after the first.
//! Each event's caller waits for its own entry's status in the app's answer, so routing,
//! dead-lettering and Resiliency stay per event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use layotto_runtime::app_channel::{ChannelError, EventOutcome, TopicSubscription};
use layotto_runtime::cloudevent::{CLOUDEVENT_CONTENT_TYPE, TopicEvent};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::app_channel::HttpAppChannel;

/// The answer one waiting event gets.
type Reply = oneshot::Sender<Result<EventOutcome, ChannelError>>;

/// Envelopes being filled, one per (pub/sub, topic, route).
#[derive(Default)]
pub(crate) struct Batches {
    open: Mutex<HashMap<(String, String, String), Open>>,
    next: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.open.lock().map_or(0, |o| o.len());
        f.debug_struct("Batches").field("open", &open).finish()
    }
}

/// An envelope being filled.
struct Open {
    /// Tells the timer of an envelope sent when full from its successor.
    generation: u64,
    sub: TopicSubscription,
    entries: Vec<Value>,
    waiters: Vec<(String, Reply)>,
}

impl Batches {
    /// Adds `ev` (as the CloudEvent `ce`) to the envelope of its route and waits for the app's
    /// status of its entry.
    pub(crate) async fn deliver(
        self: &Arc<Self>,
        ch: &HttpAppChannel,
        sub: &TopicSubscription,
        ev: &TopicEvent,
        ce: Map<String, Value>,
    ) -> Result<EventOutcome, ChannelError> {
        let (tx, rx) = oneshot::channel();
        let key = (
            sub.pubsub_name.clone(),
            sub.topic.clone(),
            sub.route.clone(),
        );
        let full = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let batch = open.entry(key.clone()).or_insert_with(|| Open {
                generation: self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                sub: sub.clone(),
                entries: Vec::new(),
                waiters: Vec::new(),
            });
            // The CloudEvent id, unless an event of this envelope already has it.
            let entry_id = if batch.waiters.iter().any(|(id, _)| *id == ev.id) || ev.id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                ev.id.clone()
            };
            batch.entries.push(serde_json::json!({
                "entryId": entry_id,
                "event": Value::Object(ce),
                "contentType": CLOUDEVENT_CONTENT_TYPE,
                "metadata": ev.metadata,
            }));
            batch.waiters.push((entry_id, tx));
            if batch.waiters.len() >= sub.bulk.max_messages() {
                open.remove(&key)
            } else {
                if batch.waiters.len() == 1 {
                    let (this, ch, generation) = (Arc::clone(self), ch.clone(), batch.generation);
                    let wait = sub.bulk.max_await();
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let due = {
                            let mut open = this.open.lock().unwrap_or_else(|e| e.into_inner());
                            match open.get(&key) {
                                Some(b) if b.generation == generation => open.remove(&key),
                                _ => None,
                            }
                        };
                        if let Some(b) = due {
                            send(&ch, b).await;
                        }
                    });
                }
                None
            }
        };
        if let Some(b) = full {
            let ch = ch.clone();
            tokio::spawn(async move { send(&ch, b).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ChannelError::Unavailable(
                "the bulk delivery was abandoned".to_owned(),
            ))
        })
    }
}

/// Posts envelope `b` and answers each waiting event with its entry's status (a failed
/// request answers them all alike).
async fn send(ch: &HttpAppChannel, b: Open) {
    let envelope = serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "entries": b.entries,
        "metadata": {},
        "pubsubname": b.sub.pubsub_name,
        "topic": b.sub.topic,
        "type": "com.dapr.event.sent.bulk",
    });
    let answer = ch
        .post_event(&b.sub, &envelope, &b.sub.pubsub_name, &[])
        .await;
    for (id, reply) in b.waiters {
        let outcome = match &answer {
            Err(e) => Err(e.clone()),
            Ok((status, body)) if status.is_success() => {
                Ok(crate::app_channel::bulk_outcome(body, &id))
            }
            Ok((status, body)) => Ok(crate::app_channel::outcome(*status, body, &id)),
        };
        let _ = reply.send(outcome);
    }
}
