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
use axum::response::{IntoResponse, Response};

use super::error::{Op, map_error};
use super::{Ctx, Params, json_ok, query_metadata, read_params};

/// `GET /v1.0/secrets/{store}/{key}`.
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    Path((store, key)): Path<(String, String)>,
    params: Params,
) -> Response {
    let params = match read_params(params) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match ctx
        .rt
        .get_secret(&store, &key, &query_metadata(&params))
        .await
    {
        Ok(secret) => json_ok(&secret.into_iter().collect::<BTreeMap<_, _>>()),
        Err(e) => map_error(
            &e,
            Op::SecretGet {
                store: &store,
                key: &key,
            },
        )
        .into_response(),
    }
}

/// `GET /v1.0/secrets/{store}/bulk`.
pub(crate) async fn bulk_get(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    params: Params,
) -> Response {
    let params = match read_params(params) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match ctx
        .rt
        .get_bulk_secret(&store, &query_metadata(&params))
        .await
    {
        Ok(all) => {
            let sorted: BTreeMap<String, BTreeMap<String, String>> = all
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect();
            json_ok(&sorted)
        }
        Err(e) => map_error(&e, Op::SecretBulkGet { store: &store }).into_response(),
    }
}
