//! Dapr's declarative `Subscription` resources, read from the resources path as daprd reads
//! them (docs.dapr.io "Declarative and programmatic subscription methods";
//! `dapr/dapr:pkg/apis/subscriptions/v1alpha1`, `v2alpha1`, `pkg/internal/loader/disk`).
//!
//! ```yaml
//! apiVersion: dapr.io/v2alpha1
//! kind: Subscription
//! metadata: {name: orders}
//! spec:
//!   pubsubname: pubsub
//!   topic: orders
//!   routes:
//!     rules:
//!     - {match: 'event.type == "widget"', path: /widgets}
//!     default: /orders
//!   metadata: {rawPayload: "false"}
//!   deadLetterTopic: poison
//!   bulkSubscribe: {enabled: true, maxMessagesCount: 100, maxAwaitDurationMs: 40}
//! scopes: [checkout]
//! ```
//!
//! `dapr.io/v1alpha1` has one `spec.route` instead of `spec.routes`; daprd turns it into the
//! default route, and so does this loader. As in daprd the rules keep their order and the
//! default route (v2) or route (v1) becomes a last rule without `match`; a rule without `match`
//! always matches. The `match` expressions are CEL over `event` (the CloudEvent); they are
//! compiled by the runtime, which refuses to start on one that does not parse.
//!
//! This module also names the resource kinds found in the resources path that nothing here
//! reads ([`resource_kind_warnings`]), so a resource is never ignored silently.

use std::path::Path;

use layotto_core::Metadata;
use serde_json::Value;

use crate::Problem;

/// The kinds read from the resources path: `Component` ([`crate::load_resources`]),
/// `Resiliency`, `HTTPEndpoint` and `Subscription`.
pub const RESOURCE_KINDS: [&str; 4] = ["Component", "Resiliency", "HTTPEndpoint", "Subscription"];

/// One routing rule: events for which CEL expression `match_` holds go to `path`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRule {
    /// The CEL expression over `event`; empty for a rule that always matches (the default
    /// route).
    pub match_: String,
    /// The app's route: an HTTP path (with a leading `/` for HTTP apps) or the gRPC `path`.
    pub path: String,
}

/// Dapr's `bulkSubscribe` settings of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkSubscribe {
    /// `enabled`: the app takes events in Dapr's bulk envelopes.
    pub enabled: bool,
    /// `maxMessagesCount`: the most events per envelope (0: the component's default).
    pub max_messages_count: u32,
    /// `maxAwaitDurationMs`: how long, in milliseconds, an envelope may wait to fill (0: the
    /// component's default).
    pub max_await_duration_ms: u32,
}

impl BulkSubscribe {
    /// `maxMessagesCount`, or Dapr's default 100 when not set.
    pub fn max_messages(&self) -> usize {
        match self.max_messages_count {
            0 => 100,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    /// `maxAwaitDurationMs`, or Dapr's default 1000 ms when not set.
    pub fn max_await(&self) -> std::time::Duration {
        match self.max_await_duration_ms {
            0 => std::time::Duration::from_millis(1000),
            n => std::time::Duration::from_millis(u64::from(n)),
        }
    }
}

/// A `Subscription` resource that applies to this app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeclaredSubscription {
    /// `metadata.name`.
    pub name: String,
    /// `spec.pubsubname`.
    pub pubsub_name: String,
    /// `spec.topic`.
    pub topic: String,
    /// `spec.metadata`: subscription metadata passed to the pub/sub (`rawPayload`,
    /// `consumerID`, ...).
    pub metadata: Metadata,
    /// The routing rules in order, the default route last (never empty).
    pub rules: Vec<RouteRule>,
    /// `spec.deadLetterTopic` (empty: none): where events the app failed, dropped or has no
    /// route for are published on the same pub/sub.
    pub dead_letter_topic: String,
    /// `spec.bulkSubscribe`.
    pub bulk: BulkSubscribe,
    /// The file it was read from.
    pub file: String,
}

/// Reads every `Subscription` resource under `dirs` (each directory's `.yaml`/`.yml` files in
/// name order) that applies to `app_id`: no `scopes`, or `scopes` naming it.
///
/// # Errors
/// Every problem at once: an `apiVersion` other than `dapr.io/v1alpha1` or `dapr.io/v2alpha1`,
/// a missing `metadata.name`, `spec.pubsubname` or `spec.topic`, no route at all (v1
/// `route`, v2 `routes.rules` or `routes.default`), a rule without a `path`, v1 fields in a v2
/// resource and back (`routes` in v1alpha1, `route` in v2alpha1), metadata values that are
/// not scalars, a `bulkSubscribe` count out of range, two subscriptions of one name.
pub fn load_subscriptions(
    dirs: &[impl AsRef<Path>],
    app_id: &str,
) -> Result<Vec<DeclaredSubscription>, Vec<Problem>> {
    crate::resiliency::gather(
        crate::resiliency::resource_files(dirs),
        |text, file, out, problems| {
            parse_into(text, file, app_id, out, problems);
        },
    )
}

/// [`load_subscriptions`] over one YAML text.
///
/// # Errors
/// As [`load_subscriptions`].
pub fn parse_subscriptions(
    text: &str,
    file: &str,
    app_id: &str,
) -> Result<Vec<DeclaredSubscription>, Vec<Problem>> {
    crate::resiliency::gather(
        [(file.to_owned(), text.to_owned())],
        |text, file, out, problems| {
            parse_into(text, file, app_id, out, problems);
        },
    )
}

/// One warning per document under `dirs` whose `kind` nothing reads from the resources path
/// (anything but [`RESOURCE_KINDS`], or no `kind` at all), naming the kind, file and document.
/// daprd skips such documents silently; a `Configuration` there is named as belonging to
/// `--config`.
pub fn resource_kind_warnings(dirs: &[impl AsRef<Path>]) -> Vec<Problem> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for (file, text) in crate::resiliency::resource_files(dirs) {
        for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
            // Syntax errors are the component loader's to report.
            let Ok(v) = Value::deserialize(doc) else {
                break;
            };
            if v.is_null() {
                continue;
            }
            let message = match v.get("kind").and_then(Value::as_str) {
                Some(k) if RESOURCE_KINDS.contains(&k) => continue,
                Some("Configuration") => "a Configuration in the resources path is ignored \
                                          (pass it with --config)"
                    .to_owned(),
                Some(k) => format!(
                    "resource kind '{k}' is not read from the resources path (only {}); \
                     document ignored",
                    RESOURCE_KINDS.join(", ")
                ),
                None => "document without a kind ignored".to_owned(),
            };
            out.push(Problem {
                file: file.clone(),
                path: format!("doc[{i}].kind"),
                message,
            });
        }
    }
    out
}

fn parse_into(
    text: &str,
    file: &str,
    app_id: &str,
    out: &mut Vec<DeclaredSubscription>,
    problems: &mut Vec<Problem>,
) {
    use serde::Deserialize as _;
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        // Syntax errors are the component loader's to report.
        let Ok(v) = Value::deserialize(doc) else {
            return;
        };
        let mut r = Reader {
            file,
            base: format!("doc[{i}]"),
            problems,
        };
        let Some(s) = r.document(&v, app_id) else {
            continue;
        };
        if let Some(first) = out.iter().find(|o| o.name == s.name) {
            let message = format!(
                "Subscription '{}' is defined twice (first in {})",
                s.name, first.file
            );
            r.problem("metadata.name", message);
        } else {
            out.push(s);
        }
    }
}

struct Reader<'a> {
    file: &'a str,
    base: String,
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            path: format!("{}.{path}", self.base),
            message: message.into(),
        });
    }

    /// A required non-empty string at `ptr` (JSON pointer), reported at `path`.
    fn required(&mut self, v: &Value, ptr: &str, path: &str) -> Option<String> {
        match v.pointer(ptr) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            None | Some(Value::Null) => {
                self.problem(path, "missing");
                None
            }
            Some(other) => {
                self.problem(path, format!("expected a non-empty string, got {other}"));
                None
            }
        }
    }

    /// An optional string at `ptr` (empty when absent).
    fn optional(&mut self, v: &Value, ptr: &str, path: &str) -> String {
        match v.pointer(ptr) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                self.problem(path, format!("expected a string, got {other}"));
                String::new()
            }
        }
    }

    fn document(&mut self, doc: &Value, app_id: &str) -> Option<DeclaredSubscription> {
        if doc.get("kind").and_then(Value::as_str) != Some("Subscription") {
            return None;
        }
        if let Some(scopes) = doc.get("scopes").and_then(Value::as_array)
            && !scopes.is_empty()
            && !scopes.iter().any(|s| s.as_str() == Some(app_id))
        {
            return None;
        }
        let start = self.problems.len();
        let v2 = match doc.get("apiVersion").and_then(Value::as_str) {
            Some("dapr.io/v2alpha1") => true,
            Some("dapr.io/v1alpha1") => false,
            other => {
                self.problem(
                    "apiVersion",
                    format!(
                        "apiVersion must be 'dapr.io/v1alpha1' or 'dapr.io/v2alpha1' for a \
                         Subscription, got {}",
                        other.map_or_else(|| "none".to_owned(), |o| format!("'{o}'"))
                    ),
                );
                return None;
            }
        };
        let name = self.required(doc, "/metadata/name", "metadata.name");
        let pubsub_name = self.required(doc, "/spec/pubsubname", "spec.pubsubname");
        let topic = self.required(doc, "/spec/topic", "spec.topic");
        let mut rules = Vec::new();
        if v2 {
            if doc.pointer("/spec/route").is_some() {
                self.problem(
                    "spec.route",
                    "dapr.io/v2alpha1 has no 'route': use routes.default (or apiVersion \
                     dapr.io/v1alpha1)",
                );
            }
            match doc.pointer("/spec/routes/rules") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for (j, item) in items.iter().enumerate() {
                        let at = format!("spec.routes.rules[{j}]");
                        let match_ = self.optional(item, "/match", &format!("{at}.match"));
                        let path = self.required(item, "/path", &format!("{at}.path"));
                        rules.push(RouteRule {
                            match_: match_.trim().to_owned(),
                            path: path.unwrap_or_default(),
                        });
                    }
                }
                Some(other) => self.problem(
                    "spec.routes.rules",
                    format!("expected a list of {{match, path}}, got {other}"),
                ),
            }
            let default = self.optional(doc, "/spec/routes/default", "spec.routes.default");
            if !default.is_empty() {
                rules.push(RouteRule {
                    match_: String::new(),
                    path: default,
                });
            }
        } else {
            if doc.pointer("/spec/routes").is_some() {
                self.problem(
                    "spec.routes",
                    "dapr.io/v1alpha1 has no 'routes': use route (or apiVersion \
                     dapr.io/v2alpha1)",
                );
            }
            let route = self.optional(doc, "/spec/route", "spec.route");
            if !route.is_empty() {
                rules.push(RouteRule {
                    match_: String::new(),
                    path: route,
                });
            }
        }
        if rules.is_empty() && self.problems.len() == start {
            self.problem(
                "spec",
                if v2 {
                    "no route: give routes.rules or routes.default"
                } else {
                    "no route: give spec.route"
                },
            );
        }
        let metadata = self.metadata(doc.pointer("/spec/metadata"));
        let dead_letter_topic = self.optional(doc, "/spec/deadLetterTopic", "spec.deadLetterTopic");
        let bulk = self.bulk(doc.pointer("/spec/bulkSubscribe"));
        if self.problems.len() != start {
            return None;
        }
        Some(DeclaredSubscription {
            name: name?,
            pubsub_name: pubsub_name?,
            topic: topic?,
            metadata,
            rules,
            dead_letter_topic,
            bulk,
            file: self.file.to_owned(),
        })
    }

    /// `spec.metadata`: a mapping of strings (numbers and booleans are taken as their text).
    fn metadata(&mut self, v: Option<&Value>) -> Metadata {
        let mut out = Metadata::new();
        match v {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        Value::Bool(_) | Value::Number(_) => {
                            out.insert(k.clone(), v.to_string());
                        }
                        other => self.problem(
                            &format!("spec.metadata.{k}"),
                            format!("expected a string, got {other}"),
                        ),
                    }
                }
            }
            Some(other) => self.problem(
                "spec.metadata",
                format!("expected a mapping of strings, got {other}"),
            ),
        }
        out
    }

    fn bulk(&mut self, v: Option<&Value>) -> BulkSubscribe {
        let mut b = BulkSubscribe::default();
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return b;
        };
        if !v.is_object() {
            self.problem("spec.bulkSubscribe", format!("expected a mapping, got {v}"));
            return b;
        }
        match v.get("enabled") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(e)) => b.enabled = *e,
            Some(other) => self.problem(
                "spec.bulkSubscribe.enabled",
                format!("expected true or false, got {other}"),
            ),
        }
        for (key, slot) in [
            ("maxMessagesCount", &mut b.max_messages_count),
            ("maxAwaitDurationMs", &mut b.max_await_duration_ms),
        ] {
            match v.get(key) {
                None | Some(Value::Null) => {}
                Some(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if i32::try_from(n).is_ok() => *slot = n,
                    _ => self.problems.push(Problem {
                        file: self.file.to_owned(),
                        path: format!("{}.spec.bulkSubscribe.{key}", self.base),
                        message: format!("expected a count from 0 to 2147483647, got {n}"),
                    }),
                },
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &str = r#"
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders}
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: 'event.type == "widget"'
      path: /widgets
    - {match: "", path: /always}
    default: /orders
  metadata: {rawPayload: true, consumerID: group-a}
  deadLetterTopic: poison
  bulkSubscribe: {enabled: true, maxMessagesCount: 100, maxAwaitDurationMs: 40}
scopes: [app1]
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: items
spec:
  pubsubname: pubsub
  topic: items
  route: /items
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: elsewhere}
spec: {pubsubname: pubsub, topic: t, route: /t}
scopes: [app2]
"#;

    #[test]
    fn reads_v1_and_v2_with_the_default_route_last_and_honours_scopes() {
        let subs = parse_subscriptions(BOTH, "s.yaml", "app1").expect("valid");
        assert_eq!(subs.len(), 2, "app2's subscription is out of scope");
        let v2 = &subs[0];
        assert_eq!(
            (v2.pubsub_name.as_str(), v2.topic.as_str()),
            ("pubsub", "orders")
        );
        let rules: Vec<_> = v2
            .rules
            .iter()
            .map(|r| (r.match_.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                (r#"event.type == "widget""#, "/widgets"),
                ("", "/always"),
                ("", "/orders")
            ]
        );
        assert_eq!(v2.metadata["rawPayload"], "true");
        assert_eq!(v2.metadata["consumerID"], "group-a");
        assert_eq!(v2.dead_letter_topic, "poison");
        assert_eq!(
            v2.bulk,
            BulkSubscribe {
                enabled: true,
                max_messages_count: 100,
                max_await_duration_ms: 40
            }
        );
        assert_eq!(
            subs[1].rules,
            [RouteRule {
                match_: String::new(),
                path: "/items".into()
            }]
        );
        assert_eq!(subs[1].dead_letter_topic, "");
        let other = parse_subscriptions(BOTH, "s.yaml", "app2").expect("valid");
        assert_eq!(
            other.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["items", "elsewhere"]
        );
    }

    #[test]
    fn every_problem_is_named_at_its_place() {
        let text = r#"
apiVersion: dapr.io/v3
kind: Subscription
metadata: {name: a}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: b}
spec:
  pubsubname: ""
  route: /old
  routes:
    rules: [{match: "true"}]
  metadata: {nested: {a: 1}}
  bulkSubscribe: {enabled: "yes", maxMessagesCount: -1}
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: c}
spec: {pubsubname: p, topic: t}
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: d}
spec: {pubsubname: p, topic: t, route: /t}
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: d}
spec: {pubsubname: p, topic: u, route: /u}
"#;
        let problems = parse_subscriptions(text, "bad.yaml", "app").expect_err("invalid");
        let at: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            at,
            [
                "doc[0].apiVersion",
                "doc[1].spec.pubsubname",
                "doc[1].spec.topic",
                "doc[1].spec.route",
                "doc[1].spec.routes.rules[0].path",
                "doc[1].spec.metadata.nested",
                "doc[1].spec.bulkSubscribe.enabled",
                "doc[1].spec.bulkSubscribe.maxMessagesCount",
                "doc[2].spec",
                "doc[4].metadata.name",
            ],
            "{problems:#?}"
        );
        assert!(problems.iter().all(|p| p.file == "bad.yaml"));
        assert!(
            problems[9].message.contains("defined twice"),
            "{}",
            problems[9].message
        );
    }

    #[test]
    fn kinds_nothing_reads_are_named() {
        let dir = std::env::temp_dir().join(format!("kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("a.yaml"),
            "kind: Component\n---\nkind: Configuration\n---\nkind: Actor\n---\nfoo: 1\n---\n\
             kind: Subscription\n---\nkind: Resiliency\n---\nkind: HTTPEndpoint\n",
        )
        .expect("write");
        let w = resource_kind_warnings(&[&dir]);
        std::fs::remove_dir_all(&dir).ok();
        let got: Vec<_> = w
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "doc[1].kind");
        assert!(got[0].1.contains("--config"), "{}", got[0].1);
        assert_eq!(got[1].0, "doc[2].kind");
        assert!(got[1].1.contains("'Actor'"), "{}", got[1].1);
        assert_eq!(got[2], ("doc[3].kind", "document without a kind ignored"));
    }
}
