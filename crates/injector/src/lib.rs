//! The Kubernetes sidecar injector of layotto-rs, a stand-in for Dapr's
//! (`dapr/dapr:pkg/injector`, v1.14): pods annotated `dapr.io/enabled: "true"` get the
//! layotto-rs sidecar as a container named `daprd`, with daprd's ports and flags, probes,
//! resources and a restrictive security context, and their app containers get
//! `DAPR_HTTP_PORT`, `DAPR_GRPC_PORT` and `APP_PROTOCOL`.
//!
//! - [`annotations`]: Dapr's pod annotations, each implemented or refused by name.
//! - [`patch`]: the JSON Patch for one pod (idempotent: a pod with a `daprd` container is left
//!   alone).
//! - [`manifest`]: `layotto inject`, the same patch applied to every pod template of a
//!   manifest.
//! - [`service`]: the `<app-id>-dapr` Service Kubernetes name resolution needs, applied as
//!   pods are injected.
//! - [`webhook`]: the admission webhook serving it over TLS.

pub mod annotations;
pub mod manifest;
pub mod patch;
pub mod service;
pub mod webhook;

pub use manifest::{inject_manifest, inject_manifest_with};
pub use patch::{Decision, InjectorConfig, pod_patch};
pub use webhook::{OnError, Webhook};
