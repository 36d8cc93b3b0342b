//! Secrets (`dapr/dapr:pkg/api/http/secrets.go`, `pkg/api/universal/secrets.go`; docs.dapr.io
//! "Secrets API reference").
//!
//! - `GET /v1.0/secrets/{store}/{key}` (query `metadata.*`): 200 `{"<name>": "<value>", ..}`.
//! - `GET /v1.0/secrets/{store}/bulk`: 200 `{"<secret>": {"<name>": "<value>"}, ..}`.
//!
//! Unknown store: 401 `ERR_SECRET_STORE_NOT_FOUND` (Dapr's status); failures, including a
//! missing secret: 500 `ERR_SECRET_GET`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;

use super::error::{ApiError, Op, err};
use super::extract::Params;
use super::{Ctx, json_ok};

/// `GET /v1.0/secrets/{store}/{key}`.
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    Path((store, key)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let op = Op::SecretGet {
        store: &store,
        key: &key,
    };
    let secret = ctx
        .rt
        .get_secret(&store, &key, &params.metadata())
        .await
        .map_err(err(op))?;
    Ok(json_ok(&secret.into_iter().collect::<BTreeMap<_, _>>()))
}

/// `GET /v1.0/secrets/{store}/bulk`.
pub(crate) async fn bulk_get(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let all = ctx
        .rt
        .get_bulk_secret(&store, &params.metadata())
        .await
        .map_err(err(Op::SecretBulkGet { store: &store }))?;
    let sorted: BTreeMap<String, BTreeMap<String, String>> = all
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    Ok(json_ok(&sorted))
}
