//! Output bindings (the input side is `input_bindings.rs`).

use layotto_core::binding::{BindingRequest, BindingResponse, OutputBinding};
use layotto_core::{Error, Result};

use crate::Runtime;

impl Runtime {
    /// Invokes output binding `name`.
    ///
    /// # Errors
    /// Unknown binding, unsupported operation, component failure.
    pub async fn invoke_binding(&self, name: &str, req: BindingRequest) -> Result<BindingResponse> {
        let b = self.components.target::<dyn OutputBinding>(name)?;
        // Its `direction`, if any, must include `output`.
        if !b.route().is_none_or(|r| r.output) {
            return Err(Error::invalid(format!(
                "binding '{name}' is an input binding only (its direction metadata leaves out \
                 output)"
            )));
        }
        if req.operation.is_empty() {
            return Err(Error::empty_field("operation"));
        }
        let ops = b.component.operations();
        if ops.is_empty() {
            return Err(Error::invalid(format!(
                "binding '{name}' is an input binding: it has no output operations"
            )));
        }
        if !ops.iter().any(|o| o == &req.operation) {
            return Err(Error::invalid(format!(
                "binding '{name}' does not support operation '{}' (supported: {})",
                req.operation,
                ops.join(", ")
            )));
        }
        let op = req.operation.clone();
        b.run(&op, || b.component.invoke(req.clone())).await
    }
}
