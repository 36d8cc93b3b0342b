//! Dapr's rich gRPC errors: the status code of the error kind (the same table as the Layotto
//! API, [`crate::status::code`]) plus a `google.rpc.ErrorInfo` detail with domain `dapr.io` and
//! Dapr's reason, as the Dapr docs page "Error codes reference guide" lists them
//! (`DAPR_STATE_NOT_FOUND`, `DAPR_PUBSUB_NOT_CONFIGURED`, ...). Where Dapr defines no gRPC
//! reason the operation's HTTP error code (`ERR_STATE_SAVE`, ...) is the reason.

use std::collections::HashMap;

use layotto_core::{Error, ErrorKind};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every Dapr error.
pub const DOMAIN: &str = "dapr.io";

/// The building block an rpc belongs to; selects the not-found / not-configured reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    State,
    PubSub,
    Lock,
    Configuration,
    Secret,
    Binding,
    Invoke,
    Metadata,
}

/// Dapr's reason for `kind` in `block`, `op` being the operation's own code.
pub(crate) fn reason(block: Block, kind: ErrorKind, op: &'static str) -> &'static str {
    use Block as B;
    use ErrorKind as K;
    match (block, kind) {
        (B::State, K::StoreNotFound) => "DAPR_STATE_NOT_FOUND",
        (B::State, K::NotConfigured) => "DAPR_STATE_NOT_CONFIGURED",
        (B::PubSub, K::StoreNotFound) => "DAPR_PUBSUB_NOT_FOUND",
        (B::PubSub, K::NotConfigured) => "DAPR_PUBSUB_NOT_CONFIGURED",
        (B::Lock, K::StoreNotFound) => "ERR_LOCK_STORE_NOT_FOUND",
        (B::Lock, K::NotConfigured) => "ERR_LOCK_STORE_NOT_CONFIGURED",
        (B::Configuration, K::StoreNotFound) => "ERR_CONFIGURATION_STORE_NOT_FOUND",
        (B::Configuration, K::NotConfigured) => "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
        (B::Secret, K::StoreNotFound) => "ERR_SECRET_STORE_NOT_FOUND",
        (B::Secret, K::NotConfigured) => "ERR_SECRET_STORES_NOT_CONFIGURED",
        (B::Secret, K::PermissionDenied) => "ERR_PERMISSION_DENIED",
        (B::Invoke | B::Binding | B::Metadata, _) | (_, _) => op,
    }
}

/// The status Dapr sends for `e` raised by operation `op` of `block`.
pub(crate) fn status(block: Block, op: &'static str, e: Error) -> Status {
    Status::with_error_details(
        crate::status::code(e.kind),
        e.message,
        ErrorDetails::with_error_info(reason(block, e.kind, op), DOMAIN, HashMap::new()),
    )
}

/// `map_err` helper: `.map_err(err(Block::State, "ERR_STATE_SAVE"))`.
pub(crate) fn err(block: Block, op: &'static str) -> impl FnOnce(Error) -> Status {
    move |e| status(block, op, e)
}
