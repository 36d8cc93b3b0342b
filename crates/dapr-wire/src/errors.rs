//! Dapr's errors: the one place where domain errors get Dapr's codes, HTTP statuses and
//! gRPC reasons.
//!
//! # HTTP
//!
//! Dapr answers a failed call with a status code and the JSON body
//! `{"errorCode": "ERR_...", "message": "..."}` (docs.dapr.io "Handling HTTP error codes";
//! `dapr/dapr:pkg/api/http/responses.go` `respondWithError`, `dapr/kit:errors/errors.go`
//! `JSONErrorValue`). [`http_error`] turns an [`ErrorKind`] plus the operation that failed into
//! the status, code and message Dapr uses for that operation:
//!
//! | operation | not configured | unknown store | other kinds |
//! |---|---|---|---|
//! | state get | 500 `ERR_STATE_STORE_NOT_CONFIGURED` | 400 `ERR_STATE_STORE_NOT_FOUND` | bad key 400 `ERR_MALFORMED_REQUEST`; 500 `ERR_STATE_GET` |
//! | state bulk get | same | same | bad key 400 `ERR_MALFORMED_REQUEST`; 500 `ERR_STATE_BULK_GET` |
//! | state save | same | same | ETag mismatch 409, invalid ETag / argument 400, else 500: `ERR_STATE_SAVE` |
//! | state delete | same | same | ETag mismatch 409, invalid 400, else 500: `ERR_STATE_DELETE` |
//! | state transaction | same | same | bad key 400 `ERR_MALFORMED_REQUEST`; unsupported 500 `ERR_STATE_STORE_NOT_SUPPORTED`; else (ETag mismatch too) 500 `ERR_STATE_TRANSACTION` |
//! | state query | same | same | unsupported 500 `ERR_STATE_STORE_NOT_SUPPORTED`; else (a malformed query too) 500 `ERR_STATE_QUERY` |
//! | publish | 400 `ERR_PUBSUB_NOT_CONFIGURED` | 404 `ERR_PUBSUB_NOT_FOUND` | forbidden 403 `ERR_PUBSUB_FORBIDDEN`; bad CloudEvent 500 `ERR_PUBSUB_CLOUD_EVENTS_SER`; else 500 `ERR_PUBSUB_PUBLISH_MESSAGE` |
//! | output binding | 500 `ERR_INVOKE_OUTPUT_BINDING` for every failure | | |
//! | secrets | 500 `ERR_SECRET_STORES_NOT_CONFIGURED` | 401 `ERR_SECRET_STORE_NOT_FOUND` | denied 403 `ERR_PERMISSION_DENIED`; else 500 `ERR_SECRET_GET` |
//! | configuration | 500 `ERR_CONFIGURATION_STORE_NOT_CONFIGURED` | 400 `ERR_CONFIGURATION_STORE_NOT_FOUND` | 500 `ERR_CONFIGURATION_GET` / `_SUBSCRIBE` / `_UNSUBSCRIBE` |
//! | lock | 500 `ERR_LOCK_STORE_NOT_CONFIGURED` | 400 `ERR_LOCK_STORE_NOT_FOUND` | invalid 400 `ERR_MALFORMED_REQUEST`; else 500 `ERR_TRY_LOCK` / `ERR_UNLOCK` |
//! | service invocation | | | denied 403, invalid 400, else 500: `ERR_DIRECT_INVOKE` |
//!
//! Sources: `dapr/dapr:pkg/messages/predefined.go` (state, secrets, lock, health, direct
//! messaging, `ERR_MALFORMED_REQUEST`, `ERR_BODY_READ`), `pkg/messages/errorcodes/errorcodes.go`
//! (the code strings), `pkg/api/errors/state.go`, `pubsub.go`, `secrets.go`, `configuration.go`
//! (standardised errors), `pkg/api/http/http.go` (`stateErrorResponse`/`etagError`: ETag
//! mismatch 409, invalid ETag 400; transactions always 500; bindings always 500). Where Dapr
//! versions disagree the docs.dapr.io API reference pages decided: configuration store not
//! found is 400 (the docs; Dapr's newest code says 500), lock store not found is 400
//! `ERR_LOCK_STORE_NOT_FOUND` (predefined.go and the docs' "400 malformed request"; a newer
//! builder uses 404 `ERR_LOCK_NOT_FOUND`).

//!
//! # gRPC
//!
//! Dapr's rich gRPC errors carry the status code of the error kind (the same table as the
//! Layotto API) plus a `google.rpc.ErrorInfo` detail with domain [`DOMAIN`] and the reason
//! [`grpc_reason`] gives.

use layotto_core::{Error, ErrorKind};

/// HTTP statuses used by Dapr's errors.
pub mod status {
    /// 400.
    pub const BAD_REQUEST: u16 = 400;
    /// 401.
    pub const UNAUTHORIZED: u16 = 401;
    /// 403.
    pub const FORBIDDEN: u16 = 403;
    /// 404.
    pub const NOT_FOUND: u16 = 404;
    /// 409.
    pub const CONFLICT: u16 = 409;
    /// 413.
    pub const PAYLOAD_TOO_LARGE: u16 = 413;
    /// 500.
    pub const INTERNAL_SERVER_ERROR: u16 = 500;
}

/// `ERR_MALFORMED_REQUEST`: a body that is not the JSON expected (400;
/// `pkg/messages/predefined.go` `ErrMalformedRequest`, message
/// `failed deserializing HTTP body: %v`).
pub const ERR_MALFORMED_REQUEST: &str = "ERR_MALFORMED_REQUEST";
/// `ERR_BODY_READ`: the request body could not be read (`predefined.go` `ErrBodyRead`,
/// `failed to read request body: %v`). A body over the size limit is answered 413 (what Dapr's
/// fasthttp server did; Dapr's net/http server since 1.12 fails the read and answers 400).
pub const ERR_BODY_READ: &str = "ERR_BODY_READ";
/// `ERR_PUBSUB_PUBLISH_MESSAGE`: publishing failed (also the `errorCode` of a partly failed
/// bulk publish).
pub const ERR_PUBSUB_PUBLISH_MESSAGE: &str = "ERR_PUBSUB_PUBLISH_MESSAGE";
/// `ERR_DIRECT_INVOKE`: service invocation failed.
pub const ERR_DIRECT_INVOKE: &str = "ERR_DIRECT_INVOKE";

/// A Dapr HTTP error: status, `errorCode` and `message` (the body is
/// `{"errorCode": code, "message": message}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status.
    pub status: u16,
    /// Dapr's `errorCode`, e.g. `ERR_STATE_STORE_NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl HttpError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `ERR_MALFORMED_REQUEST` for a body that did not decode.
    pub fn malformed(err: impl std::fmt::Display) -> Self {
        Self::new(
            status::BAD_REQUEST,
            ERR_MALFORMED_REQUEST,
            format!("failed deserializing HTTP body: {err}"),
        )
    }
}

/// The operation that failed, with what Dapr's messages name.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// `GET /v1.0/state/{store}/{key}`.
    StateGet {
        /// Store.
        store: &'a str,
        /// Key.
        key: &'a str,
    },
    /// `POST /v1.0/state/{store}/bulk`.
    StateBulkGet {
        /// Store.
        store: &'a str,
    },
    /// `POST /v1.0/state/{store}`.
    StateSave {
        /// Store.
        store: &'a str,
    },
    /// `DELETE /v1.0/state/{store}/{key}`.
    StateDelete {
        /// Store.
        store: &'a str,
        /// Key.
        key: &'a str,
    },
    /// `POST /v1.0/state/{store}/transaction`.
    StateTransaction {
        /// Store.
        store: &'a str,
    },
    /// `POST /v1.0-alpha1/state/{store}/query`.
    StateQuery {
        /// Store.
        store: &'a str,
    },
    /// `POST /v1.0/publish/{pubsub}/{topic}` and the bulk variant.
    Publish {
        /// Pub/sub.
        pubsub: &'a str,
        /// Topic.
        topic: &'a str,
    },
    /// `POST /v1.0/bindings/{name}`.
    Binding {
        /// Binding.
        name: &'a str,
    },
    /// `GET /v1.0/secrets/{store}/{key}`.
    SecretGet {
        /// Store.
        store: &'a str,
        /// Secret name.
        key: &'a str,
    },
    /// `GET /v1.0/secrets/{store}/bulk`.
    SecretBulkGet {
        /// Store.
        store: &'a str,
    },
    /// `GET /v1.0/configuration/{store}`.
    ConfigGet {
        /// Store.
        store: &'a str,
        /// Keys asked for.
        keys: &'a [String],
    },
    /// `GET /v1.0/configuration/{store}/subscribe`.
    ConfigSubscribe {
        /// Store.
        store: &'a str,
        /// Keys asked for.
        keys: &'a [String],
    },
    /// `GET /v1.0/configuration/{store}/{id}/unsubscribe`.
    ConfigUnsubscribe {
        /// Store.
        store: &'a str,
        /// Subscription id.
        id: &'a str,
    },
    /// `POST /v1.0-alpha1/lock/{store}`.
    TryLock {
        /// Store.
        store: &'a str,
    },
    /// `POST /v1.0-alpha1/unlock/{store}`.
    Unlock {
        /// Store.
        store: &'a str,
    },
    /// `/v1.0/invoke/{app_id}/method/...`.
    Invoke {
        /// Target app.
        app_id: &'a str,
    },
    /// `PUT /v1.0/metadata/{key}`.
    Metadata,
}

/// Go's `%s` of a `[]string`: `[a b]`.
fn go_list(keys: &[String]) -> String {
    format!("[{}]", keys.join(" "))
}

/// The Dapr HTTP error for `e` raised by `op` (see the module docs for the table).
pub fn http_error(e: &Error, op: Op<'_>) -> HttpError {
    use ErrorKind as K;
    use status as S;
    let msg = &e.message;
    let kind = e.kind;
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError::new(status, code, message)
    }
    match op {
        Op::StateGet { store, .. }
        | Op::StateBulkGet { store }
        | Op::StateSave { store }
        | Op::StateDelete { store, .. }
        | Op::StateTransaction { store }
        | Op::StateQuery { store }
            if matches!(kind, K::NotConfigured | K::StoreNotFound) =>
        {
            if kind == K::NotConfigured {
                new(
                    S::INTERNAL_SERVER_ERROR,
                    "ERR_STATE_STORE_NOT_CONFIGURED",
                    format!("state store {store} is not configured"),
                )
            } else {
                new(
                    S::BAD_REQUEST,
                    "ERR_STATE_STORE_NOT_FOUND",
                    format!("state store {store} is not found"),
                )
            }
        }
        Op::StateGet { store, key } => match kind {
            K::InvalidArgument => new(S::BAD_REQUEST, ERR_MALFORMED_REQUEST, msg.as_str()),
            _ => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_STATE_GET",
                format!("fail to get {key} from state store {store}: {msg}"),
            ),
        },
        Op::StateBulkGet { .. } => match kind {
            K::InvalidArgument => new(S::BAD_REQUEST, ERR_MALFORMED_REQUEST, msg.as_str()),
            _ => new(S::INTERNAL_SERVER_ERROR, "ERR_STATE_BULK_GET", msg.as_str()),
        },
        Op::StateSave { store } => new(
            state_write_status(kind),
            "ERR_STATE_SAVE",
            format!("failed saving state in state store {store}: {msg}"),
        ),
        Op::StateDelete { key, .. } => new(
            state_write_status(kind),
            "ERR_STATE_DELETE",
            format!("failed deleting state with key {key}: {msg}"),
        ),
        Op::StateTransaction { store } => match kind {
            K::InvalidArgument => new(S::BAD_REQUEST, ERR_MALFORMED_REQUEST, msg.as_str()),
            K::Unsupported => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_STATE_STORE_NOT_SUPPORTED",
                format!("state store {store} doesn't support transactions: {msg}"),
            ),
            _ => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_STATE_TRANSACTION",
                format!("error while executing state transaction: {msg}"),
            ),
        },
        Op::StateQuery { store } => match kind {
            K::Unsupported => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_STATE_STORE_NOT_SUPPORTED",
                "state store does not support querying",
            ),
            _ => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_STATE_QUERY",
                format!("state store {store} query failed: {msg}"),
            ),
        },
        Op::Publish { pubsub, topic } => match kind {
            K::NotConfigured => new(
                S::BAD_REQUEST,
                "ERR_PUBSUB_NOT_CONFIGURED",
                "pubsub is not configured",
            ),
            K::StoreNotFound => new(
                S::NOT_FOUND,
                "ERR_PUBSUB_NOT_FOUND",
                format!("pubsub {pubsub} not found"),
            ),
            K::PermissionDenied => new(
                S::FORBIDDEN,
                "ERR_PUBSUB_FORBIDDEN",
                format!("topic {topic} is not allowed: {msg}"),
            ),
            K::InvalidArgument => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                format!("cannot create cloudevent: {msg}"),
            ),
            _ => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                format!("error when publishing to topic {topic} in pubsub {pubsub}: {msg}"),
            ),
        },
        Op::Binding { name } => new(
            S::INTERNAL_SERVER_ERROR,
            "ERR_INVOKE_OUTPUT_BINDING",
            format!("error invoking output binding {name}: {msg}"),
        ),
        Op::SecretGet { store, .. } | Op::SecretBulkGet { store }
            if matches!(
                kind,
                K::NotConfigured | K::StoreNotFound | K::PermissionDenied
            ) =>
        {
            match kind {
                K::NotConfigured => new(
                    S::INTERNAL_SERVER_ERROR,
                    "ERR_SECRET_STORES_NOT_CONFIGURED",
                    "secret store is not configured",
                ),
                K::StoreNotFound => new(
                    S::UNAUTHORIZED,
                    "ERR_SECRET_STORE_NOT_FOUND",
                    format!("failed finding secret store with key {store}"),
                ),
                _ => new(S::FORBIDDEN, "ERR_PERMISSION_DENIED", msg.as_str()),
            }
        }
        Op::SecretGet { store, key } => new(
            S::INTERNAL_SERVER_ERROR,
            "ERR_SECRET_GET",
            format!("failed getting secret with key {key} from secret store {store}: {msg}"),
        ),
        Op::SecretBulkGet { store } => new(
            S::INTERNAL_SERVER_ERROR,
            "ERR_SECRET_GET",
            format!("failed getting secrets from secret store {store}: {msg}"),
        ),
        Op::ConfigGet { store, .. }
        | Op::ConfigSubscribe { store, .. }
        | Op::ConfigUnsubscribe { store, .. }
            if matches!(kind, K::NotConfigured | K::StoreNotFound) =>
        {
            if kind == K::NotConfigured {
                new(
                    S::INTERNAL_SERVER_ERROR,
                    "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                    "configuration stores not configured",
                )
            } else {
                new(
                    S::BAD_REQUEST,
                    "ERR_CONFIGURATION_STORE_NOT_FOUND",
                    format!("configuration store {store} not found"),
                )
            }
        }
        Op::ConfigGet { store, keys } => new(
            S::INTERNAL_SERVER_ERROR,
            "ERR_CONFIGURATION_GET",
            format!(
                "failed to get {} from Configuration store {store}: {msg}",
                go_list(keys)
            ),
        ),
        Op::ConfigSubscribe { store, keys } => new(
            S::INTERNAL_SERVER_ERROR,
            "ERR_CONFIGURATION_SUBSCRIBE",
            format!(
                "failed to subscribe {} from Configuration store {store}: {msg}",
                go_list(keys)
            ),
        ),
        Op::ConfigUnsubscribe { id, .. } => new(
            S::INTERNAL_SERVER_ERROR,
            "ERR_CONFIGURATION_UNSUBSCRIBE",
            format!("failed to unsubscribe to configuration request {id}: {msg}"),
        ),
        Op::TryLock { store } | Op::Unlock { store } => match kind {
            K::NotConfigured => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_LOCK_STORE_NOT_CONFIGURED",
                "lock store is not configured",
            ),
            K::StoreNotFound => new(
                S::BAD_REQUEST,
                "ERR_LOCK_STORE_NOT_FOUND",
                format!("lock store {store} not found"),
            ),
            K::InvalidArgument => new(
                S::BAD_REQUEST,
                ERR_MALFORMED_REQUEST,
                format!("{msg} in lock store {store}"),
            ),
            _ if matches!(op, Op::TryLock { .. }) => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_TRY_LOCK",
                format!("failed to try acquiring lock: {msg}"),
            ),
            _ => new(
                S::INTERNAL_SERVER_ERROR,
                "ERR_UNLOCK",
                format!("failed to release lock: {msg}"),
            ),
        },
        Op::Invoke { app_id } => {
            let status = match kind {
                K::PermissionDenied => S::FORBIDDEN,
                K::InvalidArgument => S::BAD_REQUEST,
                _ => S::INTERNAL_SERVER_ERROR,
            };
            new(
                status,
                "ERR_DIRECT_INVOKE",
                format!("failed to invoke, id: {app_id}, err: {msg}"),
            )
        }
        Op::Metadata => match kind {
            K::InvalidArgument => new(
                S::BAD_REQUEST,
                "ERR_BAD_REQUEST",
                format!("invalid request: {msg}"),
            ),
            _ => new(S::INTERNAL_SERVER_ERROR, "ERR_INTERNAL", msg.as_str()),
        },
    }
}

/// Status of a failed state write or delete (`http.go` `stateErrorResponse`): ETag mismatch
/// 409, invalid ETag or argument 400, anything else 500.
fn state_write_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::EtagMismatch => status::CONFLICT,
        ErrorKind::InvalidArgument => status::BAD_REQUEST,
        ErrorKind::PermissionDenied => status::FORBIDDEN,
        _ => status::INTERNAL_SERVER_ERROR,
    }
}

/// `ErrorInfo.domain` of every Dapr gRPC error.
pub const DOMAIN: &str = "dapr.io";

/// The building block a gRPC rpc belongs to; selects the not-found / not-configured reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// State management.
    State,
    /// Publish and subscribe.
    PubSub,
    /// Distributed lock.
    Lock,
    /// Configuration.
    Configuration,
    /// Secrets.
    Secret,
    /// Output bindings.
    Binding,
    /// Service invocation.
    Invoke,
    /// The metadata API.
    Metadata,
}

/// The `google.rpc.ErrorInfo` reason Dapr's gRPC API gives an error of `kind` in `block`, as
/// the Dapr docs page "Error codes reference guide" lists them (`DAPR_STATE_NOT_FOUND`,
/// `DAPR_PUBSUB_NOT_CONFIGURED`, ...); where Dapr defines no gRPC reason, `op`, the
/// operation's HTTP error code (`ERR_STATE_SAVE`, ...).
pub fn grpc_reason(block: Block, kind: ErrorKind, op: &'static str) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind) -> Error {
        Error::new(kind, "boom")
    }

    #[test]
    fn state_codes() {
        let save = Op::StateSave { store: "s" };
        let e = http_error(&err(ErrorKind::EtagMismatch), save);
        assert_eq!((e.status, e.code), (status::CONFLICT, "ERR_STATE_SAVE"));
        let e = http_error(&err(ErrorKind::InvalidArgument), save);
        assert_eq!((e.status, e.code), (status::BAD_REQUEST, "ERR_STATE_SAVE"));
        let e = http_error(&err(ErrorKind::StoreNotFound), save);
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (
                status::BAD_REQUEST,
                "ERR_STATE_STORE_NOT_FOUND",
                "state store s is not found"
            )
        );
        let e = http_error(&err(ErrorKind::NotConfigured), save);
        assert_eq!(
            (e.status, e.code),
            (
                status::INTERNAL_SERVER_ERROR,
                "ERR_STATE_STORE_NOT_CONFIGURED"
            )
        );
        let e = http_error(
            &err(ErrorKind::EtagMismatch),
            Op::StateTransaction { store: "s" },
        );
        assert_eq!(
            (e.status, e.code),
            (status::INTERNAL_SERVER_ERROR, "ERR_STATE_TRANSACTION")
        );
    }

    #[test]
    fn other_blocks() {
        let e = http_error(
            &err(ErrorKind::StoreNotFound),
            Op::SecretGet {
                store: "s",
                key: "k",
            },
        );
        assert_eq!(
            (e.status, e.code),
            (status::UNAUTHORIZED, "ERR_SECRET_STORE_NOT_FOUND")
        );
        let e = http_error(
            &err(ErrorKind::StoreNotFound),
            Op::Publish {
                pubsub: "p",
                topic: "t",
            },
        );
        assert_eq!(
            (e.status, e.code),
            (status::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND")
        );
        let e = http_error(&err(ErrorKind::StoreNotFound), Op::Binding { name: "b" });
        assert_eq!(
            (e.status, e.code),
            (status::INTERNAL_SERVER_ERROR, "ERR_INVOKE_OUTPUT_BINDING")
        );
        let keys = ["a".to_owned(), "b".to_owned()];
        let e = http_error(
            &err(ErrorKind::Internal),
            Op::ConfigGet {
                store: "c",
                keys: &keys,
            },
        );
        assert_eq!(
            e.message,
            "failed to get [a b] from Configuration store c: boom"
        );
        let e = http_error(&err(ErrorKind::Internal), Op::Unlock { store: "l" });
        assert_eq!(e.code, "ERR_UNLOCK");
    }
}
