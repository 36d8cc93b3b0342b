//! Serving: the listeners (gRPC on TCP or a unix socket, the Dapr HTTP API, the actuator, the
//! metrics endpoint), start-up order and shutdown.

use std::sync::Arc;

use layotto_config::{Config, ListenAddr};
use layotto_runtime::Runtime;
use tokio_stream::StreamExt as _;

/// SIGTERM and SIGINT, listened to from start-up on, so none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(self.term.as_mut()) => {}
                () = recv(self.int.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
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
    /// `--unix-domain-socket`: the HTTP and gRPC APIs listen on `DIR/dapr-<appid>-http.socket`
    /// and `DIR/dapr-<appid>-grpc.socket` instead of TCP.
    pub unix_domain_socket: Option<std::path::PathBuf>,
    /// `--dapr-public-port`: health and metadata without the API token.
    pub public: Option<std::net::SocketAddr>,
    /// `--allowed-origins`.
    pub allowed_origins: String,
}

/// The internal gRPC server (Dapr's `ServiceInvocation`, between sidecars) and name
/// resolution.
pub struct InternalServing {
    /// Where the internal gRPC API listens (`--dapr-internal-grpc-port`, port 0: any free one).
    pub addr: std::net::SocketAddr,
    /// How other apps' sidecars are found, and this one published.
    pub resolver: Arc<dyn layotto_core::NameResolver>,
    /// The address other sidecars reach this one at.
    pub host_address: String,
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
    /// How long in-flight calls get at shutdown (`--dapr-graceful-shutdown-seconds`; `None`:
    /// as long as they take).
    pub grace: Option<std::time::Duration>,
    /// `--dapr-block-shutdown-duration`: after SIGTERM, subscriptions stop and the APIs keep
    /// serving this long, or until the app reports unhealthy.
    pub block_shutdown: Option<std::time::Duration>,
    /// App health checks (`--enable-app-health-check`).
    pub app_health: Option<layotto_runtime::AppHealthSettings>,
    /// `--app-max-concurrency`: calls to the app at once.
    pub app_max_concurrency: Option<usize>,
    /// The Configuration's API allow and deny lists.
    pub access: layotto_dapr_wire::access::ApiAccess,
    /// Invocation between sidecars, when an internal gRPC port or a name resolution is given.
    pub internal: Option<InternalServing>,
    /// Configurations read again while serving (the `HotReload` feature), to apply.
    pub reloads: Option<tokio::sync::mpsc::Receiver<crate::hot_reload::Reloaded>>,
}

/// Binds a unix socket at `path`, replacing a file left by a process that is gone; a socket
/// some process still answers on is an error, not taken over.
fn bind_unix(path: &std::path::Path, what: &str) -> Result<tokio::net::UnixListener, String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "binding {what} on unix:{}: another process is listening there",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("removing stale socket {}: {e}", path.display()))?;
    }
    tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("binding {what} on unix:{}: {e}", path.display()))
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
            let listener = bind_unix(path, "gRPC")?;
            tracing::info!(path = %path.display(), "gRPC listening on unix socket");
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            tasks.spawn(serve_grpc(router, incoming, stop));
        }
    }
    Ok(())
}

/// Opens the internal gRPC server, makes other apps reachable through name resolution and
/// publishes this sidecar there.
async fn spawn_internal(
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    runtime: &Arc<Runtime>,
    internal: InternalServing,
    max_body_bytes: usize,
    proxy: Option<Arc<layotto_grpc::proxy::GrpcProxy>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(internal.addr)
        .await
        .map_err(|e| format!("binding the internal gRPC API on {}: {e}", internal.addr))?;
    let port = listener.local_addr()?.port();
    tracing::info!(addr = %listener.local_addr()?, "internal gRPC listening");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        if let Ok(s) = &s {
            set_nodelay(s);
        }
        s
    });
    let routes = layotto_grpc::internal::routes(runtime.clone(), max_body_bytes, proxy);
    tasks.spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, stop)
            .await
            .map_err(|e| format!("internal gRPC: {e}"))
    });
    runtime.set_remote_invocation(
        internal.resolver.clone(),
        Arc::new(layotto_grpc::internal::InternalClient::new(max_body_bytes)),
        port,
    );
    let me = layotto_core::Registration {
        app_id: runtime.app_id().to_owned(),
        namespace: runtime.namespace().to_owned(),
        host_address: internal.host_address.clone(),
        internal_port: port,
        ..layotto_core::Registration::default()
    };
    internal.resolver.register(&me).await.map_err(|e| {
        format!(
            "name resolution ({}): registering {}:{port}: {}",
            internal.resolver.kind(),
            internal.host_address,
            e.message
        )
    })?;
    tracing::info!(
        resolver = internal.resolver.kind(),
        "name resolution: this sidecar is reachable at {}:{port}",
        internal.host_address
    );
    Ok(())
}

/// Turns Nagle's algorithm off on an accepted connection, as Go (and so Dapr) does: answers are
/// small and written at once. A failure only costs latency, so the connection is kept.
fn set_nodelay(s: &tokio::net::TcpStream) {
    if let Err(e) = s.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
}

/// Binds the unix socket `path` and serves `app` on it into `tasks`.
fn spawn_http_unix(
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    what: &'static str,
    app: axum::Router,
    path: &std::path::Path,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = bind_unix(path, what)?;
    tracing::info!(path = %path.display(), "{what} listening on unix socket");
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| format!("{what}: {e}"))
    });
    Ok(())
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
        block_shutdown,
        app_health,
        app_max_concurrency,
        access,
        internal,
        reloads,
    } = serving;
    // Under `--unix-domain-socket` the API servers listen on sockets, not TCP, as daprd's.
    let sockets = dapr
        .as_ref()
        .and_then(|d| d.unix_domain_socket.as_ref())
        .map(|dir| {
            let id = &config.app.app_id;
            (
                dir.join(format!("dapr-{id}-http.socket")),
                dir.join(format!("dapr-{id}-grpc.socket")),
            )
        });
    if let Some((_, grpc_socket)) = &sockets
        && dapr.as_ref().is_some_and(|d| d.grpc.is_none())
    {
        // Without a Layotto config the Layotto listener is the Dapr gRPC API itself.
        config.grpc = ListenAddr::Unix(grpc_socket.clone());
    }
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
    // Non-Dapr HTTP services: HTTPEndpoint resources by name, and URLs given as the app id.
    runtime.set_endpoint_channels(Arc::new(
        layotto_http::HttpEndpointChannels::new(
            &config.http_endpoints,
            Some(runtime.metrics().clone()),
        )
        .map_err(|e| e.to_string())?,
    ));
    let api_token = std::env::var("DAPR_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    // Listened to from here on: a signal during start-up is not lost.
    let mut signals = Signals::new();
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };

    let mut channel: Option<Arc<dyn layotto_runtime::AppChannel>> = match &app {
        Some(a) if a.protocol == "grpc" => Some(Arc::new(
            layotto_grpc::dapr::DaprGrpcAppChannel::new(&a.channel_address, a.port)
                .map_err(|e| format!("app address: {e}"))?
                .with_metrics(runtime.metrics().clone()),
        )),
        Some(a) => Some(Arc::new(
            layotto_http::HttpAppChannel::new(
                &a.channel_address,
                a.port,
                layotto_http::HttpAppChannelOptions::from_env(),
            )
            .map_err(|e| format!("app address: {e}"))?
            .with_metrics(runtime.metrics().clone()),
        )),
        None => match config.app.grpc_callback_port {
            Some(port) => Some(Arc::new(
                layotto_grpc::GrpcAppChannel::new(&config.app.grpc_callback_host, port)
                    .map_err(|e| format!("app callback address: {e}"))?
                    .with_metrics(runtime.metrics().clone()),
            )),
            None => None,
        },
    };
    if let Some(limit) = app_max_concurrency {
        tracing::info!("app max concurrency set to {limit}");
        channel = channel.map(|inner| {
            Arc::new(layotto_runtime::LimitedAppChannel::new(inner, limit))
                as Arc<dyn layotto_runtime::AppChannel>
        });
    }
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
            access: access.clone(),
            allowed_origins: d.allowed_origins.clone(),
        };
        if let Some(addr) = d.public {
            let public = layotto_http::dapr_public_router(runtime.clone(), &opts);
            spawn_http(&mut tasks, "Dapr public server", public, addr, stopped()).await?;
        }
        let api = layotto_http::dapr_router(runtime.clone(), opts);
        match &sockets {
            Some((http_socket, _)) => {
                spawn_http_unix(&mut tasks, "Dapr HTTP API", api, http_socket, stopped())?;
            }
            None => spawn_http(&mut tasks, "Dapr HTTP API", api, d.http, stopped()).await?,
        }
    }

    runtime.init().await?;

    let token = layotto_grpc::dapr::ApiToken::new(api_token.as_deref());
    // gRPC proxying: with Dapr's APIs, calls for an app's own gRPC services are forwarded.
    let proxy = match &dapr {
        Some(_) => {
            let grpc_app = app
                .as_ref()
                .filter(|a| a.protocol == "grpc")
                .map(|a| (a.channel_address.as_str(), a.port));
            Some(Arc::new(
                layotto_grpc::proxy::GrpcProxy::new(runtime.clone(), grpc_app)
                    .map_err(|e| format!("gRPC proxy: {e}"))?,
            ))
        }
        None => None,
    };
    let grpc_opts = layotto_grpc::dapr::DaprGrpcOptions {
        shutdown: shutdown.clone(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        access,
        proxy: proxy.clone(),
    };
    // MOSN's flowControlFilter belongs to the Layotto gRPC listener only.
    let flow = layotto_grpc::FlowControlLayer::new(config.flow_control.as_ref());
    let router = layotto_grpc::router_limited(runtime.clone(), grpc_opts.clone(), &token, flow);
    spawn_grpc(&mut tasks, router, &config.grpc, stopped()).await?;
    if let Some(addr) = dapr.as_ref().and_then(|d| d.grpc) {
        let router = layotto_grpc::router_with(runtime.clone(), grpc_opts, &token);
        let at = match &sockets {
            Some((_, grpc_socket)) => ListenAddr::Unix(grpc_socket.clone()),
            None => ListenAddr::Tcp(addr),
        };
        spawn_grpc(&mut tasks, router, &at, stopped()).await?;
    }
    if let Some(internal) = internal {
        let max_body = dapr
            .as_ref()
            .map_or(layotto_http::dapr::DEFAULT_MAX_BODY_BYTES, |d| {
                d.max_body_bytes
            });
        spawn_internal(
            &mut tasks,
            &runtime,
            internal,
            max_body,
            proxy.clone(),
            stopped(),
        )
        .await?;
    }
    runtime.mark_started();

    if let (Some(channel), Some(settings)) = (channel.clone(), app_health) {
        runtime.expect_app_health();
        let rt = runtime.clone();
        tokio::spawn(async move { rt.run_app_health(channel, settings).await });
    }
    if let Some(channel) = channel {
        let rt = runtime.clone();
        tokio::spawn(async move { rt.start_app_subscriptions(channel).await });
    }
    if let Some(reloads) = reloads {
        tokio::spawn(apply_reloads(runtime.clone(), reloads, stopped()));
    }

    let mut outcome: Result<(), String> = Ok(());
    let mut signalled = false;
    tokio::select! {
        () = signals.next() => {
            signalled = true;
            tracing::info!("shutting down");
        }
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
    // A second signal while shutting down ends the process at once, as daprd's (the first
    // signal, when the shutdown began otherwise).
    tokio::spawn(async move {
        if !signalled {
            signals.next().await;
            tracing::info!("received a signal during shutdown; shutting down");
        }
        signals.next().await;
        tracing::error!("received a second signal during shutdown; exiting immediately");
        std::process::exit(1);
    });
    // Graceful shutdown: no new deliveries (an event in flight is acknowledged only once the
    // app processed it; one cut short stays unacknowledged and is redelivered), the listeners
    // stop accepting, calls in flight get `grace` to finish, then the components close.
    runtime.stop_app_subscriptions();
    if let (Some(block), true, true) = (block_shutdown, signalled, outcome.is_ok()) {
        // daprd's `--dapr-block-shutdown-duration`: the APIs keep serving (the app may still
        // publish and save), deliveries have stopped.
        tracing::info!(
            "Blocking graceful shutdown for {block:?} or until app reports unhealthy..."
        );
        tokio::select! {
            () = tokio::time::sleep(block) => {
                tracing::info!("Block shutdown period expired, entering shutdown...");
            }
            () = runtime.app_unhealthy() => {
                tracing::info!("App reported unhealthy, entering shutdown...");
            }
        }
    }
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    let drained = match grace {
        Some(grace) => tokio::time::timeout(grace, drain).await.is_ok(),
        None => {
            drain.await;
            true
        }
    };
    if !drained {
        tracing::error!(
            seconds = grace.unwrap_or_default().as_secs(),
            "Graceful shutdown timeout exceeded, forcing shutdown: calls still in flight are cut short"
        );
        tasks.abort_all();
        if outcome.is_ok() {
            outcome = Err("graceful shutdown timeout exceeded".to_owned());
        }
    }
    runtime.close_remote_invocation().await;
    runtime.close().await;
    if let Some(t) = tracer {
        // Flushes the spans still batched (on a thread: the exporters block), within the
        // graceful period too.
        let flush = tokio::task::spawn_blocking(move || t.shutdown());
        let limit = grace.unwrap_or(std::time::Duration::from_secs(5));
        if tokio::time::timeout(limit, flush).await.is_err() {
            tracing::warn!("spans not flushed within the graceful shutdown period");
        }
    }
    if let ListenAddr::Unix(path) = &config.grpc {
        let _ = std::fs::remove_file(path);
    }
    if let Some((http_socket, grpc_socket)) = &sockets {
        let _ = std::fs::remove_file(http_socket);
        let _ = std::fs::remove_file(grpc_socket);
    }
    outcome.map_err(Into::into)
}

/// Applies each configuration read again (secrets resolved as at start) until `stop`. One
/// that could not be applied whole (a secret that could not be read, a component that did not
/// build or initialise) is tried again after 5 s, doubling up to a minute, until it applies
/// or a newer one arrives: a broker or secret store that was down for a moment does not leave
/// the change out for good.
async fn apply_reloads(
    runtime: Arc<Runtime>,
    mut reloads: tokio::sync::mpsc::Receiver<crate::hot_reload::Reloaded>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut pending: Option<crate::hot_reload::Reloaded> = None;
    let mut attempt = 0u32;
    loop {
        let delay = std::time::Duration::from_secs((5u64 << attempt.min(4)).min(60));
        let retry = async {
            if pending.is_some() {
                tokio::time::sleep(delay).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let (config, registries) = tokio::select! {
            biased;
            () = &mut stop => return,
            r = reloads.recv() => match r {
                Some(r) => {
                    attempt = 0;
                    r
                }
                None => return,
            },
            () = retry => match pending.take() {
                Some(p) => {
                    attempt += 1;
                    p
                }
                None => continue,
            },
        };
        let mut resolved = config.clone();
        let applied = match layotto_runtime::resolve_secret_refs(&mut resolved, &registries).await {
            Err(p) => {
                for p in &p.0 {
                    tracing::error!("hot reload: not applied: {p}");
                }
                false
            }
            Ok(()) => runtime
                .reload(&resolved, &registries)
                .await
                .failed
                .is_empty(),
        };
        pending = if applied {
            None
        } else {
            tracing::info!("hot reload: trying the configuration again later");
            Some((config, registries))
        };
    }
}
