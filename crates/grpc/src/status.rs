//! The one place where domain errors become gRPC statuses.
//!
//! Mapping, as Layotto does (`mosn/layotto:pkg/grpc/default_api`): nothing of the block
//! configured -> `FAILED_PRECONDITION`; unknown store or bad field -> `INVALID_ARGUMENT`;
//! ETag mismatch -> `ABORTED`; component failure -> `INTERNAL`.

use layotto_core::{Error, ErrorKind};
use tonic::{Code, Status};

/// The gRPC code of an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotConfigured => Code::FailedPrecondition,
        ErrorKind::InvalidArgument | ErrorKind::StoreNotFound => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::EtagMismatch => Code::Aborted,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Unsupported => Code::Unimplemented,
        ErrorKind::Internal => Code::Internal,
    }
}

/// Converts a domain error into a status carrying its message.
pub fn to_status(e: Error) -> Status {
    Status::new(code(e.kind), e.message)
}

/// `to_status` for use with `map_err`.
pub trait IntoStatus<T> {
    /// Maps the error into a [`Status`].
    fn status(self) -> Result<T, Status>;
}

impl<T> IntoStatus<T> for Result<T, Error> {
    fn status(self) -> Result<T, Status> {
        self.map_err(to_status)
    }
}
