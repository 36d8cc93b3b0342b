//! Dapr's HTTP API (`/v1.0/...`, default port 3500) over [`layotto_runtime::Runtime`].
//!
//! The same components that serve Layotto's gRPC API answer Dapr's HTTP API with Dapr's wire
//! shapes, status codes and error bodies (`{"errorCode": "ERR_...", "message": "..."}`, see
//! [`error`]). Routes, following `dapr/dapr:pkg/api/http/*.go` and the docs.dapr.io API
//! reference pages:
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1.0/healthz`, `GET /v1.0/healthz/outbound` | 204, or 500 `ERR_HEALTH_NOT_READY` / `ERR_OUTBOUND_HEALTH_NOT_READY` |
//! | `POST\|PUT /v1.0/state/{store}` | 204 |
//! | `GET /v1.0/state/{store}/{key}` | 200 value + `ETag`, 204 when missing |
//! | `DELETE /v1.0/state/{store}/{key}` | 204 |
//! | `POST\|PUT /v1.0/state/{store}/bulk` | 200 `[{key, data, etag, metadata, error}]` |
//! | `POST\|PUT /v1.0/state/{store}/transaction` | 204 |
//! | `POST\|PUT /v1.0-alpha1/state/{store}/query` | 500 `ERR_STATE_STORE_NOT_SUPPORTED` |
//! | `POST\|PUT /v1.0/publish/{pubsub}/{topic...}` | 204 |
//! | `POST\|PUT /v1.0[-alpha1]/publish/bulk/{pubsub}/{topic...}` | 204, or `{"failedEntries", "errorCode"}` |
//! | `POST\|PUT /v1.0/bindings/{name}` | 200 binding data, metadata as `metadata.<key>` headers |
//! | `GET /v1.0/secrets/{store}/{key}`, `GET /v1.0/secrets/{store}/bulk` | 200 JSON |
//! | `GET /v1.0[-alpha1]/configuration/{store}?key=..` | 200 `{key: {value, version, metadata}}`, 204 when none |
//! | `GET /v1.0[-alpha1]/configuration/{store}/subscribe` | 200 `{"id"}`; changes are POSTed to the app |
//! | `GET /v1.0[-alpha1]/configuration/{store}/{id}/unsubscribe` | 200 `{"ok": true}` |
//! | `POST /v1.0-alpha1/lock/{store}`, `POST /v1.0-alpha1/unlock/{store}` | `{"success"}`, `{"status"}` |
//! | `* /v1.0/invoke/{app_id}/method/{method...}` | the app's answer |
//! | `GET /v1.0/metadata`, `PUT /v1.0/metadata/{key}` | 200 JSON, 204 |
//! | `POST /v1.0/shutdown` | 204, then [`DaprHttpOptions::shutdown`] is notified |
//!
//! Each route takes its parts with the extractors of `extract` (store lookup, query
//! parameters, body), whose rejections are the Dapr error answers, so a handler holds only
//! what is its own.
//!
//! With [`DaprHttpOptions::api_token`] set, every request but `GET /v1.0/healthz*` must carry
//! header `dapr-api-token` with that value (`pkg/api/http/middlewares.go`
//! `APITokenAuthMiddleware`); the header is removed before the request goes on.

mod bindings;
mod configuration;
pub mod error;
mod extract;
mod health;
mod invoke;
mod lock;
mod metadata;
mod pubsub;
mod secrets;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use layotto_core::Metadata;
use layotto_runtime::Runtime;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use error::ApiError;

/// Dapr's default `--max-body-size` (4Mi).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
/// Header carrying the API token (`pkg/security/consts` `APITokenHeader`).
pub use layotto_dapr_wire::headers::API_TOKEN_HEADER;
/// Prefix of query parameters (and response headers) that carry metadata
/// (`pkg/api/http/responses.go` `metadataPrefix`).
pub const METADATA_PREFIX: &str = "metadata.";
/// Body of the 401 answer to a missing or wrong API token: Dapr writes it with Go's
/// `http.Error(w, "invalid api token", 401)`, i.e. as `text/plain`, not as a JSON error.
pub const INVALID_TOKEN_MESSAGE: &str = "invalid api token";

pub use layotto_runtime::AppConnection;

/// Options of the Dapr HTTP API.
#[derive(Debug, Clone)]
pub struct DaprHttpOptions {
    /// `DAPR_API_TOKEN`: when set, requests must carry it in header `dapr-api-token`.
    pub api_token: Option<String>,
    /// Largest request body accepted (Dapr's `--max-body-size`, default 4 MiB); larger bodies
    /// get 413.
    pub max_body_bytes: usize,
    /// Notified by `POST /v1.0/shutdown`.
    pub shutdown: Arc<Notify>,
    /// The app connection, if the sidecar has an app (also: whether configuration
    /// subscriptions can be delivered).
    pub app: Option<AppConnection>,
    /// Runtime version reported by the metadata API.
    pub runtime_version: String,
    /// The Configuration's API allow and deny lists (HTTP rules).
    pub access: layotto_dapr_wire::access::ApiAccess,
    /// CORS origins (`--allowed-origins`, comma-separated); `*` (daprd's default) sends no
    /// CORS headers at all, as daprd.
    pub allowed_origins: String,
}

impl Default for DaprHttpOptions {
    fn default() -> Self {
        Self {
            api_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown: Arc::new(Notify::new()),
            app: None,
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            access: layotto_dapr_wire::access::ApiAccess::default(),
            allowed_origins: "*".to_owned(),
        }
    }
}

/// Shared state of the Dapr routes.
#[derive(Clone)]
pub(crate) struct Ctx {
    rt: Arc<Runtime>,
    shared: Arc<Shared>,
}

struct Shared {
    shutdown: Arc<Notify>,
    app: Option<AppConnection>,
    runtime_version: String,
    /// Whether the allow and deny lists leave service invocation open.
    invoke_open: bool,
    /// Largest request body in bytes (`--max-body-size`).
    max_body_bytes: usize,
    /// Live configuration subscriptions by id.
    config_subs: Mutex<HashMap<String, configuration::Subscription>>,
}

impl Ctx {
    fn config_subs(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, configuration::Subscription>> {
        self.shared
            .config_subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let subs = self
            .config_subs
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        for (_, s) in subs.drain() {
            s.task.abort();
        }
    }
}

/// A JSON answer with `status`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// Serialises `value` as a 200 JSON answer.
pub(crate) fn json_ok<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(b) => json_response(StatusCode::OK, b),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_INTERNAL",
            format!("failed to encode response as JSON: {e}"),
        )
        .into_response(),
    }
}

/// 204 No Content.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Adds `metadata.<key>: <value>` headers for `md`, skipping values that are not valid header
/// values (`responses.go` `setResponseMetadataHeaders`).
pub(crate) fn add_metadata_headers(resp: &mut Response, md: &Metadata) {
    for (k, v) in md {
        let name = format!("{METADATA_PREFIX}{k}");
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
}

fn context(rt: Arc<Runtime>, opts: &DaprHttpOptions) -> Ctx {
    Ctx {
        rt,
        shared: Arc::new(Shared {
            shutdown: opts.shutdown.clone(),
            app: opts.app.clone(),
            runtime_version: opts.runtime_version.clone(),
            invoke_open: opts.access.http_invoke_allowed(),
            max_body_bytes: opts.max_body_bytes,
            config_subs: Mutex::new(HashMap::new()),
        }),
    }
}

/// daprd's public server (`--dapr-public-port`): `GET /v1.0/healthz`,
/// `GET /v1.0/healthz/outbound`, `GET /v1.0/metadata` and `PUT /v1.0/metadata/{key}`, without
/// the API token, CORS or body limit (`dapr/dapr:pkg/api/http/server.go`), under the same
/// allow and deny lists.
pub fn dapr_public_router(rt: Arc<Runtime>, opts: &DaprHttpOptions) -> Router {
    let ctx = context(rt, opts);
    Router::new()
        .route("/v1.0/healthz", get(health::healthz))
        .route("/v1.0/healthz/outbound", get(health::outbound))
        .route("/v1.0/metadata", get(metadata::get))
        .route("/v1.0/metadata/{key}", put(metadata::put))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(opts.access.clone()),
            enforce_access,
        ))
        .layer(middleware::from_fn_with_state(
            ctx.rt.metrics().clone(),
            crate::metrics::record,
        ))
        .with_state(ctx)
}

/// Dapr's HTTP API over `rt` (see the module docs for the routes).
pub fn dapr_router(rt: Arc<Runtime>, opts: DaprHttpOptions) -> Router {
    let token: Arc<Option<String>> = Arc::new(opts.api_token.clone().filter(|t| !t.is_empty()));
    let ctx = context(rt, &opts);
    let cors = crate::cors::layer(&opts.allowed_origins);
    let router = Router::new()
        .route("/v1.0/healthz", get(health::healthz))
        .route("/v1.0/healthz/outbound", get(health::outbound))
        .route("/v1.0/state/{store}", post(state::save).put(state::save))
        .route(
            "/v1.0/state/{store}/{key}",
            get(state::get).delete(state::delete),
        )
        .route(
            "/v1.0/state/{store}/bulk",
            post(state::bulk_get)
                .put(state::bulk_get)
                .get(state::get_literal_key)
                .delete(state::delete_literal_key),
        )
        .route(
            "/v1.0/state/{store}/transaction",
            post(state::transaction)
                .put(state::transaction)
                .get(state::get_literal_key)
                .delete(state::delete_literal_key),
        )
        .route(
            "/v1.0-alpha1/state/{store}/query",
            post(state::query).put(state::query),
        )
        .route(
            "/v1.0/publish/{pubsub}/{*topic}",
            post(pubsub::publish).put(pubsub::publish),
        )
        .route(
            "/v1.0/publish/bulk/{pubsub}/{*topic}",
            post(pubsub::bulk_publish).put(pubsub::bulk_publish),
        )
        .route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}",
            post(pubsub::bulk_publish).put(pubsub::bulk_publish),
        )
        .route(
            "/v1.0/bindings/{name}",
            post(bindings::invoke).put(bindings::invoke),
        )
        .route("/v1.0/secrets/{store}/bulk", get(secrets::bulk_get))
        .route("/v1.0/secrets/{store}/{key}", get(secrets::get))
        .route("/v1.0/configuration/{store}", get(configuration::get))
        .route(
            "/v1.0-alpha1/configuration/{store}",
            get(configuration::get),
        )
        .route(
            "/v1.0/configuration/{store}/subscribe",
            get(configuration::subscribe),
        )
        .route(
            "/v1.0-alpha1/configuration/{store}/subscribe",
            get(configuration::subscribe),
        )
        .route(
            "/v1.0/configuration/{store}/{id}/unsubscribe",
            get(configuration::unsubscribe),
        )
        .route(
            "/v1.0-alpha1/configuration/{store}/{id}/unsubscribe",
            get(configuration::unsubscribe),
        )
        .route("/v1.0-alpha1/lock/{store}", post(lock::try_lock))
        .route("/v1.0-alpha1/unlock/{store}", post(lock::unlock))
        .route(
            "/v1.0/invoke/{app_id}/method/{*method}",
            any(invoke::invoke),
        )
        .route("/v1.0/metadata", get(metadata::get))
        .route("/v1.0/metadata/{key}", put(metadata::put))
        .route("/v1.0/shutdown", post(health::shutdown))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(opts.access),
            enforce_access,
        ))
        .fallback(invoke::by_header)
        .layer(DefaultBodyLimit::max(opts.max_body_bytes));
    // daprd's order: token check, then CORS, then the routes.
    let router = match cors {
        Some(c) => router.layer(c),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(middleware::from_fn_with_state(
            ctx.rt.metrics().clone(),
            crate::metrics::record,
        ))
        .with_state(ctx)
}

/// Answers a request for an API the allow and deny lists close as daprd does, where such a
/// route is not registered at all: its fallback, service invocation, answers 404
/// `ERR_DIRECT_INVOKE` when it is itself open, else the router's plain 404. Runs on matched
/// routes only and decides on the route's template, so no spelling of a path gets around it.
async fn enforce_access(
    State(access): State<Arc<layotto_dapr_wire::access::ApiAccess>>,
    matched: Option<axum::extract::MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    if matched.is_some_and(|m| access.http_allows(m.as_str())) {
        return next.run(req).await;
    }
    if access.http_invoke_allowed() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            layotto_dapr_wire::errors::ERR_DIRECT_INVOKE,
            "failed getting app id either from the URL path or the header dapr-app-id",
        )
        .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "404 page not found\n",
    )
        .into_response()
}

/// Rejects requests without the right `dapr-api-token` (constant-time comparison); health
/// checks are exempt. Removes the header before the request goes on.
async fn require_token(
    State(token): State<Arc<Option<String>>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token.as_deref() {
        let exempt = req.method() == Method::GET
            && matches!(
                req.uri().path().trim_matches('/'),
                "v1.0/healthz" | "v1.0/healthz/outbound"
            );
        let ok = req
            .headers()
            .get(API_TOKEN_HEADER)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())));
        if !ok && !exempt {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                format!("{INVALID_TOKEN_MESSAGE}\n"),
            )
                .into_response();
        }
    }
    req.headers_mut().remove(API_TOKEN_HEADER);
    next.run(req).await
}
