//! Output bindings: invoke an operation on an external system.
//!
//! Follows the Dapr output binding contract (`Invoke`, `Operations`).

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use async_trait::async_trait;
use bytes::Bytes;

use crate::component::Metadata;
use crate::error::Result;

/// A binding invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindingRequest {
    /// Operation name, e.g. `"get"`, `"post"`.
    pub operation: String,
    /// Payload.
    pub data: Bytes,
    /// Request metadata (binding-specific).
    pub metadata: Metadata,
}

/// The reply of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindingResponse {
    /// Payload.
    pub data: Bytes,
    /// Response metadata (binding-specific).
    pub metadata: Metadata,
}

/// An output binding component.
#[async_trait]
pub trait OutputBinding: Component {
    /// The supported operation names.
    fn operations(&self) -> Vec<String>;
    /// Invokes; an operation not in [`Self::operations`] is an invalid argument.
    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse>;
}

impl Contract for dyn OutputBinding {
    const KIND: Kind = Kind::Binding;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
