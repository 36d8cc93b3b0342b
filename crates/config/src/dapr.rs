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
//! Documents of other kinds are skipped here, as `daprd` does (`dapr/dapr`
//! `pkg/internal/loader/disk/disk.go` only looks at `kind`): `Resiliency`, `HTTPEndpoint` and
//! `Subscription` documents have their own loaders ([`crate::resiliency`],
//! [`crate::http_endpoint`], [`crate::subscription`]), and every other kind (`Configuration`,
//! ..., or no `kind` at all) gets a warning from [`crate::resource_kind_warnings`].
//!
//! Metadata values become the strings Dapr's Go runtime hands its components: `daprd` turns the
//! YAML into JSON (`sigs.k8s.io/yaml`) and keeps each value as raw JSON, unquoting strings
//! (`dapr/dapr` `pkg/apis/common/namevalue.go`, `DynamicValue.String`). So `6379` is `"6379"`,
//! `true` is `"true"`, `1.50` is `"1.5"`, `1e21` is `"1e+21"`, null is `""`, and a mapping or
//! list is compact JSON with its keys sorted and `<`, `>`, `&` escaped as Go's `encoding/json`
//! writes them. One difference remains: YAML is read with the YAML 1.2 core schema, so `yes`,
//! `on`, `017` and `1_000` stay strings where Go's YAML 1.1 parser would read `true`, `true`, 15
//! and 1000.

use std::fmt;
use std::path::Path;

use layotto_core::{ComponentSpec, Metadata};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{ComponentEntry, Kind, Origin, Problem, SecretRef};

/// The `apiVersion` of Dapr components.
pub const API_VERSION: &str = "dapr.io/v1alpha1";

/// The `kind` of the documents loaded; every other kind is skipped.
const COMPONENT: &str = "Component";

/// Reads every `*.yaml` / `*.yml` file of `dir` (extension in any case; sorted by file name;
/// not recursive) and returns the components `app_id` may load, in file and document order,
/// plus every problem found. Each entry has [`Origin::Dapr`], its file's path as
/// [`ComponentEntry::file`] and `doc[<index>]` as [`ComponentEntry::path`].
///
/// A component whose non-empty `scopes` do not list `app_id` is skipped without being checked.
///
/// Problems (each at `doc[<index>]...` of its file unless said otherwise): an unreadable
/// directory (one problem at the directory, path `$`) or file (path `$`); malformed YAML (one
/// problem per file at `line:column`; the file then contributes no component); a `Component`
/// whose `apiVersion` is not [`API_VERSION`]; a missing or invalid `metadata.name`; a missing
/// `spec.type` or one whose block (the part before the first dot) is not `state`, `pubsub`,
/// `lock`, `configuration`, `secretstores`, `bindings`, `sequencer` or `file`; a `spec.version`
/// other than `v1`; `spec.metadata` items without a name, named twice, with neither or both
/// of `value` and `secretKeyRef`, with `envRef`, or with a value that has no JSON form
/// (`.nan`, `.inf`); `secretKeyRef` without `auth.secretStore`; duplicated mapping keys; and a
/// (kind, name) already defined by an earlier file or document (naming where). A directory
/// without YAML files gives neither components nor problems.
pub fn load_resources(dir: &Path, app_id: &str) -> (Vec<ComponentEntry>, Vec<Problem>) {
    let mut out = Resources::default();
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) => {
            out.problems.push(Problem {
                file: dir.display().to_string(),
                path: "$".to_owned(),
                message: format!("cannot read resources directory: {e}"),
            });
            return (out.entries, out.problems);
        }
    };
    let mut files: Vec<_> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml"))
                && p.is_file()
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for f in files {
        let file = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => out.file(&text, &file, app_id),
            Err(e) => out.problems.push(Problem {
                file,
                path: "$".to_owned(),
                message: format!("cannot read resource file: {e}"),
            }),
        }
    }
    (out.entries, out.problems)
}

/// Parses the YAML `text` of one resource file named `source` (which becomes
/// [`ComponentEntry::file`] and [`Problem::file`]); the rules and problems are those of
/// [`load_resources`], duplicates being checked within this text only.
pub fn parse_resources(
    text: &str,
    source: &str,
    app_id: &str,
) -> (Vec<ComponentEntry>, Vec<Problem>) {
    let mut out = Resources::default();
    out.file(text, source, app_id);
    (out.entries, out.problems)
}

/// Components and problems collected over one or more files.
#[derive(Default)]
struct Resources {
    entries: Vec<ComponentEntry>,
    problems: Vec<Problem>,
}

impl Resources {
    fn file(&mut self, text: &str, source: &str, app_id: &str) {
        let docs = match documents(text) {
            Ok(docs) => docs,
            Err((path, message)) => {
                self.problems.push(Problem {
                    file: source.to_owned(),
                    path,
                    message,
                });
                return;
            }
        };
        for (i, doc) in docs.iter().enumerate() {
            let mut walker = Walker {
                file: source,
                problems: Vec::new(),
            };
            let entry = walker.document(doc, i, app_id);
            self.problems.append(&mut walker.problems);
            if let Some(entry) = entry {
                self.add(entry);
            }
        }
    }

    /// Keeps `entry` unless its kind and name are taken.
    fn add(&mut self, entry: ComponentEntry) {
        let first = self
            .entries
            .iter()
            .find(|e| e.kind == entry.kind && e.spec.name == entry.spec.name);
        match first {
            Some(first) => {
                let block = entry.kind.info().dapr_prefix;
                self.problems.push(Problem {
                    file: entry.file.clone(),
                    path: entry.path.clone(),
                    message: format!(
                        "{block} component '{}' is already defined in {} at {}",
                        entry.spec.name, first.file, first.path
                    ),
                });
            }
            None => self.entries.push(entry),
        }
    }
}

/// Every YAML document of `text` (an empty text is one null document), or the first syntax
/// error as (`line:column`, message).
fn documents(text: &str) -> Result<Vec<Yaml>, (String, String)> {
    let mut docs = Vec::new();
    // The iterator yields the same error forever once one is found: stop at the first.
    for doc in serde_norway::Deserializer::from_str(text) {
        match Yaml::deserialize(doc) {
            Ok(yaml) => docs.push(yaml),
            Err(e) => {
                let full = e.to_string();
                return Err(match e.location() {
                    Some(l) => {
                        let at = format!(" at line {} column {}", l.line(), l.column());
                        (
                            format!("{}:{}", l.line(), l.column()),
                            format!("malformed YAML: {}", full.replacen(&at, "", 1)),
                        )
                    }
                    None => ("$".to_owned(), format!("malformed YAML: {full}")),
                });
            }
        }
    }
    Ok(docs)
}

/// Checks one document, collecting problems.
struct Walker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Walker<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// `node` as a mapping, reporting duplicated and non-scalar keys; a problem and `None`
    /// when it is something else.
    fn mapping<'y>(&mut self, node: &'y Yaml, path: &str, what: &str) -> Option<Fields<'y>> {
        let Yaml::Map(entries) = node else {
            self.problem(
                path,
                format!("expected {what} (a mapping), found {}", node.describe()),
            );
            return None;
        };
        let mut seen: Vec<String> = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            match key_text(key) {
                Ok(k) if seen.contains(&k) => self.problem(
                    &format!("{path}.{k}"),
                    format!("duplicate key '{k}'; only the last one would take effect"),
                ),
                Ok(k) => seen.push(k),
                Err(e) => self.problem(path, e),
            }
        }
        Some(Fields::new(node))
    }

    /// One document, `doc[index]`: a component entry when it is a valid `Component` that
    /// `app_id` may load.
    fn document(&mut self, doc: &Yaml, index: usize, app_id: &str) -> Option<ComponentEntry> {
        let base = format!("doc[{index}]");
        match doc {
            Yaml::Null => return None,
            Yaml::Map(_) => {}
            other => {
                self.problem(
                    &base,
                    format!(
                        "expected a resource (a mapping with apiVersion, kind, metadata and \
                         spec), found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        }
        let fields = Fields::new(doc);
        if fields.get("kind").and_then(text).as_deref() != Some(COMPONENT) {
            return None;
        }
        if !self.in_scope(&fields, &base, app_id)? {
            return None;
        }
        let start = self.problems.len();
        self.mapping(doc, &base, "a resource");

        match fields.get("apiVersion") {
            Some(Yaml::Str(v)) if v == API_VERSION => {}
            other => self.problem(
                &format!("{base}.apiVersion"),
                format!(
                    "apiVersion must be '{API_VERSION}' for a Component, got {}",
                    shown(other)
                ),
            ),
        }
        let name = self.name(fields.get("metadata"), &base);
        let spec_path = format!("{base}.spec");
        let spec = match fields.get("spec") {
            None | Some(Yaml::Null) => None,
            Some(spec) => self.mapping(spec, &spec_path, "the component spec"),
        };
        let typed = self.type_(spec.as_ref(), &spec_path);
        // Which versions a type has is the component's to say (checked when it is built).
        let mut version = String::new();
        if let Some(v) = spec.as_ref().and_then(|s| s.get("version")) {
            match v {
                Yaml::Null => {}
                Yaml::Str(v) if v.is_empty() => {}
                Yaml::Str(v) if v.starts_with('v') && v.len() > 1 => version.clone_from(v),
                other => self.problem(
                    &format!("{spec_path}.version"),
                    format!(
                        "spec.version must be a version such as 'v1', got {}",
                        shown(Some(other))
                    ),
                ),
            }
        }
        let (metadata, secret_refs) = match spec.as_ref().and_then(|s| s.get("metadata")) {
            None | Some(Yaml::Null) => (Metadata::new(), Vec::new()),
            Some(items) => self.metadata(items, &format!("{spec_path}.metadata")),
        };
        let secret_store = self.secret_store(fields.get("auth"), &base);
        if secret_store.is_none()
            && let Some(first) = secret_refs.first()
        {
            self.problem(
                &format!("{base}.auth.secretStore"),
                format!(
                    "metadata '{}' uses secretKeyRef but the component names no secret store \
                     (auth.secretStore)",
                    first.metadata_key
                ),
            );
        }

        let (kind, type_) = typed?;
        let name = name?;
        (self.problems.len() == start).then(|| ComponentEntry {
            kind,
            spec: ComponentSpec {
                name,
                type_,
                metadata,
                version,
            },
            path: base,
            file: self.file.to_owned(),
            origin: Origin::Dapr,
            secret_refs,
            secret_store,
            component_refs: Vec::new(),
        })
    }

    /// Whether `scopes` (absent, null or empty: every app) list `app_id`; `None` with a
    /// problem when they are not a list of strings.
    fn in_scope(&mut self, fields: &Fields<'_>, base: &str, app_id: &str) -> Option<bool> {
        let path = format!("{base}.scopes");
        let items = match fields.get("scopes") {
            None | Some(Yaml::Null) => return Some(true),
            Some(Yaml::Seq(items)) => items,
            Some(other) => {
                self.problem(
                    &path,
                    format!("expected a list of app ids, found {}", other.describe()),
                );
                return None;
            }
        };
        let mut listed = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            match text(item) {
                Some(id) => listed.push(id),
                None => self.problem(
                    &format!("{path}[{j}]"),
                    format!("expected an app id (a string), found {}", item.describe()),
                ),
            }
        }
        (listed.len() == items.len())
            .then(|| listed.is_empty() || listed.iter().any(|s| s == app_id))
    }

    /// `metadata.name`: required, and a valid path segment as `daprd` demands
    /// (`k8s.io/apimachinery` `IsValidPathSegmentName`).
    fn name(&mut self, metadata: Option<&Yaml>, base: &str) -> Option<String> {
        let path = format!("{base}.metadata");
        let name_path = format!("{path}.name");
        let fields = match metadata {
            None | Some(Yaml::Null) => {
                self.problem(&name_path, "metadata.name is required");
                return None;
            }
            Some(m) => self.mapping(m, &path, "the resource metadata")?,
        };
        let name = match fields.get("name") {
            None | Some(Yaml::Null) => None,
            Some(v) => match text(v) {
                Some(n) => Some(n),
                None => {
                    self.problem(
                        &name_path,
                        format!(
                            "expected the component name (a string), found {}",
                            v.describe()
                        ),
                    );
                    return None;
                }
            },
        };
        match name {
            Some(n) if !n.trim().is_empty() => {
                if n == "." || n == ".." || n.contains('/') || n.contains('%') {
                    self.problem(
                        &name_path,
                        format!(
                            "invalid component name '{n}': it may not be '.' or '..' nor \
                             contain '/' or '%'"
                        ),
                    );
                    return None;
                }
                Some(n)
            }
            _ => {
                self.problem(&name_path, "metadata.name is required");
                None
            }
        }
    }

    /// `spec.type` as (kind, type without the block prefix).
    fn type_(&mut self, spec: Option<&Fields<'_>>, spec_path: &str) -> Option<(Kind, String)> {
        let path = format!("{spec_path}.type");
        let full = match spec.and_then(|s| s.get("type")) {
            None | Some(Yaml::Null) => {
                self.problem(&path, "spec.type is required, e.g. 'state.redis'");
                return None;
            }
            Some(Yaml::Str(t)) if t.is_empty() => {
                self.problem(&path, "spec.type is required, e.g. 'state.redis'");
                return None;
            }
            Some(Yaml::Str(t)) => t,
            Some(other) => {
                self.problem(
                    &path,
                    format!(
                        "expected the component type (a string such as 'state.redis'), found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        };
        // The block table's Dapr prefixes (`sequencer` and `file` are Layotto's blocks, accepted
        // the same way).
        let blocks = || Kind::dapr_prefixes().join(", ");
        let Some((block, rest)) = full.split_once('.') else {
            self.problem(
                &path,
                format!(
                    "spec.type '{full}' is not supported: expected '<block>.<type>' such as \
                     'state.redis', the block being one of {}",
                    blocks()
                ),
            );
            return None;
        };
        let Some(kind) = Kind::from_dapr_prefix(block) else {
            self.problem(
                &path,
                format!(
                    "spec.type '{full}' is not supported: the block must be one of {}",
                    blocks()
                ),
            );
            return None;
        };
        if rest.is_empty() {
            self.problem(
                &path,
                format!("spec.type '{full}' names no component type after '{block}.'"),
            );
            return None;
        }
        Some((kind, rest.to_owned()))
    }

    /// `spec.metadata`: `{name, value}` items into the metadata map, `{name, secretKeyRef}`
    /// items into secret references.
    fn metadata(&mut self, items: &Yaml, path: &str) -> (Metadata, Vec<SecretRef>) {
        let (mut metadata, mut refs) = (Metadata::new(), Vec::<SecretRef>::new());
        let Yaml::Seq(items) = items else {
            self.problem(
                path,
                format!(
                    "spec.metadata must be a list of {{name, value}} items, found {}",
                    items.describe()
                ),
            );
            return (metadata, refs);
        };
        let mut names: Vec<(String, String)> = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let at = format!("{path}[{j}]");
            let Some(fields) = self.mapping(item, &at, "a metadata item {name, value}") else {
                continue;
            };
            let name = match fields.get("name") {
                None | Some(Yaml::Null) => None,
                Some(n) => text(n).filter(|n| !n.is_empty()),
            };
            let Some(name) = name else {
                self.problem(&format!("{at}.name"), "metadata item needs a name");
                continue;
            };
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                self.problem(
                    &format!("{at}.name"),
                    format!("metadata '{name}' is given twice (first at {first})"),
                );
                continue;
            }
            names.push((name.clone(), at.clone()));
            if fields.get("envRef").is_some_and(|e| *e != Yaml::Null) {
                self.problem(
                    &format!("{at}.envRef"),
                    format!(
                        "metadata '{name}': envRef is not supported; use value or secretKeyRef"
                    ),
                );
                continue;
            }
            let value = fields.get("value");
            let secret = fields.get("secretKeyRef").filter(|r| **r != Yaml::Null);
            match (value, secret) {
                (Some(v), Some(_)) if *v != Yaml::Null => self.problem(
                    &at,
                    format!("metadata '{name}' has both value and secretKeyRef; give one"),
                ),
                (_, Some(r)) => {
                    if let Some(r) = self.secret_ref(r, &format!("{at}.secretKeyRef"), &name) {
                        refs.push(r);
                    }
                }
                (Some(v), None) => match go_value(v) {
                    Ok(s) => {
                        metadata.insert(name, s);
                    }
                    Err(e) => {
                        self.problem(&format!("{at}.value"), format!("metadata '{name}': {e}"))
                    }
                },
                (None, None) => self.problem(
                    &at,
                    format!("metadata '{name}' has neither value nor secretKeyRef"),
                ),
            }
        }
        (metadata, refs)
    }

    /// A `secretKeyRef: {name, key}` of metadata item `name`.
    fn secret_ref(&mut self, node: &Yaml, path: &str, name: &str) -> Option<SecretRef> {
        let fields = self.mapping(node, path, "a secret reference {name, key}")?;
        let secret = fields.get("name").and_then(text).filter(|s| !s.is_empty());
        let Some(secret) = secret else {
            self.problem(
                &format!("{path}.name"),
                format!("metadata '{name}': secretKeyRef needs a name"),
            );
            return None;
        };
        let key = match fields.get("key") {
            None | Some(Yaml::Null) => String::new(),
            Some(k) => match text(k) {
                Some(k) => k,
                None => {
                    self.problem(
                        &format!("{path}.key"),
                        format!(
                            "expected the key in the secret (a string), found {}",
                            k.describe()
                        ),
                    );
                    return None;
                }
            },
        };
        Some(SecretRef {
            metadata_key: name.to_owned(),
            secret_key: if key.is_empty() { secret.clone() } else { key },
            secret_name: secret,
            store: None,
        })
    }

    /// `auth.secretStore`, `None` when absent or empty.
    fn secret_store(&mut self, auth: Option<&Yaml>, base: &str) -> Option<String> {
        let path = format!("{base}.auth");
        let fields = match auth {
            None | Some(Yaml::Null) => return None,
            Some(a) => self.mapping(a, &path, "auth {secretStore}")?,
        };
        match fields.get("secretStore") {
            None | Some(Yaml::Null) => None,
            Some(Yaml::Str(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
            Some(other) => {
                self.problem(
                    &format!("{path}.secretStore"),
                    format!(
                        "expected a secret store name (a string), found {}",
                        other.describe()
                    ),
                );
                None
            }
        }
    }
}

/// The entries of a mapping by key (the last of duplicated keys wins, as in Go; non-scalar
/// keys are left out). Empty for anything but a mapping.
struct Fields<'y> {
    entries: Vec<(String, &'y Yaml)>,
}

impl<'y> Fields<'y> {
    fn new(node: &'y Yaml) -> Self {
        let mut entries: Vec<(String, &'y Yaml)> = Vec::new();
        if let Yaml::Map(pairs) = node {
            for (key, value) in pairs {
                let Ok(key) = key_text(key) else { continue };
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => entries.push((key, value)),
                }
            }
        }
        Self { entries }
    }

    fn get(&self, key: &str) -> Option<&'y Yaml> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// A value for messages: `'text'`, a number as written, or what it is.
fn shown(node: Option<&Yaml>) -> String {
    match node {
        None | Some(Yaml::Null) => "nothing".to_owned(),
        Some(Yaml::Str(s)) => format!("'{s}'"),
        Some(v @ (Yaml::Bool(_) | Yaml::Int(_) | Yaml::Float(_))) => {
            go_json(v).unwrap_or_else(|_| v.describe().to_owned())
        }
        Some(v) => v.describe().to_owned(),
    }
}

/// A scalar as a string field of Dapr's Go structs reads it (numbers and booleans
/// stringified); `None` for null, lists and mappings.
fn text(node: &Yaml) -> Option<String> {
    match node {
        Yaml::Str(s) => Some(s.clone()),
        Yaml::Bool(_) | Yaml::Int(_) | Yaml::Float(_) => go_json(node).ok(),
        Yaml::Null | Yaml::Seq(_) | Yaml::Map(_) => None,
    }
}

/// A mapping key as `sigs.k8s.io/yaml` turns it into a JSON object key.
fn key_text(key: &Yaml) -> Result<String, String> {
    match key {
        Yaml::Null => Err("a null mapping key cannot be converted to JSON".to_owned()),
        Yaml::Seq(_) | Yaml::Map(_) => Err(format!(
            "mapping keys must be scalars, found {}",
            key.describe()
        )),
        other => text(other).ok_or_else(|| "unsupported mapping key".to_owned()),
    }
}

/// A metadata `value` as the string Dapr's runtime passes on: null as empty, strings as-is,
/// anything else as Go's `encoding/json` writes it.
fn go_value(node: &Yaml) -> Result<String, String> {
    match node {
        Yaml::Null => Ok(String::new()),
        Yaml::Str(s) => Ok(s.clone()),
        other => go_json(other),
    }
}

/// `node` as Go's `json.Marshal` writes the value `sigs.k8s.io/yaml` makes of it: compact,
/// mapping keys sorted (the last of duplicated keys wins), HTML characters escaped.
fn go_json(node: &Yaml) -> Result<String, String> {
    let mut out = String::new();
    write_go_json(node, &mut out)?;
    Ok(out)
}

fn write_go_json(node: &Yaml, out: &mut String) -> Result<(), String> {
    match node {
        Yaml::Null => out.push_str("null"),
        Yaml::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Yaml::Int(i) => out.push_str(&i.to_string()),
        Yaml::Float(f) => out.push_str(&go_float(*f)?),
        Yaml::Str(s) => go_json_string(s, out),
        Yaml::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out)?;
            }
            out.push(']');
        }
        Yaml::Map(pairs) => {
            let mut entries: Vec<(String, &Yaml)> = Vec::with_capacity(pairs.len());
            for (key, value) in pairs {
                let key = key_text(key)?;
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => entries.push((key, value)),
                }
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(key, out);
                out.push(':');
                write_go_json(value, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A float as Go's `encoding/json` writes a `float64`: the shortest round-trip digits, in
/// exponent form (`1e+21`, `1e-7`) below 1e-6 and from 1e21 on.
fn go_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "{} has no JSON form (Dapr's YAML-to-JSON conversion rejects it)",
            if f.is_nan() { ".nan" } else { ".inf" }
        ));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        return Ok(match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        });
    }
    Ok(format!("{f}"))
}

/// `s` quoted and escaped as Go's `encoding/json` does (HTML-safe: `<`, `>`, `&`, U+2028 and
/// U+2029 as `\u` escapes).
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One YAML value. Mappings keep every pair in document order, duplicates included. Integers
/// are kept within Go's range (`int64` and `uint64`); larger ones are floats, as Go reads them.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    /// What this value is, for messages: "a string", "a mapping", ...
    fn describe(&self) -> &'static str {
        match self {
            Yaml::Null => "null",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) | Yaml::Float(_) => "a number",
            Yaml::Str(_) => "a string",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value without custom tags")
    }

    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(deserializer)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v.into()))
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_i128<E>(self, v: i128) -> Result<Yaml, E> {
        let go_int = i64::try_from(v).is_ok() || u64::try_from(v).is_ok();
        Ok(if go_int {
            Yaml::Int(v)
        } else {
            Yaml::Float(v as f64)
        })
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u128<E>(self, v: u128) -> Result<Yaml, E> {
        Ok(match u64::try_from(v) {
            Ok(v) => Yaml::Int(v.into()),
            Err(_) => Yaml::Float(v as f64),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Yaml::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Yaml::Map(pairs))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Yaml, A::Error> {
        Err(de::Error::custom(
            "custom YAML tags (such as !foo) are not supported",
        ))
    }
}

#[cfg(test)]
#[path = "dapr_tests.rs"]
mod tests;
