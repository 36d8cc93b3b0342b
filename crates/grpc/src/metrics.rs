//! `dapr_grpc_io_server_completed_rpcs` and `dapr_grpc_io_server_server_latency` for every rpc
//! of a gRPC listener (see `layotto_runtime::metrics`): method is the request path
//! (`/dapr.proto.runtime.v1.Dapr/GetState`), status the name of the `grpc-status` the response
//! headers carry (a trailers-only error), else `OK`; latency runs until the response headers.
//!
//! With tracing on, each rpc is also a server span named by its method, child of the context
//! the request carries (`traceparent`/`tracestate`, else `grpc-trace-bin`), and the call runs
//! in it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use base64::Engine as _;
use futures::future::Either;
use layotto_runtime::{Metrics, trace};
use opentelemetry::Context as OtelContext;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::SpanKind;
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
    type Future = Recorded<Either<S::Future, WithContext<S::Future>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let span = if trace::enabled() {
            let h = req.headers();
            let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
            // Binary metadata is base64, padded or not.
            let bin = h.get("grpc-trace-bin").and_then(|v| {
                let engine = base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                );
                engine.decode(v.as_bytes()).ok()
            });
            let parent =
                trace::remote_parent(text("traceparent"), text("tracestate"), bin.as_deref());
            trace::start(
                method.clone(),
                SpanKind::Server,
                &parent,
                vec![opentelemetry::KeyValue::new("rpc.system", "grpc")],
            )
        } else {
            None
        };
        let inner = match &span {
            None => Either::Left(self.inner.call(req)),
            Some(cx) => Either::Right(self.inner.call(req).with_context(cx.clone())),
        };
        Recorded {
            inner,
            started: Instant::now(),
            method,
            metrics: Some(self.metrics.clone()),
            span,
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
        span: Option<OtelContext>,
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
            if let Some(cx) = this.span.take() {
                trace::finish(&cx, (status != "OK").then_some(status));
            }
        }
        Poll::Ready(out)
    }
}

/// Puts the current span's `traceparent` (and `tracestate`) on an outgoing call to the app.
pub fn inject_trace<T>(req: &mut tonic::Request<T>) {
    if let Some((parent, state)) = trace::current_traceparent() {
        if let Ok(v) = parent.parse() {
            req.metadata_mut().insert("traceparent", v);
        }
        if !state.is_empty()
            && let Ok(v) = state.parse()
        {
            req.metadata_mut().insert("tracestate", v);
        }
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
