//! The Service `<app-id>-dapr` Dapr's operator keeps for every app with a sidecar
//! (`dapr/dapr:pkg/operator/handlers/dapr_handler.go`), which Kubernetes name resolution dials
//! (`<app-id>-dapr.<namespace>.svc.<cluster domain>:<internal port>`): headless, selecting the
//! app's pods by the `dapr.io/app-id` label the patch adds, with daprd's four ports
//! (`dapr-http` 80 to 3500, `dapr-grpc`, `dapr-internal`, `dapr-metrics`).
//!
//! The injector applies it (server-side apply, field manager `layotto-rs-injector`, never
//! forced) when it injects a pod, so it exists for bare Pods too; Dapr's operator keeps one per
//! Deployment or StatefulSet. Applying an unchanged Service is a no-op, so every pod of an app
//! may apply it. A Service of that name without the label `dapr.io/enabled: "true"` is left
//! alone.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::annotations::SidecarConfig;
use crate::patch::HTTP_PORT;

/// The field manager of the applied Services.
pub const FIELD_MANAGER: &str = "layotto-rs-injector";

/// The Service of the app `sc` configures, in `namespace` (empty: none named, so it goes
/// where it is applied, e.g. kubectl's namespace).
pub fn service(sc: &SidecarConfig, namespace: &str) -> Value {
    let id = sc.app_id.clone().unwrap_or_default();
    let mut annotations = json!({"dapr.io/app-id": id});
    if sc.enable_metrics {
        for (k, v) in [
            ("prometheus.io/probe", "true".to_owned()),
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", sc.metrics_port.to_string()),
            ("prometheus.io/path", "/".to_owned()),
        ] {
            annotations[k] = json!(v);
        }
    }
    let port = |name: &str, port: u16, target: u16| json!({"name": name, "port": port, "targetPort": target, "protocol": "TCP"});
    let mut metadata = json!({
        "name": format!("{id}-dapr"),
        "labels": {"dapr.io/enabled": "true"},
        "annotations": annotations,
    });
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {"dapr.io/app-id": id},
            "ports": [
                port("dapr-http", 80, HTTP_PORT),
                port("dapr-grpc", sc.grpc_port, sc.grpc_port),
                port("dapr-internal", sc.internal_grpc_port, sc.internal_grpc_port),
                port("dapr-metrics", sc.metrics_port, sc.metrics_port),
            ],
        },
    })
}

/// Applies [`service`] through `client`.
///
/// # Errors
/// The API server's refusal or an unreachable server, as text naming the Service.
pub async fn apply(
    client: &kube::Client,
    sc: &SidecarConfig,
    namespace: &str,
) -> Result<(), String> {
    let svc = service(sc, namespace);
    let name = svc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let failed = |e: kube::Error| format!("Service {namespace}/{name}: {e}");
    // A Service of that name that is no Dapr app's is someone else's: never taken over.
    if let Some(existing) = api.get_opt(&name).await.map_err(failed)? {
        let dapr = existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("dapr.io/enabled"))
            .is_some_and(|v| v == "true");
        if !dapr {
            return Err(format!(
                "Service {namespace}/{name} exists without the label dapr.io/enabled=true: left \
                 alone"
            ));
        }
    }
    // Without force: fields another manager owns (Dapr's operator, say) are not taken.
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(&svc),
    )
    .await
    .map(|_| ())
    .map_err(failed)
}

/// A client for the cluster the injector runs in (its service account), or the one
/// `$KUBECONFIG` names.
///
/// # Errors
/// No configuration found, or a client that cannot be built, as text.
pub async fn default_client() -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|e| e.to_string())
}
