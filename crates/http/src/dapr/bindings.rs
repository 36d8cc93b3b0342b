//! Output bindings (`dapr/dapr:pkg/api/http/http.go` `onOutputBindingMessage`; docs.dapr.io
//! "Bindings API reference").
//!
//! `POST /v1.0/bindings/{name}` with `{"data": <any JSON>, "metadata": {..}, "operation": ".."}`.
//! As in Dapr, `data` is handed to the binding as its JSON text (`json.Marshal(req.Data)`: a
//! string arrives with its quotes, absent data as `null`). The answer is 200 with the binding's
//! data as the body (`Content-Type: application/json`) and each response metadata entry as a
//! `metadata.<key>` header; any failure is 500 `ERR_INVOKE_OUTPUT_BINDING`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use layotto_core::Metadata;
use layotto_core::binding::BindingRequest;
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, Op, map_error};
use super::{Body, Ctx, add_metadata_headers, parse_json, read_body};

/// `pkg/api/http/requests.go` `OutputBindingRequest`.
#[derive(Debug, Deserialize)]
struct BindingIn {
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
    body: Body,
) -> Response {
    let op = Op::Binding { name: &name };
    let req = match read_body(body).and_then(|b| parse_json::<BindingIn>(&b)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let data = match serde_json::to_vec(&req.data) {
        Ok(d) => d,
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_MALFORMED_REQUEST_DATA",
                format!("can't serialize request data field: {e}"),
            )
            .into_response();
        }
    };
    let req = BindingRequest {
        operation: req.operation,
        data: data.into(),
        metadata: req.metadata.unwrap_or_default(),
    };
    match ctx.rt.invoke_binding(&name, req).await {
        Ok(resp) => {
            let mut out = (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                resp.data,
            )
                .into_response();
            add_metadata_headers(&mut out, &resp.metadata);
            out
        }
        Err(e) => map_error(&e, op).into_response(),
    }
}
