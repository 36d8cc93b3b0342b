//! `layotto`: the layotto-rs sidecar.
//!
//! - `layotto start [-c FILE]` serves the Layotto gRPC API and the actuator as configured in a
//!   Layotto JSON file (default: the embedded `configs/config_standalone.json`).
//! - `layotto validate [-c FILE]` prints every problem of a config file at once.
//!
//! Exit codes: 0 clean stop; 64 invalid configuration (nothing was bound); 1 start-up failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use layotto_config::{Config, ListenAddr, Problems};
use layotto_runtime::Runtime;

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
        /// Layotto JSON config file; the embedded standalone config when omitted.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Check a config file and print every problem.
    Validate {
        /// Layotto JSON config file; the embedded standalone config when omitted.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
}

fn print_problems(p: &Problems) {
    eprintln!("invalid configuration ({} problem(s)):", p.0.len());
    for problem in &p.0 {
        eprintln!("  {problem}");
    }
}

/// Loads and fully validates the config (structure, then types and metadata of every
/// component), printing every problem at once.
fn checked(path: Option<&PathBuf>) -> Result<(Config, layotto_components::Registries), ExitCode> {
    let registries = match layotto_components::Registries::builtin() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("component registry: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let (config, mut problems) = match path {
        Some(p) => layotto_config::load_partial(p),
        None => layotto_config::parse_partial(
            layotto_config::STANDALONE,
            layotto_config::STANDALONE_SOURCE,
        ),
    };
    if let Some(c) = &config
        && let Err(p) = layotto_runtime::validate(c, &registries)
    {
        problems.extend(p.0);
    }
    match config {
        Some(c) if problems.is_empty() => Ok((c, registries)),
        _ => {
            print_problems(&Problems(problems));
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match checked(config.as_ref()) {
            Ok((c, _)) => {
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
        Command::Start { config } => {
            let (config, registries) = match checked(config.as_ref()) {
                Ok(v) => v,
                Err(code) => return code,
            };
            init_tracing();
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
            match rt.block_on(start(config, registries)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("layotto: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    router: tonic::transport::server::Router,
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

async fn start(
    config: Config,
    registries: layotto_components::Registries,
) -> Result<(), Box<dyn std::error::Error>> {
    // Both TLS users (the http binding, later backends) share one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = Arc::new(Runtime::build(&config, &registries).map_err(|p| p.to_string())?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };

    // The actuator comes up first, so readiness shows INIT while components initialise.
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = config.actuator {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding actuator on {addr}: {e}"))?;
        tracing::info!(%addr, "actuator listening");
        let app = layotto_http::actuator(runtime.clone());
        let stop = stopped();
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(|e| format!("actuator: {e}"))
        });
    }

    runtime.init().await?;

    let router = layotto_grpc::router(runtime.clone());
    let stop = stopped();
    match &config.grpc {
        ListenAddr::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("binding gRPC on {addr}: {e}"))?;
            tracing::info!(addr = %listener.local_addr()?, "gRPC listening");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
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
    runtime.mark_started();

    if let Some(port) = config.app.grpc_callback_port {
        let channel = layotto_grpc::GrpcAppChannel::new(&config.app.grpc_callback_host, port)
            .map_err(|e| format!("app callback address: {e}"))?;
        let rt = runtime.clone();
        tokio::spawn(async move { rt.start_app_subscriptions(Arc::new(channel)).await });
    }

    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down"),
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
    if let ListenAddr::Unix(path) = &config.grpc {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
