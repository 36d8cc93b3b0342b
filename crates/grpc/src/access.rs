//! The Configuration's gRPC API allow and deny lists
//! ([`layotto_dapr_wire::access::ApiAccess`]) as a tower layer: a denied rpc is answered
//! `UNIMPLEMENTED` (`Not Implemented`, with an `ErrorInfo` whose `http.code` is 501 and
//! `http.error_message` "requested endpoint is not available"), as daprd answers, before the
//! API token is checked and without being counted in the metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use layotto_dapr_wire::access::{ApiAccess, GRPC_DENIED_DETAIL, GRPC_DENIED_STATUS_MESSAGE};
use tonic::codegen::http;
use tonic_types::{ErrorDetails, StatusExt};

/// Applies `access` to the rpcs of the services it wraps.
#[derive(Clone, Debug, Default)]
pub struct AccessLayer {
    access: Option<Arc<ApiAccess>>,
}

impl AccessLayer {
    /// A layer enforcing `access` (no work at all when it restricts nothing).
    pub fn new(access: &ApiAccess) -> Self {
        Self {
            access: (!access.is_open()).then(|| Arc::new(access.clone())),
        }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Guarded<S>;
    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            access: self.access.clone(),
        }
    }
}

/// A gRPC service behind the allow and deny lists.
#[derive(Clone, Debug)]
pub struct Guarded<S> {
    inner: S,
    access: Option<Arc<ApiAccess>>,
}

/// The answer to a denied rpc.
fn denied() -> http::Response<tonic::body::Body> {
    let details = ErrorDetails::with_error_info(
        GRPC_DENIED_STATUS_MESSAGE,
        layotto_dapr_wire::errors::DOMAIN,
        HashMap::from([
            ("http.code".to_owned(), "501".to_owned()),
            (
                "http.error_message".to_owned(),
                GRPC_DENIED_DETAIL.to_owned(),
            ),
        ]),
    );
    tonic::Status::with_error_details(
        tonic::Code::Unimplemented,
        GRPC_DENIED_STATUS_MESSAGE,
        details,
    )
    .into_http()
}

impl<S, B> tower::Service<http::Request<B>> for Guarded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match &self.access {
            Some(a) if !a.grpc_allows(req.uri().path()) => Either::Left(ready(Ok(denied()))),
            _ => Either::Right(self.inner.call(req)),
        }
    }
}
