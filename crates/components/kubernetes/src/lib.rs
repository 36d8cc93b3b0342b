//! Kubernetes for layotto-rs, on the `kube` client:
//!
//! - [`secret`]: Dapr's built-in `secretstores.kubernetes` (type `kubernetes`), Secrets of the
//!   sidecar's namespace read from the API server;
//! - [`resources`]: the `dapr.io` resources of a namespace, as a sidecar in Kubernetes mode
//!   (`--mode kubernetes`) loads them.
//!
//! The API server and credentials come from `kubeconfigPath` / `$KUBECONFIG` / `~/.kube/config`,
//! else the pod's service account (in-cluster), as `kube::Config::infer` finds them.

pub mod resources;
pub mod secret;

use std::sync::Arc;

use layotto_core::secret::SecretStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use secret::{KubernetesSecretMetadata, KubernetesSecretStore};

/// Registers the `kubernetes` secret store (Dapr's `secretstores.kubernetes`).
///
/// # Errors
/// Invalid argument when the type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn SecretStore>(
        &[secret::TYPE],
        MetadataKeys::of::<KubernetesSecretMetadata>(),
        |s| Ok(Arc::new(KubernetesSecretStore::from_spec(s)?) as Arc<dyn SecretStore>),
    )
}

/// A client for the API server: from the kubeconfig at `path` when given, else as
/// `kube::Config::infer` finds one (`$KUBECONFIG`, `~/.kube/config`, the in-cluster service
/// account). Also returns the sidecar's namespace: `$NAMESPACE` (the injector sets it from the
/// pod), else the one that configuration names (`default` when none).
///
/// # Errors
/// Unavailable naming the cause: no configuration found, an unreadable kubeconfig, a client
/// that cannot be built.
pub async fn client(path: Option<&str>) -> Result<(kube::Client, String)> {
    let unavailable = |what: String| layotto_core::Error::unavailable(what);
    let config = match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| unavailable(format!("kubeconfig '{p}': {e}")))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| unavailable(format!("kubeconfig '{p}': {e}")))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| unavailable(format!("no Kubernetes configuration found: {e}")))?,
    };
    let namespace = std::env::var("NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|e| unavailable(format!("Kubernetes client: {e}")))?;
    Ok((client, namespace))
}
