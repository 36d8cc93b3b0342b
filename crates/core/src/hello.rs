//! Hello: Layotto's `SayHello` test component (`mosn/layotto:components/hello`).

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use async_trait::async_trait;

use crate::component::Metadata;
use crate::error::Result;

/// A hello component.
#[async_trait]
pub trait Hello: Component {
    /// Greets `name`: the configured greeting, then `", <name>"` if `name` is not empty.
    async fn say_hello(&self, name: &str) -> Result<String>;
    /// Applies a dynamic configuration (Lifecycle API): metadata `hello` replaces the greeting.
    fn apply_config(&self, metadata: &Metadata) -> Result<()>;
}

impl Contract for dyn Hello {
    const KIND: Kind = Kind::Hello;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
