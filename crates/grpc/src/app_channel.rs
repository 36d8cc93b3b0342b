//! The app channel over gRPC: the sidecar calls the app's `AppCallback` server.

use async_trait::async_trait;
use layotto_proto::runtime::app_callback_client::AppCallbackClient;
use layotto_proto::runtime::topic_event_response::TopicEventResponseStatus;
use layotto_runtime::{AppChannel, ChannelError, EventOutcome, TopicEvent, TopicSubscription};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Calls the app's `spec.proto.runtime.v1.AppCallback` at `http://host:port`. The connection is
/// made lazily and re-made after failures, so an app that starts later is reached.
#[derive(Clone)]
pub struct GrpcAppChannel {
    client: AppCallbackClient<Channel>,
}

impl GrpcAppChannel {
    /// A channel to `host:port`; no connection is attempted yet.
    ///
    /// # Errors
    /// The address is not a valid URI authority.
    pub fn new(host: &str, port: u16) -> Result<Self, tonic::transport::Error> {
        Ok(Self {
            client: AppCallbackClient::new(lazy_channel(host, port)?),
        })
    }
}

/// A channel to the app at `http://host:port`, connected at first use and re-connected after
/// failures (3 s connect timeout, `TCP_NODELAY`).
pub(crate) fn lazy_channel(host: &str, port: u16) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{host}:{port}"))?
        .connect_timeout(std::time::Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The channel error of a failed callback: UNIMPLEMENTED means the app lacks the callback.
pub(crate) fn channel_error(s: &tonic::Status) -> ChannelError {
    if s.code() == Code::Unimplemented {
        ChannelError::Unimplemented
    } else {
        ChannelError::Unavailable(format!("{:?}: {}", s.code(), s.message()))
    }
}

#[async_trait]
impl AppChannel for GrpcAppChannel {
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError> {
        let resp = self
            .client
            .clone()
            .list_topic_subscriptions(())
            .await
            .map_err(|s| channel_error(&s))?;
        Ok(resp
            .into_inner()
            .subscriptions
            .into_iter()
            .map(|s| TopicSubscription {
                pubsub_name: s.pubsub_name,
                topic: s.topic,
                metadata: s.metadata,
                route: String::new(),
                bulk: false,
            })
            .collect())
    }

    async fn deliver(
        &self,
        _sub: &TopicSubscription,
        ev: &TopicEvent,
    ) -> Result<EventOutcome, ChannelError> {
        let mut req = tonic::Request::new(crate::convert::topic_event(ev));
        crate::metrics::inject_trace(&mut req);
        let resp = self
            .client
            .clone()
            .on_topic_event(req)
            .await
            .map_err(|s| channel_error(&s))?;
        Ok(outcome(resp.into_inner().status))
    }
}

/// Maps the wire status to an outcome; unknown values retry (nothing is lost).
pub(crate) fn outcome(status: i32) -> EventOutcome {
    match TopicEventResponseStatus::try_from(status) {
        Ok(TopicEventResponseStatus::Success) => EventOutcome::Success,
        Ok(TopicEventResponseStatus::Drop) => EventOutcome::Drop,
        Ok(TopicEventResponseStatus::Retry) | Err(_) => EventOutcome::Retry,
    }
}
