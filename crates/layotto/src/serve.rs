//! Serving: the listeners (gRPC on TCP or a unix socket, the Dapr HTTP API, the actuator, the
//! metrics endpoint), start-up order and shutdown.

use std::sync::Arc;

use layotto_config::{Config, ListenAddr};
use layotto_runtime::Runtime;
use tokio_stream::StreamExt as _;

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
pub struct DaprServing {
    /// Dapr's HTTP API.
    pub http: std::net::SocketAddr,
    /// Dapr's gRPC API, when it is not already the config's gRPC listener.
    pub grpc: Option<std::net::SocketAddr>,
    /// Largest request body of the HTTP API, bytes.
    pub max_body_bytes: usize,
}

/// Everything `start` serves besides the config.
pub struct Serving {
    /// Dapr's APIs, when served.
    pub dapr: Option<DaprServing>,
    /// The app, when `--app-port` names one.
    pub app: Option<layotto_runtime::AppConnection>,
    /// Where the Prometheus metrics are served (daprd's `--metrics-port`, or MOSN's sink).
    pub metrics: Option<std::net::SocketAddr>,
    /// Metrics settings from Dapr's Configuration resource.
    pub metrics_settings: layotto_runtime::MetricsSettings,
    /// Where spans go, when tracing is configured.
    pub tracing: Option<layotto_config::TracingSpec>,
    /// How long in-flight calls get at shutdown (`--dapr-graceful-shutdown-seconds`).
    pub grace: std::time::Duration,
    /// App health checks (`--enable-app-health-check`).
    pub app_health: Option<layotto_runtime::AppHealthSettings>,
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

/// Builds the runtime, opens every listener, initialises the components and serves until a
/// signal (or `/v1.0/shutdown`) stops it.
///
/// # Errors
/// A listener that cannot bind, a component that fails to initialise, a server that fails.
pub async fn start(
    mut config: Config,
    registries: layotto_core::Registries,
    serving: Serving,
) -> Result<(), Box<dyn std::error::Error>> {
    let Serving {
        dapr,
        app,
        metrics,
        metrics_settings,
        tracing,
        grace,
        app_health,
    } = serving;
    // Both TLS users (the http binding, later backends) share one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tracer = match &tracing {
        Some(spec) => Some(crate::telemetry::install(spec, &config.app.app_id)?),
        None => None,
    };
    layotto_runtime::resolve_secret_refs(&mut config, &registries)
        .await
        .map_err(|p| p.to_string())?;
    let runtime = Arc::new(
        Runtime::build_with(&config, &registries, metrics_settings).map_err(|p| p.to_string())?,
    );
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
    if let Some(addr) = metrics {
        let app = layotto_http::metrics_router(runtime.metrics().clone());
        spawn_http(&mut tasks, "metrics", app, addr, stopped()).await?;
    }
    if let Some(addr) = config.actuator {
        let app = layotto_http::actuator(runtime.clone());
        spawn_http(&mut tasks, "actuator", app, addr, stopped()).await?;
    }
    if let Some(d) = &dapr {
        let opts = layotto_http::DaprHttpOptions {
            api_token: api_token.clone(),
            max_body_bytes: d.max_body_bytes,
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

    if let (Some(channel), Some(settings)) = (channel.clone(), app_health) {
        let rt = runtime.clone();
        tokio::spawn(async move { rt.run_app_health(channel, settings).await });
    }
    if let Some(channel) = channel {
        let rt = runtime.clone();
        tokio::spawn(async move { rt.start_app_subscriptions(channel).await });
    }

    let mut outcome: Result<(), String> = Ok(());
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down"),
        () = shutdown.notified() => tracing::info!("shutdown requested through the API"),
        Some(res) = tasks.join_next() => {
            // A server stopped by itself: an error, and the same orderly shutdown.
            outcome = Err(match res {
                Ok(Ok(())) => "a server stopped unexpectedly".to_owned(),
                Ok(Err(e)) => e,
                Err(e) => format!("server task: {e}"),
            });
        }
    }
    // Graceful shutdown: no new deliveries (an event in flight is acknowledged only once the
    // app processed it; one cut short stays unacknowledged and is redelivered), the listeners
    // stop accepting, calls in flight get `grace` to finish, then the components close.
    runtime.stop_app_subscriptions();
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            seconds = grace.as_secs(),
            "calls still in flight after the graceful shutdown period: cut short"
        );
        tasks.abort_all();
    }
    runtime.close().await;
    if let Some(t) = tracer {
        // Flushes the spans still batched (on a thread: the exporters block), within the
        // graceful period too.
        let flush = tokio::task::spawn_blocking(move || t.shutdown());
        if tokio::time::timeout(grace, flush).await.is_err() {
            tracing::warn!("spans not flushed within the graceful shutdown period");
        }
    }
    if let ListenAddr::Unix(path) = &config.grpc {
        let _ = std::fs::remove_file(path);
    }
    outcome.map_err(Into::into)
}
