//! `dapr_grpc_io_server_completed_rpcs` and `dapr_grpc_io_server_server_latency` for every rpc
//! of a gRPC listener (see `layotto_runtime::metrics`): method is the request path
//! (`/dapr.proto.runtime.v1.Dapr/GetState`), status the name of the rpc's `grpc-status` as
//! gRPC-Go spells it (`OK`, `NotFound`, ...). The rpc is recorded when it ends, as daprd's
//! OpenCensus handler does: at a trailers-only answer, else when the response body's trailers
//! arrive (so a stream that fails late counts with its real status), or as `Canceled` when the
//! client goes away first; latency runs until then.
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

/// What finishing an rpc needs: where to record it, and its span.
struct Finish {
    started: Instant,
    method: String,
    metrics: Arc<Metrics>,
    span: Option<OtelContext>,
}

impl Finish {
    fn record(self, status: &'static str) {
        self.metrics
            .grpc_request(&self.method, status, self.started.elapsed());
        if let Some(cx) = self.span {
            trace::finish(&cx, (status != "OK").then_some(status));
        }
    }
}

impl<F> RecordedProj<'_, F> {
    /// What recording the rpc needs, once: `None` when it was already taken.
    fn take_finish(&mut self) -> Option<Finish> {
        let metrics = self.metrics.take()?;
        Some(Finish {
            started: *self.started,
            method: std::mem::take(self.method),
            metrics,
            span: self.span.take(),
        })
    }
}

/// The `grpc-status` in `headers`, by name, if there is one.
fn grpc_status(headers: &http::HeaderMap) -> Option<&'static str> {
    headers
        .get("grpc-status")
        .map(|v| status_name(v.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(2)))
}

pin_project_lite::pin_project! {
    /// The response future of [`Metered`]: records a trailers-only answer at once, else hands
    /// the recording to the response body.
    #[project = RecordedProj]
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: String,
        metrics: Option<Arc<Metrics>>,
        span: Option<OtelContext>,
    }

    impl<F> PinnedDrop for Recorded<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before an answer: the client went away (or its deadline passed).
            if let Some(f) = this.project().take_finish() {
                f.record("Canceled");
            }
        }
    }
}

impl<F, E> Future for Recorded<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let out = std::task::ready!(this.inner.as_mut().poll(cx));
        let Some(finish) = this.take_finish() else {
            return Poll::Ready(out);
        };
        Poll::Ready(match out {
            Err(e) => {
                finish.record("Unknown");
                Err(e)
            }
            Ok(resp) => match grpc_status(resp.headers()) {
                Some(status) => {
                    finish.record(status);
                    Ok(resp)
                }
                None => Ok(resp.map(|body| {
                    tonic::body::Body::new(RecordedBody {
                        inner: body,
                        finish: Some(finish),
                    })
                })),
            },
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its rpc at its trailers, at its end, or when dropped
    /// before either (the client cancelled).
    struct RecordedBody {
        #[pin]
        inner: tonic::body::Body,
        finish: Option<Finish>,
    }

    impl PinnedDrop for RecordedBody {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().finish.take() {
                f.record("Canceled");
            }
        }
    }
}

impl http_body::Body for RecordedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        let status = match &frame {
            Some(Ok(f)) => f
                .trailers_ref()
                .map(|t| grpc_status(t).unwrap_or("Unknown")),
            Some(Err(_)) => Some("Unknown"),
            // The end without trailers: no status was sent.
            None => Some("Unknown"),
        };
        if let Some(status) = status
            && let Some(f) = this.finish.take()
        {
            f.record(status);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
pub(crate) fn status_name(code: i32) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::{Layer as _, Service as _, ServiceExt as _};

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(
            "app",
            layotto_runtime::MetricsSettings::default(),
        ))
    }

    /// A streaming answer: one message, then trailers with `status` (a code number).
    fn streamed(status: &'static str) -> http::Response<tonic::body::Body> {
        let frames = futures::stream::iter([
            Ok::<_, tonic::Status>(http_body::Frame::data(bytes::Bytes::from_static(b"m"))),
            Ok(http_body::Frame::trailers({
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", http::HeaderValue::from_static(status));
                t
            })),
        ]);
        http::Response::new(tonic::body::Body::new(http_body_util::StreamBody::new(
            frames,
        )))
    }

    fn count(m: &Metrics, method: &str, status: &str) -> bool {
        m.encode().contains(&format!(
            r#"dapr_grpc_io_server_completed_rpcs{{app_id="app",grpc_server_method="{method}",grpc_server_status="{status}"}} 1"#
        ))
    }

    #[tokio::test]
    async fn status_comes_from_trailers_and_cancel_counts() {
        let m = metrics();
        let svc = tower::service_fn(|req: http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>(match req.uri().path() {
                "/s/Fails" => streamed("5"),
                _ => streamed("0"),
            })
        });
        let mut svc = MetricsLayer::new(m.clone()).layer(svc);

        let req = |p: &str| http::Request::builder().uri(p).body(()).expect("request");
        let resp = svc
            .ready()
            .await
            .unwrap()
            .call(req("/s/Fails"))
            .await
            .unwrap();
        // Nothing is recorded before the rpc ends.
        assert!(!m.encode().contains("/s/Fails"), "{}", m.encode());
        let _ = resp.into_body().collect().await;
        assert!(count(&m, "/s/Fails", "NotFound"), "{}", m.encode());

        let resp = svc.ready().await.unwrap().call(req("/s/Ok")).await.unwrap();
        let _ = resp.into_body().collect().await;
        assert!(count(&m, "/s/Ok", "OK"), "{}", m.encode());

        // The client goes away before the end.
        let resp = svc
            .ready()
            .await
            .unwrap()
            .call(req("/s/Gone"))
            .await
            .unwrap();
        drop(resp);
        assert!(count(&m, "/s/Gone", "Canceled"), "{}", m.encode());

        // Cancelled before any answer (the handler still running).
        let pending = tower::service_fn(|_: http::Request<()>| {
            std::future::pending::<
                Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
            >()
        });
        let mut svc = MetricsLayer::new(m.clone()).layer(pending);
        let fut = svc.ready().await.unwrap().call(req("/s/Slow"));
        drop(fut);
        assert!(count(&m, "/s/Slow", "Canceled"), "{}", m.encode());
    }
}
