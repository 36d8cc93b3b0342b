//! State management (`dapr/dapr:pkg/api/http/http.go` `onPostState`, `onGetState`,
//! `onBulkGetState`, `onDeleteState`, `onPostStateTransaction`, `onQueryStateHandler`;
//! docs.dapr.io "State management API reference").
//!
//! Value encoding, as Dapr's HTTP API does it:
//! - saving: the JSON `value` of each item is serialised back to JSON text and stored as those
//!   bytes (components-contrib `utils.Marshal` with `json.Marshal`), so `"value": "hi"` stores
//!   the four bytes `"hi"` and `"value": {"a":1}` stores `{"a":1}`; an absent value stores
//!   `null`;
//! - reading one key: the stored bytes are the body (`Content-Type: application/json`), with
//!   the `ETag` header and `metadata.<key>` headers; a missing key is 204;
//! - bulk reads: `data` embeds the stored bytes as raw JSON (`json.RawMessage`). Bytes that are
//!   not JSON (written through gRPC) would make Dapr's encoder fail; here they become a JSON
//!   string of the text when it is UTF-8, else of its standard base64.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use layotto_core::state::{
    Concurrency, Consistency, DeleteRequest, SetRequest, StateOptions, TransactionOp,
};
use layotto_core::{Error, Metadata};
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, ERR_MALFORMED_REQUEST, Op, err, map_error};
use super::extract::{JsonBody, Named, Params, RawBody, StateStore};
use super::{Ctx, add_metadata_headers, json_response, no_content};

/// Concurrency and consistency as JSON strings (`first-write`/`last-write`,
/// `eventual`/`strong`).
#[derive(Debug, Default, Deserialize)]
struct OptionsIn {
    #[serde(default)]
    concurrency: Option<String>,
    #[serde(default)]
    consistency: Option<String>,
}

/// One item of a save (components-contrib `state.SetRequest`).
#[derive(Debug, Deserialize)]
pub(crate) struct SaveItem {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    options: Option<OptionsIn>,
}

/// One delete of a transaction (components-contrib `state.DeleteRequest`).
#[derive(Debug, Deserialize)]
struct DeleteItem {
    #[serde(default)]
    key: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    options: Option<OptionsIn>,
}

fn options(concurrency: Option<&str>, consistency: Option<&str>) -> Result<StateOptions, Error> {
    let concurrency = match concurrency.unwrap_or("") {
        "" => Concurrency::Unspecified,
        "first-write" => Concurrency::FirstWrite,
        "last-write" => Concurrency::LastWrite,
        other => {
            return Err(Error::invalid(format!(
                "unrecognized concurrency model '{other}'"
            )));
        }
    };
    let consistency = match consistency.unwrap_or("") {
        "" => Consistency::Unspecified,
        "eventual" => Consistency::Eventual,
        "strong" => Consistency::Strong,
        other => {
            return Err(Error::invalid(format!(
                "unrecognized consistency model '{other}'"
            )));
        }
    };
    Ok(StateOptions {
        concurrency,
        consistency,
    })
}

fn options_in(o: Option<&OptionsIn>) -> Result<StateOptions, Error> {
    options(
        o.and_then(|o| o.concurrency.as_deref()),
        o.and_then(|o| o.consistency.as_deref()),
    )
}

/// Request metadata `md` with `extra` copied over it (Go's `maps.Copy`).
fn merged(md: Option<Metadata>, extra: &Metadata) -> Metadata {
    let mut md = md.unwrap_or_default();
    md.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    md
}

fn set_request(item: SaveItem, extra: &Metadata) -> Result<SetRequest, Error> {
    let options = options_in(item.options.as_ref())?;
    let value = serde_json::to_vec(&item.value)
        .map_err(|e| Error::invalid(format!("can't serialize value: {e}")))?;
    let mut metadata = merged(item.metadata, extra);
    // The value is JSON: stores that keep JSON apart from bytes (Dapr's `state.mysql`) read
    // `contentType`, as from a gRPC client that says so.
    if !metadata
        .keys()
        .any(|k| k.eq_ignore_ascii_case("contentType"))
    {
        metadata.insert("contentType".to_owned(), "application/json".to_owned());
    }
    Ok(SetRequest {
        key: item.key,
        value: value.into(),
        etag: item.etag,
        metadata,
        options,
    })
}

/// `POST|PUT /v1.0/state/{store}`: a JSON array of items; 204.
pub(crate) async fn save(
    State(ctx): State<Ctx>,
    Named(store, _): StateStore,
    params: Params,
    JsonBody(items): JsonBody<Vec<SaveItem>>,
) -> Result<Response, ApiError> {
    let op = Op::StateSave { store: &store };
    let md = params.metadata();
    let mut reqs = Vec::with_capacity(items.len());
    for item in items {
        if item.key.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ERR_MALFORMED_REQUEST,
                "\"key\" is a required field",
            ));
        }
        reqs.push(set_request(item, &md).map_err(err(op))?);
    }
    ctx.rt.save_state(&store, reqs).await.map_err(err(op))?;
    Ok(no_content())
}

async fn get_key(ctx: &Ctx, store: &str, key: &str, params: &Params) -> Response {
    match ctx.rt.get_state(store, key, &params.metadata()).await {
        Ok(Some(item)) => {
            let mut resp = json_response(StatusCode::OK, item.data);
            if let Some(etag) = item.etag.as_deref()
                && let Ok(v) = HeaderValue::from_str(etag)
            {
                resp.headers_mut().insert(header::ETAG, v);
            }
            add_metadata_headers(&mut resp, &item.metadata);
            resp
        }
        Ok(None) => no_content(),
        Err(e) => map_error(&e, Op::StateGet { store, key }).into_response(),
    }
}

/// `GET /v1.0/state/{store}/{key}` (query `consistency` is accepted; stores here have one
/// consistency level).
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    Path((store, key)): Path<(String, String)>,
    params: Params,
) -> Response {
    get_key(&ctx, &store, &key, &params).await
}

/// The last path segment of `/v1.0/state/{store}/bulk` or `/transaction`.
fn literal_key(headers_path: &str) -> String {
    headers_path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `GET /v1.0/state/{store}/bulk|transaction`: reads the key literally named so.
pub(crate) async fn get_literal_key(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    uri: axum::http::Uri,
    params: Params,
) -> Response {
    let key = literal_key(uri.path());
    get_key(&ctx, &store, &key, &params).await
}

async fn delete_key(
    ctx: &Ctx,
    store: &str,
    key: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, ApiError> {
    let op = Op::StateDelete { store, key };
    let options = options(params.get("concurrency"), params.get("consistency")).map_err(err(op))?;
    let etag = headers
        .get(header::IF_MATCH)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let req = DeleteRequest {
        key: key.to_owned(),
        etag,
        metadata: params.metadata(),
        options,
    };
    ctx.rt
        .delete_state(store, vec![req])
        .await
        .map_err(err(op))?;
    Ok(no_content())
}

/// `DELETE /v1.0/state/{store}/{key}`: `If-Match` is the ETag; query `concurrency`,
/// `consistency` and `metadata.*`; 204.
pub(crate) async fn delete(
    State(ctx): State<Ctx>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    delete_key(&ctx, &store, &key, &headers, &params).await
}

/// `DELETE /v1.0/state/{store}/bulk|transaction`: deletes the key literally named so.
pub(crate) async fn delete_literal_key(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let key = literal_key(uri.path());
    delete_key(&ctx, &store, &key, &headers, &params).await
}

/// Body of a bulk get (`pkg/api/http/requests.go` `BulkGetRequest`).
#[derive(Debug, Deserialize)]
pub(crate) struct BulkGetIn {
    #[serde(default)]
    keys: Vec<String>,
    /// Accepted; reads run in order here.
    #[serde(default)]
    #[allow(dead_code)]
    parallelism: Option<i64>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// `data` of a bulk item: raw JSON when the bytes are JSON, else a JSON string (text, or
/// base64 of binary data).
fn bulk_data(data: &[u8]) -> String {
    if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() {
        return String::from_utf8_lossy(data).into_owned();
    }
    let text = match std::str::from_utf8(data) {
        Ok(t) => t.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(data),
    };
    Value::String(text).to_string()
}

fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// `POST|PUT /v1.0/state/{store}/bulk`: `{keys, parallelism, metadata}` ->
/// `[{key, data, etag, metadata, error}]` (empty fields left out, `responses.go`
/// `BulkGetResponse`).
pub(crate) async fn bulk_get(
    State(ctx): State<Ctx>,
    Named(store, _): StateStore,
    params: Params,
    JsonBody(req): JsonBody<BulkGetIn>,
) -> Result<Response, ApiError> {
    let md = merged(req.metadata, &params.metadata());
    let items = if req.keys.is_empty() {
        Vec::new()
    } else {
        ctx.rt
            .get_bulk_state(&store, &req.keys, &md)
            .await
            .map_err(err(Op::StateBulkGet { store: &store }))?
    };
    let mut out = String::from("[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        out.push_str(&json_str(&it.key));
        match &it.item {
            Ok(Some(item)) => {
                out.push_str(",\"data\":");
                out.push_str(&bulk_data(&item.data));
                if let Some(etag) = &item.etag {
                    out.push_str(",\"etag\":");
                    out.push_str(&json_str(etag));
                }
                if !item.metadata.is_empty() {
                    let md: std::collections::BTreeMap<_, _> = item.metadata.iter().collect();
                    out.push_str(",\"metadata\":");
                    out.push_str(&serde_json::to_string(&md).unwrap_or_else(|_| "{}".into()));
                }
            }
            Ok(None) => {}
            Err(error) => {
                out.push_str(",\"error\":");
                out.push_str(&json_str(error));
            }
        }
        out.push('}');
    }
    out.push(']');
    Ok(json_response(StatusCode::OK, out.into_bytes()))
}

/// Body of a transaction (`http.go` `stateTransactionRequestBody`).
#[derive(Debug, Deserialize)]
pub(crate) struct TransactionIn {
    #[serde(default)]
    operations: Vec<TransactionOpIn>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
struct TransactionOpIn {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    request: Value,
}

/// `POST|PUT /v1.0/state/{store}/transaction`: `{operations: [{operation: "upsert"|"delete",
/// request: {key, value, etag, metadata, options}}], metadata}`; 204. Query `metadata.*`
/// is added to the transaction's and every operation's metadata.
pub(crate) async fn transaction(
    State(ctx): State<Ctx>,
    Named(store, _): StateStore,
    params: Params,
    JsonBody(req): JsonBody<TransactionIn>,
) -> Result<Response, ApiError> {
    let op = Op::StateTransaction { store: &store };
    if req.operations.is_empty() {
        return Ok(no_content());
    }
    let query_md = params.metadata();
    let tx_md = merged(req.metadata, &query_md);
    let mut ops = Vec::with_capacity(req.operations.len());
    for o in req.operations {
        match o.operation.as_str() {
            "upsert" => {
                let item: SaveItem =
                    serde_json::from_value(o.request).map_err(ApiError::malformed)?;
                ops.push(TransactionOp::Upsert(
                    set_request(item, &query_md).map_err(err(op))?,
                ));
            }
            "delete" => {
                let item: DeleteItem =
                    serde_json::from_value(o.request).map_err(ApiError::malformed)?;
                let options = options_in(item.options.as_ref()).map_err(err(op))?;
                ops.push(TransactionOp::Delete(DeleteRequest {
                    key: item.key,
                    etag: item.etag,
                    metadata: merged(item.metadata, &query_md),
                    options,
                }));
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    format!("operation type {other} not supported"),
                ));
            }
        }
    }
    ctx.rt
        .transact_state(&store, ops, &tx_md)
        .await
        .map_err(err(op))?;
    Ok(no_content())
}

/// `POST|PUT /v1.0-alpha1/state/{store}/query`: the body is Dapr's query
/// (`layotto_core::query`); 200 with `{"results": [{"key", "data", "etag"}], "token"}`, `data`
/// the stored JSON value as it is, `token` left out when empty (and with no results, as
/// daprd). A store without the query API answers 500 `ERR_STATE_STORE_NOT_SUPPORTED`; a
/// malformed query or a failure 500 `ERR_STATE_QUERY`.
pub(crate) async fn query(
    State(ctx): State<Ctx>,
    Named(store, _): StateStore,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let r = ctx
        .rt
        .query_state(&store, &body)
        .await
        .map_err(err(Op::StateQuery { store: &store }))?;
    // The stored JSON goes out as it is (not re-encoded).
    let mut out = String::from("{\"results\":[");
    for (i, item) in r.results.iter().enumerate() {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&item.data).is_err() {
            return Err(map_error(
                &Error::internal(format!("value of key '{}' is not JSON", item.key)),
                Op::StateQuery { store: &store },
            ));
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        out.push_str(&Value::String(item.key.clone()).to_string());
        out.push_str(",\"data\":");
        out.push_str(&String::from_utf8_lossy(&item.data));
        if let Some(etag) = &item.etag {
            out.push_str(",\"etag\":");
            out.push_str(&Value::String(etag.clone()).to_string());
        }
        out.push('}');
    }
    out.push(']');
    if !r.token.is_empty() && !r.results.is_empty() {
        out.push_str(",\"token\":");
        out.push_str(&Value::String(r.token).to_string());
    }
    out.push('}');
    Ok(json_response(StatusCode::OK, out.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_data_encoding() {
        assert_eq!(bulk_data(br#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(bulk_data(b"\"hi\""), "\"hi\"");
        assert_eq!(bulk_data(b"plain text"), "\"plain text\"");
        assert_eq!(bulk_data(&[0xff, 0x00]), "\"/wA=\"");
    }

    #[test]
    fn option_parsing() {
        let o = options(Some("first-write"), Some("strong")).expect("valid");
        assert_eq!(o.concurrency, Concurrency::FirstWrite);
        assert_eq!(o.consistency, Consistency::Strong);
        assert!(options(Some("sometimes"), None).is_err());
    }
}
