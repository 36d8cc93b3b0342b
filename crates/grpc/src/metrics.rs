//! `dapr_grpc_io_server_completed_rpcs` and `dapr_grpc_io_server_server_latency` for every rpc
//! of a gRPC listener (see `layotto_runtime::metrics`): method is the request path
//! (`/dapr.proto.runtime.v1.Dapr/GetState`), status the name of the `grpc-status` the response
//! headers carry (a trailers-only error), else `OK`; latency runs until the response headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use layotto_runtime::Metrics;
use tonic::codegen::http;

/// Records the rpcs of the services it wraps into `metrics`.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;
    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A gRPC service whose rpcs are recorded.
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        Recorded {
            inner: self.inner.call(req),
            started: Instant::now(),
            method,
            metrics: Some(self.metrics.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Metered`]: records the rpc when the response is ready.
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: String,
        metrics: Option<Arc<Metrics>>,
    }
}

impl<F, E> Future for Recorded<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(m) = this.metrics.take() {
            let status = match &out {
                Ok(resp) => status_name(
                    resp.headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0),
                ),
                Err(_) => "Unknown",
            };
            m.grpc_request(this.method, status, this.started.elapsed());
        }
        Poll::Ready(out)
    }
}

/// The name gRPC-Go gives a status code (`codes.Code.String()`), as daprd's label.
fn status_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}
