//! Publish (`dapr/dapr:pkg/api/http/http.go` `onPublish`, `onBulkPublish`; `util.go`
//! `ConvertEventToBytes`; `pkg/api/errors/pubsub.go`; docs.dapr.io "Pub/sub API reference").
//!
//! - `POST /v1.0/publish/{pubsub}/{topic}`: the body, with its `Content-Type`, is wrapped in a
//!   CloudEvent (or sent as is with `metadata.rawPayload=true`); 204.
//! - `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}` (also `/v1.0/`): a JSON array of
//!   `{entryId, event, contentType, metadata}`; 204 when all are published, else 500 with
//!   `{"failedEntries": [{"entryId", "error"}], "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"}`
//!   (and the same JSON in header `metadata.responseData`).

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use layotto_core::Metadata;
use layotto_dapr_wire::errors::ERR_PUBSUB_PUBLISH_MESSAGE;
use layotto_runtime::RAW_PAYLOAD_KEY;
use layotto_runtime::cloudevent::{is_text_content_type, parse_go_bool};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, err, map_error};
use super::extract::{Params, RawBody, Topic};
use super::{Ctx, add_metadata_headers, json_response, no_content};

/// Checks `rawPayload` as components-contrib `metadata.IsRawPayload` does and rewrites it to
/// `true`/`false`, the spelling the runtime reads. Error: 400 `ERR_PUBSUB_REQUEST_METADATA`.
fn normalise_raw_payload(md: &mut Metadata) -> Result<(), ApiError> {
    let Some(v) = md.get(RAW_PAYLOAD_KEY).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let Some(raw) = parse_go_bool(v) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
            format!(
                "failed deserializing metadata. Error: {RAW_PAYLOAD_KEY} value must be a valid \
                 boolean: actual is '{v}'"
            ),
        ));
    };
    md.insert(RAW_PAYLOAD_KEY.to_owned(), raw.to_string());
    Ok(())
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `POST|PUT /v1.0/publish/{pubsub}/{topic...}`; 204.
pub(crate) async fn publish(
    State(ctx): State<Ctx>,
    to: Topic,
    headers: HeaderMap,
    params: Params,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let mut md = params.metadata();
    normalise_raw_payload(&mut md)?;
    ctx.rt
        .publish(&to.pubsub, &to.topic, &body, &content_type(&headers), md)
        .await
        .map_err(err(to.op()))?;
    Ok(no_content())
}

/// One entry of a bulk publish (`http.go` `bulkPublishMessageEntry`).
#[derive(Debug, Deserialize)]
struct BulkEntryIn {
    // Go's encoding/json matches names case-insensitively; the JS SDK sends `entryID`.
    #[serde(
        default,
        rename = "entryId",
        alias = "entryID",
        alias = "EntryId",
        alias = "EntryID"
    )]
    entry_id: String,
    #[serde(default)]
    event: Value,
    #[serde(default, rename = "contentType")]
    content_type: String,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Serialize)]
struct FailedEntry {
    #[serde(rename = "entryId")]
    entry_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

#[derive(Debug, Serialize)]
struct BulkPublishResponse {
    #[serde(rename = "failedEntries")]
    failed_entries: Vec<FailedEntry>,
    #[serde(rename = "errorCode", skip_serializing_if = "String::is_empty")]
    error_code: String,
}

/// The media type of `ct` in lower case, without parameters.
fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `ConvertEventToBytes`: base64 strings for `application/octet-stream`, strings for text and
/// XML, JSON text for JSON and CloudEvents; anything else is a mismatch.
fn event_bytes(event: &Value, content_type: &str) -> Result<Vec<u8>, String> {
    const MISMATCH: &str = "error: mismatch between contentType and event";
    let mt = media_type(content_type);
    if mt == "application/octet-stream" {
        let Value::String(s) = event else {
            return Err(MISMATCH.to_owned());
        };
        return base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| {
                format!("error: unable to decode base64 application/octect-stream data: {e}")
            });
    }
    if is_text_content_type(content_type) {
        return match event {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(MISMATCH.to_owned()),
        };
    }
    if mt == "application/json" || mt == "application/cloudevents+json" {
        return serde_json::to_vec(event).map_err(|e| format!("{MISMATCH}: {e}"));
    }
    Err(MISMATCH.to_owned())
}

/// `POST|PUT /v1.0-alpha1/publish/bulk/{pubsub}/{topic...}` (and `/v1.0/`).
pub(crate) async fn bulk_publish(
    State(ctx): State<Ctx>,
    to: Topic,
    params: Params,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (op, pubsub, topic) = (to.op(), &to.pubsub, &to.topic);
    let entries = {
        let mut md = params.metadata();
        normalise_raw_payload(&mut md)?;
        let entries: Vec<BulkEntryIn> = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_EVENTS_SER",
                format!(
                    "error when unmarshaling the request for topic {topic} pubsub {pubsub}: {e}"
                ),
            )
        })?;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let data = event_bytes(&entry.event, &entry.content_type).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ERR_PUBSUB_CLOUD_EVENTS_SER",
                    format!(
                        "error when marshalling cloud event envelope for topic {topic} pubsub \
                         {pubsub}: {e}"
                    ),
                )
            })?;
            if entry.entry_id.is_empty() || !seen.insert(entry.entry_id.clone()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ERR_PUBSUB_EVENTS_SER",
                    format!(
                        "error marshaling events to bytes for topic {topic} pubsub {pubsub}. \
                         error: entryId is duplicated or not present for entry"
                    ),
                ));
            }
            // Entry metadata overrides request metadata
            // (`utils.PopulateMetadataForBulkPublishEntry`).
            let mut entry_md = md.clone();
            entry_md.extend(entry.metadata.unwrap_or_default());
            normalise_raw_payload(&mut entry_md)?;
            out.push((entry.entry_id, data, entry.content_type, entry_md));
        }
        out
    };
    // Concurrently, as Dapr's default bulk publisher; a broker client batches what is in
    // flight together (Kafka's producer sends them in one request per partition).
    let outcomes = futures::future::join_all(entries.iter().map(|(_, data, content_type, md)| {
        ctx.rt
            .publish(pubsub, topic, data, content_type, md.clone())
    }))
    .await;
    let mut failed = Vec::new();
    let mut first_error = None;
    for ((entry_id, ..), outcome) in entries.into_iter().zip(outcomes) {
        if let Err(e) = outcome {
            let api = map_error(&e, op);
            failed.push(FailedEntry {
                entry_id,
                error: e.message.clone(),
            });
            first_error.get_or_insert(api);
        }
    }
    let Some(first) = first_error else {
        return Ok(no_content());
    };
    let body = BulkPublishResponse {
        failed_entries: failed,
        error_code: ERR_PUBSUB_PUBLISH_MESSAGE.to_owned(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = json_response(first.status, json.clone());
    let mut md = Metadata::new();
    md.insert(
        "responseData".to_owned(),
        String::from_utf8_lossy(&json).into_owned(),
    );
    md.insert("error".to_owned(), first.message);
    add_metadata_headers(&mut resp, &md);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_convert_by_content_type() {
        let v = serde_json::json!({"a": 1});
        assert_eq!(
            event_bytes(&v, "application/json").expect("json"),
            br#"{"a":1}"#
        );
        assert_eq!(
            event_bytes(&Value::String("hi".into()), "text/plain").expect("text"),
            b"hi"
        );
        assert_eq!(
            event_bytes(&Value::String("aGk=".into()), "application/octet-stream").expect("base64"),
            b"hi"
        );
        assert!(event_bytes(&v, "text/plain").is_err());
        assert!(event_bytes(&v, "").is_err());
    }

    #[test]
    fn raw_payload_is_a_go_bool() {
        let mut md = Metadata::new();
        md.insert(RAW_PAYLOAD_KEY.into(), "T".into());
        normalise_raw_payload(&mut md).expect("valid");
        assert_eq!(md[RAW_PAYLOAD_KEY], "true");
        md.insert(RAW_PAYLOAD_KEY.into(), "yes".into());
        let e = normalise_raw_payload(&mut md).expect_err("invalid");
        assert_eq!(e.code, "ERR_PUBSUB_REQUEST_METADATA");
    }
}
