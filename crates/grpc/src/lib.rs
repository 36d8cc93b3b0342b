//! gRPC edge of layotto-rs.
//!
//! Serves `spec.proto.runtime.v1.Runtime` and `Lifecycle` (wire-identical to
//! `mosn/layotto:spec/proto/runtime/v1`) and `dapr.proto.runtime.v1.Dapr` (wire-identical to
//! `dapr/dapr:dapr/proto`) on top of [`layotto_runtime::Runtime`], and reaches the app through
//! its `AppCallback` server ([`GrpcAppChannel`] for Layotto apps,
//! [`dapr::DaprGrpcAppChannel`] for Dapr apps). Proto <-> domain conversion and the
//! error -> status mappings (Layotto's [`status::to_status`], Dapr's [`dapr::errors`]) live
//! here and nowhere else.
//!
//! The rpcs both APIs have are implemented once, in Dapr's types (`dapr::shared`); the
//! Layotto service converts its messages to Dapr's and back (`layotto_dapr`), as
//! `mosn/layotto:pkg/grpc/default_api` delegates to its Dapr API. Every rpc runs under the
//! client's deadline ([`Deadlines`]).

pub mod access;
mod app_channel;
mod convert;
pub mod dapr;
pub mod deadline;
pub mod flow_control;
pub mod internal;
mod layotto_dapr;
mod lifecycle;
pub mod metrics;
pub mod proxy;
mod runtime_api;
pub mod status;
mod stream_sub;

use std::sync::Arc;

pub use access::AccessLayer;
pub use app_channel::GrpcAppChannel;
pub use deadline::Deadlines;
pub use flow_control::FlowControlLayer;
pub use lifecycle::LifecycleService;
pub use metrics::MetricsLayer;
pub use runtime_api::RuntimeService;
pub use stream_sub::STREAM_ACK_TIMEOUT;

use layotto_proto::dapr::proto::runtime::v1::dapr_server::DaprServer;
use layotto_proto::runtime::lifecycle_server::LifecycleServer;
use layotto_proto::runtime::runtime_server::RuntimeServer;
use layotto_runtime::Runtime;
use tonic::service::interceptor::InterceptedService;

/// A server stream of an rpc.
pub(crate) type BoxStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// Largest gRPC message accepted or sent, in bytes (64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The router [`router_with`] builds: every API behind the flow-control layer.
pub type GrpcRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<
        FlowControlLayer,
        tower::layer::util::Stack<
            MetricsLayer,
            tower::layer::util::Stack<AccessLayer, tower::layer::util::Identity>,
        >,
    >,
>;

/// A tonic router with the Layotto Runtime and Lifecycle services of `rt` and the Dapr API
/// (with default options: `Shutdown` notifies nobody).
pub fn router(rt: Arc<Runtime>) -> GrpcRouter {
    router_with(
        rt,
        dapr::DaprGrpcOptions {
            shutdown: Arc::default(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            access: layotto_dapr_wire::access::ApiAccess::default(),
            proxy: None,
        },
        &dapr::ApiToken::new(None),
    )
}

/// A tonic router with every API of `rt`: Layotto's `Runtime` and `Lifecycle` and Dapr's
/// `Dapr`, each behind the `dapr-api-token` check of `token`, each rpc under the client's
/// deadline ([`Deadlines`]).
pub fn router_with(
    rt: Arc<Runtime>,
    dapr_opts: dapr::DaprGrpcOptions,
    token: &dapr::ApiToken,
) -> GrpcRouter {
    router_limited(rt, dapr_opts, token, FlowControlLayer::default())
}

/// [`router_with`] whose rpcs also pass the listener's flow-control rules (MOSN's
/// `flowControlFilter`, [`FlowControlLayer`]).
pub fn router_limited(
    rt: Arc<Runtime>,
    dapr_opts: dapr::DaprGrpcOptions,
    token: &dapr::ApiToken,
    flow: FlowControlLayer,
) -> GrpcRouter {
    let rt_metrics = rt.metrics().clone();
    let proxy = dapr_opts.proxy.clone();
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(Deadlines::new(InterceptedService::new(
            RuntimeServer::new(RuntimeService::new(rt.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            token.clone(),
        )))
        .add_service(Deadlines::new(InterceptedService::new(
            LifecycleServer::new(LifecycleService::new(rt.clone())),
            token.clone(),
        )))
        .add_service(Deadlines::new(InterceptedService::new(
            DaprServer::new(dapr::DaprService::new(rt, dapr_opts.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            token.clone(),
        )));
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .layer(AccessLayer::new(&dapr_opts.access))
        .layer(MetricsLayer::new(rt_metrics))
        .layer(flow)
        .add_routes(proxy::with_fallback(
            routes.routes(),
            proxy,
            Some(token.clone()),
        ))
}
