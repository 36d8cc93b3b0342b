//! Hello: Layotto's `SayHello` and the Lifecycle API's dynamic configuration.

use layotto_core::hello::Hello;
use layotto_core::{Error, Metadata, Result};

use crate::Runtime;

impl Runtime {
    /// Greets `name` with the hello component `service_name`.
    ///
    /// # Errors
    /// Not configured / unknown component.
    pub async fn say_hello(&self, service_name: &str, name: &str) -> Result<String> {
        let h = self.components.target::<dyn Hello>(service_name)?;
        h.run("say_hello", || h.component.say_hello(name)).await
    }

    /// Lifecycle API: applies `metadata` to component `name` of `kind` (`hellos`/`hello`).
    ///
    /// # Errors
    /// Invalid argument for an unknown kind or component; the component's own error for bad
    /// metadata.
    pub fn apply_configuration(&self, kind: &str, name: &str, metadata: &Metadata) -> Result<()> {
        match kind {
            "hello" | "hellos" | "helloworld" => self
                .components
                .target::<dyn Hello>(name)?
                .component
                .apply_config(metadata),
            "" => Err(Error::empty_field("component_config.kind")),
            other => Err(Error::invalid(format!(
                "component kind '{other}' does not accept dynamic configuration (supported: hellos)"
            ))),
        }
    }
}
