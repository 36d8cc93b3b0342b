//! Generated protobuf messages and tonic services for the Layotto wire contract.
//!
//! Package `spec.proto.runtime.v1` (services `Runtime`, `AppCallback`, `Lifecycle`), wire-identical
//! to `mosn/layotto` `spec/proto/runtime/v1/*.proto`. Only the edge crates depend on this one.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `spec.proto.runtime.v1`.
pub mod runtime {
    tonic::include_proto!("spec.proto.runtime.v1");
}

pub use prost_types;
