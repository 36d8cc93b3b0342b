//! The one implementation of every rpc Layotto's and Dapr's APIs share (state, publish,
//! bindings, secrets, lock, service invocation), in Dapr's message types.
//!
//! As `mosn/layotto:pkg/grpc/default_api` does, Dapr's API is the implementation: the Dapr
//! service calls these handlers directly, the Layotto service converts its request into
//! Dapr's (`crate::layotto_dapr`), calls the same handler and converts the answer back. A
//! handler fails with a [`Failure`]; each service words it its own way
//! ([`Failure::dapr`], [`Failure::layotto`]).

use std::sync::Arc;

use layotto_core::Error;
use layotto_core::binding::BindingRequest;
use layotto_core::lock::LockStatus;
use layotto_core::state::DeleteRequest;
use layotto_dapr_wire::errors::ERR_DIRECT_INVOKE;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as pb;
use layotto_runtime::{Body, InvokeRequest, Runtime};
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt as _;

use super::errors::{Block, Failure, fail};
use crate::convert::dapr_state::{delete_request, etag, options, set_request, transaction};

/// A shared handler's answer.
pub(crate) type Answer<T> = Result<T, Failure>;

/// The shared handlers over one runtime.
#[derive(Clone)]
pub(crate) struct DaprApi {
    pub(crate) rt: Arc<Runtime>,
}

fn unlock_status(s: LockStatus) -> i32 {
    use pb::unlock_response::Status as S;
    match s {
        LockStatus::Success => S::Success,
        LockStatus::LockUnexist => S::LockDoesNotExist,
        LockStatus::LockBelongToOthers => S::LockBelongsToOthers,
        LockStatus::InternalError => S::InternalError,
    }
    .into()
}

/// The HTTP verb of a Dapr `HTTPExtension` (POST when absent or NONE, as Dapr calls HTTP apps).
fn verb(ext: Option<&common::HttpExtension>) -> String {
    use common::http_extension::Verb;
    match ext.and_then(|e| Verb::try_from(e.verb).ok()) {
        None | Some(Verb::None) => "POST".to_owned(),
        Some(v) => v.as_str_name().to_owned(),
    }
}

/// The caller's metadata that goes on to the app
/// ([`layotto_dapr_wire::headers::forwarded_from_grpc`]).
fn forwarded_metadata(md: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    md.iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .filter(|(k, _)| layotto_dapr_wire::headers::forwarded_from_grpc(k))
        .collect()
}

/// The callee's headers as the gRPC metadata of the answer, as daprd's
/// `InternalMetadataToGrpcMetadata` converts them: names in lower case, IANA's permanent HTTP
/// headers prefixed `dapr-`, without the trace context (this sidecar sets its own) and binary
/// values.
fn answer_metadata(headers: &[(String, String)]) -> tonic::metadata::MetadataMap {
    let mut md = tonic::metadata::MetadataMap::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "traceparent" | "tracestate" | "grpc-trace-bin" | "destination-app-id"
        ) || k.ends_with("-bin")
        {
            continue;
        }
        let name = if layotto_dapr_wire::headers::is_permanent_http_header(&k) {
            format!("dapr-{k}")
        } else {
            k
        };
        if let (Ok(n), Ok(v)) = (
            name.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            md.append(n, v);
        }
    }
    md
}

/// The error daprd's `InvokeService` answers for HTTP status `code` with body `detail`
/// (`ErrorFromHTTPResponseCode`); `None` for a 2xx.
fn http_error(code: u16, detail: &[u8]) -> Option<Status> {
    let grpc = match code {
        200..=299 => return None,
        408 => Code::Cancelled,
        400 => Code::Internal,
        504 => Code::DeadlineExceeded,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        403 => Code::PermissionDenied,
        401 => Code::Unauthenticated,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        _ => Code::Unknown,
    };
    // Go's `http.StatusText`: the canonical reason, empty for an unknown code.
    let text = tonic::codegen::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let detail = String::from_utf8_lossy(&detail[..detail.len().min(63)]).into_owned();
    Some(Status::with_error_details(
        grpc,
        text,
        tonic_types::ErrorDetails::with_error_info(
            text,
            crate::dapr::errors::DOMAIN,
            [
                ("http.code".to_owned(), code.to_string()),
                ("http.error_message".to_owned(), detail),
            ],
        ),
    ))
}

impl DaprApi {
    /// `InvokeService`: the caller's metadata travels as headers. The answer carries the
    /// callee's headers as metadata, as daprd's (`dapr/dapr:pkg/api/grpc/grpc.go`
    /// `InvokeService`): an HTTP app's status in `dapr-http-status`, a status outside 2xx as an
    /// error of the matching code with an `ErrorInfo` (reason the status text, domain
    /// `dapr.io`, `http.code`, and `http.error_message` the body's first 63 bytes); a gRPC app's
    /// error status as it is.
    pub(crate) async fn invoke_service(
        &self,
        req: Request<pb::InvokeServiceRequest>,
    ) -> Answer<Response<common::InvokeResponse>> {
        let headers = forwarded_metadata(req.metadata());
        let r = req.into_inner();
        let m = r.message.ok_or_else(|| {
            fail(Block::Invoke, ERR_DIRECT_INVOKE)(Error::invalid(
                "message is empty: nothing to invoke",
            ))
        })?;
        let invoke = InvokeRequest {
            method: m.method,
            http_verb: verb(m.http_extension.as_ref()),
            query: m
                .http_extension
                .as_ref()
                .map(|e| e.querystring.clone())
                .unwrap_or_default(),
            content_type: m.content_type,
            data: Body::full(m.data.map(|a| a.value).unwrap_or_default()),
            headers,
        };
        let resp = self
            .rt
            .invoke_service(&r.id, &invoke)
            .await
            .map_err(fail(Block::Invoke, ERR_DIRECT_INVOKE))?;
        // A gRPC message holds the answer whole.
        let data = resp
            .data
            .collect()
            .await
            .map_err(fail(Block::Invoke, ERR_DIRECT_INVOKE))?;
        let mut md = answer_metadata(&resp.headers);
        match &resp.grpc_status {
            Some(g) if g.code != 0 => {
                let mut s = Status::new(Code::from(g.code), g.message.clone());
                *s.metadata_mut() = md;
                return Err(Failure::Status(s));
            }
            Some(_) => {}
            None => {
                if !resp.content_type.is_empty()
                    && let Ok(v) = resp.content_type.parse()
                {
                    md.insert("dapr-content-type", v);
                }
                md.insert("dapr-http-status", resp.status.into());
                if let Some(mut s) = http_error(resp.status, &data) {
                    *s.metadata_mut() = md;
                    return Err(Failure::Status(s));
                }
            }
        }
        let mut out = Response::new(common::InvokeResponse {
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: data.to_vec(),
            }),
            content_type: resp.content_type,
        });
        *out.metadata_mut() = md;
        Ok(out)
    }

    /// `GetState`: a missing key is an empty answer.
    pub(crate) async fn get_state(&self, r: pb::GetStateRequest) -> Answer<pb::GetStateResponse> {
        let item = self
            .rt
            .get_state(&r.store_name, &r.key, &r.metadata)
            .await
            .map_err(fail(Block::State, "ERR_STATE_GET"))?;
        Ok(match item {
            Some(i) => pb::GetStateResponse {
                data: i.data.to_vec(),
                etag: i.etag.unwrap_or_default(),
                metadata: i.metadata,
            },
            None => pb::GetStateResponse::default(),
        })
    }

    /// `GetBulkState`: one item per key, with its own error.
    pub(crate) async fn get_bulk_state(
        &self,
        r: pb::GetBulkStateRequest,
    ) -> Answer<pb::GetBulkStateResponse> {
        let items = self
            .rt
            .get_bulk_state(&r.store_name, &r.keys, &r.metadata)
            .await
            .map_err(fail(Block::State, "ERR_STATE_BULK_GET"))?;
        let items = items
            .into_iter()
            .map(|b| match b.item {
                Ok(Some(i)) => pb::BulkStateItem {
                    key: b.key,
                    data: i.data.to_vec(),
                    etag: i.etag.unwrap_or_default(),
                    error: String::new(),
                    metadata: i.metadata,
                },
                Ok(None) => pb::BulkStateItem {
                    key: b.key,
                    ..Default::default()
                },
                Err(error) => pb::BulkStateItem {
                    key: b.key,
                    error,
                    ..Default::default()
                },
            })
            .collect();
        Ok(pb::GetBulkStateResponse { items })
    }

    /// `SaveState`.
    pub(crate) async fn save_state(&self, r: pb::SaveStateRequest) -> Answer<()> {
        let items = r.states.into_iter().map(set_request).collect();
        self.rt
            .save_state(&r.store_name, items)
            .await
            .map_err(fail(Block::State, "ERR_STATE_SAVE"))
    }

    /// `DeleteState`.
    pub(crate) async fn delete_state(&self, r: pb::DeleteStateRequest) -> Answer<()> {
        let d = DeleteRequest {
            key: r.key,
            etag: etag(r.etag),
            metadata: r.metadata,
            options: options(r.options),
        };
        self.rt
            .delete_state(&r.store_name, vec![d])
            .await
            .map_err(fail(Block::State, "ERR_STATE_DELETE"))
    }

    /// `DeleteBulkState`.
    pub(crate) async fn delete_bulk_state(&self, r: pb::DeleteBulkStateRequest) -> Answer<()> {
        let reqs = r.states.into_iter().map(delete_request).collect();
        self.rt
            .delete_state(&r.store_name, reqs)
            .await
            .map_err(fail(Block::State, "ERR_STATE_BULK_DELETE"))
    }

    /// `ExecuteStateTransaction`.
    pub(crate) async fn execute_state_transaction(
        &self,
        r: pb::ExecuteStateTransactionRequest,
    ) -> Answer<()> {
        let e = fail(Block::State, "ERR_STATE_TRANSACTION");
        let ops = match transaction(r.operations) {
            Ok(ops) => ops,
            Err(x) => return Err(e(x)),
        };
        self.rt
            .transact_state(&r.store_name, ops, &r.metadata)
            .await
            .map_err(e)
    }

    /// `PublishEvent`.
    pub(crate) async fn publish_event(&self, r: pb::PublishEventRequest) -> Answer<()> {
        self.rt
            .publish(
                &r.pubsub_name,
                &r.topic,
                &r.data,
                &r.data_content_type,
                r.metadata,
            )
            .await
            .map_err(fail(Block::PubSub, "DAPR_PUBSUB_PUBLISH_MESSAGE"))
    }

    /// `InvokeBinding`.
    pub(crate) async fn invoke_binding(
        &self,
        r: pb::InvokeBindingRequest,
    ) -> Answer<pb::InvokeBindingResponse> {
        let resp = self
            .rt
            .invoke_binding(
                &r.name,
                BindingRequest {
                    operation: r.operation,
                    data: r.data.into(),
                    metadata: r.metadata,
                },
            )
            .await
            .map_err(fail(Block::Binding, "ERR_INVOKE_OUTPUT_BINDING"))?;
        Ok(pb::InvokeBindingResponse {
            data: resp.data.to_vec(),
            metadata: resp.metadata,
        })
    }

    /// `GetSecret`.
    pub(crate) async fn get_secret(
        &self,
        r: pb::GetSecretRequest,
    ) -> Answer<pb::GetSecretResponse> {
        let data = self
            .rt
            .get_secret(&r.store_name, &r.key, &r.metadata)
            .await
            .map_err(fail(Block::Secret, "ERR_SECRET_GET"))?;
        Ok(pb::GetSecretResponse { data })
    }

    /// `GetBulkSecret`.
    pub(crate) async fn get_bulk_secret(
        &self,
        r: pb::GetBulkSecretRequest,
    ) -> Answer<pb::GetBulkSecretResponse> {
        let all = self
            .rt
            .get_bulk_secret(&r.store_name, &r.metadata)
            .await
            .map_err(fail(Block::Secret, "ERR_SECRET_GET"))?;
        Ok(pb::GetBulkSecretResponse {
            data: all
                .into_iter()
                .map(|(k, secrets)| (k, pb::SecretResponse { secrets }))
                .collect(),
        })
    }

    /// `TryLockAlpha1` (Layotto's `TryLock`).
    pub(crate) async fn try_lock(&self, r: pb::TryLockRequest) -> Answer<pb::TryLockResponse> {
        let success = self
            .rt
            .try_lock(
                &r.store_name,
                &r.resource_id,
                &r.lock_owner,
                r.expiry_in_seconds,
            )
            .await
            .map_err(fail(Block::Lock, "ERR_TRY_LOCK"))?;
        Ok(pb::TryLockResponse { success })
    }

    /// `UnlockAlpha1` (Layotto's `Unlock`).
    pub(crate) async fn unlock(&self, r: pb::UnlockRequest) -> Answer<pb::UnlockResponse> {
        let s = self
            .rt
            .unlock(&r.store_name, &r.resource_id, &r.lock_owner)
            .await
            .map_err(fail(Block::Lock, "ERR_UNLOCK"))?;
        Ok(pb::UnlockResponse {
            status: unlock_status(s),
        })
    }
}
