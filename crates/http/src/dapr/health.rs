//! Health and shutdown (`dapr/dapr:pkg/api/http/healthz.go`, `shutdown.go`; docs.dapr.io
//! "Health API reference", "Shutdown API reference").
//!
//! - `GET /v1.0/healthz`: 204 when the sidecar is ready (start-up done and every component
//!   UP), else 500 `ERR_HEALTH_NOT_READY` "dapr is not ready"; with `?appid=X` naming another
//!   app, 500 `ERR_HEALTH_APPID_NOT_MATCH` "dapr app-id does not match".
//! - `GET /v1.0/healthz/outbound`: 204 once the components are initialised (the building
//!   blocks can be called, whether or not the app is up), else 500
//!   `ERR_OUTBOUND_HEALTH_NOT_READY` "dapr outbound is not ready".
//! - `POST /v1.0/shutdown`: 204, then the shutdown notifier fires.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use layotto_core::HealthStatus;

use super::error::ApiError;
use super::extract::Params;
use super::{Ctx, no_content};

/// Readiness key the runtime uses for its start-up state.
const STARTUP_COMPONENT: &str = "runtime_startup";

pub(crate) async fn healthz(State(ctx): State<Ctx>, params: Result<Params, ApiError>) -> Response {
    let ready = ctx.rt.liveness().status == HealthStatus::Up
        && ctx.rt.readiness_with(false).await.status == HealthStatus::Up;
    if !ready {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_NOT_READY",
            "dapr is not ready",
        )
        .into_response();
    }
    // A query that does not parse names no app id.
    let params = params.unwrap_or(Params(Vec::new()));
    if let Some(app_id) = params.get("appid")
        && app_id != ctx.rt.app_id()
    {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_APPID_NOT_MATCH",
            "dapr app-id does not match",
        )
        .into_response();
    }
    no_content()
}

pub(crate) async fn outbound(State(ctx): State<Ctx>) -> Response {
    let report = ctx.rt.readiness().await;
    let started = report
        .components
        .get(STARTUP_COMPONENT)
        .is_some_and(|h| h.status == HealthStatus::Up);
    if started {
        no_content()
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_OUTBOUND_HEALTH_NOT_READY",
            "dapr outbound is not ready",
        )
        .into_response()
    }
}

pub(crate) async fn shutdown(State(ctx): State<Ctx>) -> Response {
    tracing::info!("shutdown requested through the Dapr HTTP API");
    // A stored permit: whoever awaits `notified()` (now or later) wakes once; the server's
    // graceful shutdown still finishes this response.
    ctx.shared.shutdown.notify_one();
    no_content()
}
