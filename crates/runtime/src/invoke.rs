//! Service invocation through the app channel.

use std::sync::Arc;

use layotto_core::{Error, ErrorKind, Result};

use crate::{AppChannel, ChannelError, InvokeRequest, InvokeResponse, Runtime, lock};

impl Runtime {
    /// Makes `channel` the way to reach the app for service invocation (also done by
    /// [`Runtime::start_app_subscriptions`]).
    pub fn set_app_channel(&self, channel: Arc<dyn AppChannel>) {
        *lock(&self.app_channel) = Some(channel);
    }

    /// Invokes `req.method` on app `app_id` through the app channel.
    ///
    /// Only this sidecar's own app is reachable (there is no name resolution across sidecars
    /// yet).
    ///
    /// # Errors
    /// Empty app id or method (`InvalidArgument`); another app id (`NotFound`); no app channel
    /// configured or the app unreachable (`Unavailable`); the app cannot take invocations
    /// (`Unsupported`).
    pub async fn invoke_service(
        &self,
        app_id: &str,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse> {
        if app_id.is_empty() {
            return Err(Error::empty_field("app id"));
        }
        if req.method.is_empty() {
            return Err(Error::empty_field("method"));
        }
        if app_id != self.app_id {
            return Err(Error::not_found(format!(
                "app id '{app_id}' is not known: this sidecar reaches only its own app '{}'",
                self.app_id
            )));
        }
        let channel = lock(&self.app_channel).clone().ok_or_else(|| {
            Error::unavailable(format!(
                "app '{app_id}' has no app channel (start the sidecar with an app port)"
            ))
        })?;
        channel.invoke(req).await.map_err(|e| match e {
            ChannelError::Unimplemented => Error::new(
                ErrorKind::Unsupported,
                format!("app '{app_id}' does not accept service invocation"),
            ),
            ChannelError::Unavailable(m) => {
                Error::unavailable(format!("invoking '{}' on app '{app_id}': {m}", req.method))
            }
        })
    }
}
