//! Dapr's `Configuration` resource (`apiVersion: dapr.io/v1alpha1`, `kind: Configuration`), as
//! daprd reads it from `--config FILE` (docs.dapr.io "Configuration overview";
//! `dapr/dapr:pkg/config/configuration.go`).
//!
//! Read here: `spec.metrics` (also spelt `spec.metric`; `enabled`, `rules`,
//! `http.increasedCardinality`, `http.pathMatching`, `http.excludeVerbs`,
//! `latencyDistributionBuckets`), `spec.logging.apiLogging.enabled`, `spec.tracing`
//! (`samplingRate`, absent: daprd's 0.0001; `otel`, whose `isSecure` defaults to true as in
//! daprd; `zipkin`; `stdout`), `spec.api.allowed` / `spec.api.denied` ([`ApiAccessRule`]),
//! `spec.secrets.scopes` ([`SecretScope`]) and `spec.features`. Everything else is classified,
//! never skipped silently: parts that would change what is allowed and are not implemented
//! (`accessControl`, `components.deny`) and the middleware pipelines (`httpPipeline`,
//! `appHttpPipeline`) are errors ("not supported yet": ignoring them would open what the
//! operator closed or drop a middleware they rely on); `nameResolution`, `mtls` and unknown
//! keys are warnings.
//!
//! [`is_layotto_json`] tells this kind of file from a Layotto config: `-c`/`--config` takes
//! either, and the content decides.

use std::path::Path;

use serde_json::Value;

use crate::{OtlpExporter, Problem, TracingSpec};

/// What a Configuration resource sets. Unset values are `None`: the caller applies Dapr's
/// defaults (see the `layotto-runtime` metrics settings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaprConfiguration {
    /// `metadata.name`.
    pub name: String,
    /// `spec.metrics.enabled`.
    pub metrics_enabled: Option<bool>,
    /// `spec.metrics.http.increasedCardinality`.
    pub increased_cardinality: Option<bool>,
    /// `spec.metrics.http.pathMatching`.
    pub path_matching: Vec<String>,
    /// `spec.metrics.http.excludeVerbs`.
    pub exclude_verbs: Option<bool>,
    /// `spec.metrics.latencyDistributionBuckets`, milliseconds.
    pub latency_buckets_ms: Option<Vec<f64>>,
    /// `spec.logging.apiLogging.enabled`.
    pub api_logging: Option<bool>,
    /// `spec.tracing`.
    pub tracing: Option<TracingSpec>,
    /// Whether `spec.tracing.samplingRate` was given (else the rate is daprd's default).
    pub sampling_rate_set: bool,
    /// `spec.metrics.rules`: label values rewritten before export.
    pub metric_rules: Vec<MetricRule>,
    /// `spec.api.allowed`: when it has rules for a protocol, only what they name is served on it.
    pub api_allowed: Vec<ApiAccessRule>,
    /// `spec.api.denied`: what is never served (wins over `allowed`).
    pub api_denied: Vec<ApiAccessRule>,
    /// `spec.secrets.scopes`, one per secret store at most.
    pub secret_scopes: Vec<SecretScope>,
    /// `spec.nameResolution`: how other apps' sidecars are found.
    pub name_resolution: Option<NameResolutionSpec>,
    /// `spec.features` turned on (`enabled: true`), by name.
    pub features: Vec<String>,
    /// Parts accepted without effect, one each.
    pub warnings: Vec<Problem>,
}

/// `spec.nameResolution` (`NameResolutionSpec` in `dapr/dapr:pkg/config`): the resolver
/// component and its free-form configuration, handed to the resolver as given.
#[derive(Debug, Clone, PartialEq)]
pub struct NameResolutionSpec {
    /// `component`: `mdns`, `sqlite`, `kubernetes` (empty: daprd's default, `mdns` in
    /// self-hosted mode).
    pub component: String,
    /// `version` (default `v1`).
    pub version: String,
    /// `configuration`, as written (a mapping, or null).
    pub configuration: Value,
}

/// One rule of `spec.api.allowed` / `spec.api.denied` (`APIAccessRule` in
/// `dapr/dapr:pkg/config/configuration.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAccessRule {
    /// The API: `state`, `invoke`, `publish`, `bindings`, `secrets`, `metadata`,
    /// `configuration`, `lock`, `unlock`, `shutdown`, ... (or, over HTTP, any prefix of a
    /// route such as `state/{storeName}`).
    pub name: String,
    /// `v1`, `v1alpha1`, `v1beta1`, or over HTTP the URL spelling `v1.0`, `v1.0-alpha1`.
    pub version: String,
    /// `http` or `grpc` (lower case); a rule applies to that protocol only.
    pub protocol: String,
}

/// One entry of `spec.secrets.scopes` (`SecretsScope` in `dapr/dapr:pkg/config`): which keys of
/// the secret store `store_name` the app may read through the secrets API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretScope {
    /// `storeName`.
    pub store_name: String,
    /// `defaultAccess: deny` (default `allow`).
    pub default_deny: bool,
    /// `allowedSecrets`: when not empty, exactly these keys are readable.
    pub allowed: Vec<String>,
    /// `deniedSecrets`.
    pub denied: Vec<String>,
}

impl SecretScope {
    /// Whether `key` may be read, as daprd decides (`IsSecretAllowed`): a non-empty
    /// `allowedSecrets` decides alone, then `deniedSecrets`, then `defaultAccess`.
    pub fn allows(&self, key: &str) -> bool {
        if !self.allowed.is_empty() {
            return self.allowed.iter().any(|k| k == key);
        }
        if self.denied.iter().any(|k| k == key) {
            return false;
        }
        !self.default_deny
    }
}

/// One rule of `spec.metrics.rules`: label values of the metric `name` rewritten by regular
/// expressions before export (`MetricsRule` in `dapr/dapr:pkg/config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRule {
    /// The metric, with or without the `dapr_` prefix (`dapr_http_server_request_count`).
    pub name: String,
    /// `(label, replacement, pattern)`: each match of `pattern` (a regular expression) in the
    /// label's value is replaced by `replacement` (`$1` expands groups). The YAML spells it
    /// `labels: [{name, regex: {replacement: pattern}}]`.
    pub labels: Vec<(String, String, String)>,
}

/// Whether `text` is a Layotto JSON config rather than a Dapr Configuration resource: a JSON
/// object with `servers` or without `kind`, or text starting with `{` that is no valid JSON (so
/// its syntax error is reported as JSON's, with line and column).
pub fn is_layotto_json(text: &str) -> bool {
    if !text.trim_start().starts_with('{') {
        return false;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => v.get("servers").is_some() || v.get("kind").is_none(),
        Err(_) => true,
    }
}

/// Reads the Configuration resource in `path`.
///
/// # Errors
/// Every problem at once: unreadable or malformed file, wrong `kind`/`apiVersion`, a value of
/// the wrong type, a part that is not supported yet.
pub fn load_configuration(path: &Path) -> Result<DaprConfiguration, Vec<Problem>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_configuration(&text, &file),
        Err(e) => Err(vec![Problem {
            file,
            path: "$".to_owned(),
            message: format!("cannot read the Configuration file: {e}"),
        }]),
    }
}

/// Parses a Configuration resource; `file` names it in problems.
///
/// # Errors
/// As [`load_configuration`].
pub fn parse_configuration(text: &str, file: &str) -> Result<DaprConfiguration, Vec<Problem>> {
    let mut p = Parse {
        file,
        problems: Vec::new(),
        out: DaprConfiguration::default(),
    };
    let doc: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![p.problem("$", format!("not a YAML document: {e}"))]);
        }
    };
    p.document(&doc);
    if p.problems.is_empty() {
        Ok(p.out)
    } else {
        Err(p.problems)
    }
}

/// daprd's sampling rate when the Configuration gives none (1 in 10,000 new traces).
pub const DEFAULT_SAMPLING_RATE: f64 = 1e-4;

struct Parse<'a> {
    file: &'a str,
    problems: Vec<Problem>,
    out: DaprConfiguration,
}

impl Parse<'_> {
    fn problem(&self, path: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let p = self.problem(path, message);
        self.problems.push(p);
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let p = self.problem(path, message);
        self.out.warnings.push(p);
    }

    fn bool_at(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            Value::Null => None,
            other => {
                self.error(path, format!("expected true or false, found {other}"));
                None
            }
        }
    }

    fn document(&mut self, doc: &Value) {
        let Some(top) = doc.as_object() else {
            self.error("$", "a Configuration resource is a YAML mapping");
            return;
        };
        match top.get("kind").and_then(Value::as_str) {
            Some("Configuration") => {}
            Some(k) => {
                self.error(
                    "kind",
                    format!("expected kind Configuration, found '{k}' (a Component belongs in --resources-path)"),
                );
                return;
            }
            None => {
                self.error("kind", "missing: expected kind Configuration");
                return;
            }
        }
        if let Some(v) = top.get("apiVersion").and_then(Value::as_str)
            && v != crate::API_VERSION
        {
            self.error(
                "apiVersion",
                format!("expected {}, found '{v}'", crate::API_VERSION),
            );
        }
        self.out.name = top
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(spec) = top.get("spec") else {
            return;
        };
        let Some(spec) = spec.as_object() else {
            if !spec.is_null() {
                self.error("spec", "expected a mapping");
            }
            return;
        };
        // `metrics` wins over the older spelling `metric`, as in daprd.
        if let Some(m) = spec.get("metrics").or_else(|| spec.get("metric")) {
            let at = if spec.contains_key("metrics") {
                "spec.metrics"
            } else {
                "spec.metric"
            };
            self.metrics(m, at);
        }
        for (key, value) in spec {
            let at = format!("spec.{key}");
            match key.as_str() {
                "metrics" | "metric" => {}
                "logging" => self.logging(value, &at),
                "tracing" => self.tracing(value, &at),
                "nameResolution" => self.name_resolution(value, &at),
                "features" => self.features(value, &at),
                "api" => self.api(value, &at),
                "secrets" => self.secrets(value, &at),
                "mtls" => self.warn(
                    &at,
                    "mTLS between sidecars (Sentry) is not supported: no effect",
                ),
                "accessControl" | "components" => self.error(
                    &at,
                    format!(
                        "Dapr's '{key}' access rules are not supported yet (ignoring them would \
                         allow what they deny)"
                    ),
                ),
                "httpPipeline" | "appHttpPipeline" => self.error(
                    &at,
                    format!("Dapr's middleware pipeline '{key}' is not supported yet"),
                ),
                _ => self.warn(&at, format!("unknown Configuration key '{key}' is ignored")),
            }
        }
    }

    fn metrics(&mut self, m: &Value, at: &str) {
        let Some(m) = m.as_object() else {
            self.error(at, "expected a mapping");
            return;
        };
        for (key, value) in m {
            let path = format!("{at}.{key}");
            match key.as_str() {
                "enabled" => self.out.metrics_enabled = self.bool_at(value, &path),
                "latencyDistributionBuckets" => {
                    let buckets: Option<Vec<f64>> = value
                        .as_array()
                        .and_then(|a| a.iter().map(Value::as_f64).collect());
                    match buckets {
                        Some(mut b) if !b.is_empty() && b.iter().all(|x| *x > 0.0) => {
                            b.sort_by(f64::total_cmp);
                            b.dedup();
                            self.out.latency_buckets_ms = Some(b);
                        }
                        _ => {
                            self.error(&path, "expected a list of positive numbers of milliseconds")
                        }
                    }
                }
                "http" => self.metrics_http(value, &path),
                "rules" => self.metric_rules(value, &path),
                _ => self.warn(&path, format!("unknown metrics key '{key}' is ignored")),
            }
        }
    }

    fn metrics_http(&mut self, h: &Value, at: &str) {
        let Some(h) = h.as_object() else {
            self.error(at, "expected a mapping");
            return;
        };
        for (key, value) in h {
            let path = format!("{at}.{key}");
            match key.as_str() {
                "increasedCardinality" => {
                    self.out.increased_cardinality = self.bool_at(value, &path);
                }
                "excludeVerbs" => self.out.exclude_verbs = self.bool_at(value, &path),
                "pathMatching" => {
                    match value
                        .as_array()
                        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                    {
                        Some(p) => self.out.path_matching = p,
                        None => self.error(&path, "expected a list of path patterns"),
                    }
                }
                _ => self.warn(
                    &path,
                    format!("unknown metrics.http key '{key}' is ignored"),
                ),
            }
        }
    }

    fn tracing(&mut self, t: &Value, at: &str) {
        let Some(t) = t.as_object() else {
            self.error(at, "expected a mapping");
            return;
        };
        // daprd: no (or no valid) samplingRate samples one new trace in 10,000
        // (`pkg/diagnostics/utils/trace_utils.go`).
        let mut spec = TracingSpec {
            sampling_rate: DEFAULT_SAMPLING_RATE,
            ..TracingSpec::default()
        };
        for (key, value) in t {
            let path = format!("{at}.{key}");
            match key.as_str() {
                "samplingRate" => {
                    let rate = match value {
                        Value::String(s) => s.trim().parse::<f64>().ok(),
                        other => other.as_f64(),
                    };
                    match rate {
                        Some(r) if (0.0..=1.0).contains(&r) => {
                            spec.sampling_rate = r;
                            self.out.sampling_rate_set = true;
                        }
                        _ => self.error(
                            &path,
                            format!("expected a number from 0 to 1, found {value}"),
                        ),
                    }
                }
                "otel" => {
                    let endpoint = value.get("endpointAddress").and_then(Value::as_str);
                    let protocol = value
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("grpc");
                    // daprd's default is TLS (`OtelSpec.GetIsSecure`).
                    let secure = match value.get("isSecure") {
                        Some(v) => self.bool_at(v, &format!("{path}.isSecure")).unwrap_or(true),
                        None => true,
                    };
                    match (endpoint, protocol) {
                        (Some(e), "grpc" | "http") => {
                            spec.otlp = Some(OtlpExporter {
                                endpoint: e.to_owned(),
                                http: protocol == "http",
                                secure,
                            });
                        }
                        (None, _) => self.error(&format!("{path}.endpointAddress"), "missing"),
                        (_, p) => self.error(
                            &format!("{path}.protocol"),
                            format!("expected grpc or http, found '{p}'"),
                        ),
                    }
                }
                "zipkin" => match value.get("endpointAddress").and_then(Value::as_str) {
                    Some(e) => spec.zipkin = Some(e.to_owned()),
                    None => self.error(&format!("{path}.endpointAddress"), "missing"),
                },
                "stdout" => spec.stdout = self.bool_at(value, &path).unwrap_or(false),
                _ => self.warn(&path, format!("unknown tracing key '{key}' is ignored")),
            }
        }
        self.out.tracing = Some(spec);
    }

    fn string_list(&mut self, v: &Value, path: &str) -> Vec<String> {
        match v {
            Value::Null => Vec::new(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| match x.as_str() {
                    Some(s) => Some(s.to_owned()),
                    None => {
                        self.error(path, format!("expected a list of strings, found {x}"));
                        None
                    }
                })
                .collect(),
            other => {
                self.error(path, format!("expected a list of strings, found {other}"));
                Vec::new()
            }
        }
    }

    fn api(&mut self, v: &Value, at: &str) {
        let Some(m) = v.as_object() else {
            self.error(at, "expected a mapping with allowed and/or denied");
            return;
        };
        for (key, value) in m {
            let path = format!("{at}.{key}");
            let rules = match key.as_str() {
                "allowed" | "denied" => self.api_rules(value, &path),
                _ => {
                    self.warn(&path, format!("unknown api key '{key}' is ignored"));
                    continue;
                }
            };
            if key == "allowed" {
                self.out.api_allowed = rules;
            } else {
                self.out.api_denied = rules;
            }
        }
    }

    fn api_rules(&mut self, v: &Value, at: &str) -> Vec<ApiAccessRule> {
        let Some(list) = v.as_array() else {
            if !v.is_null() {
                self.error(at, "expected a list of {name, version, protocol}");
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let path = format!("{at}[{i}]");
            let field = |k: &str| r.get(k).and_then(Value::as_str).map(str::trim);
            let (Some(name), Some(version)) = (field("name"), field("version")) else {
                self.error(&path, "a rule needs name and version");
                continue;
            };
            let protocol = field("protocol").unwrap_or_default().to_ascii_lowercase();
            match protocol.as_str() {
                "http" | "grpc" => out.push(ApiAccessRule {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    protocol,
                }),
                // daprd drops such a rule without a word; an access rule that silently does
                // nothing is worth an error.
                "" => self.error(
                    &format!("{path}.protocol"),
                    "missing: http or grpc (daprd ignores a rule without protocol)",
                ),
                p => self.error(
                    &format!("{path}.protocol"),
                    format!("expected http or grpc, found '{p}'"),
                ),
            }
        }
        out
    }

    fn secrets(&mut self, v: &Value, at: &str) {
        let scopes = v.get("scopes").unwrap_or(&Value::Null);
        if let Some(m) = v.as_object() {
            for key in m.keys().filter(|k| k.as_str() != "scopes") {
                self.warn(
                    &format!("{at}.{key}"),
                    format!("unknown secrets key '{key}' is ignored"),
                );
            }
        }
        let Some(list) = scopes.as_array() else {
            if !scopes.is_null() {
                self.error(&format!("{at}.scopes"), "expected a list of scopes");
            }
            return;
        };
        for (i, s) in list.iter().enumerate() {
            let path = format!("{at}.scopes[{i}]");
            let Some(store) = s.get("storeName").and_then(Value::as_str) else {
                self.error(&path, "storeName is missing");
                continue;
            };
            if self.out.secret_scopes.iter().any(|x| x.store_name == store) {
                // daprd's message.
                self.error(
                    &path,
                    format!("{store} storeName is repeated in secrets configuration"),
                );
                continue;
            }
            let default_deny = match s.get("defaultAccess").and_then(Value::as_str) {
                None | Some("") => false,
                Some(a) if a.eq_ignore_ascii_case("allow") => false,
                Some(a) if a.eq_ignore_ascii_case("deny") => true,
                Some(a) => {
                    self.error(
                        &format!("{path}.defaultAccess"),
                        format!("defaultAccess {a} can be either allow or deny"),
                    );
                    continue;
                }
            };
            let allowed = self.string_list(
                s.get("allowedSecrets").unwrap_or(&Value::Null),
                &format!("{path}.allowedSecrets"),
            );
            let denied = self.string_list(
                s.get("deniedSecrets").unwrap_or(&Value::Null),
                &format!("{path}.deniedSecrets"),
            );
            self.out.secret_scopes.push(SecretScope {
                store_name: store.to_owned(),
                default_deny,
                allowed,
                denied,
            });
        }
    }

    fn name_resolution(&mut self, v: &Value, at: &str) {
        let Some(m) = v.as_object() else {
            if !v.is_null() {
                self.error(
                    at,
                    "expected a mapping with component, version, configuration",
                );
            }
            return;
        };
        let mut spec = NameResolutionSpec {
            component: String::new(),
            version: "v1".to_owned(),
            configuration: Value::Null,
        };
        for (key, value) in m {
            let path = format!("{at}.{key}");
            match (key.as_str(), value) {
                ("component", Value::String(c)) => spec.component.clone_from(c),
                ("version", Value::String(v)) if !v.is_empty() => spec.version.clone_from(v),
                ("version", Value::String(_) | Value::Null) | ("component", Value::Null) => {}
                ("configuration", c) => spec.configuration = c.clone(),
                ("component" | "version", other) => {
                    self.error(&path, format!("expected a string, found {other}"));
                }
                _ => self.warn(
                    &path,
                    format!("unknown nameResolution key '{key}' is ignored"),
                ),
            }
        }
        self.out.name_resolution = Some(spec);
    }

    fn features(&mut self, v: &Value, at: &str) {
        let Some(list) = v.as_array() else {
            if !v.is_null() {
                self.error(at, "expected a list of {name, enabled}");
            }
            return;
        };
        for (i, f) in list.iter().enumerate() {
            let path = format!("{at}[{i}]");
            let Some(name) = f
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            else {
                self.error(&path, "a feature needs a name");
                continue;
            };
            let enabled = f
                .get("enabled")
                .and_then(|e| self.bool_at(e, &format!("{path}.enabled")))
                .unwrap_or(false);
            if !enabled || self.out.features.iter().any(|x| x == name) {
                continue;
            }
            let why = match name {
                // Components and Subscriptions are reloaded (the binary's `hot_reload`).
                "HotReload" => {
                    self.out.features.push(name.to_owned());
                    continue;
                }
                "ActorStateTTL" | "SchedulerReminders" => "actors are not supported",
                _ => "daprd 1.14 does not know it either",
            };
            self.warn(
                &path,
                format!("preview feature '{name}' has no effect: {why}"),
            );
            self.out.features.push(name.to_owned());
        }
    }

    fn metric_rules(&mut self, v: &Value, at: &str) {
        let Some(list) = v.as_array() else {
            if !v.is_null() {
                self.error(at, "expected a list of {name, labels}");
            }
            return;
        };
        for (i, r) in list.iter().enumerate() {
            let path = format!("{at}[{i}]");
            let Some(name) = r.get("name").and_then(Value::as_str) else {
                self.error(&path, "a rule needs the metric's name");
                continue;
            };
            let mut labels = Vec::new();
            for (j, l) in r
                .get("labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let lpath = format!("{path}.labels[{j}]");
                let Some(label) = l.get("name").and_then(Value::as_str) else {
                    self.error(&lpath, "a label needs a name");
                    continue;
                };
                let Some(regex) = l.get("regex").and_then(Value::as_object) else {
                    self.error(&format!("{lpath}.regex"), "expected {replacement: pattern}");
                    continue;
                };
                for (replacement, pattern) in regex {
                    match pattern.as_str() {
                        // daprd logs a bad pattern and drops every rule; refusing it names it.
                        Some(p) if regex::Regex::new(p).is_err() => self.error(
                            &format!("{lpath}.regex.{replacement}"),
                            format!(
                                "not a valid regular expression: {}",
                                regex::Regex::new(p)
                                    .err()
                                    .map(|e| e
                                        .to_string()
                                        .split_whitespace()
                                        .collect::<Vec<_>>()
                                        .join(" "))
                                    .unwrap_or_default()
                            ),
                        ),
                        Some(p) => {
                            labels.push((label.to_owned(), replacement.clone(), p.to_owned()))
                        }
                        None => self.error(
                            &format!("{lpath}.regex.{replacement}"),
                            "expected a regular expression",
                        ),
                    }
                }
            }
            self.out.metric_rules.push(MetricRule {
                name: name.to_owned(),
                labels,
            });
        }
    }

    fn logging(&mut self, l: &Value, at: &str) {
        let api = l.get("apiLogging");
        if let Some(enabled) = api.and_then(|a| a.get("enabled")) {
            self.out.api_logging = self.bool_at(enabled, &format!("{at}.apiLogging.enabled"));
        }
        if let Some(a) = api.and_then(Value::as_object) {
            for key in a.keys().filter(|k| k.as_str() != "enabled") {
                self.warn(
                    &format!("{at}.apiLogging.{key}"),
                    format!("apiLogging.{key} is not supported yet: no effect"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_and_classifies_the_rest() {
        let text = r#"
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprConfig
spec:
  tracing:
    samplingRate: "1"
    zipkin:
      endpointAddress: http://localhost:9411/api/v2/spans
  metric:
    enabled: true
  metrics:
    enabled: false
    latencyDistributionBuckets: [10, 1, 5]
    http:
      increasedCardinality: false
      pathMatching: ["/orders/{id}"]
    rules: []
  logging:
    apiLogging:
      enabled: true
"#;
        let c = parse_configuration(text, "c.yaml").expect("valid");
        assert_eq!(c.name, "daprConfig");
        assert_eq!(c.metrics_enabled, Some(false));
        assert_eq!(c.latency_buckets_ms, Some(vec![1.0, 5.0, 10.0]));
        assert_eq!(c.increased_cardinality, Some(false));
        assert_eq!(c.path_matching, ["/orders/{id}"]);
        assert_eq!(c.api_logging, Some(true));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.metric_rules.is_empty());
        let t = c.tracing.expect("tracing");
        assert_eq!(t.sampling_rate, 1.0);
        assert_eq!(
            t.zipkin.as_deref(),
            Some("http://localhost:9411/api/v2/spans")
        );
    }

    #[test]
    fn what_would_open_access_is_refused() {
        let text = "kind: Configuration\nspec:\n  accessControl:\n    defaultAction: deny\n  httpPipeline: {}\n";
        let e = parse_configuration(text, "c.yaml").expect_err("refused");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].message.contains("not supported yet"), "{e:?}");
        let e = parse_configuration("kind: Component\n", "c.yaml").expect_err("kind");
        assert!(e[0].message.contains("--resources-path"), "{e:?}");
        assert!(is_layotto_json(r#"{"servers": []}"#));
        assert!(!is_layotto_json("kind: Configuration"));
        assert!(!is_layotto_json(r#"{"kind": "Configuration"}"#));
        assert!(is_layotto_json("{ \"servers\": [ }"));
    }

    #[test]
    fn access_rules_scopes_metric_rules_and_features() {
        let text = r#"
kind: Configuration
spec:
  api:
    allowed:
      - {name: state, version: v1.0, protocol: http}
      - {name: state, version: v1, protocol: GRPC}
    denied:
      - {name: secrets, version: v1, protocol: grpc}
  secrets:
    scopes:
      - storeName: vault
        defaultAccess: Deny
        deniedSecrets: [x]
      - storeName: local
        allowedSecrets: [a, b]
        deniedSecrets: [a]
  metrics:
    rules:
      - name: dapr_http_server_request_count
        labels:
          - name: path
            regex:
              "/orders/": "/orders/.+"
  features:
    - {name: HotReload, enabled: true}
    - {name: ActorStateTTL, enabled: true}
    - {name: Off, enabled: false}
"#;
        let c = parse_configuration(text, "c.yaml").expect("valid");
        assert_eq!(c.api_allowed.len(), 2);
        assert_eq!(c.api_allowed[1].protocol, "grpc");
        assert_eq!(c.api_denied[0].name, "secrets");
        let vault = &c.secret_scopes[0];
        assert!(!vault.allows("x") && !vault.allows("y"));
        let local = &c.secret_scopes[1];
        // A non-empty allow list decides alone, as daprd's `IsSecretAllowed`.
        assert!(local.allows("a") && local.allows("b") && !local.allows("c"));
        assert_eq!(
            c.metric_rules[0].labels,
            [(
                "path".to_owned(),
                "/orders/".to_owned(),
                "/orders/.+".to_owned()
            )]
        );
        assert_eq!(c.features, ["HotReload", "ActorStateTTL"]);
        // HotReload is implemented; ActorStateTTL has no effect, and says so.
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].message.contains("ActorStateTTL"));

        let bad = r#"
kind: Configuration
spec:
  api:
    denied: [{name: state, version: v1}]
  secrets:
    scopes:
      - {storeName: s, defaultAccess: maybe}
      - {storeName: t}
      - {storeName: t}
  metrics:
    rules: [{name: m, labels: [{name: path, regex: {x: "("}}]}]
"#;
        let e = parse_configuration(bad, "c.yaml").expect_err("bad");
        let msgs: Vec<&str> = e.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(e.len(), 4, "{msgs:?}");
        for want in [
            "daprd ignores a rule without protocol",
            "defaultAccess maybe can be either allow or deny",
            "t storeName is repeated",
            "not a valid regular expression",
        ] {
            assert!(msgs.iter().any(|m| m.contains(want)), "{want}: {msgs:?}");
        }
    }

    #[test]
    fn tracing_defaults_are_daprs() {
        let text = "kind: Configuration\nspec:\n  tracing:\n    stdout: true\n    otel:\n      endpointAddress: localhost:4317\n";
        let t = parse_configuration(text, "c.yaml")
            .expect("valid")
            .tracing
            .expect("tracing");
        assert_eq!(t.sampling_rate, DEFAULT_SAMPLING_RATE);
        assert!(t.stdout);
        assert!(t.otlp.expect("otel").secure, "isSecure defaults to true");
    }
}
