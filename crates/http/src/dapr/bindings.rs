//! Output bindings (`dapr/dapr:pkg/api/http/http.go` `onOutputBindingMessage`; docs.dapr.io
//! "Bindings API reference").
//!
//! `POST /v1.0/bindings/{name}` with `{"data": <any JSON>, "metadata": {..}, "operation": ".."}`.
//! As in Dapr, `data` is handed to the binding as its JSON text (`json.Marshal(req.Data)`: a
//! string arrives with its quotes, absent data as `null`). The answer is 200 with the binding's
//! data as the body (`Content-Type: application/json`) and each response metadata entry as a
//! `metadata.<key>` header; any failure is 500 `ERR_INVOKE_OUTPUT_BINDING`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use layotto_core::Metadata;
use layotto_core::binding::BindingRequest;
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, Op, err};
use super::extract::JsonBody;
use super::{Ctx, add_metadata_headers, json_response};

/// `pkg/api/http/requests.go` `OutputBindingRequest`.
#[derive(Debug, Deserialize)]
pub(crate) struct BindingIn {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    operation: String,
}

/// `POST|PUT /v1.0/bindings/{name}`.
pub(crate) async fn invoke(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<BindingIn>,
) -> Result<Response, ApiError> {
    let data = serde_json::to_vec(&req.data).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_MALFORMED_REQUEST_DATA",
            format!("can't serialize request data field: {e}"),
        )
    })?;
    let req = BindingRequest {
        operation: req.operation,
        data: data.into(),
        metadata: req.metadata.unwrap_or_default(),
    };
    let resp = ctx
        .rt
        .invoke_binding(&name, req)
        .await
        .map_err(err(Op::Binding { name: &name }))?;
    let mut out = json_response(StatusCode::OK, resp.data);
    add_metadata_headers(&mut out, &resp.metadata);
    Ok(out)
}
