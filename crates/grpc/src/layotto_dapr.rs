//! Layotto's messages to Dapr's and back, for the rpcs the Layotto service answers with the
//! shared handlers ([`crate::dapr::shared`]), as `mosn/layotto:pkg/grpc/default_api` converts
//! them before calling its Dapr API. The two protos agree field by field (enum values
//! included), so nothing is lost either way.

use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as dapr;
use layotto_proto::runtime as pb;

fn state_item(i: pb::StateItem) -> common::StateItem {
    common::StateItem {
        key: i.key,
        value: i.value,
        etag: i.etag.map(etag),
        metadata: i.metadata,
        options: i.options.map(state_options),
    }
}

fn etag(e: pb::Etag) -> common::Etag {
    common::Etag { value: e.value }
}

fn state_options(o: pb::StateOptions) -> common::StateOptions {
    common::StateOptions {
        concurrency: o.concurrency,
        consistency: o.consistency,
    }
}

pub(crate) fn get_state(r: pb::GetStateRequest) -> dapr::GetStateRequest {
    dapr::GetStateRequest {
        store_name: r.store_name,
        key: r.key,
        consistency: r.consistency,
        metadata: r.metadata,
    }
}

pub(crate) fn get_state_response(r: dapr::GetStateResponse) -> pb::GetStateResponse {
    pb::GetStateResponse {
        data: r.data,
        etag: r.etag,
        metadata: r.metadata,
    }
}

pub(crate) fn get_bulk_state(r: pb::GetBulkStateRequest) -> dapr::GetBulkStateRequest {
    dapr::GetBulkStateRequest {
        store_name: r.store_name,
        keys: r.keys,
        parallelism: r.parallelism,
        metadata: r.metadata,
    }
}

pub(crate) fn get_bulk_state_response(r: dapr::GetBulkStateResponse) -> pb::GetBulkStateResponse {
    pb::GetBulkStateResponse {
        items: r
            .items
            .into_iter()
            .map(|i| pb::BulkStateItem {
                key: i.key,
                data: i.data,
                etag: i.etag,
                error: i.error,
                metadata: i.metadata,
            })
            .collect(),
    }
}

pub(crate) fn save_state(r: pb::SaveStateRequest) -> dapr::SaveStateRequest {
    dapr::SaveStateRequest {
        store_name: r.store_name,
        states: r.states.into_iter().map(state_item).collect(),
    }
}

pub(crate) fn delete_state(r: pb::DeleteStateRequest) -> dapr::DeleteStateRequest {
    dapr::DeleteStateRequest {
        store_name: r.store_name,
        key: r.key,
        etag: r.etag.map(etag),
        options: r.options.map(state_options),
        metadata: r.metadata,
    }
}

pub(crate) fn delete_bulk_state(r: pb::DeleteBulkStateRequest) -> dapr::DeleteBulkStateRequest {
    dapr::DeleteBulkStateRequest {
        store_name: r.store_name,
        states: r.states.into_iter().map(state_item).collect(),
    }
}

pub(crate) fn transaction(
    r: pb::ExecuteStateTransactionRequest,
) -> dapr::ExecuteStateTransactionRequest {
    dapr::ExecuteStateTransactionRequest {
        store_name: r.store_name,
        operations: r
            .operations
            .into_iter()
            .map(|o| dapr::TransactionalStateOperation {
                operation_type: o.operation_type,
                request: o.request.map(state_item),
            })
            .collect(),
        metadata: r.metadata,
    }
}

pub(crate) fn publish_event(r: pb::PublishEventRequest) -> dapr::PublishEventRequest {
    dapr::PublishEventRequest {
        pubsub_name: r.pubsub_name,
        topic: r.topic,
        data: r.data,
        data_content_type: r.data_content_type,
        metadata: r.metadata,
    }
}

pub(crate) fn invoke_binding(r: pb::InvokeBindingRequest) -> dapr::InvokeBindingRequest {
    dapr::InvokeBindingRequest {
        name: r.name,
        data: r.data,
        metadata: r.metadata,
        operation: r.operation,
    }
}

pub(crate) fn invoke_binding_response(r: dapr::InvokeBindingResponse) -> pb::InvokeBindingResponse {
    pb::InvokeBindingResponse {
        data: r.data,
        metadata: r.metadata,
    }
}

pub(crate) fn get_secret(r: pb::GetSecretRequest) -> dapr::GetSecretRequest {
    dapr::GetSecretRequest {
        store_name: r.store_name,
        key: r.key,
        metadata: r.metadata,
    }
}

pub(crate) fn get_secret_response(r: dapr::GetSecretResponse) -> pb::GetSecretResponse {
    pb::GetSecretResponse { data: r.data }
}

pub(crate) fn get_bulk_secret(r: pb::GetBulkSecretRequest) -> dapr::GetBulkSecretRequest {
    dapr::GetBulkSecretRequest {
        store_name: r.store_name,
        metadata: r.metadata,
    }
}

pub(crate) fn get_bulk_secret_response(
    r: dapr::GetBulkSecretResponse,
) -> pb::GetBulkSecretResponse {
    pb::GetBulkSecretResponse {
        data: r
            .data
            .into_iter()
            .map(|(k, s)| (k, pb::SecretResponse { secrets: s.secrets }))
            .collect(),
    }
}

pub(crate) fn try_lock(r: pb::TryLockRequest) -> dapr::TryLockRequest {
    dapr::TryLockRequest {
        store_name: r.store_name,
        resource_id: r.resource_id,
        lock_owner: r.lock_owner,
        expiry_in_seconds: r.expire,
    }
}

pub(crate) fn try_lock_response(r: dapr::TryLockResponse) -> pb::TryLockResponse {
    pb::TryLockResponse { success: r.success }
}

pub(crate) fn unlock(r: pb::UnlockRequest) -> dapr::UnlockRequest {
    dapr::UnlockRequest {
        store_name: r.store_name,
        resource_id: r.resource_id,
        lock_owner: r.lock_owner,
    }
}

/// Both protos number the unlock statuses alike (success, no such lock, held by another,
/// internal error).
pub(crate) fn unlock_response(r: dapr::UnlockResponse) -> pb::UnlockResponse {
    pb::UnlockResponse { status: r.status }
}

pub(crate) fn invoke_service(r: pb::InvokeServiceRequest) -> dapr::InvokeServiceRequest {
    dapr::InvokeServiceRequest {
        id: r.id,
        message: r.message.map(|m| common::InvokeRequest {
            method: m.method,
            data: m.data,
            content_type: m.content_type,
            http_extension: m.http_extension.map(|e| common::HttpExtension {
                verb: e.verb,
                querystring: e.querystring,
            }),
        }),
    }
}

pub(crate) fn invoke_response(r: common::InvokeResponse) -> pb::InvokeResponse {
    pb::InvokeResponse {
        data: r.data,
        content_type: r.content_type,
    }
}
