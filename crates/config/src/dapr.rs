//! Dapr `Component` resources (`--resources-path DIR`): YAML files, each possibly holding
//! several documents, as `daprd` reads them (docs.dapr.io "Component specs"):
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Component
//! metadata: {name: statestore}
//! spec:
//!   type: state.redis          # <block>.<type>
//!   version: v1
//!   metadata:
//!   - {name: redisHost, value: "localhost:6379"}
//!   - {name: redisPassword, secretKeyRef: {name: redis-secret, key: password}}
//! auth: {secretStore: localsecrets}
//! scopes: [app1]               # only these app ids load the component
//! ```
//!
//! Other kinds (`Subscription`, `Configuration`, `Resiliency`, `HTTPEndpoint`, ...) are skipped.

use std::collections::HashMap;
use std::path::Path;

use layotto_core::ComponentSpec;
use serde::Deserialize;
use serde_norway::Value;

use crate::{ComponentEntry, Kind, Origin, Problem, SecretRef};

/// The `apiVersion` of Dapr components.
pub const API_VERSION: &str = "dapr.io/v1alpha1";

/// Block prefixes of `spec.type` and the kind each selects.
const BLOCKS: [(&str, Kind); 8] = [
    ("state", Kind::State),
    ("pubsub", Kind::PubSub),
    ("lock", Kind::Lock),
    ("configuration", Kind::Configuration),
    ("secretstores", Kind::Secret),
    ("bindings", Kind::Binding),
    ("sequencer", Kind::Sequencer),
    ("file", Kind::File),
];

/// Reads every `*.yaml` / `*.yml` file of `dir` (sorted by name, not recursive) and returns the
/// components `app_id` may load (see `scopes`), plus every problem found.
///
/// Problems: an unreadable directory or file, malformed YAML (with line and column), a
/// component with another `apiVersion`, a missing name or type, an unsupported block, bad
/// metadata items, and a (kind, name) defined twice.
pub fn load_resources(dir: &Path, app_id: &str) -> (Vec<ComponentEntry>, Vec<Problem>) {
    let source = dir.display().to_string();
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            return (
                Vec::new(),
                vec![Problem {
                    file: source,
                    path: "$".to_owned(),
                    message: format!("cannot read resources directory: {e}"),
                }],
            );
        }
    };
    let mut files: Vec<_> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml")
                })
        })
        .collect();
    files.sort();
    let (mut entries, mut problems) = (Vec::new(), Vec::new());
    for f in files {
        let file = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let (e, p) = parse_resources(&text, &file, app_id);
                entries.extend(e);
                problems.extend(p);
            }
            Err(e) => problems.push(Problem {
                file,
                path: "$".to_owned(),
                message: format!("cannot read resource file: {e}"),
            }),
        }
    }
    let mut seen: HashMap<(Kind, String), (String, String)> = HashMap::new();
    entries.retain(|e: &ComponentEntry| {
        let key = (e.kind, e.spec.name.clone());
        if let Some((file, path)) = seen.get(&key) {
            problems.push(Problem {
                file: e.file.clone(),
                path: e.path.clone(),
                message: format!(
                    "{} component '{}' is already defined in {file} at {path}",
                    e.kind, e.spec.name
                ),
            });
            false
        } else {
            seen.insert(key, (e.file.clone(), e.path.clone()));
            true
        }
    });
    (entries, problems)
}

/// Parses the YAML `text` of one resource file named `source` (see [`load_resources`]).
pub fn parse_resources(
    text: &str,
    source: &str,
    app_id: &str,
) -> (Vec<ComponentEntry>, Vec<Problem>) {
    let (mut entries, mut problems) = (Vec::new(), Vec::new());
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let path = format!("doc[{i}]");
        let problem = |at: &str, message: String| Problem {
            file: source.to_owned(),
            path: at.to_owned(),
            message,
        };
        let value = match Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                let at = e
                    .location()
                    .map_or_else(|| path.clone(), |l| format!("{}:{}", l.line(), l.column()));
                problems.push(problem(&at, format!("malformed YAML: {e}")));
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(Value::as_str) != Some("Component") {
            continue;
        }
        match component(&value, &path, app_id) {
            Ok(Some(mut e)) => {
                e.file = source.to_owned();
                entries.push(e);
            }
            Ok(None) => {}
            Err(found) => problems.extend(found.into_iter().map(|(at, m)| problem(&at, m))),
        }
    }
    (entries, problems)
}

type Found = Vec<(String, String)>;

/// One `kind: Component` document; `None` when `scopes` exclude `app_id`.
fn component(doc: &Value, path: &str, app_id: &str) -> Result<Option<ComponentEntry>, Found> {
    let mut found: Found = Vec::new();
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        other => found.push((
            format!("{path}.apiVersion"),
            format!(
                "apiVersion must be '{API_VERSION}' for a Component, got {}",
                other.map_or_else(|| "nothing".to_owned(), |v| format!("'{v}'"))
            ),
        )),
    }
    if let Some(scopes) = doc.get("scopes").and_then(Value::as_sequence) {
        let listed: Vec<&str> = scopes.iter().filter_map(Value::as_str).collect();
        if !listed.is_empty() && !listed.contains(&app_id) {
            return Ok(None);
        }
    }
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    if name.is_empty() {
        found.push((
            format!("{path}.metadata.name"),
            "metadata.name is required".to_owned(),
        ));
    }
    let spec = doc.get("spec");
    let type_full = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let typed = match type_full.split_once('.') {
        Some((block, rest)) if !rest.is_empty() => BLOCKS
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, k)| (*k, rest.to_owned())),
        _ => None,
    };
    if typed.is_none() {
        let blocks: Vec<&str> = BLOCKS.iter().map(|(b, _)| *b).collect();
        found.push((
            format!("{path}.spec.type"),
            if type_full.is_empty() {
                "spec.type is required, e.g. 'state.redis'".to_owned()
            } else {
                format!(
                    "spec.type '{type_full}' is not supported: the block must be one of {}",
                    blocks.join(", ")
                )
            },
        ));
    }
    if let Some(v) = spec.and_then(|s| s.get("version"))
        && v.as_str() != Some("v1")
        && v.as_str() != Some("")
    {
        found.push((
            format!("{path}.spec.version"),
            format!("spec.version must be 'v1', got {}", scalar(v)),
        ));
    }
    let (metadata, secret_refs) = metadata_items(spec, path, &mut found);
    let secret_store = doc
        .get("auth")
        .and_then(|a| a.get("secretStore"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|s| !s.is_empty());
    match typed {
        Some((kind, type_)) if found.is_empty() => Ok(Some(ComponentEntry {
            kind,
            spec: ComponentSpec {
                name,
                type_,
                metadata,
            },
            path: path.to_owned(),
            file: String::new(),
            origin: Origin::Dapr,
            secret_refs,
            secret_store,
        })),
        _ => Err(found),
    }
}

/// `spec.metadata`: `{name, value}` items into the metadata map, `{name, secretKeyRef}` items
/// into secret references.
fn metadata_items(
    spec: Option<&Value>,
    path: &str,
    found: &mut Found,
) -> (HashMap<String, String>, Vec<SecretRef>) {
    let (mut metadata, mut refs) = (HashMap::new(), Vec::<SecretRef>::new());
    let Some(items) = spec.and_then(|s| s.get("metadata")) else {
        return (metadata, refs);
    };
    let Some(items) = items.as_sequence() else {
        if !items.is_null() {
            found.push((
                format!("{path}.spec.metadata"),
                "spec.metadata must be a list of {name, value} items".to_owned(),
            ));
        }
        return (metadata, refs);
    };
    for (j, item) in items.iter().enumerate() {
        let at = format!("{path}.spec.metadata[{j}]");
        let Some(name) = item
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            found.push((
                format!("{at}.name"),
                "metadata item needs a name".to_owned(),
            ));
            continue;
        };
        if metadata.contains_key(name) || refs.iter().any(|r| r.metadata_key == name) {
            found.push((
                format!("{at}.name"),
                format!("metadata '{name}' is given twice"),
            ));
            continue;
        }
        match (item.get("value"), item.get("secretKeyRef")) {
            (Some(v), None) => {
                metadata.insert(name.to_owned(), scalar(v));
            }
            (None, Some(r)) => {
                let secret = r.get("name").and_then(Value::as_str).unwrap_or_default();
                if secret.is_empty() {
                    found.push((
                        format!("{at}.secretKeyRef.name"),
                        format!("metadata '{name}': secretKeyRef needs a name"),
                    ));
                    continue;
                }
                let key = r
                    .get("key")
                    .and_then(Value::as_str)
                    .filter(|k| !k.is_empty())
                    .unwrap_or(secret);
                refs.push(SecretRef {
                    metadata_key: name.to_owned(),
                    secret_name: secret.to_owned(),
                    secret_key: key.to_owned(),
                });
            }
            (Some(_), Some(_)) => found.push((
                at,
                format!("metadata '{name}' has both value and secretKeyRef"),
            )),
            (None, None) => found.push((
                at,
                format!("metadata '{name}' has neither value nor secretKeyRef"),
            )),
        }
    }
    (metadata, refs)
}

/// A YAML value as Dapr's Go code stringifies metadata: scalars as written, null as empty,
/// mappings and lists as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Tagged(t) => scalar(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => serde_json::to_string(v).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: db
    value: 2
  - name: enableTLS
    value: false
  - name: redisPassword
    secretKeyRef:
      name: redis-secret
      key: password
  - name: token
    secretKeyRef:
      name: token
auth:
  secretStore: localsecrets
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: ignored
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  metadata:
  - name: secretsFile
    value: /tmp/s.json
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: other-app-only
spec:
  type: pubsub.redis
scopes: [other]
"#;

    #[test]
    fn reads_components_types_values_and_secret_refs() {
        let (entries, problems) = parse_resources(GOOD, "c.yaml", "app1");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            entries.len(),
            2,
            "the Subscription and the out-of-scope one are skipped"
        );
        let state = &entries[0];
        assert_eq!(
            (state.kind, state.spec.type_.as_str()),
            (Kind::State, "redis")
        );
        assert_eq!(state.origin, Origin::Dapr);
        assert_eq!(state.file, "c.yaml");
        assert_eq!(state.spec.get("db"), Some("2"));
        assert_eq!(state.spec.get("enableTLS"), Some("false"));
        assert_eq!(state.spec.get("redisPassword"), None);
        assert_eq!(state.secret_store.as_deref(), Some("localsecrets"));
        assert_eq!(
            state.secret_refs,
            vec![
                SecretRef {
                    metadata_key: "redisPassword".into(),
                    secret_name: "redis-secret".into(),
                    secret_key: "password".into()
                },
                SecretRef {
                    metadata_key: "token".into(),
                    secret_name: "token".into(),
                    secret_key: "token".into()
                },
            ]
        );
        let secrets = &entries[1];
        assert_eq!(
            (secrets.kind, secrets.spec.type_.as_str()),
            (Kind::Secret, "local.file")
        );
        assert_eq!(secrets.path, "doc[2]");
        // In scope when the app id is listed.
        let (entries, _) = parse_resources(GOOD, "c.yaml", "other");
        assert!(entries.iter().any(|e| e.spec.name == "other-app-only"));
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let bad = r#"
apiVersion: dapr.io/v1
kind: Component
metadata:
  name: ""
spec:
  type: workflow.dapr
  version: v2
  metadata:
  - value: 1
  - name: a
  - name: b
    value: 1
    secretKeyRef: {name: s}
  - name: c
    value: 1
  - name: c
    value: 2
  - name: d
    secretKeyRef: {key: k}
"#;
        let (entries, problems) = parse_resources(bad, "bad.yaml", "app");
        assert!(entries.is_empty());
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for needle in [
            "doc[0].apiVersion: apiVersion must be 'dapr.io/v1alpha1'",
            "doc[0].metadata.name: metadata.name is required",
            "doc[0].spec.type: spec.type 'workflow.dapr' is not supported",
            "doc[0].spec.version: spec.version must be 'v1', got v2",
            "doc[0].spec.metadata[0].name: metadata item needs a name",
            "doc[0].spec.metadata[1]: metadata 'a' has neither value nor secretKeyRef",
            "doc[0].spec.metadata[2]: metadata 'b' has both value and secretKeyRef",
            "doc[0].spec.metadata[4].name: metadata 'c' is given twice",
            "doc[0].spec.metadata[5].secretKeyRef.name: metadata 'd': secretKeyRef needs a name",
        ] {
            assert!(
                text.iter()
                    .any(|t| t.starts_with("bad.yaml: ") && t.contains(needle)),
                "missing '{needle}' in {text:#?}"
            );
        }
        let (_, problems) = parse_resources("a: [1, 2\nb: {", "broken.yaml", "app");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.starts_with("malformed YAML"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].path.contains(':'),
            "line:column, got {}",
            problems[0].path
        );
    }

    #[test]
    fn directory_loading_sorts_files_and_rejects_duplicates() {
        let dir = std::env::temp_dir().join(format!("layotto-dapr-res-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let one = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: state.in-memory}\n";
        std::fs::write(dir.join("b.yaml"), one).expect("write");
        std::fs::write(dir.join("a.yml"), one).expect("write");
        std::fs::write(dir.join("notes.txt"), "not yaml").expect("write");
        let (entries, problems) = load_resources(&dir, "app");
        assert_eq!(entries.len(), 1);
        assert!(entries[0].file.ends_with("a.yml"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("already defined"),
            "{}",
            problems[0]
        );
        let _ = std::fs::remove_dir_all(&dir);
        let (e, p) = load_resources(&dir, "app");
        assert!(e.is_empty() && p.len() == 1 && p[0].message.contains("cannot read"));
    }
}
