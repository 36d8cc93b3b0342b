//! The app channel: how the runtime reaches the application (subscriptions, event delivery).
//!
//! The runtime defines the contract; the edge implements it over the wire (Layotto's and Dapr's
//! gRPC `AppCallback`, Dapr's HTTP app contract), so nothing here knows a transport.

use async_trait::async_trait;
use layotto_core::Metadata;
use layotto_core::binding::InputEvent;

use crate::Body;
use crate::cloudevent::TopicEvent;
pub use layotto_config::{BulkSubscribe, RouteRule};

/// A topic the app subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicSubscription {
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Topic.
    pub topic: String,
    /// Subscription metadata.
    pub metadata: Metadata,
    /// Where this event goes (Dapr: the HTTP path to POST to, or the gRPC `path` field): set
    /// by the runtime for each delivery from [`TopicSubscription::rules`]; empty for Layotto
    /// apps, meaning "the topic's default".
    pub route: String,
    /// Dapr's routing rules in order, the default route last as a rule without `match`
    /// (daprd's `Rules`); empty for Layotto apps. An event goes to the path of the first rule
    /// whose CEL `match` holds for it; an event no rule takes is not delivered.
    pub rules: Vec<RouteRule>,
    /// Dapr's `deadLetterTopic` (empty: none): events the app failed (after the inbound
    /// resiliency policy), dropped, or that no rule takes are published there, on the same
    /// pub/sub, as the broker delivered them.
    pub dead_letter_topic: String,
    /// Dapr's `bulkSubscribe`: with `enabled`, the app takes events in bulk envelopes (Dapr's
    /// `BulkSubscribeMessage`) at its route, up to `maxMessagesCount` (default 100) each,
    /// sent once full or `maxAwaitDurationMs` (default 1000) after the first event.
    pub bulk: BulkSubscribe,
    /// How the subscription was made.
    pub type_: SubscriptionType,
}

/// How a subscription was made: daprd's `PubsubSubscriptionType`, as the metadata API names
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionType {
    /// A `Subscription` resource from the resources path.
    Declarative,
    /// Listed by the app (`/dapr/subscribe`, `ListTopicSubscriptions`).
    #[default]
    Programmatic,
    /// Opened by a client over a streaming rpc (`SubscribeTopicEventsAlpha1`).
    Streaming,
}

impl SubscriptionType {
    /// The metadata API's name: `DECLARATIVE`, `PROGRAMMATIC` or `STREAMING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declarative => "DECLARATIVE",
            Self::Programmatic => "PROGRAMMATIC",
            Self::Streaming => "STREAMING",
        }
    }
}

/// The app's answer to one event (Layotto's `TopicEventResponseStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Processed: acknowledge.
    Success,
    /// Redeliver later.
    Retry,
    /// Do not redeliver (acknowledged with a warning).
    Drop,
}

/// Why the app could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The app does not implement the callback.
    Unimplemented,
    /// The app is not reachable or failed; try again later.
    Unavailable(String),
    /// The other side was reached and answered with an error (a callee sidecar that could not
    /// invoke its app): not worth resending the same request.
    Failed(String),
}

impl std::error::Error for ChannelError {}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unimplemented => f.write_str("app does not implement this callback"),
            Self::Unavailable(m) => write!(f, "app unavailable: {m}"),
            Self::Failed(m) => write!(f, "{m}"),
        }
    }
}

/// A service invocation addressed to the app: Dapr's `InvokeRequest` with its `HTTPExtension`
/// (see the Dapr docs page "Service invocation API reference").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeRequest {
    /// The method: the path after `/method/`, without a leading `/` (e.g. `orders/1`).
    pub method: String,
    /// The HTTP verb in upper case (`GET`, `POST`, ...); apps reached over gRPC get it in
    /// `http_extension`.
    pub http_verb: String,
    /// The raw query string without the leading `?` (may be empty).
    pub query: String,
    /// Media type of `data` (empty when unknown).
    pub content_type: String,
    /// The request body (whole, or streamed: see [`Body`]).
    pub data: Body,
    /// Headers (HTTP) or metadata (gRPC) to pass on, names in lower case. The sidecar's own
    /// API token is never among them.
    pub headers: Vec<(String, String)>,
}

/// The app's answer to an [`InvokeRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeResponse {
    /// HTTP status as the app returned it (200 for a successful gRPC call).
    pub status: u16,
    /// Media type of `data` (empty when unknown).
    pub content_type: String,
    /// The response body (whole, or streamed: see [`Body`]).
    pub data: Body,
    /// Response headers (HTTP) or header metadata (gRPC) worth passing back, names in lower
    /// case.
    pub headers: Vec<(String, String)>,
    /// Set when a gRPC app answered: its status, which daprd passes on as it is (an HTTP
    /// app's answer has only [`InvokeResponse::status`]).
    pub grpc_status: Option<GrpcStatus>,
}

/// The status a gRPC app answered an invocation with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcStatus {
    /// The gRPC code (0 = OK).
    pub code: i32,
    /// Its message (empty for OK).
    pub message: String,
}

/// A connection to the application.
#[async_trait]
pub trait AppChannel: Send + Sync {
    /// The app's topic subscriptions.
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError>;
    /// Delivers one event of subscription `sub` and returns the app's answer.
    async fn deliver(
        &self,
        sub: &TopicSubscription,
        event: &TopicEvent,
    ) -> Result<EventOutcome, ChannelError>;
    /// Invokes a method of the app. Channels that cannot (Layotto's AppCallback has no
    /// `OnInvoke`) answer [`ChannelError::Unimplemented`].
    async fn invoke(&self, _req: &InvokeRequest) -> Result<InvokeResponse, ChannelError> {
        Err(ChannelError::Unimplemented)
    }
    /// One app health probe (daprd's `--enable-app-health-check`): HTTP apps answer `GET
    /// <path>` with a 2xx, gRPC apps `AppCallbackHealthCheck/HealthCheck`. Channels without a
    /// probe answer [`ChannelError::Unimplemented`].
    async fn health(&self, _path: &str) -> Result<(), ChannelError> {
        Err(ChannelError::Unimplemented)
    }
    /// Whether the app takes the events of input binding `name` at `route` (daprd: an HTTP app
    /// answers `OPTIONS /<route>` with a 2xx or 405; a gRPC app lists the name in
    /// `ListInputBindings`). Channels without input bindings (Layotto's AppCallback) answer
    /// `false`.
    async fn binding_subscribed(&self, _name: &str, _route: &str) -> Result<bool, ChannelError> {
        Ok(false)
    }
    /// Delivers one event of input binding `name` (HTTP: `POST /<route>` with the data as body
    /// and the metadata as headers; gRPC: `OnBindingEvent`); the app's answer on a 2xx or an
    /// OK, [`ChannelError::Failed`] for any other answer.
    async fn deliver_binding(
        &self,
        _name: &str,
        _route: &str,
        _event: &InputEvent,
    ) -> Result<BindingReply, ChannelError> {
        Err(ChannelError::Unimplemented)
    }
}

/// The app's answer to an input binding event: its body, and what a gRPC app asks the sidecar
/// to do next (Dapr's `BindingEventResponse`): output bindings to send the answer's data to,
/// and state items to save.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingReply {
    /// The answer's body (HTTP) or `data` (gRPC).
    pub data: bytes::Bytes,
    /// `to`: output bindings invoked with operation `create` and the answer's data.
    pub to: Vec<String>,
    /// `concurrency: PARALLEL`: the `to` bindings are invoked at once, not one after the other.
    pub parallel: bool,
    /// `store_name`: the state store `states` go to.
    pub store_name: String,
    /// `states`: items saved in `store_name` (keys as the app names them).
    pub states: Vec<layotto_core::state::SetRequest>,
}

/// An app channel that lets at most `limit` calls reach the app at once (daprd's
/// `--app-max-concurrency`): further calls wait for a slot, in order; a caller that gives up
/// while waiting leaves the queue. Health probes are not limited, as in daprd.
///
/// daprd limits every call to an HTTP app but only `OnInvoke` to a gRPC app (its
/// `pkg/channel/grpc` leaves deliveries unlimited); here the limit covers every call to the app
/// whatever its protocol: subscriptions listing, deliveries and invocations.
pub struct LimitedAppChannel {
    inner: std::sync::Arc<dyn AppChannel>,
    slots: tokio::sync::Semaphore,
}

impl LimitedAppChannel {
    /// `inner` with at most `limit` (at least 1) calls at once.
    pub fn new(inner: std::sync::Arc<dyn AppChannel>, limit: usize) -> Self {
        Self {
            inner,
            slots: tokio::sync::Semaphore::new(limit.max(1)),
        }
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ChannelError> {
        self.slots
            .acquire()
            .await
            .map_err(|_| ChannelError::Unavailable("the app channel is closed".to_owned()))
    }
}

#[async_trait]
impl AppChannel for LimitedAppChannel {
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError> {
        let _slot = self.slot().await?;
        self.inner.list_subscriptions().await
    }

    async fn deliver(
        &self,
        sub: &TopicSubscription,
        event: &TopicEvent,
    ) -> Result<EventOutcome, ChannelError> {
        let _slot = self.slot().await?;
        self.inner.deliver(sub, event).await
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<InvokeResponse, ChannelError> {
        let _slot = self.slot().await?;
        self.inner.invoke(req).await
    }

    async fn health(&self, path: &str) -> Result<(), ChannelError> {
        self.inner.health(path).await
    }

    async fn binding_subscribed(&self, name: &str, route: &str) -> Result<bool, ChannelError> {
        let _slot = self.slot().await?;
        self.inner.binding_subscribed(name, route).await
    }

    async fn deliver_binding(
        &self,
        name: &str,
        route: &str,
        event: &InputEvent,
    ) -> Result<BindingReply, ChannelError> {
        let _slot = self.slot().await?;
        self.inner.deliver_binding(name, route, event).await
    }
}
