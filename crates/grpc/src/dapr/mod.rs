//! Dapr's gRPC contract: the `dapr.proto.runtime.v1.Dapr` API ([`DaprService`]), the app
//! channel to a Dapr gRPC app ([`DaprGrpcAppChannel`]) and the `dapr-api-token` check
//! ([`ApiToken`]).

mod api;
mod app_channel;
pub mod errors;
pub(crate) mod shared;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

pub use api::{DaprGrpcOptions, DaprService};
pub use app_channel::DaprGrpcAppChannel;
pub(crate) use app_channel::{http_status, invoke_message};

/// Header (gRPC metadata) carrying the API token, as Dapr names it.
pub use layotto_dapr_wire::headers::API_TOKEN_HEADER;

/// The `DAPR_API_TOKEN` check as a tonic interceptor: with a token set, every call must carry
/// metadata `dapr-api-token` equal to it (compared in constant time), else `UNAUTHENTICATED`.
#[derive(Clone)]
pub struct ApiToken(Option<std::sync::Arc<[u8]>>);

impl ApiToken {
    /// Checks against `token`; `None` or empty lets every call through.
    pub fn new(token: Option<&str>) -> Self {
        Self(
            token
                .filter(|t| !t.is_empty())
                .map(|t| std::sync::Arc::from(t.as_bytes())),
        )
    }

    /// Whether `presented` matches (always true without a token).
    pub fn accepts(&self, presented: Option<&[u8]>) -> bool {
        match (&self.0, presented) {
            (None, _) => true,
            (Some(want), Some(got)) => bool::from(want.as_ref().ct_eq(got)),
            (Some(_), None) => false,
        }
    }
}

impl tonic::service::Interceptor for ApiToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let presented = req.metadata().get(API_TOKEN_HEADER).map(|v| v.as_bytes());
        if self.accepts(presented) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or invalid dapr-api-token (the sidecar runs with DAPR_API_TOKEN)",
            ))
        }
    }
}
