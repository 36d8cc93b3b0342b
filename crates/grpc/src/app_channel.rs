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
    metrics: Option<std::sync::Arc<layotto_runtime::Metrics>>,
}

impl GrpcAppChannel {
    /// A channel to `host:port`; no connection is attempted yet.
    ///
    /// # Errors
    /// The address is not a valid URI authority.
    pub fn new(host: &str, port: u16) -> Result<Self, tonic::transport::Error> {
        Ok(Self {
            client: AppCallbackClient::new(lazy_channel(host, port)?),
            metrics: None,
        })
    }

    /// Records every call in `metrics` (`dapr_grpc_io_client_*`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: std::sync::Arc<layotto_runtime::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// Runs `call` with `req`, recording it in `metrics` as a call to the app of the full method
/// `method` (sizes are the messages' encoded lengths, as daprd's `proto.Size`); the app
/// health check counts as a health probe.
pub(crate) async fn metered<Req, Resp, F, Fut>(
    metrics: Option<&layotto_runtime::Metrics>,
    method: &str,
    req: tonic::Request<Req>,
    call: F,
) -> Result<tonic::Response<Resp>, tonic::Status>
where
    Req: prost::Message,
    Resp: prost::Message,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let Some(m) = metrics else {
        return call(req).await;
    };
    let sent = req.get_ref().encoded_len();
    let started = std::time::Instant::now();
    let out = call(req).await;
    let status = match &out {
        Ok(_) => "OK",
        Err(s) => crate::metrics::status_name(s.code() as i32),
    };
    if method.ends_with("AppCallbackHealthCheck/HealthCheck") {
        m.health_probe(true, status, started.elapsed());
    } else {
        let received = out.as_ref().map_or(0, |r| r.get_ref().encoded_len());
        m.grpc_client(method, status, sent, received, started.elapsed());
    }
    out
}

/// A channel to the app at `http://host:port`, connected at first use and re-connected after
/// failures (3 s connect timeout, `TCP_NODELAY`).
pub(crate) fn lazy_channel(host: &str, port: u16) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{host}:{port}"))?
        .connect_timeout(std::time::Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// `APP_API_TOKEN`, which every call to the app carries as `dapr-api-token`, when set.
pub(crate) fn app_api_token() -> Option<String> {
    std::env::var("APP_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
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
        let mut client = self.client.clone();
        let resp = metered(
            self.metrics.as_deref(),
            "/spec.proto.runtime.v1.AppCallback/ListTopicSubscriptions",
            tonic::Request::new(()),
            |r| client.list_topic_subscriptions(r),
        )
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
                ..TopicSubscription::default()
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
        let mut client = self.client.clone();
        let resp = metered(
            self.metrics.as_deref(),
            "/spec.proto.runtime.v1.AppCallback/OnTopicEvent",
            req,
            |r| client.on_topic_event(r),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_to_the_app_are_recorded() {
        let m = layotto_runtime::Metrics::new("a", layotto_runtime::MetricsSettings::default());
        let ok = metered(
            Some(&m),
            "/x.AppCallback/OnInvoke",
            tonic::Request::new(7u32),
            |_| async { Ok(tonic::Response::new(9u64)) },
        )
        .await;
        assert!(ok.is_ok());
        let failed: Result<tonic::Response<u64>, _> = metered(
            Some(&m),
            "/x.AppCallback/OnInvoke",
            tonic::Request::new(7u32),
            |_| async { Err(tonic::Status::not_found("no")) },
        )
        .await;
        assert!(failed.is_err());
        let probe: Result<tonic::Response<()>, _> = metered(
            Some(&m),
            "/dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck",
            tonic::Request::new(()),
            |_| async { Err(tonic::Status::unavailable("down")) },
        )
        .await;
        assert!(probe.is_err());
        // Each message is 2 bytes encoded (field 1, one varint byte).
        let text = m.encode();
        for want in [
            r#"dapr_grpc_io_client_completed_rpcs{app_id="a",grpc_client_method="/x.AppCallback/OnInvoke",grpc_client_status="OK"} 1"#,
            r#"dapr_grpc_io_client_completed_rpcs{app_id="a",grpc_client_method="/x.AppCallback/OnInvoke",grpc_client_status="NotFound"} 1"#,
            r#"dapr_grpc_io_client_sent_bytes_per_rpc_sum{app_id="a",grpc_client_method="/x.AppCallback/OnInvoke"} 4"#,
            // The failed call received nothing.
            r#"dapr_grpc_io_client_received_bytes_per_rpc_sum{app_id="a",grpc_client_method="/x.AppCallback/OnInvoke"} 2"#,
            r#"dapr_grpc_io_healthprobes_completed_count{app_id="a",grpc_client_status="Unavailable"} 1"#,
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }
}
