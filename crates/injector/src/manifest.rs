//! Manual injection (`layotto inject -f manifest.yaml`): every pod template of a multi-document
//! YAML manifest (`Pod`, `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`,
//! `CronJob`, and the items of a `List`) gets the same patch the webhook would answer for a
//! pod made from it; other documents are printed unchanged.

use serde::Deserialize;
use serde_json::Value;

use crate::patch::{Decision, InjectorConfig, apply, pod_patch};

/// Where the pod template of a document of `kind` is (JSON Pointer), if it has one.
fn template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// What injecting a manifest collects besides the documents.
#[derive(Default)]
struct Found {
    warnings: Vec<String>,
    problems: Vec<String>,
    /// The `<app-id>-dapr` Service of each injected app, by (namespace, name).
    services: std::collections::BTreeMap<(String, String), Value>,
}

/// Injects `doc` in place.
fn inject_doc(doc: &mut Value, cfg: &InjectorConfig, found: &mut Found) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let name = doc["metadata"]["name"].as_str().unwrap_or("?").to_owned();
    if kind == "List" {
        if let Some(items) = doc["items"].as_array_mut() {
            for item in items {
                inject_doc(item, cfg, found);
            }
        }
        return;
    }
    let Some(path) = template_path(&kind) else {
        return;
    };
    let ns = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(template) = doc.pointer_mut(path) else {
        return;
    };
    let pod = serde_json::json!({
        "metadata": template.get("metadata").cloned().unwrap_or(Value::Null),
        "spec": template.get("spec").cloned().unwrap_or(Value::Null),
    });
    match pod_patch(&pod, cfg) {
        Decision::Unchanged => {}
        Decision::Refuse(p) => {
            found
                .problems
                .extend(p.into_iter().map(|p| format!("{kind} '{name}': {p}")));
        }
        Decision::Patch {
            ops,
            warnings: w,
            sidecar,
        } => {
            found
                .warnings
                .extend(w.into_iter().map(|w| format!("{kind} '{name}': {w}")));
            let svc = crate::service::service(&sidecar, &ns);
            let svc_name = svc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            found.services.insert((ns, svc_name), svc);
            match apply(&pod, &ops) {
                Ok(patched) => {
                    template["metadata"] = patched["metadata"].clone();
                    template["spec"] = patched["spec"].clone();
                }
                Err(e) => found.problems.push(format!("{kind} '{name}': {e}")),
            }
        }
    }
}

/// `text` (YAML documents separated by `---`) with every pod template injected, and the
/// warnings (unknown annotations), one line each naming the document. With `services`, the
/// `<app-id>-dapr` Service of each injected app follows the documents (what the webhook
/// applies itself), in the namespace the workload names, else none (kubectl's).
///
/// # Errors
/// Every problem, one line each: a document that is no YAML, or a template annotated for a
/// sidecar the injector refuses (naming the document and the annotation).
pub fn inject_manifest_with(
    text: &str,
    cfg: &InjectorConfig,
    services: bool,
) -> Result<(String, Vec<String>), Vec<String>> {
    let mut out = Vec::new();
    let mut found = Found::default();
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let mut doc = match Value::deserialize(de) {
            Ok(Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                found
                    .problems
                    .push(format!("document {}: not YAML: {e}", i + 1));
                continue;
            }
        };
        inject_doc(&mut doc, cfg, &mut found);
        out.push(doc);
    }
    if services {
        out.extend(std::mem::take(&mut found.services).into_values());
    }
    let mut texts = Vec::new();
    for (i, doc) in out.iter().enumerate() {
        match serde_norway::to_string(doc) {
            Ok(s) => texts.push(s),
            Err(e) => found.problems.push(format!("document {}: {e}", i + 1)),
        }
    }
    if found.problems.is_empty() {
        Ok((texts.join("---\n"), found.warnings))
    } else {
        Err(found.problems)
    }
}

/// [`inject_manifest_with`] without the Services: exactly the documents given, injected.
///
/// # Errors
/// As [`inject_manifest_with`].
pub fn inject_manifest(
    text: &str,
    cfg: &InjectorConfig,
) -> Result<(String, Vec<String>), Vec<String>> {
    inject_manifest_with(text, cfg, false)
}
