//! The `dapr.io` resources of one namespace, as a sidecar in Kubernetes mode reads them from
//! the API server (Dapr's sidecars get them from its operator; here the sidecar lists them
//! itself, with the rights of the chart's Role).

use futures::stream::{BoxStream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
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

/// The resources whose changes a hot reload applies (Dapr 1.14 reloads Components and
/// Subscriptions): (kind, version, plural).
const RELOADED: &[(&str, &str, &str)] = &[
    ("Component", "v1alpha1", "components"),
    ("Subscription", "v2alpha1", "subscriptions"),
];

/// Watches the Components and Subscriptions of namespace `ns` from now on: the stream yields
/// once per creation, change or deletion, and ends when the API server ends the watch (after
/// about five minutes, or on an error); the caller reads everything again then and opens a new
/// one. Changes made before this returns are not in it: read after opening it.
///
/// # Errors
/// Unavailable naming the resource and the cause, as [`fetch`].
pub async fn watch(client: &kube::Client, ns: &str) -> Result<BoxStream<'static, ()>> {
    let mut streams = Vec::new();
    for (kind, version, plural) in RELOADED {
        let api = api(client, ns, kind, version, plural);
        let now = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map_err(|e| read_error(plural, ns, &e))?
            .metadata
            .resource_version
            .unwrap_or_default();
        let events = api
            .watch(&WatchParams::default().timeout(290), &now)
            .await
            .map_err(|e| read_error(plural, ns, &e))?;
        let plural = *plural;
        // Each watch yields `Some` per change and one `None` when it ends, which ends all.
        streams.push(
            events
                .filter_map(move |ev| async move {
                    match ev {
                        Ok(WatchEvent::Bookmark(_)) => None,
                        Ok(WatchEvent::Error(e)) => {
                            tracing::debug!(resource = plural, error = %e.message, "watch ended");
                            Some(None)
                        }
                        Err(e) => {
                            tracing::debug!(resource = plural, error = %e, "watch ended");
                            Some(None)
                        }
                        Ok(_) => Some(Some(())),
                    }
                })
                .chain(futures::stream::once(std::future::ready(None)))
                .boxed(),
        );
    }
    Ok(futures::stream::select_all(streams)
        .take_while(|ev| std::future::ready(ev.is_some()))
        .map(|_| ())
        .boxed())
}
