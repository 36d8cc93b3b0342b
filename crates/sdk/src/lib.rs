//! Rust client for a Layotto-compatible sidecar (`spec.proto.runtime.v1`), and a helper to run
//! the app's `AppCallback` server for pub/sub deliveries.
//!
//! ```no_run
//! # async fn demo() -> Result<(), layotto_sdk::Error> {
//! let client = layotto_sdk::Client::connect("http://127.0.0.1:34904").await?;
//! client.save_state("state_demo", "k", b"v".to_vec()).await?;
//! let got = client.get_state("state_demo", "k").await?;
//! assert_eq!(got.map(|s| s.data), Some(b"v".to_vec()));
//! # Ok(()) }
//! ```

mod callback;
mod client;

pub use callback::{EventStatus, TopicHandler, serve_app_callback};
pub use client::{Client, Increment, State, TopicEvents};
/// Protobuf's well-known types (`Any` carries `InvokeService` and `SayHello` data).
pub use layotto_proto::prost_types;
/// The generated wire types, for requests the typed helpers do not cover.
pub use layotto_proto::runtime as pb;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The sidecar answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
