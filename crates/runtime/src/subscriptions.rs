//! The app's own subscriptions: asked through the app channel, delivered to it, dropped while
//! it is unreachable so the other members of its consumer groups take its messages.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use layotto_core::{Error, Result};

use crate::resiliency::{Guarded, judge_component};
use crate::{AppChannel, ChannelError, EventOutcome, Runtime, TopicEvent, TopicSubscription, lock};

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
            let Some(subs) = self.await_app_subscriptions(channel.as_ref()).await else {
                return;
            };
            if self.app_stopped.load(Ordering::SeqCst) {
                return;
            }
            self.subscribe_app(&channel, subs, &app_down).await;
            loop {
                tokio::select! {
                    () = app_down.notified() => {}
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

    /// The app's subscriptions, asked until it answers; `None` when it has no such callback or
    /// the runtime is stopping.
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
                        "app does not implement ListTopicSubscriptions; no subscriptions"
                    );
                    return None;
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
    /// notifies `app_down`.
    async fn subscribe_app(
        &self,
        channel: &Arc<dyn AppChannel>,
        subs: Vec<TopicSubscription>,
        app_down: &Arc<tokio::sync::Notify>,
    ) {
        for s in subs {
            let ch = channel.clone();
            let sub = Arc::new(s.clone());
            let down = app_down.clone();
            let metrics = self.metrics.clone();
            // The pub/sub's inbound Resiliency policies: a delivery the app failed is retried
            // here before the broker is told (daprd's `ComponentInboundPolicy`).
            let inbound = self
                .components
                .entry(layotto_core::Kind::PubSub, &s.pubsub_name)
                .and_then(|e| {
                    let p = e.policies.inbound.clone()?;
                    Some(Arc::new((p, e.policies.target.clone())))
                });
            let policies = self.policies.clone();
            let handler = move |ev: TopicEvent| {
                let (ch, sub, down, metrics) =
                    (ch.clone(), sub.clone(), down.clone(), metrics.clone());
                let (inbound, policies) = (inbound.clone(), policies.clone());
                let fut: futures::future::BoxFuture<'static, Result<()>> = Box::pin(async move {
                    let once = || deliver_to_app(ch.as_ref(), &sub, &ev, &down, &metrics);
                    match inbound.as_deref() {
                        None => once().await,
                        Some((p, target)) => {
                            let to = Guarded {
                                target,
                                endpoint: &sub.pubsub_name,
                                inbound: true,
                            };
                            policies.run(p, &to, &metrics, once, judge_component).await
                        }
                    }
                });
                fut
            };
            match self
                .subscribe(&s.pubsub_name, &s.topic, s.metadata.clone(), handler)
                .await
            {
                Ok(sub) => {
                    tracing::info!(pubsub = %s.pubsub_name, topic = %s.topic, "subscribed for app");
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

/// Delivers one event through the app channel, mapping the app's answer to ack/redeliver:
/// SUCCESS and DROP acknowledge, RETRY and an unreachable app redeliver, an app that does not
/// implement the callback drops.
async fn deliver_to_app(
    ch: &dyn AppChannel,
    sub: &TopicSubscription,
    ev: &TopicEvent,
    app_down: &tokio::sync::Notify,
    metrics: &crate::Metrics,
) -> Result<()> {
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
        Ok(EventOutcome::Success) => Ok(()),
        Ok(EventOutcome::Drop) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, "app dropped event");
            Ok(())
        }
        Ok(EventOutcome::Retry) => Err(Error::unavailable(format!(
            "app asked to retry event {}",
            ev.id
        ))),
        Err(ChannelError::Unimplemented) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, "app does not implement OnTopicEvent; dropping event");
            Ok(())
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
