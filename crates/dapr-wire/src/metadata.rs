//! Names the Dapr metadata API (`GET /v1.0/metadata`, gRPC `GetMetadata`) reports
//! (`dapr/dapr:pkg/api/universal/metadata.go`).

/// `version` reported for every registered component.
pub const COMPONENT_VERSION: &str = "v1";

/// `extended` attribute Dapr always fills with the runtime version (deprecated there, kept
/// for compatibility).
pub const RUNTIME_VERSION_KEY: &str = "daprRuntimeVersion";
