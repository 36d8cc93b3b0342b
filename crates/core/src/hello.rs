//! Hello: Layotto's `SayHello` test component (`mosn/layotto:components/hello`).

use async_trait::async_trait;

use crate::component::Metadata;
use crate::error::Result;

/// A hello component.
#[async_trait]
pub trait Hello: Send + Sync {
    /// Greets `name`: the configured greeting, then `", <name>"` if `name` is not empty.
    async fn say_hello(&self, name: &str) -> Result<String>;
    /// Applies a dynamic configuration (Lifecycle API): metadata `hello` replaces the greeting.
    fn apply_config(&self, metadata: &Metadata) -> Result<()>;
}
