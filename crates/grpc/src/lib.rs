//! gRPC edge of layotto-rs.
//!
//! Serves `spec.proto.runtime.v1.Runtime` and `Lifecycle` (wire-identical to
//! `mosn/layotto:spec/proto/runtime/v1`) on top of [`layotto_runtime::Runtime`], and reaches the
//! app through its `AppCallback` server ([`GrpcAppChannel`]). Proto <-> domain conversion and the
//! single error -> status mapping ([`status::to_status`]) live here and nowhere else.

mod app_channel;
mod convert;
mod lifecycle;
mod runtime_api;
pub mod status;

use std::sync::Arc;

pub use app_channel::GrpcAppChannel;
pub use lifecycle::LifecycleService;
pub use runtime_api::RuntimeService;

use layotto_proto::runtime::lifecycle_server::LifecycleServer;
use layotto_proto::runtime::runtime_server::RuntimeServer;
use layotto_runtime::Runtime;

/// Largest gRPC message accepted or sent, in bytes (64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A tonic router with the Runtime and Lifecycle services of `rt`.
pub fn router(rt: Arc<Runtime>) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            RuntimeServer::new(RuntimeService::new(rt.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(LifecycleServer::new(LifecycleService::new(rt)))
}
