//! Distributed lock (`dapr/dapr:pkg/api/http/lock.go`, `pkg/api/universal/lock.go`,
//! `pkg/messages/predefined.go`; docs.dapr.io "Distributed lock API reference").
//!
//! Bodies are decoded as protojson does (`resourceId` or `resource_id`, numbers or numeric
//! strings for `expiryInSeconds`, unknown fields ignored, an empty body is an empty request).
//!
//! - `POST /v1.0-alpha1/lock/{store}` `{resourceId, lockOwner, expiryInSeconds}` -> 200
//!   `{"success": bool}`.
//! - `POST /v1.0-alpha1/unlock/{store}` `{resourceId, lockOwner}` -> 200 `{"status": n}` with
//!   0 success, 1 lock does not exist, 2 lock belongs to others, 3 internal error.
//!
//! Checks in Dapr's order: expiry not positive, no lock store, empty resource id, empty owner
//! (each 400 `ERR_MALFORMED_REQUEST` `"... in lock store <store>"`, not configured 500
//! `ERR_LOCK_STORE_NOT_CONFIGURED`), then unknown store 400 `ERR_LOCK_STORE_NOT_FOUND`.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use layotto_config::Kind;
use layotto_core::Error;
use layotto_core::lock::LockStatus;
use serde::{Deserialize, Deserializer};

use super::error::{ApiError, ERR_MALFORMED_REQUEST, Op, err, map_error};
use super::extract::{RawBody, check};
use super::{Ctx, json_ok};

/// protojson `int32`: a JSON number or a string holding one.
fn int32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    use serde::de::Error as _;
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Null => return Ok(0),
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("invalid value for int32 field: {v}")))
}

/// A lock or unlock request body (also an extractor: an empty body is an empty request).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LockIn {
    #[serde(default, alias = "resource_id", rename = "resourceId")]
    resource_id: String,
    #[serde(default, alias = "lock_owner", rename = "lockOwner")]
    lock_owner: String,
    #[serde(
        default,
        alias = "expiry_in_seconds",
        rename = "expiryInSeconds",
        deserialize_with = "int32"
    )]
    expiry_in_seconds: i32,
}

fn parse(body: &[u8]) -> Result<LockIn, ApiError> {
    if body.is_empty() {
        Ok(LockIn::default())
    } else {
        serde_json::from_slice(body).map_err(ApiError::malformed)
    }
}

impl<S: Send + Sync> FromRequest<S> for LockIn {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(body) = RawBody::from_request(req, state).await?;
        parse(&body)
    }
}

fn invalid(what: &str, store: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ERR_MALFORMED_REQUEST,
        format!("{what} in lock store {store}"),
    )
}

/// The checks both calls share: a lock store at all, resource id, owner, then the store.
fn validate(ctx: &Ctx, store: &str, req: &LockIn, op: Op<'_>) -> Result<(), ApiError> {
    let check = check(ctx, Kind::Lock, store);
    if let Err(e) = &check
        && e.kind == layotto_core::ErrorKind::NotConfigured
    {
        return Err(map_error(e, op));
    }
    if req.resource_id.is_empty() {
        return Err(invalid("ResourceId is empty", store));
    }
    if req.lock_owner.is_empty() {
        return Err(invalid("LockOwner is empty", store));
    }
    check.map_err(|e: Error| map_error(&e, op))
}

/// `POST /v1.0-alpha1/lock/{store}`.
pub(crate) async fn try_lock(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    req: LockIn,
) -> Result<Response, ApiError> {
    let op = Op::TryLock { store: &store };
    if req.expiry_in_seconds <= 0 {
        return Err(invalid("ExpiryInSeconds is not positive", &store));
    }
    validate(&ctx, &store, &req, op)?;
    let success = ctx
        .rt
        .try_lock(
            &store,
            &req.resource_id,
            &req.lock_owner,
            req.expiry_in_seconds,
        )
        .await
        .map_err(err(op))?;
    Ok(json_ok(&serde_json::json!({ "success": success })))
}

/// Dapr's `UnlockResponse.Status` number.
fn status_number(s: LockStatus) -> i32 {
    match s {
        LockStatus::Success => 0,
        LockStatus::LockUnexist => 1,
        LockStatus::LockBelongToOthers => 2,
        LockStatus::InternalError => 3,
    }
}

/// `POST /v1.0-alpha1/unlock/{store}`.
pub(crate) async fn unlock(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    req: LockIn,
) -> Result<Response, ApiError> {
    let op = Op::Unlock { store: &store };
    validate(&ctx, &store, &req, op)?;
    let status = ctx
        .rt
        .unlock(&store, &req.resource_id, &req.lock_owner)
        .await
        .map_err(err(op))?;
    Ok(json_ok(
        &serde_json::json!({ "status": status_number(status) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protojson_names_and_numbers() {
        let r: LockIn =
            serde_json::from_str(r#"{"resource_id":"r","lockOwner":"o","expiryInSeconds":"7"}"#)
                .expect("decodes");
        assert_eq!(
            (
                r.resource_id.as_str(),
                r.lock_owner.as_str(),
                r.expiry_in_seconds
            ),
            ("r", "o", 7)
        );
        assert!(serde_json::from_str::<LockIn>(r#"{"expiryInSeconds":true}"#).is_err());
        assert!(parse(b"").is_ok());
    }
}
