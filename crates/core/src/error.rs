//! The one error type of every contract.
//!
//! A component or the runtime says *what kind* of failure happened; the edge alone turns the kind
//! into a gRPC status or HTTP code (see `layotto-grpc`'s `status` module).

use std::fmt;

/// What went wrong, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No component of this building block is configured at all (gRPC `FAILED_PRECONDITION`).
    NotConfigured,
    /// The request is malformed: missing or invalid field (gRPC `INVALID_ARGUMENT`).
    InvalidArgument,
    /// The request names a component that is not configured while others of its building block
    /// are (Layotto: gRPC `INVALID_ARGUMENT`; Dapr: `INVALID_ARGUMENT` with reason
    /// `DAPR_<BLOCK>_NOT_FOUND`, HTTP 400 `ERR_<BLOCK>_STORE_NOT_FOUND`).
    StoreNotFound,
    /// The addressed item does not exist where its absence is an error (gRPC `NOT_FOUND`).
    NotFound,
    /// Optimistic concurrency failed: ETag mismatch or first-write conflict (gRPC `ABORTED`).
    EtagMismatch,
    /// The request is refused, e.g. a path that escapes the file store root (gRPC `PERMISSION_DENIED`).
    PermissionDenied,
    /// The backend cannot be reached right now; retrying later may succeed (gRPC `UNAVAILABLE`).
    Unavailable,
    /// The call's deadline passed before the component answered; the operation may or may not
    /// have taken effect (gRPC `DEADLINE_EXCEEDED`).
    DeadlineExceeded,
    /// The component does not support this operation (gRPC `UNIMPLEMENTED`).
    Unsupported,
    /// The component failed (gRPC `INTERNAL`).
    Internal,
}

/// An error from a component or the runtime: a kind and a message naming the store and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// The failure class, mapped to a status code by the edge.
    pub kind: ErrorKind,
    /// Human-readable text; names the store, key or field concerned.
    pub message: String,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// [`ErrorKind::NotConfigured`] for building block `api` (e.g. `"state"`).
    pub fn not_configured(api: &str) -> Self {
        Self::new(
            ErrorKind::NotConfigured,
            format!("no {api} component is configured"),
        )
    }
    /// [`ErrorKind::StoreNotFound`] for an unknown component name of building block `api`.
    pub fn store_not_found(api: &str, name: &str) -> Self {
        Self::new(
            ErrorKind::StoreNotFound,
            format!("{api} store '{name}' is not found"),
        )
    }
    /// [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// [`ErrorKind::InvalidArgument`] for a required field left empty.
    pub fn empty_field(field: &str) -> Self {
        Self::invalid(format!("{field} is empty"))
    }
    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// [`ErrorKind::EtagMismatch`] for `key`.
    pub fn etag_mismatch(key: &str) -> Self {
        Self::new(
            ErrorKind::EtagMismatch,
            format!("etag mismatch for key '{key}'"),
        )
    }
    /// [`ErrorKind::PermissionDenied`].
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// [`ErrorKind::Unavailable`] for a backend call cut off by its time limit:
    /// `WHAT: SERVER did not answer within LIMIT` (e.g. `get: redis at h:6379 did not answer
    /// within 5s`).
    pub fn no_answer(what: &str, server: impl fmt::Display, limit: std::time::Duration) -> Self {
        Self::unavailable(format!("{what}: {server} did not answer within {limit:?}"))
    }
    /// [`ErrorKind::DeadlineExceeded`].
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DeadlineExceeded, message)
    }
    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// Prefixes the message with `context` (e.g. the store name), keeping the kind.
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn no_answer_names_the_call_the_server_and_the_limit() {
        let e = Error::no_answer("get", "redis at h:6379", Duration::from_secs(5));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.message, "get: redis at h:6379 did not answer within 5s");
    }
}
