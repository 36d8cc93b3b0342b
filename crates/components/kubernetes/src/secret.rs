//! Dapr's `secretstores.kubernetes` (`dapr/components-contrib:secretstores/kubernetes`): a
//! secret is a Kubernetes Secret, returned as its keys with their values as text.
//!
//! The namespace is the request's `namespace` metadata, else the component's
//! `defaultNamespace`, else `$NAMESPACE` (the injector sets it to the pod's), else the
//! kubeconfig's. `bulk_get` lists the namespace's Secrets, which needs the `list` right the
//! chart's Role does not grant.

use std::collections::HashMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::Api;
use layotto_core::metadata::{ComponentMetadata, decode};
use layotto_core::secret::{Secret, SecretStore};
use layotto_core::{Component, ComponentSpec, Error, Metadata, Result};
use serde::Deserialize;
use tokio::sync::OnceCell;

/// The component type (`secretstores.kubernetes`).
pub const TYPE: &str = "kubernetes";

/// Metadata of [`KubernetesSecretStore`]: Dapr's keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KubernetesSecretMetadata {
    /// `kubeconfigPath`: a kubeconfig file (default: `$KUBECONFIG`, `~/.kube/config`, else the
    /// in-cluster service account).
    #[serde(rename = "kubeconfigPath")]
    pub kubeconfig_path: Option<String>,
    /// `defaultNamespace`: the namespace when the request names none.
    #[serde(rename = "defaultNamespace")]
    pub default_namespace: Option<String>,
}

impl ComponentMetadata for KubernetesSecretMetadata {}

/// Dapr's Kubernetes secret store. See the module documentation.
pub struct KubernetesSecretStore {
    name: String,
    meta: KubernetesSecretMetadata,
    client: OnceCell<(kube::Client, String)>,
}

impl std::fmt::Debug for KubernetesSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSecretStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KubernetesSecretStore {
    /// Factory: [`KubernetesSecretMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument for metadata that does not decode.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        Ok(Self {
            name: spec.name.clone(),
            meta: decode(spec)?,
            client: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<&(kube::Client, String)> {
        self.client
            .get_or_try_init(|| crate::client(self.meta.kubeconfig_path.as_deref()))
            .await
    }

    /// The Secrets API of the namespace this request reads.
    async fn secrets(&self, metadata: &Metadata) -> Result<(Api<K8sSecret>, String)> {
        let (client, own_ns) = self.client().await?;
        let ns = metadata
            .get("namespace")
            .filter(|n| !n.is_empty())
            .cloned()
            .or_else(|| {
                self.meta
                    .default_namespace
                    .clone()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| own_ns.clone());
        Ok((Api::namespaced(client.clone(), &ns), ns))
    }
}

/// The keys of a Secret, values as text (binary values lossily, as Go's `string(bytes)`).
fn values(s: &K8sSecret) -> Secret {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

fn api_error(store: &str, what: &str, e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(s) if s.code == 404 => {
            Error::not_found(format!("secret store '{store}': {what} not found"))
        }
        kube::Error::Api(s) if s.code == 403 => Error::new(
            layotto_core::ErrorKind::PermissionDenied,
            format!(
                "secret store '{store}': {what}: forbidden by the API server: {}",
                s.message
            ),
        ),
        _ => Error::unavailable(format!("secret store '{store}': {what}: {e}")),
    }
}

#[async_trait]
impl Component for KubernetesSecretStore {
    /// Builds the client (no request yet: the sidecar may have no rights until it reads).
    /// Errors: unavailable when no Kubernetes configuration is found.
    async fn init(&self) -> Result<()> {
        self.client().await.map(|_| ())
    }
}

#[async_trait]
impl SecretStore for KubernetesSecretStore {
    /// The Secret `key` of the namespace. Errors: not found, permission denied (RBAC), or
    /// unavailable, each naming the Secret and namespace.
    async fn get(&self, key: &str, metadata: &Metadata) -> Result<Secret> {
        if key.is_empty() {
            return Err(
                Error::empty_field("key").context(format_args!("secret store '{}'", self.name))
            );
        }
        let (api, ns) = self.secrets(metadata).await?;
        let s = api.get(key).await.map_err(|e| {
            api_error(
                &self.name,
                &format!("secret '{key}' in namespace '{ns}'"),
                e,
            )
        })?;
        Ok(values(&s))
    }

    /// Every Secret of the namespace. Errors: as [`SecretStore::get`].
    async fn bulk_get(&self, metadata: &Metadata) -> Result<HashMap<String, Secret>> {
        let (api, ns) = self.secrets(metadata).await?;
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| api_error(&self.name, &format!("secrets of namespace '{ns}'"), e))?;
        Ok(list
            .items
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, values(s))))
            .collect())
    }
}
