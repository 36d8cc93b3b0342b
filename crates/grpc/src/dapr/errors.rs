//! Dapr's rich gRPC errors: the status code of the error kind (the same table as the Layotto
//! API, [`crate::status::code`]) plus a `google.rpc.ErrorInfo` detail with domain `dapr.io`
//! and Dapr's reason ([`layotto_dapr_wire::errors::grpc_reason`]).
//!
//! The handlers both APIs share fail with a `Failure`, which each API turns into its own
//! status: `Failure::dapr` with the detail, `Failure::layotto` as Layotto answers
//! ([`crate::status::to_status`]).

use std::collections::HashMap;

use layotto_core::Error;
pub(crate) use layotto_dapr_wire::errors::Block;
pub use layotto_dapr_wire::errors::DOMAIN;
use layotto_dapr_wire::errors::grpc_reason;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// The status Dapr sends for `e` raised by operation `op` of `block`.
pub(crate) fn status(block: Block, op: &'static str, e: Error) -> Status {
    Status::with_error_details(
        crate::status::code(e.kind),
        e.message,
        ErrorDetails::with_error_info(grpc_reason(block, e.kind, op), DOMAIN, HashMap::new()),
    )
}

/// `map_err` helper: `.map_err(err(Block::State, "ERR_STATE_SAVE"))`.
pub(crate) fn err(block: Block, op: &'static str) -> impl FnOnce(Error) -> Status {
    move |e| status(block, op, e)
}

/// Why a shared handler failed, before either API has put it in its words.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A domain error raised by operation `op` (Dapr's HTTP error code) of `block`.
    Domain {
        /// The block of the rpc.
        block: Block,
        /// Dapr's code of the operation, e.g. `ERR_STATE_SAVE`.
        op: &'static str,
        /// The error.
        error: Error,
    },
    /// An answer both APIs send as it is (an app's failed answer to an invocation).
    Status(Status),
}

impl Failure {
    /// As Dapr answers: code, message and the `ErrorInfo` detail.
    pub(crate) fn dapr(self) -> Status {
        match self {
            Self::Domain { block, op, error } => status(block, op, error),
            Self::Status(s) => s,
        }
    }

    /// As Layotto answers: code and message.
    pub(crate) fn layotto(self) -> Status {
        match self {
            Self::Domain { error, .. } => crate::status::to_status(error),
            Self::Status(s) => s,
        }
    }
}

/// `map_err` helper of the shared handlers: `.map_err(fail(Block::State, "ERR_STATE_SAVE"))`.
pub(crate) fn fail(block: Block, op: &'static str) -> impl FnOnce(Error) -> Failure {
    move |error| Failure::Domain { block, op, error }
}
