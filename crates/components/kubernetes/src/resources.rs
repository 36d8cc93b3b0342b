//! The `dapr.io` resources of one namespace, as a sidecar in Kubernetes mode reads them from
//! the API server (Dapr's sidecars get them from its operator; here the sidecar lists them
//! itself, with the rights of the chart's Role).

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use layotto_core::{Error, Result};
use serde_json::{Value, json};

/// The resources read, in load order: (kind, version, plural).
pub const KINDS: &[(&str, &str, &str)] = &[
    ("Component", "v1alpha1", "components"),
    ("Resiliency", "v1alpha1", "resiliencies"),
    ("HTTPEndpoint", "v1alpha1", "httpendpoints"),
    ("Subscription", "v2alpha1", "subscriptions"),
];

/// One resource as a Dapr YAML file would hold it: `apiVersion`, `kind`, `metadata` (name and
/// namespace only), `spec`, `scopes`, `auth`.
fn document(kind: &str, version: &str, o: &DynamicObject) -> Value {
    let mut doc = json!({
        "apiVersion": format!("dapr.io/{version}"),
        "kind": kind,
        "metadata": {"name": o.metadata.name, "namespace": o.metadata.namespace},
    });
    for k in ["spec", "scopes", "auth"] {
        if let Some(v) = o.data.get(k) {
            doc[k] = v.clone();
        }
    }
    // Without Dapr's conversion webhook a Subscription created as v1alpha1 (`spec.route`) is
    // served as v2alpha1 unconverted: read it as the version its fields are.
    if kind == "Subscription"
        && doc["spec"].get("route").is_some()
        && doc["spec"].get("routes").is_none()
    {
        doc["apiVersion"] = json!("dapr.io/v1alpha1");
    }
    doc
}

fn api(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    version: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("dapr.io", version, kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn read_error(what: &str, ns: &str, e: &kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 404 => Error::unavailable(format!(
            "{what} of namespace '{ns}': the API server does not know them (are Dapr's CRDs \
             installed? charts/layotto-rs installs them)"
        )),
        kube::Error::Api(s) if s.code == 403 => Error::unavailable(format!(
            "{what} of namespace '{ns}': forbidden ({}); the chart's Role grants get, list and \
             watch on them to the namespace's service account",
            s.message
        )),
        _ => Error::unavailable(format!("{what} of namespace '{ns}': {e}")),
    }
}

/// Every resource of [`KINDS`] in namespace `ns`, as documents, and the Configuration named
/// `config` when given.
///
/// # Errors
/// Unavailable naming the resource and the cause (CRDs missing, forbidden, API server
/// unreachable); not found when the named Configuration does not exist.
pub async fn fetch(
    client: &kube::Client,
    ns: &str,
    config: Option<&str>,
) -> Result<(Vec<Value>, Option<Value>)> {
    let mut docs = Vec::new();
    for (kind, version, plural) in KINDS {
        let list = api(client, ns, kind, version, plural)
            .list(&ListParams::default())
            .await
            .map_err(|e| read_error(plural, ns, &e))?;
        docs.extend(list.items.iter().map(|o| document(kind, version, o)));
    }
    let configuration = match config {
        None => None,
        Some(name) => {
            let o = api(client, ns, "Configuration", "v1alpha1", "configurations")
                .get(name)
                .await
                .map_err(|e| match &e {
                    kube::Error::Api(s) if s.code == 404 => Error::not_found(format!(
                        "Configuration '{name}' not found in namespace '{ns}'"
                    )),
                    _ => read_error(&format!("Configuration '{name}'"), ns, &e),
                })?;
            Some(document("Configuration", "v1alpha1", &o))
        }
    };
    Ok((docs, configuration))
}
