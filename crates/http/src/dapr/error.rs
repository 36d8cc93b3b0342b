//! Dapr HTTP error answers: status, and the JSON body `{"errorCode": "ERR_...", "message":
//! "..."}` (docs.dapr.io "Handling HTTP error codes"; `dapr/dapr:pkg/api/http/responses.go`
//! `respondWithError`). Which code and status an operation's failure gets is Dapr's
//! vocabulary, in [`layotto_dapr_wire::errors`]; this module only makes answers of it.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use layotto_core::Error;
pub use layotto_dapr_wire::errors::{ERR_BODY_READ, ERR_MALFORMED_REQUEST, Op};
use layotto_dapr_wire::errors::{HttpError, http_error};

/// A Dapr HTTP error: status, `errorCode` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Dapr's `errorCode`, e.g. `ERR_STATE_STORE_NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `ERR_MALFORMED_REQUEST` for a body that did not decode.
    pub fn malformed(err: impl std::fmt::Display) -> Self {
        HttpError::malformed(err).into()
    }

    /// The body could not be read: 413 when it is over the limit, else 400; `ERR_BODY_READ`.
    pub fn body(rejection: &BytesRejection) -> Self {
        let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::new(
            status,
            ERR_BODY_READ,
            format!("failed to read request body: {}", rejection.body_text()),
        )
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        Self {
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code,
            message: e.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "errorCode": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// The Dapr error answer for `e` raised by `op` ([`layotto_dapr_wire::errors::http_error`]).
pub fn map_error(e: &Error, op: Op<'_>) -> ApiError {
    http_error(e, op).into()
}

/// `map_err` helper: `.map_err(err(op))` answers a domain error of `op` as Dapr does.
pub fn err(op: Op<'_>) -> impl Fn(Error) -> ApiError + Copy {
    move |e| map_error(&e, op)
}
