//! Generated protobuf messages and tonic services for the wire contracts the sidecar speaks.
//!
//! - [`runtime`]: package `spec.proto.runtime.v1` (services `Runtime`, `AppCallback`,
//!   `Lifecycle`), wire-identical to `mosn/layotto` `spec/proto/runtime/v1/*.proto`.
//! - [`dapr::proto::common::v1`] and [`dapr::proto::runtime::v1`]: packages
//!   `dapr.proto.common.v1` and `dapr.proto.runtime.v1` (services `Dapr`, `AppCallback`,
//!   `AppCallbackHealthCheck`, `AppCallbackAlpha`), wire-identical to `dapr/dapr` for the
//!   building blocks this runtime serves (invoke, state, pub/sub, bindings, secrets,
//!   configuration, lock, metadata, shutdown). Actor, workflow, crypto, job and AI rpcs are not
//!   generated; tonic answers them `UNIMPLEMENTED`.
//! - [`dapr::proto::internals::v1`]: package `dapr.proto.internals.v1` (service
//!   `ServiceInvocation`: `CallLocal`, `CallLocalStream`, `CallActor`), wire-identical to
//!   `dapr/dapr` v1.14.0, spoken between sidecars on the internal gRPC port.
//!
//! Only the edge crates depend on this one.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `spec.proto.runtime.v1`.
pub mod runtime {
    tonic::include_proto!("spec.proto.runtime.v1");
}

/// The Dapr API. The module tree mirrors the protobuf package path so that prost's `super::`
/// references between packages resolve.
pub mod dapr {
    /// `dapr.proto.*`.
    pub mod proto {
        /// `dapr.proto.common.*`.
        pub mod common {
            /// `dapr.proto.common.v1`.
            pub mod v1 {
                tonic::include_proto!("dapr.proto.common.v1");
            }
        }
        /// `dapr.proto.internals.*`: the sidecar-to-sidecar API.
        pub mod internals {
            /// `dapr.proto.internals.v1`.
            pub mod v1 {
                tonic::include_proto!("dapr.proto.internals.v1");
            }
        }
        /// `dapr.proto.runtime.*`.
        pub mod runtime {
            /// `dapr.proto.runtime.v1`.
            pub mod v1 {
                tonic::include_proto!("dapr.proto.runtime.v1");
            }
        }
    }
}

pub use prost_types;
