//! The app's subscriptions: declared (`Subscription` resources) and asked through the app
//! channel, routed by their rules, delivered to it, dead-lettered when it fails them, and
//! dropped while it is unreachable so the other members of its consumer groups take its
//! messages. Also the list of every subscription the metadata API shows.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use layotto_core::pubsub::{Message, PubSub, Subscription};
use layotto_core::{Error, Metadata, Result};

use crate::resiliency::{Guarded, judge_component};
use crate::routing::Routes;
use crate::{
    AppChannel, ChannelError, EventOutcome, Runtime, SubscriptionType, TopicEvent,
    TopicSubscription, lock,
};

impl Runtime {
    /// Asks the app which topics it subscribes to (retrying while its callback server is
    /// down), starts delivering to it, then watches it: when a delivery finds the app
    /// unreachable and a probe (`list_subscriptions`) confirms it, every app subscription is
    /// dropped, so the other members of its consumer groups take over the messages it had not
    /// acknowledged (Dapr unsubscribes an unhealthy app the same way); once the app answers
    /// again its subscriptions are renewed. Runs until [`Runtime::stop_app_subscriptions`].
    pub async fn start_app_subscriptions(self: &Arc<Self>, channel: Arc<dyn AppChannel>) {
        self.set_app_channel(channel.clone());
        let app_down = Arc::new(tokio::sync::Notify::new());
        let mut healthy = self.app_healthy.subscribe();
        loop {
            // An unhealthy app (health checks) gets no deliveries until it recovers.
            while !*healthy.borrow_and_update() {
                if healthy.changed().await.is_err() || self.app_stopped.load(Ordering::SeqCst) {
                    return;
                }
            }
            let Some(listed) = self.await_app_subscriptions(channel.as_ref()).await else {
                return;
            };
            if self.app_stopped.load(Ordering::SeqCst) {
                return;
            }
            let declared = lock(&self.declared).clone();
            let subs = merge(&declared, listed);
            self.subscribe_app(&channel, subs, &app_down).await;
            self.start_input_bindings(&channel, &app_down).await;
            // A stop that came while subscribing cleared the lists before these were added.
            if self.app_stopped.load(Ordering::SeqCst) {
                self.drop_app_subscriptions();
                return;
            }
            loop {
                tokio::select! {
                    () = app_down.notified() => {}
                    // A reload changed pub/subs, bindings or subscriptions: start again on
                    // the new ones.
                    () = self.resubscribe.notified() => {
                        tracing::info!("resubscribing the app after a reload");
                        self.drop_app_subscriptions();
                        break;
                    }
                    changed = healthy.changed() => {
                        if changed.is_err() || self.app_stopped.load(Ordering::SeqCst) {
                            return;
                        }
                        if !*healthy.borrow_and_update() {
                            self.drop_app_subscriptions();
                            break;
                        }
                        continue;
                    }
                }
                if self.app_stopped.load(Ordering::SeqCst) {
                    return;
                }
                match channel.list_subscriptions().await {
                    Err(ChannelError::Unavailable(e)) => {
                        tracing::warn!(error = %e, "app unreachable: unsubscribing until it returns, so other members of its consumer groups take its messages");
                        self.drop_app_subscriptions();
                        break;
                    }
                    // Reachable: the failure was transient; deliveries retry by themselves.
                    Ok(_) | Err(ChannelError::Unimplemented | ChannelError::Failed(_)) => {}
                }
            }
        }
    }

    /// The app's programmatic subscriptions, asked until it answers (none when it has no such
    /// callback); `None` when the runtime is stopping.
    async fn await_app_subscriptions(
        &self,
        channel: &dyn AppChannel,
    ) -> Option<Vec<TopicSubscription>> {
        let mut attempt = 0u32;
        loop {
            if self.app_stopped.load(Ordering::SeqCst) {
                return None;
            }
            match channel.list_subscriptions().await {
                Ok(s) => return Some(s),
                Err(ChannelError::Unimplemented) => {
                    tracing::info!(
                        "app does not implement ListTopicSubscriptions; no programmatic subscriptions"
                    );
                    return Some(Vec::new());
                }
                Err(e) => {
                    attempt += 1;
                    let delay = layotto_core::pubsub::retry_delay(attempt);
                    tracing::warn!(error = %e, ?delay, "app callback not reachable; retrying ListTopicSubscriptions");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Subscribes every topic of `subs` for the app; a delivery that finds the app unreachable
    /// notifies `app_down`. A subscription whose rules do not compile, or that the pub/sub
    /// refuses, is logged and left out.
    async fn subscribe_app(
        self: &Arc<Self>,
        channel: &Arc<dyn AppChannel>,
        subs: Vec<TopicSubscription>,
        app_down: &Arc<tokio::sync::Notify>,
    ) {
        for s in subs {
            let routes = match Routes::new(&s) {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    tracing::error!(pubsub = %s.pubsub_name, topic = %s.topic, error = %e, "app subscription refused: a routing rule does not compile");
                    continue;
                }
            };
            let ch = channel.clone();
            let down = app_down.clone();
            let metrics = self.metrics.clone();
            // The pub/sub's inbound Resiliency policies: a delivery the app failed is retried
            // here before the broker is told (daprd's `ComponentInboundPolicy`).
            let inbound = self
                .components
                .entry(layotto_core::Kind::PubSub, &s.pubsub_name)
                .and_then(|e| e.policies.inbound_guard());
            let policies = self.policies.clone();
            // Weak: the handler lives inside a component of this runtime.
            let rt = Arc::downgrade(self);
            let dead_letter = Arc::new(s.dead_letter_topic.clone());
            let handler = move |ev: TopicEvent| {
                let (ch, routes, down, metrics) =
                    (ch.clone(), routes.clone(), down.clone(), metrics.clone());
                let (inbound, policies) = (inbound.clone(), policies.clone());
                let (rt, dead_letter) = (rt.clone(), dead_letter.clone());
                let fut: futures::future::BoxFuture<'static, Result<()>> = Box::pin(async move {
                    let sub = match routes.pick(&ev) {
                        Ok(Some(sub)) => sub.clone(),
                        Ok(None) => {
                            tracing::debug!(id = %ev.id, topic = %ev.topic, "no routing rule takes the event; not delivered");
                            metrics.delivery(
                                &ev.pubsub_name,
                                &ev.topic,
                                "drop",
                                "success",
                                std::time::Duration::ZERO,
                            );
                            return dead_letter_or(&rt, &dead_letter, &ev, Ok(())).await;
                        }
                        Err(e) => {
                            tracing::error!(id = %ev.id, topic = %ev.topic, error = %e, "routing the event failed");
                            let failed = Err(Error::invalid(e));
                            return dead_letter_or(&rt, &dead_letter, &ev, failed).await;
                        }
                    };
                    let once = || deliver_to_app(ch.as_ref(), &sub, &ev, &down, &metrics);
                    let delivered = match inbound.as_deref() {
                        None => once().await,
                        Some((p, target)) => {
                            let to = Guarded {
                                target,
                                endpoint: &sub.pubsub_name,
                                inbound: true,
                            };
                            policies.run(p, &to, &metrics, once, judge_component).await
                        }
                    };
                    match delivered {
                        Ok(Delivered::Processed) => Ok(()),
                        Ok(Delivered::Dropped) => {
                            dead_letter_or(&rt, &dead_letter, &ev, Ok(())).await
                        }
                        // The app was not reached (or its breaker is open): the event stays
                        // with the broker for the group, never dead-lettered.
                        Err(e) if e.kind == layotto_core::ErrorKind::Unavailable => Err(e),
                        Err(e) => dead_letter_or(&rt, &dead_letter, &ev, Err(e)).await,
                    }
                });
                fut
            };
            let mut metadata = s.metadata.clone();
            if s.bulk.enabled {
                // Lets a pub/sub that hands messages one at a time hand a batch at once.
                metadata.insert(
                    layotto_core::pubsub::BULK_MAX_MESSAGES_KEY.to_owned(),
                    s.bulk.max_messages().to_string(),
                );
                metadata.insert(
                    layotto_core::pubsub::BULK_MAX_AWAIT_MS_KEY.to_owned(),
                    s.bulk.max_await().as_millis().to_string(),
                );
            }
            match self
                .subscribe(&s.pubsub_name, &s.topic, metadata, handler)
                .await
            {
                Ok(sub) => {
                    tracing::info!(pubsub = %s.pubsub_name, topic = %s.topic, kind = s.type_.as_str(), "subscribed for app");
                    lock(&self.app_subscriptions).push(sub);
                    lock(&self.app_topics).push(s);
                }
                Err(e) => {
                    tracing::error!(pubsub = %s.pubsub_name, topic = %s.topic, error = %e, "app subscription refused");
                }
            }
        }
    }

    fn drop_app_subscriptions(&self) {
        lock(&self.app_subscriptions).clear();
        lock(&self.app_topics).clear();
    }

    /// Stops delivering to the app for good.
    pub fn stop_app_subscriptions(&self) {
        self.app_stopped.store(true, Ordering::SeqCst);
        // Wakes a subscription loop waiting for the app to become healthy, so it sees the stop.
        self.app_healthy.send_modify(|_| ());
        self.drop_app_subscriptions();
    }
}

/// What became of an event the app was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// The app processed it.
    Processed,
    /// The app dropped it (DROP, or no callback for it): acknowledged, and dead-lettered when
    /// the subscription has a dead-letter topic.
    Dropped,
}

/// Publishes `ev` to `dead_letter` (on its own pub/sub, as the broker delivered it) when there
/// is one, as daprd does for events the app failed, dropped or had no route for; then the
/// event counts as handled. Without a dead-letter topic `outcome` stands. A dead-letter
/// publish that fails keeps the event with the broker (redelivered), where daprd would
/// acknowledge it and lose it.
async fn dead_letter_or(
    rt: &Weak<Runtime>,
    dead_letter: &str,
    ev: &TopicEvent,
    outcome: Result<()>,
) -> Result<()> {
    if dead_letter.is_empty() {
        return outcome;
    }
    let Some(rt) = rt.upgrade() else {
        return Err(Error::unavailable("runtime stopping"));
    };
    let message = Message {
        topic: dead_letter.to_owned(),
        data: ev.raw.clone(),
        metadata: ev.metadata.clone(),
    };
    match rt.publish_message(&ev.pubsub_name, message).await {
        Ok(()) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, %dead_letter, reason = ?outcome.err().map(|e| e.message), "event sent to the dead-letter topic");
            Ok(())
        }
        Err(e) => {
            tracing::error!(id = %ev.id, topic = %ev.topic, %dead_letter, error = %e, "sending the event to its dead-letter topic failed; it stays with the broker");
            Err(e)
        }
    }
}

/// Delivers one event through the app channel, mapping the app's answer to ack/redeliver:
/// SUCCESS acknowledges, DROP (and an app that does not implement the callback) drops, RETRY
/// and an unreachable app redeliver.
async fn deliver_to_app(
    ch: &dyn AppChannel,
    sub: &TopicSubscription,
    ev: &TopicEvent,
    app_down: &tokio::sync::Notify,
    metrics: &crate::Metrics,
) -> Result<Delivered> {
    use opentelemetry::context::FutureExt as _;
    let started = std::time::Instant::now();
    let parent =
        crate::trace::remote_parent(ev.trace_parent.as_deref(), ev.trace_state.as_deref(), None);
    let span = crate::trace::start(
        format!("pubsub/{}", ev.topic),
        opentelemetry::trace::SpanKind::Consumer,
        &parent,
        vec![
            opentelemetry::KeyValue::new("messaging.destination.name", ev.topic.clone()),
            opentelemetry::KeyValue::new("component", ev.pubsub_name.clone()),
        ],
    );
    let answer = match &span {
        None => ch.deliver(sub, ev).await,
        Some(cx) => ch.deliver(sub, ev).with_context(cx.clone()).await,
    };
    // daprd's labels: an app's DROP is processed as a drop but delivered successfully.
    let (process_status, status) = match &answer {
        Ok(EventOutcome::Success) => ("success", "success"),
        Ok(EventOutcome::Drop) => ("drop", "success"),
        Err(ChannelError::Unimplemented) => ("drop", "drop"),
        Ok(EventOutcome::Retry) | Err(_) => ("retry", "retry"),
    };
    metrics.delivery(
        &ev.pubsub_name,
        &ev.topic,
        process_status,
        status,
        started.elapsed(),
    );
    if let Some(cx) = &span {
        crate::trace::finish(
            cx,
            (process_status == "retry").then_some("the app asked to retry"),
        );
    }
    match answer {
        Ok(EventOutcome::Success) => Ok(Delivered::Processed),
        Ok(EventOutcome::Drop) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, "app dropped event");
            Ok(Delivered::Dropped)
        }
        // The app answered: dead-lettered when the subscription has a dead-letter topic.
        Ok(EventOutcome::Retry) => Err(Error::internal(format!(
            "app asked to retry event {}",
            ev.id
        ))),
        Err(ChannelError::Unimplemented) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, "app does not implement OnTopicEvent; dropping event");
            Ok(Delivered::Dropped)
        }
        Err(e) => {
            app_down.notify_one();
            Err(Error::unavailable(format!(
                "delivering event {} to app: {e}",
                ev.id
            )))
        }
    }
}

impl Runtime {
    /// A client's streaming subscription (`SubscribeTopicEventsAlpha1`): [`Runtime::subscribe`],
    /// listed by the metadata API as `STREAMING` until the returned guard is dropped. The
    /// handler answers each event: an event the subscriber answers with an error (RETRY) or
    /// DROP goes to `dead_letter` when given, as daprd; one it does not answer (gone, silent)
    /// goes back to the group.
    ///
    /// # Errors
    /// As [`Runtime::subscribe`].
    pub async fn subscribe_streaming(
        self: &Arc<Self>,
        pubsub: &str,
        topic: &str,
        metadata: Metadata,
        dead_letter: Option<String>,
        handler: impl Fn(TopicEvent) -> futures::future::BoxFuture<'static, Result<EventOutcome>>
        + Send
        + Sync
        + 'static,
    ) -> Result<StreamingSubscription> {
        let listed = TopicSubscription {
            pubsub_name: pubsub.to_owned(),
            topic: topic.to_owned(),
            metadata: metadata.clone(),
            dead_letter_topic: dead_letter.clone().unwrap_or_default(),
            type_: SubscriptionType::Streaming,
            ..Default::default()
        };
        let (rt, dead_letter) = (
            Arc::downgrade(self),
            Arc::new(dead_letter.unwrap_or_default()),
        );
        let handler = Arc::new(handler);
        let wrapped = move |ev: TopicEvent| {
            let (rt, dead_letter, handler) = (rt.clone(), dead_letter.clone(), handler.clone());
            let fut: futures::future::BoxFuture<'static, Result<()>> = Box::pin(async move {
                let raw = (!dead_letter.is_empty()).then(|| ev.clone());
                match (handler(ev).await, raw) {
                    // Dropped by the subscriber: dead-lettered when there is a topic, as daprd.
                    (Ok(EventOutcome::Drop), Some(raw)) => {
                        tracing::warn!(id = %raw.id, topic = %raw.topic, "subscriber dropped event");
                        dead_letter_or(&rt, &dead_letter, &raw, Ok(())).await
                    }
                    (Ok(_), _) => Ok(()),
                    // The subscriber is gone or silent: the event goes back to the group.
                    (Err(e), _) if e.kind == layotto_core::ErrorKind::Unavailable => Err(e),
                    (Err(e), Some(raw)) => dead_letter_or(&rt, &dead_letter, &raw, Err(e)).await,
                    (Err(e), None) => Err(e),
                }
            });
            fut
        };
        let subscription = self.subscribe(pubsub, topic, metadata, wrapped).await?;
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        lock(&self.streams).push((id, listed));
        Ok(StreamingSubscription {
            _subscription: subscription,
            id,
            streams: self.streams.clone(),
        })
    }

    /// Every subscription, as daprd's metadata API lists them (`ListTypedSubscriptions`): one
    /// per pub/sub and topic, a programmatic one in place of a declared one of the same topic
    /// and a streaming one in place of either.
    pub fn subscriptions(&self) -> Vec<TopicSubscription> {
        let mut out = lock(&self.app_topics).clone();
        for (_, s) in lock(&self.streams).iter() {
            match out
                .iter_mut()
                .find(|o| o.pubsub_name == s.pubsub_name && o.topic == s.topic)
            {
                Some(o) => *o = s.clone(),
                None => out.push(s.clone()),
            }
        }
        out
    }

    /// Publishes `message` as it is (no envelope) through pub/sub `pubsub`'s call path.
    pub(crate) async fn publish_message(&self, pubsub: &str, message: Message) -> Result<()> {
        let p = self.components.target::<dyn PubSub>(pubsub)?;
        publish_on(&p, pubsub, message).await
    }
}

/// Publishes `message` through `p`, recording the publish metrics.
pub(crate) async fn publish_on(
    p: &crate::call::Target<'_, dyn PubSub>,
    pubsub: &str,
    message: Message,
) -> Result<()> {
    let started = std::time::Instant::now();
    let r = p
        .run("publish", || p.component.publish(message.clone()))
        .await;
    p.metrics
        .publish(pubsub, &message.topic, r.is_ok(), started.elapsed());
    r.map_err(|e| e.context(format!("pubsub '{pubsub}'")))
}

/// A streaming subscription: delivery stops and the metadata API stops listing it when this
/// is dropped.
pub struct StreamingSubscription {
    _subscription: Subscription,
    id: u64,
    streams: Arc<std::sync::Mutex<Vec<(u64, TopicSubscription)>>>,
}

impl Drop for StreamingSubscription {
    fn drop(&mut self) {
        lock(&self.streams).retain(|(id, _)| *id != self.id);
    }
}

/// The declared subscriptions as the runtime starts them; a routing rule that does not
/// compile is a problem at its file.
pub(crate) fn declared(
    subs: &[layotto_config::DeclaredSubscription],
    problems: &mut Vec<layotto_config::Problem>,
) -> Vec<TopicSubscription> {
    let mut out = Vec::with_capacity(subs.len());
    for d in subs {
        let s = TopicSubscription {
            pubsub_name: d.pubsub_name.clone(),
            topic: d.topic.clone(),
            metadata: d.metadata.clone(),
            route: String::new(),
            rules: d.rules.clone(),
            dead_letter_topic: d.dead_letter_topic.clone(),
            bulk: d.bulk,
            type_: SubscriptionType::Declarative,
        };
        match Routes::new(&s) {
            Ok(_) => out.push(s),
            Err(e) => problems.push(layotto_config::Problem {
                file: d.file.clone(),
                path: format!("Subscription '{}'.spec.routes", d.name),
                message: e,
            }),
        }
    }
    out
}

/// The subscriptions to start, as daprd merges them: the declared ones first (the first of a
/// pub/sub and topic wins), then the app's, each replacing a declared one of its pub/sub and
/// topic.
fn merge(declared: &[TopicSubscription], listed: Vec<TopicSubscription>) -> Vec<TopicSubscription> {
    let mut out: Vec<TopicSubscription> = Vec::with_capacity(declared.len() + listed.len());
    for d in declared {
        if !out
            .iter()
            .any(|o| o.pubsub_name == d.pubsub_name && o.topic == d.topic)
        {
            out.push(d.clone());
        }
    }
    for l in listed {
        match out
            .iter_mut()
            .find(|o| o.pubsub_name == l.pubsub_name && o.topic == l.topic)
        {
            Some(o) => {
                tracing::info!(pubsub = %l.pubsub_name, topic = %l.topic, "the app's subscription replaces the declared one");
                *o = l;
            }
            None => out.push(l),
        }
    }
    out
}
