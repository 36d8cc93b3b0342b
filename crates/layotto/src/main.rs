//! `layotto`: the layotto-rs sidecar.
//!
//! - `layotto start [-c FILE]` serves the Layotto gRPC API and the actuator as configured in a
//!   Layotto JSON file (default: the embedded `configs/config_standalone.json`).
//! - `layotto start --resources-path DIR [--app-id ID] [--app-port P] [--app-protocol http|grpc]
//!   [--dapr-grpc-port 50001] [--dapr-http-port 3500]` runs like Dapr's `daprd`: components from
//!   Dapr `Component` YAML files, Dapr's gRPC and HTTP APIs, the app reached over HTTP or gRPC.
//!   `DAPR_API_TOKEN` in the environment makes every API call (but `/v1.0/healthz`) require a
//!   matching `dapr-api-token` header. Both forms combine: `-c` adds the Layotto config.
//! - `layotto [daprd flags]` (no subcommand, or the binary run under the name `daprd`) starts
//!   as daprd does: every daprd v1.14 flag is accepted (see [`cli`]), Dapr's APIs are always
//!   served, `--version`, `--build-info` and `--wait` act as daprd's.
//! - `layotto validate [-c FILE] [--resources-path DIR]` prints every problem at once.
//! - `layotto inject -f manifest.yaml` prints the manifest with the sidecar injected into every
//!   annotated pod template; `layotto injector --tls-cert-file F --tls-key-file K` serves the
//!   Kubernetes admission webhook that does the same to pods as they are created.
//!
//! `-c`/`--config` (repeatable) takes a Layotto JSON config or a Dapr `Configuration` resource;
//! the content decides. Metrics are served in Prometheus text on `--metrics-port` (9090) when
//! Dapr's APIs are (`--enable-metrics=false` turns that off), and on the port of a Layotto
//! config's `prometheus` sink.
//!
//! Exit codes: 0 clean stop; 64 invalid configuration (nothing was bound); 1 start-up failure.

mod cli;
mod hot_reload;
mod kube;
mod logging;
mod serve;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::DaprdArgs;
use layotto_config::{Config, DaprConfiguration, ListenAddr, Problem, Problems};
use layotto_core::Registries;

/// Exit code for an invalid configuration (EX_USAGE... sysexits' EX_USAGE is 64).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "layotto",
    about = "layotto-rs: a sidecar application runtime",
    args_conflicts_with_subcommands = true,
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// daprd's flags, when no subcommand is given.
    #[command(flatten)]
    daprd: DaprdArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sidecar.
    #[command(disable_version_flag = true)]
    Start {
        #[command(flatten)]
        dapr: DaprdArgs,
    },
    /// Check the configuration and print every problem, then every warning (unknown metadata
    /// keys, keys and flags accepted without effect).
    #[command(disable_version_flag = true)]
    Validate {
        /// Treat warnings as problems: exit 64 when there is any.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        dapr: DaprdArgs,
    },
    /// Print a Kubernetes manifest with the sidecar injected into every pod template annotated
    /// `dapr.io/enabled: "true"`, as the injector webhook would.
    Inject {
        /// The manifest (YAML, `---`-separated documents); `-` reads standard input.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Also print each injected app's headless `<app-id>-dapr` Service (Kubernetes name
        /// resolution dials it; the webhook applies it itself).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        services: bool,
        #[command(flatten)]
        sidecar: kube::SidecarFlags,
    },
    /// Serve the sidecar injector: a mutating admission webhook (`POST /mutate`) over TLS.
    Injector {
        /// The HTTPS port.
        #[arg(long, default_value_t = 4000)]
        port: u16,
        /// The serving certificate chain (PEM).
        #[arg(long)]
        tls_cert_file: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        tls_key_file: PathBuf,
        /// A pod annotated for a sidecar the injector refuses: `refuse` its creation, or
        /// `admit` it unchanged with a warning.
        #[arg(long, default_value = "refuse")]
        on_error: String,
        /// Apply each injected app's headless `<app-id>-dapr` Service (Kubernetes name
        /// resolution dials it), as Dapr's operator keeps one.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        create_services: bool,
        #[command(flatten)]
        sidecar: kube::SidecarFlags,
    },
}

fn print_problems(p: &Problems) {
    eprintln!("invalid configuration ({} problem(s)):", p.0.len());
    for problem in &p.0 {
        eprintln!("  {problem}");
    }
}

/// Every component type compiled into this binary: each backend family's `register`, one
/// cargo feature per family (`memory`, `local`, `http`, `redis`, ...; all default).
fn registries() -> layotto_core::Result<Registries> {
    #[allow(unused_mut)]
    let mut r = Registries::new();
    #[cfg(feature = "memory")]
    layotto_components_memory::register(&mut r)?;
    #[cfg(feature = "local")]
    layotto_components_local::register(&mut r)?;
    #[cfg(feature = "http")]
    layotto_components_http::register(&mut r)?;
    #[cfg(feature = "redis")]
    layotto_components_redis::register(&mut r)?;
    #[cfg(feature = "etcd")]
    layotto_components_etcd::register(&mut r)?;
    #[cfg(feature = "mysql")]
    layotto_components_mysql::register(&mut r)?;
    #[cfg(feature = "postgres")]
    layotto_components_postgres::register(&mut r)?;
    #[cfg(feature = "zookeeper")]
    layotto_components_zookeeper::register(&mut r)?;
    #[cfg(feature = "mongo")]
    layotto_components_mongo::register(&mut r)?;
    #[cfg(feature = "nats")]
    layotto_components_nats::register(&mut r)?;
    #[cfg(feature = "kafka")]
    layotto_components_kafka::register(&mut r)?;
    #[cfg(feature = "rabbitmq")]
    layotto_components_rabbitmq::register(&mut r)?;
    #[cfg(feature = "mqtt")]
    layotto_components_mqtt::register(&mut r)?;
    #[cfg(feature = "kubernetes")]
    layotto_components_kubernetes::register(&mut r)?;
    Ok(r)
}

/// A flag-level problem (no file, no path).
fn flag_problem(message: String) -> Problem {
    Problem {
        file: "<command line>".to_owned(),
        path: "$".to_owned(),
        message,
    }
}

/// What the command line and its config files describe, fully validated.
struct Checked {
    config: Config,
    /// Whether a `-c` file was a Layotto config (else the config is the embedded one or the
    /// Dapr-only base).
    from_layotto_file: bool,
    registries: Registries,
    dapr_config: DaprConfiguration,
    warnings: Vec<Problem>,
}

/// Splits `-c` files into the Layotto config (at most one) and Dapr Configuration resources.
fn split_configs(
    files: &[PathBuf],
    problems: &mut Vec<Problem>,
) -> (Option<PathBuf>, DaprConfiguration) {
    let mut layotto = None;
    let mut dapr = DaprConfiguration::default();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    file: f.display().to_string(),
                    path: "$".to_owned(),
                    message: format!("cannot read the config file: {e}"),
                });
                continue;
            }
        };
        if layotto_config::is_layotto_json(&text) {
            if layotto.is_some() {
                problems.push(flag_problem(format!(
                    "-c {}: only one Layotto config can be served",
                    f.display()
                )));
            }
            layotto = Some(f.clone());
            continue;
        }
        // Several Configuration files: later ones override what they set, as daprd merges.
        match layotto_config::parse_configuration(&text, &f.display().to_string()) {
            Ok(c) => merge(&mut dapr, c),
            Err(p) => problems.extend(p),
        }
    }
    (layotto, dapr)
}

fn merge(into: &mut DaprConfiguration, c: DaprConfiguration) {
    if !c.name.is_empty() {
        into.name = c.name;
    }
    into.metrics_enabled = c.metrics_enabled.or(into.metrics_enabled);
    into.increased_cardinality = c.increased_cardinality.or(into.increased_cardinality);
    if !c.path_matching.is_empty() {
        into.path_matching = c.path_matching;
    }
    into.exclude_verbs = c.exclude_verbs.or(into.exclude_verbs);
    into.latency_buckets_ms = c.latency_buckets_ms.or(into.latency_buckets_ms.take());
    into.api_logging = c.api_logging.or(into.api_logging);
    // Tracing field by field, as daprd merges files onto one Configuration.
    match (into.tracing.as_mut(), c.tracing) {
        (Some(t), Some(n)) => {
            if c.sampling_rate_set {
                t.sampling_rate = n.sampling_rate;
            }
            t.otlp = n.otlp.or(t.otlp.take());
            t.zipkin = n.zipkin.or(t.zipkin.take());
            t.stdout |= n.stdout;
            t.service_name = n.service_name.or(t.service_name.take());
        }
        (None, Some(n)) => into.tracing = Some(n),
        (_, None) => {}
    }
    into.sampling_rate_set |= c.sampling_rate_set;
    // Lists set by a later file replace the earlier ones, as daprd's unmarshalling does.
    for (to, from) in [
        (&mut into.api_allowed, c.api_allowed),
        (&mut into.api_denied, c.api_denied),
    ] {
        if !from.is_empty() {
            *to = from;
        }
    }
    if !c.metric_rules.is_empty() {
        into.metric_rules = c.metric_rules;
    }
    if !c.secret_scopes.is_empty() {
        into.secret_scopes = c.secret_scopes;
    }
    if c.name_resolution.is_some() {
        into.name_resolution = c.name_resolution;
    }
    for f in c.features {
        if !into.features.contains(&f) {
            into.features.push(f);
        }
    }
    into.warnings.extend(c.warnings);
}

/// Loads and fully validates the config (flags, structure, then types and metadata of every
/// component), printing every problem at once. With `strict` warnings are problems.
fn checked(dapr: &DaprdArgs, daprd_mode: bool, strict: bool) -> Result<Checked, ExitCode> {
    match check(dapr, daprd_mode, Checks::All { strict }) {
        Ok(c) => Ok(c),
        Err(Unchecked::Registry(e)) => {
            eprintln!("component registry: {e}");
            Err(ExitCode::FAILURE)
        }
        Err(Unchecked::Problems(problems, warnings)) => {
            print_problems(&problems);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// Why [`check`] gave no config.
enum Unchecked {
    /// The component registries could not be filled.
    Registry(layotto_core::Error),
    /// The problems found, and the warnings.
    Problems(Problems, Vec<Problem>),
}

/// What [`check`] checks.
#[derive(Clone, Copy)]
enum Checks {
    /// Everything; with `strict` warnings are problems.
    All { strict: bool },
    /// Flags and structure, not whether each component builds: a hot reload builds them
    /// one by one, and one that does not build keeps its previous version serving instead of
    /// holding back every other change.
    Structure,
}

/// [`checked`] without printing.
fn check(dapr: &DaprdArgs, daprd_mode: bool, checks: Checks) -> Result<Checked, Unchecked> {
    let registries = registries().map_err(Unchecked::Registry)?;
    let mut problems: Vec<Problem> = dapr.problems().into_iter().map(flag_problem).collect();
    let mut warnings: Vec<Problem> = dapr.warnings().into_iter().map(flag_problem).collect();
    let (layotto_file, dapr_config) = split_configs(&dapr.config, &mut problems);
    warnings.extend(dapr_config.warnings.iter().cloned());
    let dapr_mode = daprd_mode || dapr.dapr_requested();
    let (config, found) = match (&layotto_file, dapr_mode) {
        (Some(p), _) => layotto_config::load_partial(p),
        (None, false) => layotto_config::parse_partial(
            layotto_config::STANDALONE,
            layotto_config::STANDALONE_SOURCE,
        ),
        (None, true) => match dapr_base_config(dapr) {
            Ok(c) => (Some(c), Vec::new()),
            Err(e) => (None, vec![flag_problem(e)]),
        },
    };
    problems.extend(found);
    let config = config.map(|mut c| {
        if let Some(id) = &dapr.app_id {
            c.app.app_id.clone_from(id);
        }
        c.secret_scopes.clone_from(&dapr_config.secret_scopes);
        for dir in &dapr.resources() {
            let (entries, found) = layotto_config::load_resources(dir, &c.app.app_id);
            problems.extend(found);
            problems.extend(c.merge_components(entries));
        }
        match layotto_config::load_resiliency(&dapr.resources(), &c.app.app_id) {
            Ok(r) => c.resiliency.merge(r),
            Err(p) => problems.extend(p),
        }
        match layotto_config::load_http_endpoints(&dapr.resources(), &c.app.app_id) {
            Ok(e) => c.http_endpoints = e,
            Err(p) => problems.extend(p),
        }
        match layotto_config::load_subscriptions(&dapr.resources(), &c.app.app_id) {
            Ok(s) => c.subscriptions = s,
            Err(p) => problems.extend(p),
        }
        warnings.extend(layotto_config::resource_kind_warnings(&dapr.resources()));
        c
    });
    if let Some(c) = &config {
        // Parts of the file without effect here, unknown metadata keys and keys without
        // effect: reported, not fatal (unless `validate --strict`).
        warnings.extend(c.warnings.iter().cloned());
        if let Checks::All { .. } = checks {
            match layotto_runtime::validate(c, &registries) {
                Ok(w) => warnings.extend(w),
                Err(p) => problems.extend(p.0),
            }
        }
    }
    if let Checks::All { strict: true } = checks {
        problems.append(&mut warnings);
    }
    match config {
        Some(config) if problems.is_empty() => Ok(Checked {
            config,
            from_layotto_file: layotto_file.is_some(),
            registries,
            dapr_config,
            warnings,
        }),
        _ => Err(Unchecked::Problems(Problems(problems), warnings)),
    }
}

/// The config of a Dapr-only sidecar: no Layotto listener of its own (the Dapr gRPC port
/// serves the Layotto API too), no actuator, components from the resources path.
fn dapr_base_config(dapr: &DaprdArgs) -> Result<Config, String> {
    Ok(Config {
        source: "<dapr resources>".to_owned(),
        grpc: ListenAddr::Tcp(std::net::SocketAddr::new(
            dapr.listen_address()?,
            dapr.grpc_port()?,
        )),
        actuator: None,
        app: layotto_config::AppConfig::default(),
        components: Vec::new(),
        ..Config::default()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args_os()));
    match cli.command {
        Some(Command::Validate { dapr, strict }) => validate(&dapr, strict),
        Some(Command::Start { dapr }) => start(&dapr, false),
        Some(Command::Inject {
            file,
            services,
            sidecar,
        }) => kube::inject(&file, services, &sidecar),
        Some(Command::Injector {
            port,
            tls_cert_file,
            tls_key_file,
            on_error,
            create_services,
            sidecar,
        }) => {
            logging::init("info", false, "");
            kube::injector(
                port,
                &tls_cert_file,
                &tls_key_file,
                &on_error,
                create_services,
                &sidecar,
            )
        }
        None => {
            let d = &cli.daprd;
            if d.version {
                println!("{}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            if d.build_info {
                println!(
                    "Version: {}\nGit Commit: \nGit Version: {}",
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_VERSION")
                );
                return ExitCode::SUCCESS;
            }
            if d.wait {
                return wait(d);
            }
            start(d, true)
        }
    }
}

fn validate(dapr: &DaprdArgs, strict: bool) -> ExitCode {
    let kube_mode = match kubernetes_mode(dapr) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let dapr = kube_mode.as_ref().map_or(dapr, |(args, _)| args);
    match checked(dapr, false, strict) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: OK ({} components, gRPC on {})",
                c.config.source,
                c.config.components.len(),
                c.config.grpc
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// daprd's `--wait`: polls `GET /v1.0/healthz/outbound` on `--dapr-http-port` every 100 ms (500 ms
/// per request) for up to 60 s; exits 0 in any case, as daprd.
fn wait(dapr: &DaprdArgs) -> ExitCode {
    use std::io::{Read, Write};
    let port = dapr.http_port().unwrap_or(cli::DAPR_HTTP_PORT);
    let url = format!("http://localhost:{port}/v1.0/healthz/outbound");
    eprintln!("Waiting for Dapr to be outbound ready (timeout: 60 seconds): url={url}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = String::from("no answer");
    while std::time::Instant::now() < deadline {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let probe = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
            .and_then(|mut s| {
                s.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
                s.write_all(
                    format!(
                        "GET /v1.0/healthz/outbound HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )?;
                let mut head = [0u8; 12];
                s.read_exact(&mut head)?;
                Ok(String::from_utf8_lossy(&head[9..12]).into_owned())
            });
        match probe {
            Ok(code) if code == "204" => {
                eprintln!("Dapr is outbound ready!");
                return ExitCode::SUCCESS;
            }
            Ok(code) => last = format!("HTTP status code {code}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("timeout waiting for Dapr to become outbound ready. Last error: {last}");
    ExitCode::SUCCESS
}

/// In Kubernetes mode, the flags with the resources read from the API server (and the temp
/// dir holding them, kept until exit); else `None`.
fn kubernetes_mode(dapr: &DaprdArgs) -> Result<Option<(DaprdArgs, KubeDir)>, ExitCode> {
    if dapr.mode != "kubernetes" {
        return Ok(None);
    }
    #[cfg(feature = "kubernetes")]
    match kube::kubernetes_resources(dapr) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            eprintln!("layotto: {e}");
            Err(ExitCode::FAILURE)
        }
    }
    #[cfg(not(feature = "kubernetes"))]
    Ok(None)
}

#[cfg(feature = "kubernetes")]
type KubeDir = tempfile::TempDir;
#[cfg(not(feature = "kubernetes"))]
type KubeDir = ();

fn start(dapr: &DaprdArgs, daprd_mode: bool) -> ExitCode {
    let kube_mode = match kubernetes_mode(dapr) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let given = dapr;
    let dapr = kube_mode.as_ref().map_or(dapr, |(args, _)| args);
    // Before the files are read: an edit made while starting is applied by a hot reload.
    let loaded = hot_reload::Fingerprint::of(&dapr.resources());
    let checked = match checked(dapr, daprd_mode, false) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let level = match dapr.log_level() {
        Ok(Some(l)) => l,
        _ => mosn_level(checked.config.log_level.as_deref()),
    };
    logging::init(level, dapr.log_as_json, &checked.config.app.app_id);
    for w in &checked.warnings {
        tracing::warn!("{w}");
    }
    let serving = match serving(dapr, daprd_mode, &checked) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("layotto: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let workers = match worker_threads() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("layotto: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut serving = serving;
    serving.reloads = hot_reload::spawn(
        &rt,
        given,
        daprd_mode,
        kube_mode.is_some(),
        &checked.dapr_config.features,
        loaded,
    );
    match rt.block_on(serve::start(checked.config, checked.registries, serving)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layotto: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Worker threads of the sidecar's runtime: `TOKIO_WORKER_THREADS` (tokio's own variable, a
/// positive integer) when set, else half the CPUs this process may run on (its affinity and
/// cgroup CPU quota count), at least one.
///
/// A sidecar shares its machine with the app it serves. And a request that crosses threads
/// wakes a second one: on a two-CPU machine one worker instead of two cut the sidecar's CPU
/// at 1,000 GetState/s by about a fifth and raised its saturation throughput
/// (`bench/REPORT.md`, "layotto-rs beside daprd").
///
/// # Errors
/// `TOKIO_WORKER_THREADS` set to anything but a positive integer.
fn worker_threads() -> Result<usize, String> {
    match std::env::var("TOKIO_WORKER_THREADS") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("TOKIO_WORKER_THREADS must be a positive integer, not '{v}'")),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))),
    }
}

/// The listeners and settings of a start from the flags, the Layotto config and the Dapr
/// Configuration.
fn serving(
    dapr: &DaprdArgs,
    daprd_mode: bool,
    checked: &Checked,
) -> Result<serve::Serving, String> {
    let (config, dapr_config) = (&checked.config, &checked.dapr_config);
    let has_layotto_config = checked.from_layotto_file;
    let dapr_mode = daprd_mode || dapr.dapr_requested();
    let listen = dapr.listen_address()?;
    let dapr_serving = if dapr_mode {
        Some(serve::DaprServing {
            http: std::net::SocketAddr::new(listen, dapr.http_port()?),
            // Without a Layotto config the Layotto listener is the Dapr gRPC port itself.
            grpc: has_layotto_config
                .then(|| {
                    dapr.grpc_port()
                        .map(|p| std::net::SocketAddr::new(listen, p))
                })
                .transpose()?,
            max_body_bytes: dapr.max_body_bytes(layotto_http::dapr::DEFAULT_MAX_BODY_BYTES)?,
            unix_domain_socket: dapr
                .unix_domain_socket
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
            public: dapr.public_address()?,
            allowed_origins: dapr.allowed_origins.clone(),
        })
    } else {
        None
    };
    let app = dapr.app_port()?.map(|port| layotto_runtime::AppConnection {
        port,
        protocol: dapr.app_protocol.to_ascii_lowercase(),
        channel_address: dapr.app_channel_address.clone(),
    });
    let metrics = if dapr_mode && dapr.enable_metrics {
        let ip: std::net::IpAddr = dapr.metrics_listen_address.parse().map_err(|_| {
            format!(
                "--metrics-listen-address: '{}' is no IP address",
                dapr.metrics_listen_address
            )
        })?;
        Some(std::net::SocketAddr::new(ip, dapr.metrics_port()?))
    } else {
        config
            .metrics_port
            .map(|p| std::net::SocketAddr::new(std::net::IpAddr::from([0, 0, 0, 0]), p))
    };
    let mut settings = layotto_runtime::MetricsSettings::default();
    if let Some(e) = dapr_config.metrics_enabled {
        settings.enabled = e;
    }
    // Nothing records what nobody can scrape.
    if metrics.is_none() {
        settings.enabled = false;
    }
    if let Some(c) = dapr_config.increased_cardinality {
        settings.increased_cardinality = c;
    }
    settings
        .path_matching
        .clone_from(&dapr_config.path_matching);
    if let Some(x) = dapr_config.exclude_verbs {
        settings.exclude_verbs = x;
    }
    if let Some(b) = &dapr_config.latency_buckets_ms {
        settings.latency_buckets_ms.clone_from(b);
    }
    settings.rules.clone_from(&dapr_config.metric_rules);
    settings.api_logging = dapr
        .enable_api_logging
        .or(dapr_config.api_logging)
        .unwrap_or(false);
    Ok(serve::Serving {
        dapr: dapr_serving,
        app,
        metrics,
        metrics_settings: settings,
        // Dapr's Configuration wins over the Layotto config's MOSN section.
        tracing: {
            let mut t = dapr_config
                .tracing
                .clone()
                .or_else(|| config.tracing.clone());
            if dapr_mode {
                otel_from_env(&mut t, dapr_config.sampling_rate_set, |k| {
                    std::env::var(k).ok()
                });
            }
            t
        },
        // daprd: a negative value means the default of 5 s, 0 no limit.
        grace: match u64::try_from(dapr.dapr_graceful_shutdown_seconds) {
            Ok(0) => None,
            Ok(s) => Some(std::time::Duration::from_secs(s)),
            Err(_) => Some(std::time::Duration::from_secs(5)),
        },
        block_shutdown: dapr.block_shutdown()?,
        app_health: dapr.enable_app_health_check.then(|| dapr.app_health()),
        app_max_concurrency: dapr.app_max_concurrency(),
        internal: if dapr_mode {
            internal_serving(dapr, dapr_config)?
        } else {
            None
        },
        access: layotto_dapr_wire::access::ApiAccess::new(
            dapr_config
                .api_allowed
                .iter()
                .map(|r| (r.name.as_str(), r.version.as_str(), r.protocol.as_str())),
            dapr_config
                .api_denied
                .iter()
                .map(|r| (r.name.as_str(), r.version.as_str(), r.protocol.as_str())),
        ),
        reloads: None,
    })
}

/// The internal gRPC server and name resolution: opened when `--dapr-internal-grpc-port` or
/// the Configuration's `nameResolution` is given (daprd always opens one, on a random port, and
/// always registers in mDNS; here a sidecar started without either reaches only its own app and
/// sends no multicast). The resolver defaults to mDNS, as daprd's in self-hosted mode, and to
/// Kubernetes DNS (`<app-id>-dapr.<namespace>.svc.cluster.local`) in Kubernetes mode.
fn internal_serving(
    dapr: &DaprdArgs,
    dapr_config: &DaprConfiguration,
) -> Result<Option<serve::InternalServing>, String> {
    let port = dapr.internal_grpc_port()?;
    let nr = dapr_config.name_resolution.as_ref();
    if port.is_none() && nr.is_none() {
        return Ok(None);
    }
    let null = serde_json::Value::Null;
    // daprd's default resolver: Kubernetes DNS in Kubernetes mode, mDNS otherwise.
    let default = if dapr.mode == "kubernetes" {
        "kubernetes"
    } else {
        "mdns"
    };
    let (component, version, configuration) = nr.map_or((default, "v1", &null), |n| {
        (n.component.as_str(), n.version.as_str(), &n.configuration)
    });
    if component == "kubernetes" && port.is_none() {
        // daprd accepts it too (its port is random then); the pod convention is 50002.
        tracing::warn!(
            "nameResolution kubernetes without --dapr-internal-grpc-port: other sidecars dial \
             this one's Service on their own internal port, which this sidecar's random port \
             will not match"
        );
    }
    let resolver = layotto_components_nameresolution::build(component, version, configuration)
        .map_err(|e| e.message)?;
    let ip = dapr.internal_grpc_listen_address()?;
    Ok(Some(serve::InternalServing {
        addr: std::net::SocketAddr::new(ip, port.unwrap_or(0)),
        resolver,
        host_address: layotto_components_nameresolution::host_address(
            ip,
            std::env::var("DAPR_HOST_IP").ok(),
        ),
    }))
}

/// daprd's `SetTracingSpecFromEnv`: without an OTLP endpoint in the Configuration,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` names one (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/...` for
/// OTLP/HTTP, `OTEL_EXPORTER_OTLP_INSECURE=true` for no TLS), sampling every trace unless the
/// Configuration set a rate.
fn otel_from_env(
    tracing: &mut Option<layotto_config::TracingSpec>,
    rate_set: bool,
    env: impl Fn(&str) -> Option<String>,
) {
    if tracing.as_ref().is_some_and(|t| t.otlp.is_some()) {
        return;
    }
    let Some(endpoint) = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.is_empty()) else {
        return;
    };
    let endpoint = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned();
    let t = tracing.get_or_insert_with(layotto_config::TracingSpec::default);
    if !rate_set {
        t.sampling_rate = 1.0;
    }
    t.otlp = Some(layotto_config::OtlpExporter {
        endpoint,
        http: env("OTEL_EXPORTER_OTLP_PROTOCOL").is_some_and(|p| p.starts_with("http")),
        secure: env("OTEL_EXPORTER_OTLP_INSECURE").as_deref() != Some("true"),
    });
}

/// MOSN's `default_log_level` in `tracing`'s words (`FATAL`/`CRITICAL` read as `error`), else
/// `info`.
fn mosn_level(mosn_level: Option<&str>) -> &'static str {
    match mosn_level {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN" | "WARNING") => "warn",
        Some("ERROR" | "FATAL" | "CRITICAL") => "error",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_files_merge_tracing_field_by_field() {
        let parse = |t: &str| layotto_config::parse_configuration(t, "c.yaml").expect("valid");
        let mut into = parse(
            "kind: Configuration\nspec:\n  tracing:\n    samplingRate: \"0.5\"\n    otel:\n      endpointAddress: c:4317\n",
        );
        merge(
            &mut into,
            parse("kind: Configuration\nspec:\n  tracing:\n    stdout: true\n"),
        );
        let t = into.tracing.expect("tracing");
        assert_eq!(t.sampling_rate, 0.5, "a later file without a rate keeps it");
        assert!(t.stdout && t.otlp.is_some(), "{t:?}");
    }

    #[test]
    fn otlp_from_the_environment_as_daprd() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let mut t = None;
        otel_from_env(
            &mut t,
            false,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ]),
        );
        let t = t.expect("tracing from the environment");
        assert_eq!(t.sampling_rate, 1.0);
        let o = t.otlp.expect("otlp");
        assert_eq!(o.endpoint, "collector:4318");
        assert!(o.http && o.secure);

        // A Configuration's rate and endpoint win.
        let mut t = Some(layotto_config::TracingSpec {
            sampling_rate: 0.5,
            ..layotto_config::TracingSpec::default()
        });
        otel_from_env(
            &mut t,
            true,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ]),
        );
        let t = t.expect("kept");
        assert_eq!(t.sampling_rate, 0.5);
        assert!(!t.otlp.expect("otlp").secure);
        let mut none = None;
        otel_from_env(&mut none, false, env(&[]));
        assert!(none.is_none());
    }
}
