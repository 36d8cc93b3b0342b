use std::path::PathBuf;

use super::*;
use crate::{AppConfig, Config, ListenAddr};

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

/// A one-document component file of `type_` named `name` with `rest` appended (indented
/// as top-level keys).
fn component(name: &str, type_: &str, rest: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: \
         {type_}\n{rest}"
    )
}

/// The entries of `text`, failing on any problem.
fn ok(text: &str) -> Vec<ComponentEntry> {
    let (entries, problems) = parse_resources(text, "t.yaml", "app");
    assert!(problems.is_empty(), "unexpected problems: {problems:#?}");
    entries
}

/// The problems of `text` as `path: message`, failing when a component still loaded.
fn problems(text: &str) -> Vec<String> {
    let (entries, problems) = parse_resources(text, "t.yaml", "app");
    assert!(entries.is_empty(), "unexpected entries: {entries:#?}");
    assert!(!problems.is_empty(), "expected problems");
    assert!(problems.iter().all(|p| p.file == "t.yaml"), "{problems:#?}");
    problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

fn has(found: &[String], needle: &str) {
    assert!(
        found.iter().any(|p| p.contains(needle)),
        "no problem containing {needle:?} in {found:#?}"
    );
}

/// The metadata value written as `value` in YAML.
fn value_of(yaml_value: &str) -> String {
    let text = component(
        "s",
        "state.in-memory",
        &format!("  metadata:\n  - name: v\n    value: {yaml_value}\n"),
    );
    let entries = ok(&text);
    entries[0]
        .spec
        .metadata
        .get("v")
        .cloned()
        .unwrap_or_else(|| panic!("no value for {yaml_value}"))
}

/// A fresh empty directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("layotto-dapr-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

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
    assert_eq!(state.spec.name, "statestore");
    assert_eq!(state.origin, Origin::Dapr);
    assert_eq!(state.file, "c.yaml");
    assert_eq!(state.path, "doc[0]");
    assert_eq!(state.spec.get("redisHost"), Some("localhost:6379"));
    assert_eq!(state.spec.get("db"), Some("2"));
    assert_eq!(state.spec.get("enableTLS"), Some("false"));
    assert_eq!(state.spec.get("redisPassword"), None);
    assert_eq!(
        state.spec.metadata.len(),
        3,
        "secret refs stay out of metadata"
    );
    assert_eq!(state.secret_store.as_deref(), Some("localsecrets"));
    assert_eq!(
        state.secret_refs,
        vec![
            SecretRef {
                metadata_key: "redisPassword".into(),
                secret_name: "redis-secret".into(),
                secret_key: "password".into(),
                store: None,
            },
            SecretRef {
                metadata_key: "token".into(),
                secret_name: "token".into(),
                secret_key: "token".into(),
                store: None,
            },
        ]
    );
    let secrets = &entries[1];
    assert_eq!(
        (secrets.kind, secrets.spec.type_.as_str()),
        (Kind::Secret, "local.file")
    );
    assert_eq!(secrets.path, "doc[2]");
    assert!(secrets.secret_refs.is_empty() && secrets.secret_store.is_none());
    // In scope when the app id is listed.
    let (entries, _) = parse_resources(GOOD, "c.yaml", "other");
    assert!(entries.iter().any(|e| e.spec.name == "other-app-only"));
}

#[test]
fn every_block_prefix_selects_its_kind() {
    for (type_, kind, rest) in [
        ("state.in-memory", Kind::State, "in-memory"),
        ("state.redis", Kind::State, "redis"),
        ("pubsub.redis", Kind::PubSub, "redis"),
        ("lock.redis", Kind::Lock, "redis"),
        ("configuration.redis", Kind::Configuration, "redis"),
        ("secretstores.local.file", Kind::Secret, "local.file"),
        ("secretstores.local.env", Kind::Secret, "local.env"),
        ("bindings.http", Kind::Binding, "http"),
        ("sequencer.redis", Kind::Sequencer, "redis"),
        ("file.local", Kind::File, "local"),
    ] {
        let entries = ok(&component("c", type_, ""));
        assert_eq!(entries.len(), 1, "{type_}");
        assert_eq!(
            (entries[0].kind, entries[0].spec.type_.as_str()),
            (kind, rest),
            "{type_}"
        );
        assert!(entries[0].spec.metadata.is_empty());
    }
}

#[test]
fn unsupported_types_name_the_type_and_the_blocks() {
    for type_ in [
        "workflow.dapr",
        "conversation.openai",
        "nameresolution.mdns",
        "middleware.http.oauth2",
        "crypto.dapr.jwks",
        "State.redis",
    ] {
        let found = problems(&component("c", type_, ""));
        assert_eq!(found.len(), 1, "{found:#?}");
        has(
            &found,
            &format!("doc[0].spec.type: spec.type '{type_}' is not supported"),
        );
        has(
            &found,
            "state, pubsub, lock, configuration, secretstores, bindings, sequencer, file",
        );
    }
    has(
        &problems(&component("c", "redis", "")),
        "expected '<block>.<type>' such as 'state.redis'",
    );
    has(
        &problems(&component("c", "state.", "")),
        "spec.type 'state.' names no component type after 'state.'",
    );
    has(
        &problems(&component("c", "''", "")),
        "doc[0].spec.type: spec.type is required",
    );
    has(
        &problems(&component("c", "[state, redis]", "")),
        "doc[0].spec.type: expected the component type (a string such as 'state.redis'), found a list",
    );
    let no_spec = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n";
    has(
        &problems(no_spec),
        "doc[0].spec.type: spec.type is required",
    );
    has(
        &problems(&format!("{no_spec}spec: [1]\n")),
        "doc[0].spec: expected the component spec (a mapping), found a list",
    );
}

#[test]
fn values_are_stringified_as_dapr_does() {
    for (yaml, expected) in [
        ("6379", "6379"),
        ("-12", "-12"),
        ("0x1F", "31"),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("99999999999999999999", "100000000000000000000"),
        ("1e400", "1e400"),
        ("true", "true"),
        ("false", "false"),
        ("1.50", "1.5"),
        ("6379.0", "6379"),
        ("1e3", "1000"),
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("0.000001", "0.000001"),
        ("0.0000001", "1e-7"),
        ("-2.5e-10", "-2.5e-10"),
        ("~", ""),
        ("null", ""),
        ("", ""),
        ("''", ""),
        ("'6379'", "6379"),
        ("\"a\\tb\"", "a\tb"),
        ("plain text, no", "plain text, no"),
        ("a<b&c", "a<b&c"),
        // YAML 1.2: these stay strings (Go's YAML 1.1 reader would not keep them).
        ("yes", "yes"),
        ("017", "017"),
        ("1_000", "1_000"),
        // Mappings and lists are compact JSON, keys sorted, HTML escaped, as Go writes them.
        (
            "{b: 1, a: [x, 2.0, null, true]}",
            r#"{"a":["x",2,null,true],"b":1}"#,
        ),
        ("[{k: '<&>'}, {}]", r#"[{"k":"\u003c\u0026\u003e"},{}]"#),
        (
            "{1: one, true: t, k: {z: 1, y: 2}}",
            r#"{"1":"one","k":{"y":2,"z":1},"true":"t"}"#,
        ),
        ("{a: 1, a: 2}", r#"{"a":2}"#),
        ("[\"q\\\"\\\\\\n\\u0001\"]", r#"["q\"\\\n\u0001"]"#),
        ("|\n      line1\n      line2", "line1\nline2\n"),
        ("&anchor 5", "5"),
    ] {
        assert_eq!(value_of(yaml), expected, "value: {yaml}");
    }
}

#[test]
fn values_without_a_json_form_are_problems() {
    for v in [".inf", "-.inf", ".nan", "[1, .nan]", "{~: 1}", "{[1]: 2}"] {
        let text = component(
            "s",
            "state.in-memory",
            &format!("  metadata:\n  - name: v\n    value: {v}\n"),
        );
        has(
            &problems(&text),
            "doc[0].spec.metadata[0].value: metadata 'v': ",
        );
    }
}

#[test]
fn multi_document_files_skip_other_kinds_and_empty_documents() {
    let text = format!(
        "---\n# only a comment\n---\n{}\n---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\n\
         metadata: {{name: sub}}\nspec: {{topic: t, route: /r, pubsubname: p}}\n---\n\
         apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {{name: cfg}}\n---\n\
         apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {{name: r}}\n---\n\
         apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {{name: h}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: unrelated}}\n---\n\
         metadata: {{name: no-kind}}\n---\n{}---\n",
        component("first", "state.in-memory", ""),
        component("last", "lock.in-memory", ""),
    );
    let entries = ok(&text);
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.spec.name.as_str(), e.path.as_str()))
        .collect();
    assert_eq!(got, vec![("first", "doc[1]"), ("last", "doc[8]")]);
    assert!(ok("").is_empty());
    assert!(ok("# nothing\n").is_empty());
    assert!(ok("---\n---\n").is_empty());
}

#[test]
fn documents_that_are_not_mappings_are_problems() {
    has(
        &problems("- a\n- b\n"),
        "doc[0]: expected a resource (a mapping with apiVersion, kind, metadata and spec), found a list",
    );
    let text = format!("{}---\njust text\n", component("c", "state.in-memory", ""));
    let (entries, found) = parse_resources(&text, "t.yaml", "app");
    assert_eq!(entries.len(), 1, "the valid document still loads");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "doc[1]");
    assert!(
        found[0].message.starts_with("expected a resource"),
        "{}",
        found[0]
    );
}

#[test]
fn scopes_select_the_apps_that_load_a_component() {
    let scoped = |scopes: &str| component("c", "state.in-memory", &format!("scopes: {scopes}\n"));
    let load = |text: &str, app: &str| parse_resources(text, "t.yaml", app);
    assert_eq!(load(&scoped("[app, other]"), "app").0.len(), 1);
    assert_eq!(
        load(&scoped("[]"), "app").0.len(),
        1,
        "empty scopes: every app"
    );
    assert_eq!(load(&scoped("~"), "app").0.len(), 1);
    let (entries, found) = load(&scoped("[other]"), "app");
    assert!(
        entries.is_empty() && found.is_empty(),
        "skipped, not a problem"
    );
    let (entries, found) = load(&scoped("[other]"), "");
    assert!(
        entries.is_empty() && found.is_empty(),
        "no app id: scoped ones are skipped"
    );
    // Out of scope: not checked at all, and not counted as a duplicate.
    let text = format!(
        "{}\nscopes: [other]\n---\n{}",
        component("c", "workflow.x", "  version: v9"),
        component("c", "state.in-memory", "")
    );
    let (entries, found) = load(&text, "app");
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, "doc[1]");
    // Scopes that are not a list of strings.
    has(
        &problems(&scoped("app")),
        "doc[0].scopes: expected a list of app ids, found a string",
    );
    has(
        &problems(&scoped("[app, {x: 1}]")),
        "doc[0].scopes[1]: expected an app id (a string), found a mapping",
    );
}

#[test]
fn secret_refs_and_the_secret_store() {
    let meta = "  metadata:\n  - name: password\n    secretKeyRef: {name: redis, key: pw}\n  - \
                name: token\n    secretKeyRef: {name: tok, key: ''}\n";
    let entries = ok(&component(
        "c",
        "state.redis",
        &format!("{meta}auth:\n  secretStore: vault\n"),
    ));
    assert_eq!(entries[0].secret_store.as_deref(), Some("vault"));
    assert_eq!(
        entries[0].secret_refs,
        vec![
            SecretRef {
                metadata_key: "password".into(),
                secret_name: "redis".into(),
                secret_key: "pw".into(),
                store: None,
            },
            SecretRef {
                metadata_key: "token".into(),
                secret_name: "tok".into(),
                secret_key: "tok".into(),
                store: None,
            },
        ]
    );
    assert!(entries[0].spec.metadata.is_empty());
    for auth in ["", "auth: {}\n", "auth: {secretStore: ''}\n"] {
        has(
            &problems(&component("c", "state.redis", &format!("{meta}{auth}"))),
            "doc[0].auth.secretStore: metadata 'password' uses secretKeyRef but the component \
             names no secret store (auth.secretStore)",
        );
    }
    // auth without secret refs is fine; an empty store is none.
    let entries = ok(&component("c", "state.redis", "auth: {secretStore: ''}\n"));
    assert_eq!(entries[0].secret_store, None);
    has(
        &problems(&component("c", "state.redis", "auth: vault\n")),
        "doc[0].auth: expected auth {secretStore} (a mapping), found a string",
    );
    has(
        &problems(&component("c", "state.redis", "auth: {secretStore: [a]}\n")),
        "doc[0].auth.secretStore: expected a secret store name (a string), found a list",
    );
    let item = |r: &str| {
        component(
            "c",
            "state.redis",
            &format!("  metadata:\n  - name: p\n    secretKeyRef: {r}\nauth: {{secretStore: s}}\n"),
        )
    };
    has(
        &problems(&item("{key: k}")),
        "doc[0].spec.metadata[0].secretKeyRef.name: metadata 'p': secretKeyRef needs a name",
    );
    has(&problems(&item("{name: ''}")), "secretKeyRef needs a name");
    has(
        &problems(&item("redis")),
        "doc[0].spec.metadata[0].secretKeyRef: expected a secret reference {name, key} (a mapping), found a string",
    );
    has(
        &problems(&item("{name: n, key: [k]}")),
        "doc[0].spec.metadata[0].secretKeyRef.key: expected the key in the secret",
    );
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
  - name: e
    envRef: HOME
  - plain
"#;
    let (entries, problems) = parse_resources(bad, "bad.yaml", "app");
    assert!(entries.is_empty());
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for needle in [
        "doc[0].apiVersion: apiVersion must be 'dapr.io/v1alpha1' for a Component, got 'dapr.io/v1'",
        "doc[0].metadata.name: metadata.name is required",
        "doc[0].spec.type: spec.type 'workflow.dapr' is not supported",
        "doc[0].spec.metadata[0].name: metadata item needs a name",
        "doc[0].spec.metadata[1]: metadata 'a' has neither value nor secretKeyRef",
        "doc[0].spec.metadata[2]: metadata 'b' has both value and secretKeyRef",
        "doc[0].spec.metadata[4].name: metadata 'c' is given twice (first at \
         doc[0].spec.metadata[3])",
        "doc[0].spec.metadata[5].secretKeyRef.name: metadata 'd': secretKeyRef needs a name",
        "doc[0].spec.metadata[6].envRef: metadata 'e': envRef is not supported",
        "doc[0].spec.metadata[7]: expected a metadata item {name, value} (a mapping), found a \
         string",
    ] {
        assert!(
            text.iter()
                .any(|t| t.starts_with("bad.yaml: ") && t.contains(needle)),
            "missing '{needle}' in {text:#?}"
        );
    }
    // `version: v2` is the component's to accept or refuse, when it is built.
    assert_eq!(problems.len(), 10, "{text:#?}");
}

#[test]
fn api_version_is_checked_for_components_only() {
    let wrong = component("c", "state.in-memory", "").replace("dapr.io/v1alpha1", "dapr.io/v2");
    has(
        &problems(&wrong),
        "doc[0].apiVersion: apiVersion must be 'dapr.io/v1alpha1' for a Component, got 'dapr.io/v2'",
    );
    let missing =
        component("c", "state.in-memory", "").replace("apiVersion: dapr.io/v1alpha1\n", "");
    has(&problems(&missing), "got nothing");
    // Other kinds keep their own versions.
    assert!(
        ok("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n").is_empty()
    );
}

#[test]
fn names_are_required_and_valid_path_segments() {
    let no_metadata = "apiVersion: dapr.io/v1alpha1\nkind: Component\nspec: {type: state.redis}\n";
    has(
        &problems(no_metadata),
        "doc[0].metadata.name: metadata.name is required",
    );
    has(
        &problems(&no_metadata.replace("spec:", "metadata: {}\nspec:")),
        "doc[0].metadata.name: metadata.name is required",
    );
    has(
        &problems(&no_metadata.replace("spec:", "metadata: [x]\nspec:")),
        "doc[0].metadata: expected the resource metadata (a mapping), found a list",
    );
    has(
        &problems(&component("'  '", "state.redis", "")),
        "metadata.name is required",
    );
    has(
        &problems(&component("[a]", "state.redis", "")),
        "doc[0].metadata.name: expected the component name (a string), found a list",
    );
    for bad in ["a/b", "'..'", "'.'", "a%2F"] {
        has(
            &problems(&component(bad, "state.redis", "")),
            "doc[0].metadata.name: invalid component name",
        );
    }
    // A number is a name, as Go's YAML-to-struct conversion makes it one.
    assert_eq!(ok(&component("123", "state.redis", ""))[0].spec.name, "123");
    assert_eq!(
        ok(&component("my.store-1", "state.redis", ""))[0].spec.name,
        "my.store-1"
    );
}

#[test]
fn optional_spec_fields_are_tolerated() {
    let entries = ok(&component(
        "c",
        "state.redis",
        "  version: ''\n  initTimeout: 5m\n  ignoreErrors: true\n  metadata: ~\n\
         status: {anything: 1}\n",
    ));
    assert_eq!(entries.len(), 1);
    let with_namespace = component("c", "state.redis", "").replace(
        "  name: c\n",
        "  name: c\n  namespace: default\n  labels: {a: b}\n",
    );
    assert_eq!(ok(&with_namespace).len(), 1);
    has(
        &problems(&component("c", "state.redis", "  version: 2\n")),
        "doc[0].spec.version: spec.version must be a version such as 'v1', got 2",
    );
    let v2 = ok(&component(
        "c",
        "state.etcd",
        "  version: v2
",
    ));
    assert_eq!(v2[0].spec.version, "v2");
    has(
        &problems(&component("c", "state.redis", "  metadata: {a: b}\n")),
        "doc[0].spec.metadata: spec.metadata must be a list of {name, value} items, found a mapping",
    );
}

#[test]
fn duplicated_keys_are_problems() {
    let text = component("c", "state.redis", "  type: state.in-memory\n");
    has(
        &problems(&text),
        "doc[0].spec.type: duplicate key 'type'; only the last one would take effect",
    );
    let text = component(
        "c",
        "state.redis",
        "  metadata:\n  - name: a\n    value: 1\n    value: 2\n",
    );
    has(
        &problems(&text),
        "doc[0].spec.metadata[0].value: duplicate key 'value'",
    );
}

#[test]
fn malformed_yaml_is_one_problem_at_line_and_column() {
    let (entries, problems) = parse_resources("a: [1, 2\nb: {", "broken.yaml", "app");
    assert!(entries.is_empty());
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
    // A later document's error: the position is in the file, the file loads nothing.
    let text = format!(
        "{}---\nb: [\n---\nc: 3\n",
        component("c", "state.redis", "")
    );
    let (entries, problems) = parse_resources(&text, "later.yaml", "app");
    assert!(entries.is_empty());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].file, "later.yaml");
    assert_eq!(problems[0].path, "9:1");
    assert!(!problems[0].message.contains("line 9"), "{}", problems[0]);
    let (_, problems) = parse_resources("a: b: c\n", "t.yaml", "app");
    assert_eq!(problems[0].path, "1:5");
    assert_eq!(
        problems[0].message,
        "malformed YAML: mapping values are not allowed in this context"
    );
    let (_, problems) = parse_resources("a: !custom x\n", "t.yaml", "app");
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].message.contains("custom YAML tags"),
        "{}",
        problems[0]
    );
}

#[test]
fn duplicates_within_one_file_are_problems() {
    let text = format!(
        "{}---\n{}---\n{}",
        component("c", "state.redis", ""),
        component("c", "lock.redis", ""),
        component("c", "state.in-memory", "")
    );
    let (entries, problems) = parse_resources(&text, "t.yaml", "app");
    assert_eq!(entries.len(), 2, "same name, other kind is fine");
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "t.yaml: doc[2]: state component 'c' is already defined in t.yaml at doc[0]"
    );
}

#[test]
fn directory_loading_sorts_files_and_rejects_duplicates() {
    let dir = temp_dir("sorted");
    let one = component("s", "state.in-memory", "");
    std::fs::write(dir.join("b.yaml"), &one).expect("write");
    std::fs::write(dir.join("a.yml"), &one).expect("write");
    std::fs::write(dir.join("C.YAML"), component("c", "pubsub.in-memory", "")).expect("write");
    std::fs::write(dir.join("notes.txt"), "not yaml").expect("write");
    std::fs::write(dir.join("broken.json"), "{").expect("write");
    std::fs::create_dir(dir.join("sub.yaml")).expect("subdir");
    std::fs::write(
        dir.join("sub.yaml").join("x.yaml"),
        component("x", "state.in-memory", ""),
    )
    .expect("write");
    let (entries, problems) = load_resources(&dir, "app");
    let files: Vec<String> = entries
        .iter()
        .map(|e| {
            Path::new(&e.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        files,
        vec!["C.YAML", "a.yml"],
        "sorted by name, not recursive"
    );
    assert!(entries.iter().all(|e| e.origin == Origin::Dapr));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let a = dir.join("a.yml").display().to_string();
    let b = dir.join("b.yaml").display().to_string();
    assert_eq!(problems[0].file, b);
    assert_eq!(problems[0].path, "doc[0]");
    assert_eq!(
        problems[0].message,
        format!("state component 's' is already defined in {a} at doc[0]")
    );
    let _ = std::fs::remove_dir_all(&dir);
    let (e, p) = load_resources(&dir, "app");
    assert!(e.is_empty());
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].file, dir.display().to_string());
    assert_eq!(p[0].path, "$");
    assert!(
        p[0].message
            .starts_with("cannot read resources directory: "),
        "{}",
        p[0]
    );
}

#[test]
fn directory_problems_come_from_every_file() {
    let dir = temp_dir("problems");
    std::fs::write(dir.join("a.yaml"), "a: [\n").expect("write");
    std::fs::write(dir.join("b.yaml"), component("b", "crypto.x", "")).expect("write");
    std::fs::write(dir.join("c.yaml"), component("c", "state.redis", "")).expect("write");
    let (entries, problems) = load_resources(&dir, "app");
    assert_eq!(entries.len(), 1);
    let at: Vec<(String, String)> = problems
        .iter()
        .map(|p| {
            (
                Path::new(&p.file)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                p.path.clone(),
            )
        })
        .collect();
    assert_eq!(
        at,
        vec![
            ("a.yaml".to_owned(), "2:1".to_owned()),
            ("b.yaml".to_owned(), "doc[0].spec.type".to_owned())
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);

    let empty = temp_dir("empty");
    std::fs::write(empty.join("readme.md"), "# no yaml").expect("write");
    assert_eq!(load_resources(&empty, "app"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&empty);
}

fn base_config() -> Config {
    Config {
        source: "base.json".to_owned(),
        grpc: ListenAddr::Tcp("127.0.0.1:50001".parse().expect("addr")),
        actuator: None,
        app: AppConfig::default(),
        components: Vec::new(),
        ..Config::default()
    }
}

#[test]
fn merged_components_keep_the_order_and_reject_taken_names() {
    let mut config = crate::standalone().expect("standalone");
    let layotto_state = config
        .of_kind(Kind::State)
        .next()
        .expect("a state store")
        .clone();
    let text = format!(
        "{}---\n{}---\n{}",
        component("zz", "state.redis", ""),
        component(&layotto_state.spec.name, "state.redis", ""),
        component("aa", "bindings.http", "")
    );
    let (entries, found) = parse_resources(&text, "dapr.yaml", "app");
    assert!(found.is_empty(), "{found:#?}");
    let problems = config.merge_components(entries);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].file, "dapr.yaml");
    assert_eq!(problems[0].path, "doc[1]");
    assert!(
        problems[0].message.contains(&layotto_state.file)
            && problems[0].message.contains(&layotto_state.path),
        "{}",
        problems[0]
    );
    let order: Vec<(Kind, &str)> = config
        .components
        .iter()
        .map(|e| (e.kind, e.spec.name.as_str()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by_key(|(k, n)| (Kind::ALL.iter().position(|x| x == k), *n));
    assert_eq!(order, sorted);
    assert!(order.contains(&(Kind::State, "zz")) && order.contains(&(Kind::Binding, "aa")));
    let kept = config
        .of_kind(Kind::State)
        .find(|e| e.spec.name == layotto_state.spec.name)
        .expect("kept");
    assert_eq!(kept.origin, Origin::Layotto, "the first definition wins");
}

#[test]
fn a_dapr_only_config_reports_checks_at_the_resource_file() {
    let mut config = base_config();
    let (entries, found) = parse_resources(
        &format!(
            "{}---\n{}",
            component("s", "state.nope", ""),
            component("p", "pubsub.in-memory", "")
        ),
        "res/components.yaml",
        "app",
    );
    assert!(found.is_empty());
    assert!(config.merge_components(entries).is_empty());
    let problems = config
        .check_components(|e| {
            if e.spec.type_ == "nope" {
                Err(format!("unknown {} type '{}'", e.kind, e.spec.type_))
            } else {
                Ok(())
            }
        })
        .expect_err("one failure");
    assert_eq!(
        problems.to_string(),
        "res/components.yaml: doc[0]: unknown state type 'nope'"
    );
}
