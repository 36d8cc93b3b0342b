//! Dapr's vocabulary, shared by both Dapr edges of layotto-rs (`layotto-grpc` serving
//! `dapr.proto.runtime.v1.Dapr`, `layotto-http` serving `/v1.0`). It names things the way
//! Dapr names them and knows no transport: no tonic, no axum, no proto types.
//!
//! - [`access`]: the Configuration's API allow and deny lists and which API each route and
//!   rpc belongs to.
//! - [`errors`]: Dapr's error codes (`ERR_*`) with the HTTP status of each failed operation
//!   ([`errors::http_error`]), and the `google.rpc.ErrorInfo` reasons (`DAPR_*`, domain
//!   [`errors::DOMAIN`]) of its gRPC API ([`errors::grpc_reason`]).
//! - [`headers`]: the API token header and the one list of headers never forwarded to the app
//!   on service invocation.
//! - [`metadata`]: names the metadata API reports (component version, the runtime-version
//!   attribute, the subscription type). Component capabilities come from the runtime
//!   (`RegisteredComponent::capabilities`: the component's own features plus what its block
//!   implies), never from a table at the edge.
//!
//! CloudEvent envelopes and their content-type rules live in the runtime
//! (`layotto_runtime::cloudevent`), where publishing uses them.

pub mod access;
pub mod errors;
pub mod headers;
pub mod metadata;
