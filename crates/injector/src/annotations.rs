//! The `dapr.io/*` pod annotations Dapr's sidecar injector reads (v1.14,
//! `dapr/dapr:pkg/injector/patcher/sidecar.go`), parsed into a [`SidecarConfig`]. Each is
//! implemented or refused by name; a `dapr.io/` annotation not in Dapr's list is a warning.
//!
//! Parsing follows Dapr's: a missing or empty annotation keeps the default; booleans are
//! truthy as Dapr's `IsTruthy` (`y`, `yes`, `true`, `t`, `on`, `1`, any case); numbers that do
//! not parse are refused here (daprd's injector logs and keeps the default).

use std::collections::BTreeMap;

/// Annotations refused by name, with the reason.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "dapr.io/placement-host-address",
        "actors are not supported by layotto-rs",
    ),
    (
        "dapr.io/scheduler-host-address",
        "the scheduler (jobs, actor reminders) is not supported by layotto-rs",
    ),
    (
        "dapr.io/enable-debug",
        "the sidecar image has no debugger (dlv)",
    ),
    (
        "dapr.io/debug-port",
        "the sidecar image has no debugger (dlv)",
    ),
    (
        "dapr.io/enable-profiling",
        "layotto-rs has no pprof profiling server",
    ),
    (
        "dapr.io/app-ssl",
        "TLS to the app is not supported yet (app-protocol http or grpc)",
    ),
    (
        "dapr.io/pluggable-components",
        "pluggable components are not supported",
    ),
    (
        "dapr.io/pluggable-components-sockets-folder",
        "pluggable components are not supported",
    ),
    (
        "dapr.io/inject-pluggable-components",
        "pluggable components are not supported",
    ),
    (
        "dapr.io/sentry-request-jwt-audiences",
        "mTLS between sidecars (Sentry) is not supported yet",
    ),
    (
        "dapr.io/env-from-secret",
        "not supported yet: use dapr.io/env, or api-token-secret/app-token-secret",
    ),
];

/// Annotations Dapr's injector reads that are implemented here.
pub const IMPLEMENTED: &[&str] = &[
    "dapr.io/enabled",
    "dapr.io/app-id",
    "dapr.io/app-port",
    "dapr.io/config",
    "dapr.io/app-protocol",
    "dapr.io/log-level",
    "dapr.io/log-as-json",
    "dapr.io/api-token-secret",
    "dapr.io/app-token-secret",
    "dapr.io/app-max-concurrency",
    "dapr.io/enable-metrics",
    "dapr.io/metrics-port",
    "dapr.io/env",
    "dapr.io/grpc-port",
    "dapr.io/internal-grpc-port",
    "dapr.io/sidecar-cpu-request",
    "dapr.io/sidecar-cpu-limit",
    "dapr.io/sidecar-memory-request",
    "dapr.io/sidecar-memory-limit",
    "dapr.io/sidecar-listen-addresses",
    "dapr.io/sidecar-liveness-probe-delay-seconds",
    "dapr.io/sidecar-liveness-probe-timeout-seconds",
    "dapr.io/sidecar-liveness-probe-period-seconds",
    "dapr.io/sidecar-liveness-probe-threshold",
    "dapr.io/sidecar-readiness-probe-delay-seconds",
    "dapr.io/sidecar-readiness-probe-timeout-seconds",
    "dapr.io/sidecar-readiness-probe-period-seconds",
    "dapr.io/sidecar-readiness-probe-threshold",
    "dapr.io/sidecar-image",
    "dapr.io/sidecar-seccomp-profile-type",
    "dapr.io/http-max-request-size",
    "dapr.io/max-body-size",
    "dapr.io/http-read-buffer-size",
    "dapr.io/read-buffer-size",
    "dapr.io/graceful-shutdown-seconds",
    "dapr.io/block-shutdown-duration",
    "dapr.io/enable-api-logging",
    "dapr.io/unix-domain-socket-path",
    "dapr.io/volume-mounts",
    "dapr.io/volume-mounts-rw",
    "dapr.io/disable-builtin-k8s-secret-store",
    "dapr.io/enable-app-health-check",
    "dapr.io/app-health-check-path",
    "dapr.io/app-health-probe-interval",
    "dapr.io/app-health-probe-timeout",
    "dapr.io/app-health-threshold",
    "dapr.io/app-channel-address",
];

/// A probe's timings, in seconds (`failure_threshold`: consecutive failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTimes {
    /// `initialDelaySeconds`.
    pub initial_delay_seconds: i64,
    /// `timeoutSeconds`.
    pub timeout_seconds: i64,
    /// `periodSeconds`.
    pub period_seconds: i64,
    /// `failureThreshold`.
    pub failure_threshold: i64,
}

/// What the annotations of one pod ask for. Defaults are Dapr v1.14's.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarConfig {
    /// `dapr.io/enabled`.
    pub enabled: bool,
    /// `dapr.io/app-id`, else the pod's name; `None` when both are empty.
    pub app_id: Option<String>,
    /// `dapr.io/app-port` (`None`: no app channel).
    pub app_port: Option<u16>,
    /// `dapr.io/config`: the Configuration resource's name.
    pub config: Option<String>,
    /// `dapr.io/app-protocol`: `http` (default) or `grpc`.
    pub app_protocol: String,
    /// `dapr.io/log-level` (default `info`).
    pub log_level: String,
    /// `dapr.io/log-as-json`.
    pub log_as_json: bool,
    /// Secret names whose `token` key becomes `DAPR_API_TOKEN` / `APP_API_TOKEN`.
    pub api_token_secret: Option<String>,
    /// `dapr.io/app-token-secret`.
    pub app_token_secret: Option<String>,
    /// `dapr.io/app-max-concurrency`.
    pub app_max_concurrency: Option<i64>,
    /// `dapr.io/enable-metrics` (default true) and `dapr.io/metrics-port` (9090).
    pub enable_metrics: bool,
    /// `dapr.io/metrics-port` (default 9090).
    pub metrics_port: u16,
    /// `dapr.io/env`: `K=V` pairs, in order.
    pub env: Vec<(String, String)>,
    /// `dapr.io/grpc-port` (50001) and `dapr.io/internal-grpc-port` (50002).
    pub grpc_port: u16,
    /// `dapr.io/internal-grpc-port` (default 50002).
    pub internal_grpc_port: u16,
    /// Kubernetes quantities: cpu and memory requests and limits.
    pub cpu_request: Option<String>,
    /// `dapr.io/sidecar-cpu-limit`.
    pub cpu_limit: Option<String>,
    /// `dapr.io/sidecar-memory-request`.
    pub memory_request: Option<String>,
    /// `dapr.io/sidecar-memory-limit`.
    pub memory_limit: Option<String>,
    /// `dapr.io/sidecar-listen-addresses` (default `127.0.0.1`: the sidecar binds one address,
    /// the first; daprd's injector defaults to `[::1],127.0.0.1`).
    pub listen_addresses: String,
    /// Liveness probe timings (`dapr.io/sidecar-liveness-probe-*`; 3, 3, 6, 3 s).
    pub liveness: ProbeTimes,
    /// Readiness probe timings (`dapr.io/sidecar-readiness-probe-*`).
    pub readiness: ProbeTimes,
    /// `dapr.io/sidecar-image`: overrides the injector's image.
    pub image: Option<String>,
    /// `dapr.io/sidecar-seccomp-profile-type` (default `RuntimeDefault` here).
    pub seccomp_profile_type: Option<String>,
    /// `dapr.io/http-max-request-size` (MB, legacy).
    pub http_max_request_size: Option<i64>,
    /// `dapr.io/max-body-size` (e.g. `4Mi`).
    pub max_body_size: Option<String>,
    /// `dapr.io/http-read-buffer-size` (KB, legacy).
    pub http_read_buffer_size: Option<i64>,
    /// `dapr.io/read-buffer-size` (e.g. `4Ki`).
    pub read_buffer_size: Option<String>,
    /// `dapr.io/graceful-shutdown-seconds` (default -1: daprd's own default).
    pub graceful_shutdown_seconds: i64,
    /// `dapr.io/block-shutdown-duration` (a Go duration).
    pub block_shutdown_duration: Option<String>,
    /// `dapr.io/enable-api-logging`, passed only when given.
    pub enable_api_logging: Option<bool>,
    /// `dapr.io/unix-domain-socket-path`: where the app containers see the sockets.
    pub unix_domain_socket_path: Option<String>,
    /// `dapr.io/volume-mounts` and `-rw`: `(volume, mount path)` pairs.
    pub volume_mounts: Vec<(String, String)>,
    /// `dapr.io/volume-mounts-rw`: mounted read-write.
    pub volume_mounts_rw: Vec<(String, String)>,
    /// `dapr.io/disable-builtin-k8s-secret-store`.
    pub disable_builtin_k8s_secret_store: bool,
    /// `dapr.io/enable-app-health-check`.
    pub enable_app_health_check: bool,
    /// `dapr.io/app-health-check-path` (default `/healthz`).
    pub app_health_check_path: String,
    /// `dapr.io/app-health-probe-interval`, seconds (default 5).
    pub app_health_probe_interval: i64,
    /// `dapr.io/app-health-probe-timeout`, milliseconds (default 500).
    pub app_health_probe_timeout: i64,
    /// `dapr.io/app-health-threshold` (default 3).
    pub app_health_threshold: i64,
    /// `dapr.io/app-channel-address`.
    pub app_channel_address: Option<String>,
}

/// Dapr's `IsTruthy`.
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "t" | "on" | "1"
    )
}

const PROBE_DEFAULTS: ProbeTimes = ProbeTimes {
    initial_delay_seconds: 3,
    timeout_seconds: 3,
    period_seconds: 6,
    failure_threshold: 3,
};

impl SidecarConfig {
    /// Reads `annotations` of a pod named `pod_name` (empty for templates and `generateName`
    /// pods). Returns the config and warnings (unknown `dapr.io/` annotations).
    ///
    /// # Errors
    /// Every problem, one line each: a refused annotation with its reason, a number or port
    /// that does not parse, an app protocol other than `http` or `grpc`, an app id that is no
    /// DNS-1123 label, a bad `dapr.io/env` or volume-mounts list, a resource quantity that
    /// does not parse.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        pod_name: &str,
    ) -> Result<(Self, Vec<String>), Vec<String>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let get = |k: &str| {
            annotations
                .get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        for (k, v) in annotations {
            if !k.starts_with("dapr.io/") || v.trim().is_empty() {
                continue;
            }
            if let Some((_, why)) = REFUSED.iter().find(|(name, _)| name == k) {
                // A boolean switch set to false asks for nothing.
                let off = matches!(
                    k.as_str(),
                    "dapr.io/enable-debug"
                        | "dapr.io/enable-profiling"
                        | "dapr.io/app-ssl"
                        | "dapr.io/inject-pluggable-components"
                ) && !truthy(v);
                if !off {
                    problems.push(format!("annotation {k}: {why}"));
                }
            } else if !IMPLEMENTED.contains(&k.as_str()) {
                warnings.push(format!("annotation {k} is unknown and has no effect"));
            }
        }
        let mut int = |k: &str, default: i64| match get(k) {
            None => default,
            Some(v) => v.parse::<i64>().unwrap_or_else(|_| {
                problems.push(format!("annotation {k}: '{v}' is not an integer"));
                default
            }),
        };
        let liveness = ProbeTimes {
            initial_delay_seconds: int(
                "dapr.io/sidecar-liveness-probe-delay-seconds",
                PROBE_DEFAULTS.initial_delay_seconds,
            ),
            timeout_seconds: int(
                "dapr.io/sidecar-liveness-probe-timeout-seconds",
                PROBE_DEFAULTS.timeout_seconds,
            ),
            period_seconds: int(
                "dapr.io/sidecar-liveness-probe-period-seconds",
                PROBE_DEFAULTS.period_seconds,
            ),
            failure_threshold: int(
                "dapr.io/sidecar-liveness-probe-threshold",
                PROBE_DEFAULTS.failure_threshold,
            ),
        };
        let readiness = ProbeTimes {
            initial_delay_seconds: int(
                "dapr.io/sidecar-readiness-probe-delay-seconds",
                PROBE_DEFAULTS.initial_delay_seconds,
            ),
            timeout_seconds: int(
                "dapr.io/sidecar-readiness-probe-timeout-seconds",
                PROBE_DEFAULTS.timeout_seconds,
            ),
            period_seconds: int(
                "dapr.io/sidecar-readiness-probe-period-seconds",
                PROBE_DEFAULTS.period_seconds,
            ),
            failure_threshold: int(
                "dapr.io/sidecar-readiness-probe-threshold",
                PROBE_DEFAULTS.failure_threshold,
            ),
        };
        let app_max_concurrency =
            get("dapr.io/app-max-concurrency").map(|_| int("dapr.io/app-max-concurrency", -1));
        let http_max_request_size =
            get("dapr.io/http-max-request-size").map(|_| int("dapr.io/http-max-request-size", 0));
        let http_read_buffer_size =
            get("dapr.io/http-read-buffer-size").map(|_| int("dapr.io/http-read-buffer-size", 0));
        let graceful_shutdown_seconds = int("dapr.io/graceful-shutdown-seconds", -1);
        let app_health_probe_interval = int("dapr.io/app-health-probe-interval", 5);
        let app_health_probe_timeout = int("dapr.io/app-health-probe-timeout", 500);
        let app_health_threshold = int("dapr.io/app-health-threshold", 3);
        let mut port = |k: &str, default: u16| match get(k) {
            None => Some(default),
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    problems.push(format!("annotation {k}: '{v}' is not a port (1-65535)"));
                    None
                }
            },
        };
        let grpc_port = port("dapr.io/grpc-port", 50001).unwrap_or(50001);
        let internal_grpc_port = port("dapr.io/internal-grpc-port", 50002).unwrap_or(50002);
        let metrics_port = port("dapr.io/metrics-port", 9090).unwrap_or(9090);
        let app_port = get("dapr.io/app-port").and_then(|_| port("dapr.io/app-port", 0));
        let app_protocol = get("dapr.io/app-protocol")
            .unwrap_or_else(|| "http".to_owned())
            .to_ascii_lowercase();
        if !matches!(app_protocol.as_str(), "http" | "grpc") {
            problems.push(format!(
                "annotation dapr.io/app-protocol: '{app_protocol}' is not supported (http or grpc)"
            ));
        }
        let app_id = get("dapr.io/app-id").or_else(|| {
            let n = pod_name.trim();
            (!n.is_empty()).then(|| n.to_owned())
        });
        match &app_id {
            None => problems.push(
                "value for the dapr.io/app-id annotation is empty (and the pod has no name)"
                    .to_owned(),
            ),
            Some(id) if !dns_label(&format!("{id}-dapr")) => problems.push(format!(
                "annotation dapr.io/app-id: '{id}' is not a valid Kubernetes app id: at most 58 \
                 lower-case letters, digits and '-' (its Service is '<app-id>-dapr'), starting \
                 and ending with a letter or digit"
            )),
            Some(_) => {}
        }
        let env = match get("dapr.io/env") {
            None => Vec::new(),
            Some(v) => parse_env(&v).unwrap_or_else(|e| {
                problems.push(format!("annotation dapr.io/env: {e}"));
                Vec::new()
            }),
        };
        let mut mounts = |k: &str| match get(k) {
            None => Vec::new(),
            Some(v) => parse_mounts(&v).unwrap_or_else(|e| {
                problems.push(format!("annotation {k}: {e}"));
                Vec::new()
            }),
        };
        let volume_mounts = mounts("dapr.io/volume-mounts");
        let volume_mounts_rw = mounts("dapr.io/volume-mounts-rw");
        let mut quantity = |k: &str| {
            let v = get(k)?;
            if is_quantity(&v) {
                Some(v)
            } else {
                problems.push(format!(
                    "annotation {k}: '{v}' is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi)"
                ));
                None
            }
        };
        let cpu_request = quantity("dapr.io/sidecar-cpu-request");
        let cpu_limit = quantity("dapr.io/sidecar-cpu-limit");
        let memory_request = quantity("dapr.io/sidecar-memory-request");
        let memory_limit = quantity("dapr.io/sidecar-memory-limit");
        let flag = |k: &str| get(k).is_some_and(|v| truthy(&v));
        let cfg = Self {
            enabled: flag("dapr.io/enabled"),
            app_id,
            app_port,
            config: get("dapr.io/config"),
            app_protocol,
            log_level: get("dapr.io/log-level").unwrap_or_else(|| "info".to_owned()),
            log_as_json: flag("dapr.io/log-as-json"),
            api_token_secret: get("dapr.io/api-token-secret"),
            app_token_secret: get("dapr.io/app-token-secret"),
            app_max_concurrency,
            enable_metrics: get("dapr.io/enable-metrics").is_none_or(|v| truthy(&v)),
            metrics_port,
            env,
            grpc_port,
            internal_grpc_port,
            cpu_request,
            cpu_limit,
            memory_request,
            memory_limit,
            listen_addresses: get("dapr.io/sidecar-listen-addresses")
                .unwrap_or_else(|| "127.0.0.1".to_owned()),
            liveness,
            readiness,
            image: get("dapr.io/sidecar-image"),
            seccomp_profile_type: get("dapr.io/sidecar-seccomp-profile-type"),
            http_max_request_size,
            max_body_size: get("dapr.io/max-body-size"),
            http_read_buffer_size,
            read_buffer_size: get("dapr.io/read-buffer-size"),
            graceful_shutdown_seconds,
            block_shutdown_duration: get("dapr.io/block-shutdown-duration"),
            enable_api_logging: get("dapr.io/enable-api-logging").map(|v| truthy(&v)),
            unix_domain_socket_path: get("dapr.io/unix-domain-socket-path"),
            volume_mounts,
            volume_mounts_rw,
            disable_builtin_k8s_secret_store: flag("dapr.io/disable-builtin-k8s-secret-store"),
            enable_app_health_check: flag("dapr.io/enable-app-health-check"),
            app_health_check_path: get("dapr.io/app-health-check-path")
                .unwrap_or_else(|| "/healthz".to_owned()),
            app_health_probe_interval,
            app_health_probe_timeout,
            app_health_threshold,
            app_channel_address: get("dapr.io/app-channel-address"),
        };
        if problems.is_empty() {
            Ok((cfg, warnings))
        } else {
            Err(problems)
        }
    }
}

/// A DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
fn dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Dapr's `dapr.io/env` list: `K=V` pairs separated by commas, where a comma followed by
/// something that is no `IDENT=` belongs to the value (`A=1,2,B=3` is `A=1,2` and `B=3`).
fn parse_env(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in v.split(',') {
        let starts_pair = part.split_once('=').is_some_and(|(k, _)| {
            let k = k.trim();
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        });
        match (starts_pair, out.last_mut()) {
            (true, _) => {
                let (k, val) = part.split_once('=').unwrap_or_default();
                out.push((k.trim().to_owned(), val.trim().to_owned()));
            }
            (false, Some(last)) => {
                last.1.push(',');
                last.1.push_str(part);
            }
            (false, None) => return Err(format!("'{part}' is no NAME=value pair")),
        }
    }
    Ok(out)
}

/// A `volume:path,volume:path` list.
fn parse_mounts(v: &str) -> Result<Vec<(String, String)>, String> {
    v.split(',')
        .map(|p| match p.split_once(':') {
            Some((n, path)) if !n.trim().is_empty() && path.trim().starts_with('/') => {
                Ok((n.trim().to_owned(), path.trim().to_owned()))
            }
            _ => Err(format!("'{p}' is no volume-name:/absolute/path pair")),
        })
        .collect()
}

/// Whether `v` is a Kubernetes resource quantity: a decimal number, optionally signed, with
/// a binary (`Ki`..`Ei`), decimal (`n`, `u`, `m`, `k`, `M`..`E`) or exponent (`e3`) suffix.
pub fn is_quantity(v: &str) -> bool {
    let v = v.strip_prefix(['+', '-']).unwrap_or(v);
    let digits_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(digits_end);
    let num_ok =
        !num.is_empty() && num.matches('.').count() <= 1 && num.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    num_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_dapr_1_14s() {
        let (c, w) =
            SidecarConfig::from_annotations(&ann(&[("dapr.io/enabled", "YES")]), "pod-1").unwrap();
        assert!(c.enabled && w.is_empty());
        assert_eq!(c.app_id.as_deref(), Some("pod-1"));
        assert_eq!(
            (c.grpc_port, c.internal_grpc_port, c.metrics_port),
            (50001, 50002, 9090)
        );
        assert!(c.enable_metrics);
        assert_eq!(c.liveness, PROBE_DEFAULTS);
        assert_eq!(c.listen_addresses, "127.0.0.1");
        assert_eq!(c.graceful_shutdown_seconds, -1);
        assert_eq!(c.app_protocol, "http");
    }

    #[test]
    fn refuses_by_name_and_warns_on_unknown() {
        let e = SidecarConfig::from_annotations(
            &ann(&[
                ("dapr.io/enabled", "true"),
                ("dapr.io/app-id", "a"),
                ("dapr.io/placement-host-address", "p:50005"),
                ("dapr.io/app-protocol", "grpcs"),
                ("dapr.io/sidecar-cpu-limit", "lots"),
                ("dapr.io/grpc-port", "70000"),
            ]),
            "",
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("placement-host-address") && e[0].contains("actors"));
        let all = e.join("\n");
        for k in ["app-protocol", "sidecar-cpu-limit", "grpc-port"] {
            assert!(all.contains(k), "{all}");
        }
        // A debugger switched off asks for nothing; an unknown key is a warning.
        let (_, w) = SidecarConfig::from_annotations(
            &ann(&[
                ("dapr.io/app-id", "a"),
                ("dapr.io/enable-debug", "false"),
                ("dapr.io/frobnicate", "1"),
            ]),
            "",
        )
        .unwrap();
        assert_eq!(
            w,
            vec!["annotation dapr.io/frobnicate is unknown and has no effect"]
        );
        let e = SidecarConfig::from_annotations(&ann(&[("dapr.io/enabled", "1")]), "").unwrap_err();
        assert!(e[0].contains("dapr.io/app-id"), "{e:?}");
        let e =
            SidecarConfig::from_annotations(&ann(&[("dapr.io/app-id", "My_App")]), "").unwrap_err();
        assert!(e[0].contains("'My_App'"), "{e:?}");
    }

    #[test]
    fn env_lists_mounts_and_quantities() {
        assert_eq!(
            parse_env("A=1,2, B = x=y ,C=").unwrap(),
            vec![
                ("A".to_owned(), "1,2".to_owned()),
                ("B".to_owned(), "x=y".to_owned()),
                ("C".to_owned(), String::new())
            ]
        );
        assert!(parse_env("nope").is_err());
        assert_eq!(
            parse_mounts("data:/mnt/data, cfg:/etc/cfg").unwrap(),
            vec![
                ("data".to_owned(), "/mnt/data".to_owned()),
                ("cfg".to_owned(), "/etc/cfg".to_owned())
            ]
        );
        assert!(parse_mounts("data").is_err() && parse_mounts("d:rel").is_err());
        for q in ["100m", "0.5", "1", "64Mi", "1e3", "2G", "+1.5Gi"] {
            assert!(is_quantity(q), "{q}");
        }
        for q in ["", "m", "1.2.3", "64MB", "lots", "1e"] {
            assert!(!is_quantity(q), "{q}");
        }
    }
}
