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

use crate::dapr::errors::{Block, Failure, fail};

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
    /// client's answer: Success or Drop (both acknowledge; a dropped event is dead-lettered),
    /// an error for Retry or no answer within [`STREAM_ACK_TIMEOUT`] (redelivered).
    pub(crate) fn handler<M: Send + 'static>(
        &self,
        tx: mpsc::Sender<Result<M, Status>>,
        wrap: fn(&TopicEvent) -> M,
    ) -> impl Fn(
        TopicEvent,
    ) -> futures::future::BoxFuture<'static, layotto_core::Result<EventOutcome>>
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
                    Ok(Ok(o @ (EventOutcome::Success | EventOutcome::Drop))) => Ok(o),
                    // The subscriber answered: dead-lettered when the subscription has a
                    // dead-letter topic (an unavailable subscriber's events go back instead).
                    Ok(Ok(EventOutcome::Retry)) => {
                        Err(Error::internal("subscriber asked to retry"))
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

/// What an initial request asks for: pub/sub, topic, metadata, dead-letter topic (Dapr's
/// `dead_letter_topic`; Layotto's request has none).
pub(crate) type Initial = (String, String, layotto_core::Metadata, Option<String>);

/// One API's messages of the streaming subscription: Layotto's `SubscribeTopicEvents` and
/// Dapr's `SubscribeTopicEventsAlpha1` differ only in them.
pub(crate) trait TopicStream {
    /// A client message: the initial request, then acknowledgements.
    type In: Send + 'static;
    /// A message to the client: the initial response, then events.
    type Out: Send + 'static;
    /// The rpc's name, for errors.
    const RPC: &'static str;
    /// The pub/sub, topic, metadata and dead-letter topic of an initial request, else `None`.
    fn initial(m: Self::In) -> Option<Initial>;
    /// The event id and the client's answer of an acknowledgement, else `None`.
    fn processed(m: Self::In) -> Option<(String, EventOutcome)>;
    /// The answer to the initial request.
    fn initial_response() -> Self::Out;
    /// An event for the client.
    fn event(ev: &TopicEvent) -> Self::Out;
}

/// Implements [`TopicStream`] as `$name` for one API's generated messages: both APIs name the
/// oneof fields alike (`subscribe_topic_events_request_type`, `..._response_type`), only the
/// types differ. `event` makes the API's `TopicEventRequest` of a [`TopicEvent`]; `outcome`
/// maps the API's `TopicEventResponse.status`.
macro_rules! topic_stream {
    (
        $name:ident, $rpc:literal,
        request: $req:ty, request_type: $($req_type:ident)::+,
        response: $resp:ty, response_type: $($resp_type:ident)::+,
        initial_response: $initial:expr,
        event: $event:path, outcome: $outcome:path,
        dead_letter: $dead_letter:expr $(,)?
    ) => {
        /// The messages of one API's streaming subscription.
        pub(crate) struct $name;

        impl $crate::stream_sub::TopicStream for $name {
            type In = $req;
            type Out = $resp;
            const RPC: &'static str = $rpc;

            fn initial(m: Self::In) -> Option<$crate::stream_sub::Initial> {
                use $($req_type)::+ as In;
                match m.subscribe_topic_events_request_type {
                    Some(In::InitialRequest(i)) => {
                        let dead_letter = ($dead_letter)(&i);
                        Some((i.pubsub_name, i.topic, i.metadata, dead_letter))
                    }
                    _ => None,
                }
            }

            fn processed(m: Self::In) -> Option<(String, layotto_runtime::EventOutcome)> {
                use $($req_type)::+ as In;
                match m.subscribe_topic_events_request_type {
                    Some(In::EventProcessed(p)) => {
                        Some((p.id, $outcome(p.status.map_or(0, |s| s.status))))
                    }
                    _ => None,
                }
            }

            fn initial_response() -> Self::Out {
                use $($resp_type)::+ as Out;
                Self::Out {
                    subscribe_topic_events_response_type: Some(Out::InitialResponse($initial)),
                }
            }

            fn event(ev: &layotto_runtime::TopicEvent) -> Self::Out {
                use $($resp_type)::+ as Out;
                Self::Out {
                    subscribe_topic_events_response_type: Some(Out::EventMessage($event(ev))),
                }
            }
        }
    };
}
pub(crate) use topic_stream;

/// Serves one streaming subscription: the first client message must be the initial request;
/// the subscription then lives until the client ends its side, each event waiting for its
/// acknowledgement ([`Pending`]).
pub(crate) async fn subscribe<W: TopicStream>(
    rt: &std::sync::Arc<layotto_runtime::Runtime>,
    mut incoming: tonic::Streaming<W::In>,
) -> Result<crate::BoxStream<W::Out>, Failure> {
    use futures::StreamExt as _;
    let first = incoming.next().await;
    let (pubsub, topic, metadata, dead_letter) = match first {
        Some(Err(s)) => return Err(Failure::Status(s)),
        Some(Ok(m)) => W::initial(m),
        None => None,
    }
    .ok_or_else(|| {
        fail(Block::PubSub, "ERR_BAD_REQUEST")(Error::invalid(format!(
            "the first message of {} must be initial_request",
            W::RPC
        )))
    })?;
    let pending = Pending::default();
    let (tx, rx) = mpsc::channel::<Result<W::Out, Status>>(64);
    let handler = pending.handler(tx.clone(), W::event);
    let subscription = rt
        .subscribe_streaming(&pubsub, &topic, metadata, dead_letter, handler)
        .await
        .map_err(fail(Block::PubSub, "ERR_PUBSUB_SUBSCRIBE"))?;
    let _ = tx.send(Ok(W::initial_response())).await;
    tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            if let Some((id, outcome)) = W::processed(msg) {
                pending.ack(&id, outcome);
            }
        }
        // Stream ended: stop delivery; unacknowledged events go back to the group.
        drop(subscription);
        pending.clear();
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
