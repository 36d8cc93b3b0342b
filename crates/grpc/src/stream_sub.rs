//! Streaming subscriptions with per-event acknowledgement, shared by Layotto's
//! `SubscribeTopicEvents` and Dapr's `SubscribeTopicEventsAlpha1`: each event is sent down the
//! response stream and the delivery waits for the client's answer with the event's id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use layotto_core::Error;
use layotto_runtime::{EventOutcome, TopicEvent};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// How long a streaming subscriber may take to acknowledge one event before it is redelivered.
pub const STREAM_ACK_TIMEOUT: Duration = Duration::from_secs(60);

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<EventOutcome>>>>;

/// Events sent to one stream and not yet acknowledged, by event id.
#[derive(Clone, Default)]
pub(crate) struct Pending(Waiters);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<EventOutcome>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the client's answer for event `id` to the waiting delivery (ignored when nothing
    /// waits: a late or duplicate answer).
    pub(crate) fn ack(&self, id: &str, outcome: EventOutcome) {
        if let Some(w) = self.lock().remove(id) {
            let _ = w.send(outcome);
        }
    }

    /// Fails every waiting delivery (the stream ended): the events go back to the group.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// A runtime subscription handler that sends `wrap(event)` down `tx` and resolves with the
    /// client's answer: Success/Drop acknowledge, Retry or no answer within
    /// [`STREAM_ACK_TIMEOUT`] redeliver.
    pub(crate) fn handler<M: Send + 'static>(
        &self,
        tx: mpsc::Sender<Result<M, Status>>,
        wrap: fn(&TopicEvent) -> M,
    ) -> impl Fn(TopicEvent) -> futures::future::BoxFuture<'static, layotto_core::Result<()>>
    + Send
    + Sync
    + 'static {
        let pending = self.clone();
        move |ev: TopicEvent| {
            let (pending, tx) = (pending.clone(), tx.clone());
            Box::pin(async move {
                let (done_tx, done_rx) = oneshot::channel();
                pending.lock().insert(ev.id.clone(), done_tx);
                if tx.send(Ok(wrap(&ev))).await.is_err() {
                    return Err(Error::unavailable("subscriber stream closed"));
                }
                match tokio::time::timeout(STREAM_ACK_TIMEOUT, done_rx).await {
                    Ok(Ok(EventOutcome::Success | EventOutcome::Drop)) => Ok(()),
                    Ok(Ok(EventOutcome::Retry)) => {
                        Err(Error::unavailable("subscriber asked to retry"))
                    }
                    Ok(Err(_)) => Err(Error::unavailable("subscriber stream closed")),
                    Err(_) => {
                        pending.lock().remove(&ev.id);
                        Err(Error::unavailable("subscriber did not acknowledge in time"))
                    }
                }
            })
        }
    }
}
