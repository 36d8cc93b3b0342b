//! `layotto`: the layotto-rs sidecar.
//!
//! - `layotto start [-c FILE]` serves the Layotto gRPC API and the actuator as configured in a
//!   Layotto JSON file (default: the embedded `configs/config_standalone.json`).
//! - `layotto start --resources-path DIR [--app-id ID] [--app-port P] [--app-protocol http|grpc]
//!   [--dapr-grpc-port 50001] [--dapr-http-port 3500]` runs like Dapr's `daprd`: components from
//!   Dapr `Component` YAML files, Dapr's gRPC and HTTP APIs, the app reached over HTTP or gRPC.
//!   `DAPR_API_TOKEN` in the environment makes every API call (but `/v1.0/healthz`) require a
//!   matching `dapr-api-token` header. Both forms combine: `-c` adds the Layotto config.
//! - `layotto validate [-c FILE] [--resources-path DIR]` prints every problem at once.
//!
//! Exit codes: 0 clean stop; 64 invalid configuration (nothing was bound); 1 start-up failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use layotto_config::{Config, ListenAddr, Problems};
use layotto_core::Registries;
use layotto_runtime::Runtime;
use tokio_stream::StreamExt as _;

/// Exit code for an invalid configuration (EX_USAGE... sysexits' EX_USAGE is 64).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "layotto",
    version,
    about = "layotto-rs: a sidecar application runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sidecar.
    Start {
        /// Layotto JSON config file; the embedded standalone config when omitted (and no Dapr
        /// resources path is given).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        #[command(flatten)]
        dapr: DaprArgs,
    },
    /// Check a config file and print every problem, then every warning (unknown metadata
    /// keys, keys accepted without effect).
    Validate {
        /// Layotto JSON config file; the embedded standalone config when omitted (and no Dapr
        /// resources path is given).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Treat warnings as problems: exit 64 when there is any.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        dapr: DaprArgs,
    },
}

/// `daprd`-style flags (same names as Dapr's sidecar).
#[derive(clap::Args, Debug, Clone)]
struct DaprArgs {
    /// Directory of Dapr `Component` YAML files (repeatable; alias `--components-path`).
    #[arg(long = "resources-path", alias = "components-path")]
    resources_path: Vec<PathBuf>,
    /// The app's id (overrides the Layotto config's `app_id`).
    #[arg(long = "app-id")]
    app_id: Option<String>,
    /// Port the app listens on; enables the app channel (subscriptions, invocation).
    #[arg(long = "app-port")]
    app_port: Option<u16>,
    /// How to reach the app: `http` (Dapr's default) or `grpc`.
    #[arg(long = "app-protocol", default_value = "http", value_parser = ["http", "grpc"])]
    app_protocol: String,
    /// Host of the app.
    #[arg(long = "app-channel-address", default_value = "127.0.0.1")]
    app_channel_address: String,
    /// Port of Dapr's HTTP API (default 3500 when Dapr mode is on).
    #[arg(long = "dapr-http-port")]
    dapr_http_port: Option<u16>,
    /// Port of Dapr's gRPC API (default 50001 when Dapr mode is on); it also serves the
    /// Layotto API.
    #[arg(long = "dapr-grpc-port")]
    dapr_grpc_port: Option<u16>,
    /// Address the Dapr ports bind to.
    #[arg(long = "dapr-listen-addresses", default_value = "127.0.0.1")]
    dapr_listen_address: std::net::IpAddr,
}

impl DaprArgs {
    /// Whether Dapr's APIs are served: any Dapr resource or port was given.
    fn enabled(&self) -> bool {
        !self.resources_path.is_empty()
            || self.dapr_http_port.is_some()
            || self.dapr_grpc_port.is_some()
    }
}

/// Dapr's default HTTP API port.
const DAPR_HTTP_PORT: u16 = 3500;
/// Dapr's default gRPC API port.
const DAPR_GRPC_PORT: u16 = 50001;

fn print_problems(p: &Problems) {
    eprintln!("invalid configuration ({} problem(s)):", p.0.len());
    for problem in &p.0 {
        eprintln!("  {problem}");
    }
}

/// Every component type compiled into this binary: each backend family's `register`, one
/// cargo feature per family (`memory`, `local`, `http`, `redis`; all default).
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
    #[cfg(feature = "zookeeper")]
    layotto_components_zookeeper::register(&mut r)?;
    #[cfg(feature = "mongo")]
    layotto_components_mongo::register(&mut r)?;
    Ok(r)
}

/// Loads and fully validates the config (structure, then types and metadata of every
/// component), printing every problem at once. Returns the metadata warnings; with `strict`
/// they are problems.
fn checked(
    path: Option<&PathBuf>,
    dapr: &DaprArgs,
    strict: bool,
) -> Result<(Config, Registries, Vec<layotto_config::Problem>), ExitCode> {
    let registries = match registries() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("component registry: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let (config, mut problems) = match (path, dapr.enabled()) {
        (Some(p), _) => layotto_config::load_partial(p),
        (None, false) => layotto_config::parse_partial(
            layotto_config::STANDALONE,
            layotto_config::STANDALONE_SOURCE,
        ),
        (None, true) => (Some(dapr_base_config(dapr)), Vec::new()),
    };
    let config = config.map(|mut c| {
        if let Some(id) = &dapr.app_id {
            c.app.app_id.clone_from(id);
        }
        for dir in &dapr.resources_path {
            let (entries, found) = layotto_config::load_resources(dir, &c.app.app_id);
            problems.extend(found);
            problems.extend(c.merge_components(entries));
        }
        c
    });
    let mut warnings = Vec::new();
    if let Some(c) = &config {
        // Parts of the file without effect here, unknown metadata keys and keys without
        // effect: reported, not fatal (unless `validate --strict`).
        warnings.extend(c.warnings.iter().cloned());
        match layotto_runtime::validate(c, &registries) {
            Ok(w) => warnings.extend(w),
            Err(p) => problems.extend(p.0),
        }
        if strict {
            problems.append(&mut warnings);
        }
    }
    match config {
        Some(c) if problems.is_empty() => Ok((c, registries, warnings)),
        _ => {
            print_problems(&Problems(problems));
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// The config of a Dapr-only sidecar: no Layotto listener of its own (the Dapr gRPC port
/// serves the Layotto API too), no actuator, components from the resources path.
fn dapr_base_config(dapr: &DaprArgs) -> Config {
    Config {
        source: "<dapr resources>".to_owned(),
        grpc: ListenAddr::Tcp(std::net::SocketAddr::new(
            dapr.dapr_listen_address,
            dapr.dapr_grpc_port.unwrap_or(DAPR_GRPC_PORT),
        )),
        actuator: None,
        app: layotto_config::AppConfig::default(),
        components: Vec::new(),
        ..Config::default()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate {
            config,
            dapr,
            strict,
        } => match checked(config.as_ref(), &dapr, strict) {
            Ok((c, _, warnings)) => {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: OK ({} components, gRPC on {})",
                    c.source,
                    c.components.len(),
                    c.grpc
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Start { config: path, dapr } => {
            let (config, registries, warnings) = match checked(path.as_ref(), &dapr, false) {
                Ok(v) => v,
                Err(code) => return code,
            };
            init_tracing(config.log_level.as_deref());
            for w in &warnings {
                tracing::warn!("{w}");
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("starting tokio: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let serving = dapr.enabled().then(|| DaprServing {
                http: std::net::SocketAddr::new(
                    dapr.dapr_listen_address,
                    dapr.dapr_http_port.unwrap_or(DAPR_HTTP_PORT),
                ),
                // Without a Layotto config the Layotto listener is the Dapr gRPC port itself.
                grpc: path.is_some().then(|| {
                    std::net::SocketAddr::new(
                        dapr.dapr_listen_address,
                        dapr.dapr_grpc_port.unwrap_or(DAPR_GRPC_PORT),
                    )
                }),
            });
            let app = dapr.app_port.map(|port| layotto_runtime::AppConnection {
                port,
                protocol: dapr.app_protocol.clone(),
                channel_address: dapr.app_channel_address.clone(),
            });
            match rt.block_on(start(config, registries, serving, app)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("layotto: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Logs to stderr at `RUST_LOG`'s filter, else at the config's MOSN `default_log_level`
/// (`FATAL`/`CRITICAL` read as `error`), else `info`.
fn init_tracing(mosn_level: Option<&str>) {
    let level = match mosn_level {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN" | "WARNING") => "warn",
        Some("ERROR" | "FATAL" | "CRITICAL") => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Serves `router` on `incoming` connections until `stop` completes.
async fn serve_grpc<S, IO>(
    router: layotto_grpc::GrpcRouter,
    incoming: S,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String>
where
    S: tokio_stream::Stream<Item = std::io::Result<IO>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    router
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .map_err(|e| format!("gRPC: {e}"))
}

/// The Dapr listeners to open besides the Layotto config's own.
struct DaprServing {
    /// Dapr's HTTP API.
    http: std::net::SocketAddr,
    /// Dapr's gRPC API, when it is not already the config's gRPC listener.
    grpc: Option<std::net::SocketAddr>,
}

/// Spawns `router` on `addr` (TCP or unix socket) into `tasks`.
async fn spawn_grpc(
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    router: layotto_grpc::GrpcRouter,
    addr: &ListenAddr,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    match addr {
        ListenAddr::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("binding gRPC on {addr}: {e}"))?;
            tracing::info!(addr = %listener.local_addr()?, "gRPC listening");
            // `Server::tcp_nodelay` only reaches the sockets tonic accepts itself; these are ours.
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
                if let Ok(s) = &s {
                    set_nodelay(s);
                }
                s
            });
            tasks.spawn(serve_grpc(router, incoming, stop));
        }
        ListenAddr::Unix(path) => {
            if path.exists() {
                std::fs::remove_file(path)
                    .map_err(|e| format!("removing stale socket {}: {e}", path.display()))?;
            }
            let listener = tokio::net::UnixListener::bind(path)
                .map_err(|e| format!("binding gRPC on unix:{}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "gRPC listening on unix socket");
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            tasks.spawn(serve_grpc(router, incoming, stop));
        }
    }
    Ok(())
}

/// Turns Nagle's algorithm off on an accepted connection, as Go (and so Dapr) does: answers are
/// small and written at once. A failure only costs latency, so the connection is kept.
fn set_nodelay(s: &tokio::net::TcpStream) {
    if let Err(e) = s.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
}

/// Binds `addr` and serves `app` on it into `tasks`.
async fn spawn_http(
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    what: &'static str,
    app: axum::Router,
    addr: std::net::SocketAddr,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {what} on {addr}: {e}"))?;
    tracing::info!(%addr, "{what} listening");
    let listener =
        axum::serve::ListenerExt::tap_io(listener, |s: &mut tokio::net::TcpStream| set_nodelay(s));
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| format!("{what}: {e}"))
    });
    Ok(())
}

async fn start(
    mut config: Config,
    registries: Registries,
    dapr: Option<DaprServing>,
    app: Option<layotto_runtime::AppConnection>,
) -> Result<(), Box<dyn std::error::Error>> {
    // Both TLS users (the http binding, later backends) share one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    layotto_runtime::resolve_secret_refs(&mut config, &registries)
        .await
        .map_err(|p| p.to_string())?;
    let runtime = Arc::new(Runtime::build(&config, &registries).map_err(|p| p.to_string())?);
    let api_token = std::env::var("DAPR_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };

    let channel: Option<Arc<dyn layotto_runtime::AppChannel>> = match &app {
        Some(a) if a.protocol == "grpc" => Some(Arc::new(
            layotto_grpc::dapr::DaprGrpcAppChannel::new(&a.channel_address, a.port)
                .map_err(|e| format!("app address: {e}"))?,
        )),
        Some(a) => Some(Arc::new(
            layotto_http::HttpAppChannel::new(
                &a.channel_address,
                a.port,
                layotto_http::HttpAppChannelOptions::from_env(),
            )
            .map_err(|e| format!("app address: {e}"))?,
        )),
        None => match config.app.grpc_callback_port {
            Some(port) => Some(Arc::new(
                layotto_grpc::GrpcAppChannel::new(&config.app.grpc_callback_host, port)
                    .map_err(|e| format!("app callback address: {e}"))?,
            )),
            None => None,
        },
    };
    // The app channel is in place before any API port serves, so the first invocation finds
    // it (subscriptions start once the servers are up).
    if let Some(channel) = &channel {
        runtime.set_app_channel(channel.clone());
    }
    if let Some(a) = app.clone() {
        runtime.set_app_connection(a);
    }

    // Health endpoints come up first, so they report "not ready" while components initialise.
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = config.actuator {
        let app = layotto_http::actuator(runtime.clone());
        spawn_http(&mut tasks, "actuator", app, addr, stopped()).await?;
    }
    if let Some(d) = &dapr {
        let opts = layotto_http::DaprHttpOptions {
            api_token: api_token.clone(),
            max_body_bytes: layotto_http::dapr::DEFAULT_MAX_BODY_BYTES,
            shutdown: shutdown.clone(),
            app: app.clone(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let api = layotto_http::dapr_router(runtime.clone(), opts);
        spawn_http(&mut tasks, "Dapr HTTP API", api, d.http, stopped()).await?;
    }

    runtime.init().await?;

    let token = layotto_grpc::dapr::ApiToken::new(api_token.as_deref());
    let grpc_opts = layotto_grpc::dapr::DaprGrpcOptions {
        shutdown: shutdown.clone(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    // MOSN's flowControlFilter belongs to the Layotto gRPC listener only.
    let flow = layotto_grpc::FlowControlLayer::new(config.flow_control.as_ref());
    let router = layotto_grpc::router_limited(runtime.clone(), grpc_opts.clone(), &token, flow);
    spawn_grpc(&mut tasks, router, &config.grpc, stopped()).await?;
    if let Some(addr) = dapr.as_ref().and_then(|d| d.grpc) {
        let router = layotto_grpc::router_with(runtime.clone(), grpc_opts, &token);
        spawn_grpc(&mut tasks, router, &ListenAddr::Tcp(addr), stopped()).await?;
    }
    runtime.mark_started();

    if let Some(channel) = channel {
        let rt = runtime.clone();
        tokio::spawn(async move { rt.start_app_subscriptions(channel).await });
    }

    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down"),
        () = shutdown.notified() => tracing::info!("shutdown requested through the API"),
        Some(res) = tasks.join_next() => {
            let _ = stop_tx.send(true);
            runtime.stop_app_subscriptions();
            return match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(format!("server task: {e}").into()),
            };
        }
    }
    runtime.stop_app_subscriptions();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    runtime.close().await;
    if let ListenAddr::Unix(path) = &config.grpc {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
