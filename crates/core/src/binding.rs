//! Bindings: invoke an operation on an external system (output), and read events from one
//! (input).
//!
//! Follows Dapr's binding contracts: `OutputBinding` (`Invoke`, `Operations`) and
//! `InputBinding` (`Read` with a handler whose error tells the binding the event was not
//! handled; components-contrib `bindings/input_binding.go`). One contract serves the block:
//! [`OutputBinding`], whose [`OutputBinding::input`] exposes the input side of the bindings
//! that have one (an input-only binding such as `bindings.cron` has no operations).

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::pubsub::Subscription;

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

/// A binding component: its output operations, and its input side when it has one.
#[async_trait]
pub trait OutputBinding: Component {
    /// The supported operation names (empty for an input-only binding).
    fn operations(&self) -> Vec<String>;
    /// Invokes; an operation not in [`Self::operations`] is an invalid argument.
    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse>;
    /// The input side (Dapr's `InputBinding`); `None` (the default) for output-only bindings.
    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        None
    }
}

/// One event an input binding read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputEvent {
    /// Payload (may be empty: a `bindings.cron` tick has none).
    pub data: Bytes,
    /// Event metadata, passed to the app as HTTP headers or gRPC `metadata`.
    pub metadata: Metadata,
}

/// Handles one event: `Ok` with the app's answer body when the app took it; `Err` when it did
/// not, so a binding that can (a broker) redelivers it, and one that cannot (a timer) drops it.
pub type InputHandler = Arc<dyn Fn(InputEvent) -> BoxFuture<'static, Result<Bytes>> + Send + Sync>;

/// The input side of a binding.
#[async_trait]
pub trait InputBinding: Send + Sync {
    /// Starts reading: events go to `handler` (one at a time or concurrently, as the binding
    /// delivers them) until the returned subscription is dropped.
    ///
    /// # Errors
    /// The source cannot be read (unreachable, refused).
    async fn read(&self, handler: InputHandler) -> Result<Subscription>;
}

impl Contract for dyn OutputBinding {
    const KIND: Kind = Kind::Binding;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
