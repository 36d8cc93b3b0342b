//! The layotto-rs runtime.
//!
//! Builds every configured component from a [`layotto_config::Config`] and the component
//! [`Registries`] the binary filled, owns their lifecycle and health, and offers each building
//! block as plain async domain calls (no proto types): the edge crates (gRPC, HTTP) translate
//! requests into these calls and their errors into status codes. It never names a backend.
//!
//! One module per block (`state`, `lock`, `sequencer`, `configuration`, `pubsub`, `secret`,
//! `file`, `binding`, `hello`, `invoke`), each an `impl Runtime` of that block's calls, all
//! going through the one call path of [`call`] (store lookup, key layout, deadline — the seam
//! for metrics, tracing and resiliency). Key prefixing ([`keys`]), CloudEvent wrapping
//! ([`cloudevent`]), WEAK sequencer segments ([`segments`]) and pub/sub delivery to the app
//! ([`app_channel`], `subscriptions`) live here, so every API surface shares them.

pub mod app_channel;
mod app_health;
mod binding;
mod body;
mod build;
pub mod call;
pub mod cloudevent;
mod configuration;
mod file;
mod health;
mod hello;
mod input_bindings;
mod invoke;
pub mod keys;
mod lock;
mod meta;
pub mod metrics;
mod pubsub;
mod reload;
mod resiliency;
mod routing;
mod secret;
pub mod segments;
mod sequencer;
mod state;
mod subscriptions;
#[cfg(test)]
mod tests;
pub mod trace;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex};

use layotto_config::{Config, Kind, Problem, Problems};
use layotto_core::pubsub::Subscription;
use layotto_core::{Health, HealthStatus, Registries};

pub use app_channel::{
    AppChannel, BindingReply, BulkSubscribe, ChannelError, EventOutcome, GrpcStatus, InvokeRequest,
    InvokeResponse, LimitedAppChannel, RouteRule, SubscriptionType, TopicSubscription,
};
pub use app_health::AppHealthSettings;
pub use body::{BUFFERED_BYTES, Body, limited};
pub use build::{resolve_secret_refs, validate};
use call::Components;
pub use call::with_deadline;
pub use cloudevent::TopicEvent;
pub use invoke::{
    AppAddress, CALLEE_APP_ID, CALLER_APP_ID, CALLER_NAMESPACE, EndpointChannels,
    RESOLUTION_LIFETIME, RemoteChannel, Route,
};
pub use metrics::{Metrics, MetricsSettings};
pub use reload::{DRAIN_LIMIT, ReloadOutcome};
pub use subscriptions::StreamingSubscription;

/// Publish/subscribe metadata key that turns CloudEvent wrapping off (Dapr's name).
pub const RAW_PAYLOAD_KEY: &str = "rawPayload";

/// Overall health with per-component details, as the actuator reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthReport {
    /// Aggregate status.
    pub status: HealthStatus,
    /// Per component (`<kind>/<name>`, plus `runtime_startup`).
    pub components: BTreeMap<String, Health>,
}

/// How the sidecar reaches its app, as the metadata API reports it (Dapr's
/// `appConnectionProperties`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConnection {
    /// The app's port.
    pub port: u16,
    /// `grpc` or `http`.
    pub protocol: String,
    /// The app's host, e.g. `127.0.0.1`.
    pub channel_address: String,
}

/// A configured component, as the metadata API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredComponent {
    /// Component name.
    pub name: String,
    /// Its building block.
    pub kind: Kind,
    /// Component type within the block, e.g. `in-memory`, `local.file`.
    pub type_: String,
    /// Its capabilities in Dapr's vocabulary, sorted: the component's own
    /// [`layotto_core::Feature`]s plus those its block implies, and for bindings
    /// `OUTPUT_BINDING` and `INPUT_BINDING` by what the binding has and its `direction` allows.
    pub capabilities: Vec<String>,
}

impl RegisteredComponent {
    /// The type as a Dapr resource spells it: `<block>.<type>`, e.g. `state.in-memory`,
    /// `pubsub.in-memory`, `secretstores.local.file`, `bindings.http` (blocks Dapr lacks keep
    /// Layotto's section name: `sequencer.in-memory`, `file.local`, `hellos.helloworld`).
    pub fn dapr_type(&self) -> String {
        self.kind.dapr_type(&self.type_)
    }
}

/// The runtime: every configured component, ready to serve domain calls.
pub struct Runtime {
    app_id: String,
    components: Components,
    warnings: Vec<Problem>,
    ready: AtomicU8,
    startup_error: Mutex<Option<String>>,
    app_subscriptions: Mutex<Vec<Subscription>>,
    app_topics: Mutex<Vec<TopicSubscription>>,
    /// `Subscription` resources of this app, started with its programmatic ones.
    declared: Mutex<Vec<TopicSubscription>>,
    /// Notified when a reload changed pub/sub components, bindings or `Subscription`
    /// resources: the app's subscriptions and input bindings start again.
    resubscribe: tokio::sync::Notify,
    /// Held by a reload, so two never interleave, and by [`Runtime::close`], which sets
    /// `closed` under it: no reload starts after that.
    reloading: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// Open streaming subscriptions (for the metadata API), by a per-runtime id.
    streams: Arc<Mutex<Vec<(u64, TopicSubscription)>>>,
    next_stream: std::sync::atomic::AtomicU64,
    app_stopped: AtomicBool,
    app_channel: Mutex<Option<Arc<dyn AppChannel>>>,
    app_connection: Mutex<Option<AppConnection>>,
    attributes: Mutex<BTreeMap<String, String>>,
    metrics: Arc<Metrics>,
    /// Whether app health checks run, the app's health, and why it is unhealthy.
    app_health_enabled: AtomicBool,
    app_healthy: tokio::sync::watch::Sender<bool>,
    app_unhealthy_reason: Mutex<String>,
    /// This sidecar's namespace (`$NAMESPACE`).
    namespace: String,
    /// Other apps' sidecars: name resolution and the remote channel (none without an internal
    /// gRPC port).
    remote: Mutex<Option<Arc<invoke::Remote>>>,
    /// Non-Dapr HTTP services: `HTTPEndpoint` resources and URLs.
    endpoints: Mutex<Option<Arc<dyn invoke::EndpointChannels>>>,
    /// The names of the `HTTPEndpoint` resources (for the metadata API).
    endpoint_names: Vec<String>,
    /// Resiliency policies of calls to apps.
    policies: Arc<resiliency::Policies>,
    /// Secret scopes by store name.
    secret_scopes: HashMap<String, layotto_config::SecretScope>,
}

impl Runtime {
    /// Builds every component of `config` (no I/O). Call [`Runtime::init`] before serving.
    ///
    /// # Errors
    /// Every configuration problem at once.
    pub fn build(config: &Config, registries: &Registries) -> Result<Self, Problems> {
        Self::build_with(config, registries, MetricsSettings::default())
    }

    /// [`Runtime::build`] with the metrics settings of Dapr's Configuration resource.
    ///
    /// # Errors
    /// Every configuration problem at once.
    pub fn build_with(
        config: &Config,
        registries: &Registries,
        metrics: MetricsSettings,
    ) -> Result<Self, Problems> {
        let app_id = config.app.app_id.clone();
        let namespace = metrics.namespace.clone();
        let metrics = Arc::new(Metrics::new(&app_id, metrics));
        let policies = Arc::new(resiliency::Policies::new(config.resiliency.clone()));
        let components = Components::new(metrics.clone(), policies.clone());
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        let mut problems = Vec::new();
        for entry in &config.components {
            match build::create(registries, entry, &app_id) {
                Ok((built, w)) => {
                    warnings.extend(build::at(entry, w));
                    entries.push(Arc::new(components.prepare(built)));
                }
                Err(e) => problems.push(Problem {
                    file: entry.file.clone(),
                    path: entry.path.clone(),
                    message: e.message,
                }),
            }
        }
        components.replace(entries);
        let declared = subscriptions::declared(&config.subscriptions, &mut problems);
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Self {
            app_id,
            components,
            warnings,
            ready: AtomicU8::new(health::READY_INIT),
            startup_error: Mutex::new(None),
            app_subscriptions: Mutex::new(Vec::new()),
            app_topics: Mutex::new(Vec::new()),
            declared: Mutex::new(declared),
            resubscribe: tokio::sync::Notify::new(),
            reloading: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            streams: Arc::new(Mutex::new(Vec::new())),
            next_stream: std::sync::atomic::AtomicU64::new(0),
            app_stopped: AtomicBool::new(false),
            app_channel: Mutex::new(None),
            app_connection: Mutex::new(None),
            attributes: Mutex::new(BTreeMap::new()),
            metrics,
            app_health_enabled: AtomicBool::new(false),
            app_healthy: tokio::sync::watch::Sender::new(true),
            app_unhealthy_reason: Mutex::new(String::new()),
            namespace,
            remote: Mutex::new(None),
            endpoints: Mutex::new(None),
            endpoint_names: config
                .http_endpoints
                .iter()
                .map(|e| e.name.clone())
                .collect(),
            policies,
            secret_scopes: config
                .secret_scopes
                .iter()
                .map(|s| (s.store_name.clone(), s.clone()))
                .collect(),
        })
    }

    /// The metrics registry every call records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Metadata warnings of the configured components (unknown keys, keys accepted without
    /// effect), each at its component; the binary logs them once at start-up.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
}

/// Locks `m`, recovering from poisoning (the guarded data stays consistent: every critical
/// section is a single push, clear, insert or clone).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
