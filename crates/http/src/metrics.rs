//! The HTTP side of the metrics: the Prometheus endpoint and the Dapr HTTP API's
//! `dapr_http_server_*` recording (see `layotto_runtime::metrics`), and, with tracing on, one
//! server span per request (`METHOD /path`), child of the request's `traceparent`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use layotto_runtime::Metrics;

/// The Prometheus text exposition of `metrics` on every path (daprd serves it on `/`; Layotto's
/// sink on `/metrics`), for the metrics port.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().fallback(serve).with_state(metrics)
}

async fn serve(State(m): State<Arc<Metrics>>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        m.encode(),
    )
        .into_response()
}

/// Middleware recording one `dapr_http_server_*` sample per request: method, path label,
/// status, latency from request to response headers, the request's `Content-Length` and the
/// response's size (its `Content-Length`, or the body's exact size hint).
pub async fn record(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let request_bytes = content_length(req.headers());
    let span = if layotto_runtime::trace::enabled() {
        let h = req.headers();
        let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
        let parent =
            layotto_runtime::trace::remote_parent(text("traceparent"), text("tracestate"), None);
        layotto_runtime::trace::start(
            format!("{method} {path}"),
            opentelemetry::trace::SpanKind::Server,
            &parent,
            vec![opentelemetry::KeyValue::new(
                "http.request.method",
                method.clone(),
            )],
        )
    } else {
        None
    };
    let resp = match &span {
        None => next.run(req).await,
        Some(cx) => {
            use opentelemetry::context::FutureExt as _;
            next.run(req).with_context(cx.clone()).await
        }
    };
    if let Some(cx) = &span {
        let status = resp.status();
        layotto_runtime::trace::finish(cx, status.is_server_error().then_some(status.as_str()));
    }
    let response_bytes = content_length(resp.headers()).or_else(|| {
        use axum::body::HttpBody as _;
        resp.body().size_hint().exact()
    });
    m.http_request(
        &method,
        &path,
        resp.status().as_u16(),
        started.elapsed(),
        request_bytes.unwrap_or(0),
        response_bytes.unwrap_or(0),
    );
    resp
}

fn content_length(h: &axum::http::HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
