//! HTTP edge of layotto-rs: the actuator, as Layotto serves it on port 34999
//! (`mosn/layotto:pkg/actuator`).
//!
//! - `GET /actuator/health/liveness`, `GET /actuator/health/readiness`:
//!   `{"status": "UP"|"DOWN"|"INIT", "components": {name: {"status", "details"}}}`, HTTP 200 when
//!   UP and 503 otherwise.
//! - `GET /actuator/info`: `{"app": {"name", "version"}}`.

pub mod app_channel;
mod bulk;

pub use app_channel::{HttpAppChannel, HttpAppChannelOptions};
pub use endpoints::HttpEndpointChannels;

mod cors;
pub mod dapr;
pub mod endpoints;
pub mod metrics;

pub use metrics::metrics_router;

pub use dapr::{AppConnection, DaprHttpOptions, dapr_public_router, dapr_router};

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use layotto_core::HealthStatus;
use layotto_runtime::{HealthReport, Runtime};

/// Product name reported by `/actuator/info`.
pub const NAME: &str = "layotto-rs";

fn health_response(report: HealthReport) -> Response {
    let code = if report.status == HealthStatus::Up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

async fn liveness(State(rt): State<Arc<Runtime>>) -> Response {
    health_response(rt.liveness())
}

async fn readiness(State(rt): State<Arc<Runtime>>) -> Response {
    health_response(rt.readiness().await)
}

async fn info() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "app": { "name": NAME, "version": env!("CARGO_PKG_VERSION") }
    }))
}

/// The actuator routes over `rt`.
pub fn actuator(rt: Arc<Runtime>) -> Router {
    Router::new()
        .route("/actuator/health/liveness", get(liveness))
        .route("/actuator/health/readiness", get(readiness))
        .route("/actuator/info", get(info))
        .with_state(rt)
}
