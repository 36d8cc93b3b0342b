//! The HTTP side of the metrics: the Prometheus endpoint and the Dapr HTTP API's
//! `dapr_http_server_*` recording (see `layotto_runtime::metrics`).

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
    let resp = next.run(req).await;
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
