//! Dapr's `Configuration` resource (`apiVersion: dapr.io/v1alpha1`, `kind: Configuration`), as
//! daprd reads it from `--config FILE` (docs.dapr.io "Configuration overview";
//! `dapr/dapr:pkg/config/configuration.go`).
//!
//! Read here: `spec.metrics` (also spelt `spec.metric`; `enabled`, `http.increasedCardinality`,
//! `http.pathMatching`, `http.excludeVerbs`, `latencyDistributionBuckets`),
//! `spec.logging.apiLogging.enabled` and `spec.tracing` (`samplingRate`, absent: 0, nothing
//! sampled; `otel`; `zipkin`). Everything else is classified, never skipped silently:
//! parts that change what is allowed (`api.allowed` / `api.denied`, `secrets.scopes`,
//! `accessControl`, `components.deny`) and the middleware pipelines (`httpPipeline`,
//! `appHttpPipeline`) are errors ("not supported yet": ignoring them would open what the
//! operator closed or drop a middleware they rely on); `nameResolution`, `features`, `mtls`,
//! metric relabelling `rules` and unknown keys are warnings.
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
    /// Parts accepted without effect, one each.
    pub warnings: Vec<Problem>,
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
                "nameResolution" => self.warn(
                    &at,
                    "nameResolution has no effect yet: sidecars do not invoke each other yet",
                ),
                "features" => self.warn(&at, "preview features have no effect here"),
                "mtls" => self.warn(
                    &at,
                    "mTLS between sidecars (Sentry) is not supported: no effect",
                ),
                "api" | "secrets" | "accessControl" | "components" => self.error(
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
                "rules" => self.warn(
                    &path,
                    "metric relabelling rules are not supported yet: labels are exported unchanged",
                ),
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
        let mut spec = TracingSpec::default();
        for (key, value) in t {
            let path = format!("{at}.{key}");
            match key.as_str() {
                "samplingRate" => {
                    let rate = match value {
                        Value::String(s) => s.trim().parse::<f64>().ok(),
                        other => other.as_f64(),
                    };
                    match rate {
                        Some(r) if (0.0..=1.0).contains(&r) => spec.sampling_rate = r,
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
                    let secure = match value.get("isSecure") {
                        Some(v) => self
                            .bool_at(v, &format!("{path}.isSecure"))
                            .unwrap_or(false),
                        None => false,
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
                "stdout" => self.warn(&path, "tracing to stdout is not supported yet"),
                _ => self.warn(&path, format!("unknown tracing key '{key}' is ignored")),
            }
        }
        self.out.tracing = Some(spec);
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
        let warned: Vec<&str> = c.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(warned, ["spec.metrics.rules"]);
        let t = c.tracing.expect("tracing");
        assert_eq!(t.sampling_rate, 1.0);
        assert_eq!(
            t.zipkin.as_deref(),
            Some("http://localhost:9411/api/v2/spans")
        );
    }

    #[test]
    fn what_would_open_access_is_refused() {
        let text =
            "kind: Configuration\nspec:\n  api:\n    denied: [{name: state}]\n  httpPipeline: {}\n";
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
}
