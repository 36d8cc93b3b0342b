//! Publish/subscribe: CloudEvent wrapping on the way out, decoding on the way in.

use std::sync::Arc;

use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest, Subscription};
use layotto_core::{Error, Metadata, Result};

use crate::{Runtime, TopicEvent, cloudevent};

impl Runtime {
    /// Publishes `data` to `topic`, wrapped in a CloudEvent unless it already is one or
    /// `metadata` has `rawPayload: "true"` (Dapr's raw messages: published as given).
    ///
    /// # Errors
    /// Unknown pub/sub, empty topic, a malformed CloudEvent, component failure.
    pub async fn publish(
        &self,
        pubsub: &str,
        topic: &str,
        data: &[u8],
        content_type: &str,
        metadata: Metadata,
    ) -> Result<()> {
        let p = self.components.target::<dyn PubSub>(pubsub)?;
        if topic.is_empty() {
            return Err(Error::empty_field("topic"));
        }
        let data = if cloudevent::is_raw_payload(&metadata) {
            bytes::Bytes::copy_from_slice(data)
        } else {
            cloudevent::envelope(&self.app_id, topic, pubsub, data, content_type)?
        };
        let message = Message {
            topic: topic.to_owned(),
            data,
            metadata,
        };
        crate::subscriptions::publish_on(&p, pubsub, message).await
    }

    /// Subscribes `handler` to `topic` of `pubsub` in a consumer group: `metadata`'s
    /// `consumerID`, else the component's `consumerID` metadata, else this app's id. The handler gets decoded CloudEvents (with
    /// `rawPayload: "true"` in `metadata`: every message as an opaque payload) and
    /// returns `Ok` to acknowledge or `Err` to have the event redelivered.
    ///
    /// # Errors
    /// Unknown pub/sub, empty topic, component failure.
    pub async fn subscribe(
        &self,
        pubsub: &str,
        topic: &str,
        mut metadata: Metadata,
        handler: impl Fn(TopicEvent) -> futures::future::BoxFuture<'static, Result<()>>
        + Send
        + Sync
        + 'static,
    ) -> Result<Subscription> {
        let p = self.components.target::<dyn PubSub>(pubsub)?;
        if topic.is_empty() {
            return Err(Error::empty_field("topic"));
        }
        // The consumer group: the subscription's own `consumerID`, else the component's, else
        // the app id (Dapr's default).
        let group = p.consumer_id().unwrap_or(&self.app_id);
        if !group.is_empty() {
            metadata
                .entry(layotto_core::pubsub::CONSUMER_ID_KEY.to_owned())
                .or_insert_with(|| group.to_owned());
        }
        let (t, name) = (topic.to_owned(), pubsub.to_owned());
        let raw = cloudevent::is_raw_payload(&metadata);
        let handler: Handler = Arc::new(move |m: Message| {
            let mut ev = if raw {
                cloudevent::raw_event(&m.data, &t, &name, m.metadata)
            } else {
                cloudevent::decode(&m.data, &t, &name, m.metadata)
            };
            ev.raw = m.data;
            handler(ev)
        });
        let req = SubscribeRequest {
            topic: topic.to_owned(),
            metadata,
        };
        // Registers the handler once: never sent again.
        p.run_once("subscribe", p.component.subscribe(req, handler))
            .await
            .map(|s| p.hold(s))
    }
}
