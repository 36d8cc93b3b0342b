//! The command line: `layotto start|validate` and daprd's own flags, so a launch script written
//! for daprd v1.14 (or `dapr run`) starts this binary unchanged, also with no subcommand at all.
//!
//! Every daprd v1.14 flag is accepted with daprd's name and default (`dapr/dapr:
//! cmd/daprd/options/options.go`, `dapr/kit:logger/options.go`, `dapr/dapr:pkg/metrics/
//! options.go`). As daprd (Go's pflag), single-dash long flags (`-app-id x`) work, and booleans
//! take `--flag` or `--flag=false` (never `--flag false`). Flags for what this sidecar does not
//! have (placement, scheduler, Sentry, actors, profiling...) are accepted with one warning each
//! ([`DaprdArgs::warnings`]); `--mode kubernetes` needs the `kubernetes` feature ([`DaprdArgs::problems`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::ArgAction;

/// daprd's flags (with Layotto's `-c`): what `layotto start`, `layotto validate` and a bare
/// `layotto --flags...` (daprd style) take.
#[derive(clap::Args, Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct DaprdArgs {
    /// Config files (repeatable): a Layotto JSON config (an object with `servers`) or a Dapr
    /// Configuration resource (YAML, `kind: Configuration`); the content decides.
    #[arg(short = 'c', long = "config")]
    pub config: Vec<PathBuf>,
    /// Directory of Dapr resource YAML files (repeatable or comma-separated).
    #[arg(long = "resources-path", value_delimiter = ',')]
    pub resources_path: Vec<PathBuf>,
    /// Deprecated alias of `--resources-path` (used when that is empty).
    #[arg(long = "components-path")]
    pub components_path: Option<PathBuf>,
    /// `standalone` (default) or `kubernetes` (resources from the API server).
    #[arg(long = "mode", default_value = "standalone")]
    pub mode: String,
    /// The app's id (overrides the Layotto config's `app_id`).
    #[arg(long = "app-id")]
    pub app_id: Option<String>,
    /// Port the app listens on (0 or empty: no app channel).
    #[arg(long = "app-port")]
    pub app_port: Option<String>,
    /// How to reach the app: `http` (default) or `grpc`.
    #[arg(long = "app-protocol", default_value = "http")]
    pub app_protocol: String,
    /// Host of the app.
    #[arg(long = "app-channel-address", default_value = "127.0.0.1")]
    pub app_channel_address: String,
    /// Concurrency limit of calls to the app (-1: none).
    #[arg(long = "app-max-concurrency", default_value_t = -1, allow_negative_numbers = true)]
    pub app_max_concurrency: i64,
    /// Deprecated: TLS to the app (use `--app-protocol https|grpcs`).
    #[arg(long = "app-ssl", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub app_ssl: bool,
    /// Probe the app's health.
    #[arg(long = "enable-app-health-check", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub enable_app_health_check: bool,
    /// Path of the app's HTTP health check.
    #[arg(long = "app-health-check-path", default_value = "/healthz")]
    pub app_health_check_path: String,
    /// Seconds between health probes.
    #[arg(
        long = "app-health-probe-interval",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub app_health_probe_interval: i64,
    /// Milliseconds a health probe may take.
    #[arg(
        long = "app-health-probe-timeout",
        default_value_t = 500,
        allow_negative_numbers = true
    )]
    pub app_health_probe_timeout: i64,
    /// Failed probes before the app counts as unhealthy.
    #[arg(
        long = "app-health-threshold",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub app_health_threshold: i64,
    /// Port of Dapr's HTTP API (3500).
    #[arg(long = "dapr-http-port")]
    pub dapr_http_port: Option<String>,
    /// Port of Dapr's gRPC API (50001); it also serves the Layotto API.
    #[arg(long = "dapr-grpc-port")]
    pub dapr_grpc_port: Option<String>,
    /// Addresses the API ports bind to, comma-separated (default here: 127.0.0.1).
    #[arg(long = "dapr-listen-addresses")]
    pub dapr_listen_addresses: Option<String>,
    /// Port of daprd's public health and metadata server.
    #[arg(long = "dapr-public-port")]
    pub dapr_public_port: Option<String>,
    /// Address of the public server.
    #[arg(long = "dapr-public-listen-address")]
    pub dapr_public_listen_address: Option<String>,
    /// Directory of Unix domain sockets for the API servers.
    #[arg(long = "unix-domain-socket")]
    pub unix_domain_socket: Option<String>,
    /// Port of daprd's internal (sidecar-to-sidecar) gRPC server.
    #[arg(long = "dapr-internal-grpc-port")]
    pub dapr_internal_grpc_port: Option<String>,
    /// Address of the internal gRPC server.
    #[arg(long = "dapr-internal-grpc-listen-address")]
    pub dapr_internal_grpc_listen_address: Option<String>,
    /// Placement service addresses (actors).
    #[arg(long = "placement-host-address")]
    pub placement_host_address: Option<String>,
    /// Actors service (`placement:address`).
    #[arg(long = "actors-service")]
    pub actors_service: Option<String>,
    /// Reminders service.
    #[arg(long = "reminders-service")]
    pub reminders_service: Option<String>,
    /// Scheduler addresses.
    #[arg(long = "scheduler-host-address", value_delimiter = ',')]
    pub scheduler_host_address: Vec<String>,
    /// Sentry CA address.
    #[arg(long = "sentry-address")]
    pub sentry_address: Option<String>,
    /// mTLS between sidecars.
    #[arg(long = "enable-mtls", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub enable_mtls: bool,
    /// Control plane trust domain.
    #[arg(long = "control-plane-trust-domain", default_value = "localhost")]
    pub control_plane_trust_domain: String,
    /// Control plane namespace.
    #[arg(long = "control-plane-namespace", default_value = "default")]
    pub control_plane_namespace: String,
    /// Operator address (Kubernetes mode).
    #[arg(long = "control-plane-address")]
    pub control_plane_address: Option<String>,
    /// Turns off the implicit `kubernetes` secret store.
    #[arg(long = "disable-builtin-k8s-secret-store", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub disable_builtin_k8s_secret_store: bool,
    /// CORS origins of the HTTP API.
    #[arg(long = "allowed-origins", default_value = "*")]
    pub allowed_origins: String,
    /// Largest request body of the HTTP API (`4Mi`; `-1`: default).
    #[arg(long = "max-body-size", allow_hyphen_values = true)]
    pub max_body_size: Option<String>,
    /// Deprecated: largest request body in MB (`-1`: default).
    #[arg(long = "dapr-http-max-request-size", allow_negative_numbers = true)]
    pub dapr_http_max_request_size: Option<i64>,
    /// HTTP read buffer (`4Ki`).
    #[arg(long = "read-buffer-size", allow_hyphen_values = true)]
    pub read_buffer_size: Option<String>,
    /// Deprecated: HTTP read buffer in KB.
    #[arg(long = "dapr-http-read-buffer-size", allow_negative_numbers = true)]
    pub dapr_http_read_buffer_size: Option<i64>,
    /// pprof server.
    #[arg(long = "enable-profiling", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub enable_profiling: bool,
    /// pprof port.
    #[arg(long = "profile-port", allow_hyphen_values = true)]
    pub profile_port: Option<String>,
    /// Log every API call (default: the Configuration's `logging.apiLogging.enabled`).
    #[arg(long = "enable-api-logging", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub enable_api_logging: Option<bool>,
    /// `debug`, `info` (default), `warn`, `error` or `fatal`.
    #[arg(long = "log-level")]
    pub log_level: Option<String>,
    /// Log lines as JSON with Dapr's fields.
    #[arg(long = "log-as-json", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub log_as_json: bool,
    /// Serve Prometheus metrics (default true in Dapr mode).
    #[arg(long = "enable-metrics", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = true)]
    pub enable_metrics: bool,
    /// Port of the metrics endpoint (9090).
    #[arg(long = "metrics-port")]
    pub metrics_port: Option<String>,
    /// Address of the metrics endpoint (daprd 1.14 ignores it and binds every interface).
    #[arg(long = "metrics-listen-address", default_value = "0.0.0.0")]
    pub metrics_listen_address: String,
    /// Seconds in-flight work gets at shutdown.
    #[arg(
        long = "dapr-graceful-shutdown-seconds",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub dapr_graceful_shutdown_seconds: i64,
    /// Blocks shutdown this long after SIGTERM.
    #[arg(long = "dapr-block-shutdown-duration")]
    pub dapr_block_shutdown_duration: Option<String>,
    /// Print the version and exit.
    #[arg(long = "version", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub version: bool,
    /// Print the build information and exit.
    #[arg(long = "build-info", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub build_info: bool,
    /// Wait until the sidecar on `--dapr-http-port` is outbound-ready, then exit.
    #[arg(long = "wait", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub wait: bool,
}

/// Dapr's default HTTP API port.
pub const DAPR_HTTP_PORT: u16 = 3500;
/// Dapr's default gRPC API port.
pub const DAPR_GRPC_PORT: u16 = 50001;
/// daprd's default metrics port.
pub const METRICS_PORT: u16 = 9090;

/// A port flag's value: `None` when unset, empty or non-positive (daprd's "not set"; `dapr run`
/// passes `-1`).
///
/// # Errors
/// The flag and value when it is no port number.
fn port(flag: &str, v: Option<&String>) -> Result<Option<u16>, String> {
    match v.map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n <= 0 => Ok(None),
            Ok(n) => u16::try_from(n)
                .map(Some)
                .map_err(|_| format!("--{flag}: {s} is no port number")),
            Err(_) => Err(format!("--{flag}: '{s}' is no port number")),
        },
    }
}

impl DaprdArgs {
    /// Whether any Dapr resource or port was given (a `layotto start` serves Dapr's APIs then).
    pub fn dapr_requested(&self) -> bool {
        !self.resources().is_empty()
            || self.dapr_http_port.is_some()
            || self.dapr_grpc_port.is_some()
    }

    /// The resource directories (`--components-path` when `--resources-path` is empty).
    pub fn resources(&self) -> Vec<PathBuf> {
        if self.resources_path.is_empty() {
            self.components_path.iter().cloned().collect()
        } else {
            self.resources_path.clone()
        }
    }

    /// `--app-port` (`None`: no app channel).
    ///
    /// # Errors
    /// Not a port number.
    pub fn app_port(&self) -> Result<Option<u16>, String> {
        port("app-port", self.app_port.as_ref())
    }

    /// `--dapr-http-port`, default 3500.
    ///
    /// # Errors
    /// Not a port number.
    pub fn http_port(&self) -> Result<u16, String> {
        Ok(port("dapr-http-port", self.dapr_http_port.as_ref())?.unwrap_or(DAPR_HTTP_PORT))
    }

    /// `--dapr-grpc-port`, default 50001.
    ///
    /// # Errors
    /// Not a port number.
    pub fn grpc_port(&self) -> Result<u16, String> {
        Ok(port("dapr-grpc-port", self.dapr_grpc_port.as_ref())?.unwrap_or(DAPR_GRPC_PORT))
    }

    /// `--dapr-internal-grpc-port` (`None` when not given; 0 picks a free port).
    ///
    /// # Errors
    /// Not a port number.
    pub fn internal_grpc_port(&self) -> Result<Option<u16>, String> {
        port(
            "dapr-internal-grpc-port",
            self.dapr_internal_grpc_port.as_ref(),
        )
    }

    /// `--dapr-internal-grpc-listen-address` (default: every interface, as daprd).
    ///
    /// # Errors
    /// Not an IP address.
    pub fn internal_grpc_listen_address(&self) -> Result<std::net::IpAddr, String> {
        match self
            .dapr_internal_grpc_listen_address
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => Ok(std::net::IpAddr::from([0, 0, 0, 0])),
            Some("localhost") => Ok(std::net::IpAddr::from([127, 0, 0, 1])),
            Some(a) => a.parse().map_err(|_| {
                format!("--dapr-internal-grpc-listen-address: '{a}' is no IP address")
            }),
        }
    }

    /// `--metrics-port`, default 9090.
    ///
    /// # Errors
    /// Not a port number.
    pub fn metrics_port(&self) -> Result<u16, String> {
        Ok(port("metrics-port", self.metrics_port.as_ref())?.unwrap_or(METRICS_PORT))
    }

    /// The address the API ports bind to: the first of `--dapr-listen-addresses` (default
    /// 127.0.0.1; daprd's default is every interface).
    ///
    /// # Errors
    /// Not an IP address.
    pub fn listen_address(&self) -> Result<std::net::IpAddr, String> {
        let first = self
            .dapr_listen_addresses
            .as_deref()
            .and_then(|s| s.split(',').map(str::trim).find(|s| !s.is_empty()))
            .unwrap_or("127.0.0.1");
        // daprd's injector writes IPv6 addresses in brackets (`[::1],127.0.0.1`).
        let first = first
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(first);
        let first = if first == "localhost" {
            "127.0.0.1"
        } else {
            first
        };
        first
            .parse()
            .map_err(|_| format!("--dapr-listen-addresses: '{first}' is no IP address"))
    }

    /// `--log-level` in `tracing`'s words.
    ///
    /// # Errors
    /// daprd's message for anything but debug, info, warn, error, fatal.
    pub fn log_level(&self) -> Result<Option<&'static str>, String> {
        let Some(l) = &self.log_level else {
            return Ok(None);
        };
        Ok(Some(match l.to_ascii_lowercase().as_str() {
            "debug" => "debug",
            "info" => "info",
            "warn" => "warn",
            "error" | "fatal" => "error",
            _ => return Err(format!("invalid value for --log-level: {l}")),
        }))
    }

    /// Flags that cannot be honoured: each an error.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.mode.as_str() {
            "standalone" => {}
            "kubernetes" if cfg!(feature = "kubernetes") => {}
            "kubernetes" => {
                out.push("--mode kubernetes: this build lacks the `kubernetes` feature".to_owned())
            }
            m => out.push(format!(
                "--mode: '{m}' is neither standalone nor kubernetes"
            )),
        }
        match self.app_protocol.to_ascii_lowercase().as_str() {
            "http" | "grpc" | "" => {}
            p @ ("https" | "grpcs" | "h2c") => {
                out.push(format!(
                    "--app-protocol {p} is not supported yet (http or grpc)"
                ));
            }
            p => out.push(format!(
                "--app-protocol: '{p}' is not one of grpc, grpcs, http, https, h2c"
            )),
        }
        if self.app_ssl {
            out.push("--app-ssl (TLS to the app) is not supported yet".to_owned());
        }
        if self.enable_mtls {
            out.push(
                "--enable-mtls: mTLS between sidecars (Sentry) is not supported yet; without it \
                 sidecars would talk in clear text"
                    .to_owned(),
            );
        }
        for (flag, v) in [
            ("app-port", &self.app_port),
            ("dapr-http-port", &self.dapr_http_port),
            ("dapr-grpc-port", &self.dapr_grpc_port),
            ("metrics-port", &self.metrics_port),
            ("profile-port", &self.profile_port),
            ("dapr-internal-grpc-port", &self.dapr_internal_grpc_port),
        ] {
            if let Err(e) = port(flag, v.as_ref()) {
                out.push(e);
            }
        }
        if let Err(e) = self.listen_address() {
            out.push(e);
        }
        let h = self.app_health();
        if self.enable_app_health_check && h.timeout > h.interval {
            out.push(
                "value for 'health-probe-timeout' must be smaller than 'health-probe-interval'"
                    .to_owned(),
            );
        }
        if let Err(e) = self.log_level() {
            out.push(e);
        }
        if let Err(e) = self.block_shutdown() {
            out.push(e);
        }
        if let Err(e) = self.public_address() {
            out.push(e);
        }
        out
    }

    /// `--dapr-block-shutdown-duration`: how long shutdown waits after SIGTERM (a Go
    /// duration such as `30s`), `None` when not given. As daprd, giving it at all (even `0s`)
    /// stops subscriptions at the signal.
    ///
    /// # Errors
    /// A value that is no Go duration.
    pub fn block_shutdown(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(raw) = self.dapr_block_shutdown_duration.as_deref() else {
            return Ok(None);
        };
        let bad = || {
            format!(
                "invalid argument \"{raw}\" for \"--dapr-block-shutdown-duration\": expected a \
                 duration such as 30s or 1m30s"
            )
        };
        // Go's ParseDuration wants a unit on everything but 0.
        if raw.trim().parse::<u64>().is_ok_and(|n| n != 0) {
            return Err(bad());
        }
        layotto_core::metadata::parse_duration(raw, std::time::Duration::from_secs)
            .map(Some)
            .ok_or_else(bad)
    }

    /// daprd's public server (`--dapr-public-port`, on `--dapr-public-listen-address`, every
    /// interface by default), when the port is given.
    ///
    /// # Errors
    /// A port or address that does not parse.
    pub fn public_address(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let Some(port) = port("dapr-public-port", self.dapr_public_port.as_ref())? else {
            return Ok(None);
        };
        let ip = match self.dapr_public_listen_address.as_deref() {
            None | Some("") => std::net::IpAddr::from([0, 0, 0, 0]),
            Some(a) => a
                .parse()
                .map_err(|_| format!("--dapr-public-listen-address: '{a}' is no IP address"))?,
        };
        Ok(Some(std::net::SocketAddr::new(ip, port)))
    }

    /// `--app-max-concurrency`: at most this many calls to the app at once; `None` (daprd's
    /// `-1`, or any value below 1) is no limit.
    pub fn app_max_concurrency(&self) -> Option<usize> {
        usize::try_from(self.app_max_concurrency)
            .ok()
            .filter(|n| *n > 0)
    }

    /// One line per flag accepted without effect here.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut no_effect = |given: bool, flag: &str, why: &str| {
            if given {
                out.push(format!("--{flag} has no effect: {why}"));
            }
        };
        let actors = "actors are not supported";
        no_effect(
            self.placement_host_address.is_some(),
            "placement-host-address",
            actors,
        );
        no_effect(self.actors_service.is_some(), "actors-service", actors);
        no_effect(
            self.reminders_service.is_some(),
            "reminders-service",
            actors,
        );
        no_effect(
            !self.scheduler_host_address.is_empty(),
            "scheduler-host-address",
            "the scheduler (jobs, actor reminders) is not supported",
        );
        let sentry = "mTLS between sidecars (Sentry) is not supported";
        no_effect(self.sentry_address.is_some(), "sentry-address", sentry);
        no_effect(
            self.control_plane_address.is_some(),
            "control-plane-address",
            "there is no Dapr operator: in Kubernetes mode the sidecar reads its resources from \
             the API server",
        );
        no_effect(
            self.disable_builtin_k8s_secret_store && self.mode != "kubernetes",
            "disable-builtin-k8s-secret-store",
            "the built-in Kubernetes secret store exists in Kubernetes mode only",
        );
        no_effect(
            self.enable_profiling,
            "enable-profiling",
            "there is no pprof server",
        );
        no_effect(
            self.components_path.is_some(),
            "components-path",
            "deprecated alias: read as --resources-path",
        );
        no_effect(
            self.dapr_internal_grpc_port.is_none()
                && self.dapr_internal_grpc_listen_address.is_some(),
            "dapr-internal-grpc-listen-address",
            "no --dapr-internal-grpc-port is given",
        );
        no_effect(
            self.dapr_public_port.is_none() && self.dapr_public_listen_address.is_some(),
            "dapr-public-listen-address",
            "no --dapr-public-port is given",
        );
        no_effect(
            self.read_buffer_size.is_some() || self.dapr_http_read_buffer_size.is_some(),
            "read-buffer-size",
            "headers are bounded by the HTTP server's own limits",
        );
        if self
            .dapr_listen_addresses
            .as_deref()
            .is_some_and(|s| s.split(',').filter(|a| !a.trim().is_empty()).count() > 1)
        {
            out.push("--dapr-listen-addresses: only the first address is bound".to_owned());
        }
        out
    }

    /// The app health settings, daprd's defaults for values out of range (interval 5 s,
    /// timeout 500 ms, threshold 3).
    pub fn app_health(&self) -> layotto_runtime::AppHealthSettings {
        let pos = |v: i64, d: u64| u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(d);
        layotto_runtime::AppHealthSettings {
            path: self.app_health_check_path.clone(),
            interval: std::time::Duration::from_secs(pos(self.app_health_probe_interval, 5)),
            timeout: std::time::Duration::from_millis(pos(self.app_health_probe_timeout, 500)),
            threshold: u32::try_from(pos(self.app_health_threshold, 3)).unwrap_or(3),
        }
    }

    /// The largest HTTP request body: `--max-body-size` (`4Mi`, bytes), else the deprecated
    /// `--dapr-http-max-request-size` (MB), else `default`.
    ///
    /// # Errors
    /// A size that does not parse.
    pub fn max_body_bytes(&self, default: usize) -> Result<usize, String> {
        if let Some(s) = self.max_body_size.as_deref().map(str::trim)
            && s != "-1"
            && !s.is_empty()
        {
            return parse_quantity(s).ok_or_else(|| format!("--max-body-size: '{s}' is no size"));
        }
        match self.dapr_http_max_request_size {
            Some(mb) if mb > 0 => usize::try_from(mb)
                .ok()
                .and_then(|mb| mb.checked_shl(20))
                .ok_or_else(|| format!("--dapr-http-max-request-size: {mb} is too large")),
            _ => Ok(default),
        }
    }
}

/// A Kubernetes quantity (`4Mi`, `4M`, `4096`) in bytes.
fn parse_quantity(s: &str) -> Option<usize> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Go's pflag spelling, as daprd reads it: a single-dash long flag (`-app-id`) is `--app-id`.
/// Short flags (`-c`), negative numbers (`-1`) and `--` are left alone.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let Some(s) = a.to_str() else { return a };
            let single_dash_long = i > 0
                && s.len() > 2
                && s.starts_with('-')
                && !s.starts_with("--")
                && s[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if single_dash_long {
                OsString::from(format!("-{s}"))
            } else {
                a
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pflag_spellings_and_ports() {
        let args = normalize_args(
            [
                "daprd",
                "-app-id",
                "x",
                "-c",
                "f",
                "--metrics-port",
                "-1",
                "-log-level=debug",
            ]
            .map(OsString::from),
        );
        assert_eq!(
            args,
            [
                "daprd",
                "--app-id",
                "x",
                "-c",
                "f",
                "--metrics-port",
                "-1",
                "--log-level=debug"
            ]
            .map(OsString::from)
        );
        assert_eq!(port("p", Some(&"-1".to_owned())), Ok(None));
        assert_eq!(port("p", Some(&"0".to_owned())), Ok(None));
        assert_eq!(port("p", Some(&"3000".to_owned())), Ok(Some(3000)));
        assert!(port("p", Some(&"70000".to_owned())).is_err());
        assert_eq!(parse_quantity("4Mi"), Some(4 << 20));
        assert_eq!(parse_quantity("4Ki"), Some(4096));
        assert_eq!(parse_quantity("x"), None);
    }
}
