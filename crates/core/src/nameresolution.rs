//! Name resolution: how a sidecar finds another app's sidecar for service invocation.
//!
//! Dapr's `nameresolution` components (`dapr/components-contrib:nameresolution/nameresolution.go`),
//! chosen by the Configuration resource's `spec.nameResolution` (`component`, `version`,
//! `configuration`). A resolver is set up once with this sidecar's own address
//! ([`Registration`]), publishes it where the resolver keeps addresses (an mDNS responder, a
//! shared SQLite file; Kubernetes DNS needs nothing), and answers [`NameResolver::resolve`]
//! with the `host:port` of a sidecar's internal gRPC port (`--dapr-internal-grpc-port`).

use async_trait::async_trait;

use crate::Result;

/// What this sidecar tells its resolver about itself: daprd's `nr.Metadata.Instance`
/// (`DaprHostAddress`, `DaprInternalPort`, `AppID`, `Namespace`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    /// This app's id.
    pub app_id: String,
    /// This sidecar's namespace (`$NAMESPACE`, empty when unset).
    pub namespace: String,
    /// The host other sidecars reach this one at (daprd's `DAPR_HOST_IP`, else its first
    /// non-loopback address; here `127.0.0.1` when nothing is given).
    pub host_address: String,
    /// The internal gRPC port (`--dapr-internal-grpc-port`).
    pub internal_port: u16,
    /// The Dapr HTTP API port (published by some resolvers, as daprd's `DaprHTTPPort`).
    pub http_port: u16,
    /// The Dapr gRPC API port.
    pub grpc_port: u16,
    /// The app's port (0 without an app).
    pub app_port: u16,
}

/// One lookup: daprd's `nr.ResolveRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveRequest {
    /// The app id to find.
    pub id: String,
    /// Its namespace (the caller's own when the id named none).
    pub namespace: String,
    /// The caller's internal gRPC port: Kubernetes DNS uses it as the callee's (every pod
    /// listens on the same one).
    pub port: u16,
}

/// A name resolver (Dapr's `nr.Resolver`).
#[async_trait]
pub trait NameResolver: Send + Sync {
    /// The resolver's Dapr type name without the `nameresolution.` prefix (`mdns`, `sqlite`,
    /// `kubernetes`).
    fn kind(&self) -> &'static str;

    /// Publishes `me` (as daprd's `Init`). Called once, after the internal gRPC port is bound.
    ///
    /// # Errors
    /// The resolver's backend cannot be set up (`Unavailable`) or `me` lacks what it needs
    /// (`InvalidArgument`).
    async fn register(&self, me: &Registration) -> Result<()>;

    /// The `host:port` of a sidecar serving `req.id` in `req.namespace`, picked among several
    /// when there are several.
    ///
    /// # Errors
    /// No sidecar known for the id (`NotFound`), the resolver's backend unreachable
    /// (`Unavailable`).
    async fn resolve(&self, req: &ResolveRequest) -> Result<String>;

    /// Withdraws this sidecar's registration (as daprd's `Close`). Errors are logged by the
    /// implementation, never returned: shutdown goes on.
    async fn close(&self) {}
}
