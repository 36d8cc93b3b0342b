//! The app channel to a Dapr gRPC app: the sidecar calls the app's
//! `dapr.proto.runtime.v1.AppCallback` server (`ListTopicSubscriptions`, `OnTopicEvent`,
//! `OnInvoke`).

use async_trait::async_trait;
use layotto_core::binding::InputEvent;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as pb;
use layotto_proto::dapr::proto::runtime::v1::app_callback_client::AppCallbackClient;
use layotto_proto::dapr::proto::runtime::v1::app_callback_health_check_client::AppCallbackHealthCheckClient;
use layotto_runtime::{
    AppChannel, BindingReply, Body, ChannelError, EventOutcome, GrpcStatus, InvokeRequest,
    InvokeResponse, RouteRule, SubscriptionType, TopicEvent, TopicSubscription,
};
use tonic::Code;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use crate::app_channel::{channel_error, lazy_channel, metered};

/// Calls a Dapr app's `AppCallback` at `http://host:port`; connects lazily and reconnects, so
/// an app that starts later is reached.
#[derive(Clone)]
pub struct DaprGrpcAppChannel {
    client: AppCallbackClient<Channel>,
    health: AppCallbackHealthCheckClient<Channel>,
    metrics: Option<std::sync::Arc<layotto_runtime::Metrics>>,
    /// `APP_API_TOKEN`, sent as `dapr-api-token` on every call, as daprd does.
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl DaprGrpcAppChannel {
    /// `message` as a call to the app, carrying the app token when one is set.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(t) = &self.token {
            r.metadata_mut()
                .insert(layotto_dapr_wire::headers::API_TOKEN_HEADER, t.clone());
        }
        r
    }

    /// A channel to `host:port`; no connection is attempted yet. `APP_API_TOKEN`, when set,
    /// goes to the app on every call as `dapr-api-token`.
    ///
    /// # Errors
    /// The address is not a valid URI authority.
    pub fn new(host: &str, port: u16) -> Result<Self, tonic::transport::Error> {
        let channel = lazy_channel(host, port)?;
        Ok(Self {
            client: AppCallbackClient::new(channel.clone())
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            health: AppCallbackHealthCheckClient::new(channel),
            metrics: None,
            token: crate::app_channel::app_api_token().and_then(|t| t.parse().ok()),
        })
    }

    /// Records every call in `metrics` (`dapr_grpc_io_client_*`, health checks in
    /// `dapr_grpc_io_healthprobes_*`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: std::sync::Arc<layotto_runtime::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

const APP_CALLBACK: &str = "/dapr.proto.runtime.v1.AppCallback/";

/// The routing rules of a gRPC app's subscription as daprd reads them
/// (`parseRoutingRulesGRPC`): its rules in order, then the default as a rule that always
/// matches; no routes at all (or neither rules nor default) is one rule with an empty path.
fn rules(r: Option<&layotto_proto::dapr::proto::runtime::v1::TopicRoutes>) -> Vec<RouteRule> {
    let mut out: Vec<RouteRule> = r
        .map(|r| {
            r.rules
                .iter()
                .map(|rule| RouteRule {
                    match_: rule.r#match.trim().to_owned(),
                    path: rule.path.clone(),
                })
                .chain((!r.default.is_empty()).then(|| RouteRule {
                    match_: String::new(),
                    path: r.default.clone(),
                }))
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty() {
        out.push(RouteRule::default());
    }
    out
}

/// `req` as Dapr's `InvokeRequest` (an unknown verb is sent as POST, as daprd does), with
/// `data` as its body when given.
pub(crate) fn invoke_message(req: &InvokeRequest, data: Option<&[u8]>) -> common::InvokeRequest {
    use common::http_extension::Verb;
    common::InvokeRequest {
        method: req.method.clone(),
        data: data.map(|d| prost_types::Any {
            type_url: String::new(),
            value: d.to_vec(),
        }),
        content_type: req.content_type.clone(),
        http_extension: Some(common::HttpExtension {
            verb: Verb::from_str_name(&req.http_verb.to_ascii_uppercase())
                .unwrap_or(Verb::Post)
                .into(),
            querystring: req.query.clone(),
        }),
    }
}

/// The metadata a gRPC app answered with, as headers to pass back: text values only, without
/// the transport's own (`content-type`, `grpc-*`).
fn app_headers(md: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    md.iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .filter(|(k, _)| k != "content-type" && !k.starts_with("grpc-"))
        .collect()
}

/// HTTP-style status of a gRPC code, for [`InvokeResponse::status`].
pub(crate) fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

#[async_trait]
impl AppChannel for DaprGrpcAppChannel {
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError> {
        let mut client = self.client.clone();
        let resp = metered(
            self.metrics.as_deref(),
            &format!("{APP_CALLBACK}ListTopicSubscriptions"),
            self.request(()),
            |r| client.list_topic_subscriptions(r),
        )
        .await
        .map_err(|s| channel_error(&s))?;
        Ok(resp
            .into_inner()
            .subscriptions
            .into_iter()
            .map(|s| TopicSubscription {
                route: String::new(),
                rules: rules(s.routes.as_ref()),
                dead_letter_topic: s.dead_letter_topic,
                // gRPC apps get single events through OnTopicEvent, which bulk apps serve too.
                bulk: Default::default(),
                pubsub_name: s.pubsub_name,
                topic: s.topic,
                metadata: s.metadata,
                type_: SubscriptionType::Programmatic,
            })
            .collect())
    }

    async fn deliver(
        &self,
        sub: &TopicSubscription,
        ev: &TopicEvent,
    ) -> Result<EventOutcome, ChannelError> {
        let mut req = super::api::topic_event(ev);
        req.path.clone_from(&sub.route);
        let mut req = self.request(req);
        crate::metrics::inject_trace(&mut req);
        let mut client = self.client.clone();
        let resp = metered(
            self.metrics.as_deref(),
            &format!("{APP_CALLBACK}OnTopicEvent"),
            req,
            |r| client.on_topic_event(r),
        )
        .await
        .map_err(|s| channel_error(&s))?;
        Ok(super::api::outcome(resp.into_inner().status))
    }

    async fn binding_subscribed(&self, name: &str, _route: &str) -> Result<bool, ChannelError> {
        let mut client = self.client.clone();
        let answer = metered(
            self.metrics.as_deref(),
            &format!("{APP_CALLBACK}ListInputBindings"),
            self.request(()),
            |r| client.list_input_bindings(r),
        )
        .await;
        match answer {
            Ok(r) => Ok(r.into_inner().bindings.iter().any(|b| b == name)),
            // daprd: an app without the rpc takes no binding events.
            Err(s) if s.code() == Code::Unimplemented => Ok(false),
            Err(s) => Err(channel_error(&s)),
        }
    }

    async fn deliver_binding(
        &self,
        name: &str,
        _route: &str,
        event: &InputEvent,
    ) -> Result<BindingReply, ChannelError> {
        let mut req = self.request(pb::BindingEventRequest {
            name: name.to_owned(),
            data: event.data.to_vec(),
            metadata: event.metadata.clone().into_iter().collect(),
        });
        crate::metrics::inject_trace(&mut req);
        let mut client = self.client.clone();
        let resp = metered(
            self.metrics.as_deref(),
            &format!("{APP_CALLBACK}OnBindingEvent"),
            req,
            |r| client.on_binding_event(r),
        )
        .await
        .map_err(|s| channel_error(&s))?;
        let r = resp.into_inner();
        let parallel =
            r.concurrency == pb::binding_event_response::BindingEventConcurrency::Parallel as i32;
        Ok(BindingReply {
            data: bytes::Bytes::from(r.data),
            to: r.to,
            parallel,
            store_name: r.store_name,
            states: r
                .states
                .into_iter()
                .map(crate::convert::dapr_state::set_request)
                .collect(),
        })
    }

    async fn health(&self, _path: &str) -> Result<(), ChannelError> {
        let mut health = self.health.clone();
        metered(
            self.metrics.as_deref(),
            "/dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck",
            self.request(()),
            |r| health.health_check(r),
        )
        .await
        .map(|_| ())
        .map_err(|s| channel_error(&s))
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<InvokeResponse, ChannelError> {
        // A gRPC message holds its body whole.
        let data = req.data.clone().collect().await.map_err(|e| {
            ChannelError::Failed(format!("reading the request body: {}", e.message))
        })?;
        let mut call = self.request(invoke_message(req, Some(&data)));
        for (k, v) in &req.headers {
            if let (Ok(k), Ok(v)) = (
                k.parse::<MetadataKey<tonic::metadata::Ascii>>(),
                v.parse::<MetadataValue<tonic::metadata::Ascii>>(),
            ) {
                call.metadata_mut().insert(k, v);
            }
        }
        crate::metrics::inject_trace(&mut call);
        let mut client = self.client.clone();
        let answer = metered(
            self.metrics.as_deref(),
            &format!("{APP_CALLBACK}OnInvoke"),
            call,
            |r| client.on_invoke(r),
        )
        .await;
        match answer {
            Ok(resp) => {
                let headers = app_headers(resp.metadata());
                let r = resp.into_inner();
                Ok(InvokeResponse {
                    status: 200,
                    content_type: r.content_type,
                    data: Body::full(r.data.map(|a| a.value).unwrap_or_default()),
                    headers,
                    grpc_status: Some(GrpcStatus::default()),
                })
            }
            Err(s) if s.code() == Code::Unavailable => Err(channel_error(&s)),
            // The app answered with an error: pass it back as the app's status.
            Err(s) => Ok(InvokeResponse {
                status: http_status(s.code()),
                content_type: "text/plain".to_owned(),
                data: Body::full(s.message().as_bytes().to_vec()),
                headers: app_headers(s.metadata()),
                grpc_status: Some(GrpcStatus {
                    code: s.code() as i32,
                    message: s.message().to_owned(),
                }),
            }),
        }
    }
}
