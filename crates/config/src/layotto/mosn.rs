//! The MOSN parts of a Layotto file outside `grpc_config`: each classified, never skipped
//! silently (accepted with a warning, or read: the log level and the `flowControlFilter`).

use super::{Fields, Walker};
use crate::node::{Node, child, index, json_string};
use crate::{FlowControl, FlowRule};

/// MOSN top-level keys accepted with a warning until their work lands, and why.
const MOSN_TOP_LEVEL: [(&str, &str); 3] = [
    (
        "pprof",
        "MOSN pprof is not implemented: no profiling port is opened",
    ),
    (
        "dynamic_resources",
        "xDS (dynamic_resources) is not supported: no configuration is fetched",
    ),
    (
        "static_resources",
        "MOSN static_resources (xDS clusters) are not supported: ignored",
    ),
];

impl Walker {
    /// Classifies the MOSN keys beside `servers`: each known one is accepted with a warning
    /// saying what it would do and that it does not here; unknown ones are warned about too.
    pub(super) fn top_level(&mut self, root: &Fields<'_>) {
        for &(key, value) in &root.entries {
            if key == "servers" || is_off(value) {
                continue;
            }
            let path = child("$", key);
            if key == "metrics" {
                self.metrics_sinks(value, &path);
                continue;
            }
            if key == "tracing" {
                self.tracing(value, &path);
                continue;
            }
            match MOSN_TOP_LEVEL.iter().find(|(k, _)| *k == key) {
                Some((_, why)) => self.warn(&path, *why),
                None => self.warn(
                    &path,
                    format!("unknown MOSN key {} is ignored", json_string(key)),
                ),
            }
        }
    }

    /// Reads MOSN's `metrics`: a `prometheus` sink's `config.port` is where the metrics are
    /// served (Dapr's names, see the runtime's metrics); other sinks and keys are warnings.
    fn metrics_sinks(&mut self, metrics: &Node, path: &str) {
        let Some(m) = self.object(metrics, path, "the metrics section") else {
            return;
        };
        for &(key, value) in &m.entries {
            let key_path = child(path, key);
            if key != "sinks" {
                self.warn(
                    &key_path,
                    format!("MOSN metrics key {} has no effect", json_string(key)),
                );
                continue;
            }
            let Node::Array(sinks) = value else {
                self.problem(
                    &key_path,
                    format!("expected an array, found {}", value.describe()),
                );
                continue;
            };
            for (i, sink) in sinks.iter().enumerate() {
                let sink_path = index(&key_path, i);
                let Some(s) = self.object(sink, &sink_path, "a metrics sink") else {
                    continue;
                };
                match s.get("type") {
                    Some(Node::String(t)) if t == "prometheus" => {}
                    other => {
                        self.warn(
                            &sink_path,
                            format!(
                                "MOSN metrics sink {} is not supported: only \"prometheus\" is served",
                                other.map_or_else(|| "without type".to_owned(), Node::to_compact_json)
                            ),
                        );
                        continue;
                    }
                }
                let port = s.get("config").and_then(|c| match c {
                    Node::Object(e) => Fields::new(e).get("port").cloned(),
                    _ => None,
                });
                match port {
                    Some(Node::Number(n))
                        if n.as_u64().is_some_and(|p| (1..=65535).contains(&p)) =>
                    {
                        self.metrics_port = n.as_u64().and_then(|p| u16::try_from(p).ok());
                    }
                    other => self.problem(
                        &child(&sink_path, "config.port"),
                        format!(
                            "the prometheus sink needs a port (1-65535), found {}",
                            other.map_or_else(|| "none".to_owned(), |n| n.to_compact_json())
                        ),
                    ),
                }
            }
        }
    }

    /// Reads MOSN's `tracing` (`enable`, `driver`, `config`), as Layotto's trace configs set it:
    /// `Zipkin` exports to `reporter_endpoint`; `jaeger` (Jaeger Thrift to a collector upstream)
    /// exports OTLP/gRPC to the collector's host on port 4317, which Jaeger's collector also
    /// accepts, with a warning saying so; `SkyWalking` and SOFATracer's `stdout` exporter are not
    /// supported yet (warnings). Every trace is sampled, as Layotto does.
    fn tracing(&mut self, tracing: &Node, path: &str) {
        let Some(t) = self.object(tracing, path, "the tracing section") else {
            return;
        };
        // MOSN traces only when `enable` is true.
        if !matches!(t.get("enable"), Some(Node::Bool(true))) {
            return;
        }
        let driver = match t.get("driver") {
            Some(Node::String(d)) => d.to_ascii_lowercase(),
            _ => String::new(),
        };
        let config = match t.get("config") {
            Some(Node::Object(e)) => Some(Fields::new(e)),
            _ => None,
        };
        let text = |k: &str| match config.as_ref().and_then(|c| c.get(k)) {
            Some(Node::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let mut spec = crate::TracingSpec {
            sampling_rate: 1.0,
            service_name: text("service_name"),
            ..crate::TracingSpec::default()
        };
        match driver.as_str() {
            "zipkin" => {
                spec.zipkin = Some(
                    text("reporter_endpoint")
                        .unwrap_or_else(|| "http://127.0.0.1:9411/api/v2/spans".to_owned()),
                );
            }
            "jaeger" => {
                let collector = text("collector_endpoint")
                    .unwrap_or_else(|| "http://127.0.0.1:14268/api/traces".to_owned());
                let host = collector
                    .split("://")
                    .last()
                    .and_then(|r| r.split(['/', ':']).next())
                    .filter(|h| !h.is_empty())
                    .unwrap_or("127.0.0.1")
                    .to_owned();
                let endpoint = format!("{host}:4317");
                self.warn(
                    path,
                    format!(
                        "Layotto's jaeger driver sends Jaeger Thrift to {collector}; here spans go \
                         to the same collector over OTLP/gRPC at {endpoint}"
                    ),
                );
                spec.otlp = Some(crate::OtlpExporter {
                    endpoint,
                    http: false,
                    secure: false,
                });
            }
            "skywalking" => {
                self.warn(
                    path,
                    "the SkyWalking tracing driver is not supported yet: no spans are exported",
                );
                return;
            }
            // Layotto's default driver: SOFATracer spans through the exporters listed in
            // `config.exporter`; Layotto registers `stdout` (one log line per span).
            "" | "sofatracer" => {
                let exporters: Vec<String> = match config.as_ref().and_then(|c| c.get("exporter")) {
                    Some(Node::Array(a)) => a
                        .iter()
                        .filter_map(|n| match n {
                            Node::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for e in exporters.iter().filter(|e| e.as_str() != "stdout") {
                    self.warn(
                        path,
                        format!("the SOFATracer exporter '{e}' is not supported (stdout is)"),
                    );
                }
                if !exporters.iter().any(|e| e == "stdout") {
                    self.warn(
                        path,
                        "SOFATracer without the stdout exporter: no spans are exported",
                    );
                    return;
                }
                spec.stdout = true;
            }
            other => {
                self.warn(
                    path,
                    format!("the tracing driver '{other}' is not supported: no spans are exported"),
                );
                return;
            }
        }
        self.tracing = Some(spec);
    }

    /// Classifies a MOSN server's keys; returns its `default_log_level`.
    pub(super) fn server(&mut self, server: &Fields<'_>, path: &str) -> Option<String> {
        let mut level = None;
        for &(key, value) in &server.entries {
            let key_path = child(path, key);
            match (key, value) {
                ("listeners", _) => {}
                ("default_log_level", Node::String(l)) => match l.to_ascii_uppercase().as_str() {
                    "TRACE" | "DEBUG" | "INFO" | "WARN" | "WARNING" | "ERROR" | "FATAL"
                    | "CRITICAL" => level = Some(l.to_ascii_uppercase()),
                    _ => self.problem(
                        &key_path,
                        format!(
                            "unknown log level {}; expected TRACE, DEBUG, INFO, WARN, ERROR or \
                             FATAL",
                            json_string(l)
                        ),
                    ),
                },
                ("default_log_path", Node::String(p)) if p == "stdout" || p == "stderr" => {}
                ("default_log_path", Node::String(p)) => self.warn(
                    &key_path,
                    format!("logs are written to stderr, not to {}", json_string(p)),
                ),
                ("routers", Node::Array(routers)) => {
                    // A router with virtual hosts routes MOSN proxy traffic, which is not
                    // served; a bare name (Layotto's "actuator_dont_need_router") means nothing.
                    if routers.iter().any(has_virtual_hosts) {
                        self.warn(
                            &key_path,
                            "MOSN routers route proxy traffic, which is not served: ignored",
                        );
                    }
                }
                (_, v) if is_off(v) => {}
                (other, _) => self.warn(
                    &key_path,
                    format!("unknown MOSN server key {} is ignored", json_string(other)),
                ),
            }
        }
        level
    }

    /// Reads a `flowControlFilter` (`global_switch`, `limit_key_type: PATH`, `rules` of
    /// `{resource, grade, threshold}`).
    pub(super) fn flow_control_filter(&mut self, filter: &Fields<'_>, path: &str) {
        let config_path = child(path, "config");
        let Some(config) = filter.get("config") else {
            self.problem(&config_path, "missing; flowControlFilter needs its config");
            return;
        };
        let Some(config) = self.object(config, &config_path, "the flowControlFilter config") else {
            return;
        };
        match config.get("global_switch") {
            Some(Node::Bool(true)) => {}
            Some(Node::Bool(false)) | None | Some(Node::Null) => return,
            Some(other) => {
                self.problem(
                    &child(&config_path, "global_switch"),
                    format!("expected true or false, found {}", other.describe()),
                );
                return;
            }
        }
        match config.get("limit_key_type") {
            None | Some(Node::Null) => {}
            Some(Node::String(t)) if t == "PATH" => {}
            Some(other) => {
                self.problem(
                    &child(&config_path, "limit_key_type"),
                    format!(
                        "only \"PATH\" (the gRPC method path) is supported, found {}",
                        other.to_compact_json()
                    ),
                );
                return;
            }
        }
        let mut rules = Vec::new();
        let Some(items) = self.array(&config, "rules", &config_path, false) else {
            return;
        };
        for (i, rule) in items.iter().enumerate() {
            let rule_path = index(&child(&config_path, "rules"), i);
            let Some(rule) = self.object(rule, &rule_path, "a flow control rule") else {
                continue;
            };
            let resource = match rule.get("resource") {
                Some(Node::String(r)) if r.starts_with('/') => Some(r.clone()),
                other => {
                    self.problem(
                        &child(&rule_path, "resource"),
                        format!(
                            "expected the gRPC method path such as \
                             \"/spec.proto.runtime.v1.Runtime/SayHello\", found {}",
                            other.map_or("nothing".to_owned(), Node::to_compact_json)
                        ),
                    );
                    None
                }
            };
            let number = |w: &mut Self, key: &str, default: Option<u64>| -> Option<u64> {
                match rule.get(key) {
                    Some(Node::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => n.as_u64(),
                    None | Some(Node::Null) if default.is_some() => default,
                    other => {
                        w.problem(
                            &child(&rule_path, key),
                            format!(
                                "expected a positive whole number, found {}",
                                other.map_or("nothing".to_owned(), Node::to_compact_json)
                            ),
                        );
                        None
                    }
                }
            };
            let grade = number(self, "grade", Some(1));
            let threshold = number(self, "threshold", None);
            if let (Some(resource), Some(grade), Some(threshold)) = (resource, grade, threshold) {
                rules.push(FlowRule {
                    resource,
                    threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
                    window: std::time::Duration::from_secs(grade),
                });
            }
        }
        self.flow_control = Some(FlowControl { rules });
    }
}

/// Whether a MOSN value says "nothing configured": `null`, `false`, an empty array, an object
/// whose values all say nothing (`{"clusters": []}`), or one whose `enable`/`debug` is false.
pub(super) fn is_off(node: &Node) -> bool {
    match node {
        Node::Null | Node::Bool(false) => true,
        Node::Array(items) => items.is_empty(),
        Node::Object(entries) => {
            entries.iter().all(|(_, v)| is_off(v))
                || entries
                    .iter()
                    .any(|(k, v)| (k == "enable" || k == "debug") && *v == Node::Bool(false))
        }
        _ => false,
    }
}

/// Whether a MOSN router config has virtual hosts (routes).
fn has_virtual_hosts(router: &Node) -> bool {
    let Node::Object(entries) = router else {
        return false;
    };
    entries
        .iter()
        .any(|(k, v)| k == "virtual_hosts" && !is_off(v))
}
