//! The sidecar's metrics, with daprd v1.14's names, labels and buckets
//! (`dapr/dapr:pkg/diagnostics`; docs.dapr.io "Dapr metrics"), in one Prometheus registry.
//!
//! - Component calls, recorded at the one call path ([`crate::call`]):
//!   `dapr_component_<block>_count` (counter) and `dapr_component_<block>_latencies` (histogram,
//!   milliseconds), labels `app_id`, `component` (its name), `namespace` (`$NAMESPACE`, blank in
//!   self-hosted mode), `operation`, `success`; `<block>` is `state`, `secret`, `configuration`,
//!   `output_binding`, and, for what Dapr lacks, `lock`, `sequencer` and `file`. Publishing is
//!   `dapr_component_pubsub_egress_{count,latencies}` (labels `app_id`, `component`,
//!   `namespace`, `success`, `topic`); deliveries to the app are
//!   `dapr_component_pubsub_ingress_{count,latencies}` (`process_status` and `status`: `success`,
//!   `retry` or `drop`); input binding events delivered to the app are
//!   `dapr_component_input_binding_{count,latencies}` (labels `app_id`, `component`,
//!   `namespace`, `success`).
//! - The edges' servers: `dapr_http_server_{request_count,latency,request_bytes,response_bytes}`
//!   (plus `response_count` with increased cardinality) and
//!   `dapr_grpc_io_server_{completed_rpcs,server_latency}`.
//! - Calls to the app (the app channel): `dapr_http_client_{completed_count,roundtrip_latency,
//!   sent_bytes,received_bytes}` (labels `app_id`, `method`, `path` — the app's path without
//!   its leading `/`, under the same cardinality rules — and `status`, the app's HTTP status or
//!   `500` when it could not be reached) and `dapr_grpc_io_client_{completed_rpcs,
//!   roundtrip_latency,sent_bytes_per_rpc,received_bytes_per_rpc}` (`grpc_client_method`,
//!   `grpc_client_status`); app health probes count in `dapr_http_healthprobes_*` and
//!   `dapr_grpc_io_healthprobes_*` (`completed_count`, `roundtrip_latency`).
//! - Start-up: `dapr_runtime_component_loaded`, `dapr_runtime_component_init_total`,
//!   `dapr_runtime_component_init_fail_total`.
//!
//! Counters keep Dapr's names (no `_total` added). Latencies are in milliseconds with Dapr's
//! default buckets (or the Configuration's `latencyDistributionBuckets`); unlike daprd, which
//! truncates to whole milliseconds (so a 0.4 ms call lands in no latency bucket), they are
//! recorded with sub-millisecond precision. HTTP `path` labels follow daprd 1.14: with
//! `increasedCardinality` (its default) the raw path, with state and secret keys cut off;
//! without it blank unless a `pathMatching` pattern matches, whose pattern is the label.

use std::collections::BTreeMap;
use std::time::Duration;

use layotto_core::Kind;
use prometheus::{HistogramOpts, Opts, Registry};

type IntCounterVec = Family<prometheus::IntCounterVec>;
type HistogramVec = Family<prometheus::HistogramVec>;

/// A Prometheus metric vector: the child for label values.
trait Vector {
    type Child;
    fn child(&self, values: &[&str]) -> Self::Child;
}

impl Vector for prometheus::IntCounterVec {
    type Child = prometheus::IntCounter;
    fn child(&self, values: &[&str]) -> Self::Child {
        self.with_label_values(values)
    }
}

impl Vector for prometheus::HistogramVec {
    type Child = prometheus::Histogram;
    fn child(&self, values: &[&str]) -> Self::Child {
        self.with_label_values(values)
    }
}

/// daprd's default latency buckets, in milliseconds (`pkg/config/configuration.go`).
pub const LATENCY_BUCKETS_MS: [f64; 34] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 40.0, 50.0, 65.0, 80.0,
    100.0, 130.0, 160.0, 200.0, 250.0, 300.0, 400.0, 500.0, 650.0, 800.0, 1000.0, 2000.0, 5000.0,
    10000.0, 20000.0, 50000.0, 100_000.0,
];

/// daprd's size buckets, in bytes (`pkg/diagnostics/metrics.go`).
pub const SIZE_BUCKETS: [f64; 13] = [
    1024.0,
    2048.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

/// The metrics part of Dapr's Configuration resource (`spec.metrics`).
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `enabled` (default true): false records nothing.
    pub enabled: bool,
    /// `http.increasedCardinality` (daprd 1.14's default: true, raw paths).
    pub increased_cardinality: bool,
    /// `http.pathMatching`: path patterns (`/v1.0/invoke/app/method/orders/{id}`) whose
    /// pattern becomes the `path` label.
    pub path_matching: Vec<String>,
    /// `http.excludeVerbs`: blank `method` labels.
    pub exclude_verbs: bool,
    /// `latencyDistributionBuckets` in milliseconds (default [`LATENCY_BUCKETS_MS`]).
    pub latency_buckets_ms: Vec<f64>,
    /// The `namespace` label (`$NAMESPACE`; blank in self-hosted mode).
    pub namespace: String,
    /// `rules`: label values rewritten before export, each pattern in turn (Dapr's
    /// `spec.metrics.rules`; the YAML order, where daprd's is a Go map's).
    pub rules: Vec<layotto_config::MetricRule>,
    /// API logging (`--enable-api-logging`, the Configuration's `logging.apiLogging.enabled`):
    /// one info line per API call, as daprd's (`HTTP API Called` / `gRPC API Called`, scopes
    /// `dapr.runtime.http-info` / `dapr.runtime.grpc.api-info`).
    pub api_logging: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            increased_cardinality: true,
            path_matching: Vec::new(),
            exclude_verbs: false,
            latency_buckets_ms: LATENCY_BUCKETS_MS.to_vec(),
            namespace: std::env::var("NAMESPACE").unwrap_or_default(),
            rules: Vec::new(),
            api_logging: false,
        }
    }
}

/// One metric family and the relabelling rules of its labels.
#[derive(Clone)]
struct Family<V> {
    vec: V,
    /// `(label index, pattern, replacement)`, applied in order.
    rules: Vec<(usize, regex::Regex, String)>,
}

impl<V: Vector> Family<V> {
    /// The child for `values` (one per label, in order), after the rules rewrote them: each
    /// match of a pattern in a non-empty value is replaced, as daprd's `WithTags`.
    fn with_label_values(&self, values: &[&str]) -> V::Child {
        if self.rules.is_empty() {
            return self.vec.child(values);
        }
        let mut owned: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        for (i, re, replacement) in &self.rules {
            if let Some(v) = owned.get_mut(*i).filter(|v| !v.is_empty()) {
                *v = re.replace_all(v, replacement.as_str()).into_owned();
            }
        }
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.vec.child(&refs)
    }
}

/// A metric's name as rules compare it: without the first `dapr_`, `/` read as `_`.
fn rule_key(name: &str) -> String {
    name.replacen("dapr_", "", 1).replace('/', "_")
}

/// The compiled rules of the family `name` with `labels`.
fn family_rules(
    rules: &[layotto_config::MetricRule],
    name: &str,
    labels: &[&str],
) -> Vec<(usize, regex::Regex, String)> {
    let key = rule_key(name);
    rules
        .iter()
        .filter(|r| rule_key(&r.name) == key)
        .flat_map(|r| r.labels.iter())
        .filter_map(|(label, replacement, pattern)| {
            let i = labels.iter().position(|l| l == label)?;
            // Patterns were checked when the Configuration was read.
            let re = regex::Regex::new(pattern).ok()?;
            Some((i, re, replacement.clone()))
        })
        .collect()
}

/// The app channel's families.
struct ClientFamilies {
    http: Pair,
    http_sent: HistogramVec,
    http_received: HistogramVec,
    http_probes: Pair,
    grpc: Pair,
    grpc_sent: HistogramVec,
    grpc_received: HistogramVec,
    grpc_probes: Pair,
}

/// A counter and a latency histogram with the same labels.
#[derive(Clone)]
struct Pair {
    count: IntCounterVec,
    latency: HistogramVec,
}

impl Pair {
    /// Counts one call with `labels` and records its latency in milliseconds.
    fn record(&self, labels: &[&str], elapsed: Duration) {
        self.count.with_label_values(labels).inc();
        self.latency
            .with_label_values(labels)
            .observe(Metrics::ms(elapsed));
    }
}

/// The metrics registry of one sidecar. See the module documentation.
pub struct Metrics {
    registry: Registry,
    app_id: String,
    settings: MetricsSettings,
    components: BTreeMap<Kind, Pair>,
    egress: Pair,
    ingress: Pair,
    input_binding: Pair,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    http_request_bytes: HistogramVec,
    http_response_bytes: HistogramVec,
    http_responses: Option<IntCounterVec>,
    grpc_completed: IntCounterVec,
    grpc_latency: HistogramVec,
    client: ClientFamilies,
    loaded: IntCounterVec,
    init_total: IntCounterVec,
    init_fail: IntCounterVec,
    resiliency_count: IntCounterVec,
    resiliency_activations: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("app_id", &self.app_id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The metric name part of each block's component metrics.
fn block_name(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::State => "state",
        Kind::Secret => "secret",
        Kind::Configuration => "configuration",
        Kind::Binding => "output_binding",
        Kind::Lock => "lock",
        Kind::Sequencer => "sequencer",
        Kind::File => "file",
        _ => return None,
    })
}

/// Dapr's `operation` label for our operation names.
fn dapr_operation(kind: Kind, op: &str) -> &str {
    match (kind, op) {
        (Kind::State, "bulk_set") => "set",
        (Kind::State, "transact") => "transaction",
        _ => op,
    }
}

const COMPONENT_LABELS: [&str; 5] = ["app_id", "component", "namespace", "operation", "success"];
const HTTP_LABELS: [&str; 4] = ["app_id", "method", "path", "status"];
const RESILIENCY_LABELS: [&str; 7] = [
    "app_id",
    "flow_direction",
    "name",
    "namespace",
    "policy",
    "status",
    "target",
];

impl Metrics {
    /// A registry with every metric family, for `app_id`.
    ///
    /// # Panics
    /// Never for the fixed names and labels used here (registration of a duplicate or malformed
    /// family is the only failure).
    pub fn new(app_id: &str, settings: MetricsSettings) -> Self {
        let registry = Registry::new();
        let buckets = settings.latency_buckets_ms.clone();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = prometheus::IntCounterVec::new(Opts::new(name, help), labels)
                .expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("unique counter");
            Family {
                vec: c,
                rules: family_rules(&settings.rules, name, labels),
            }
        };
        let histogram = |name: &str, help: &str, labels: &[&str], b: &[f64]| {
            let h = prometheus::HistogramVec::new(
                HistogramOpts::new(name, help).buckets(b.to_vec()),
                labels,
            )
            .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("unique histogram");
            Family {
                vec: h,
                rules: family_rules(&settings.rules, name, labels),
            }
        };
        let pair = |what: &str, labels: &[&str]| Pair {
            count: counter(
                &format!("dapr_component_{what}_count"),
                &format!("The number of operations performed on the {what} component"),
                labels,
            ),
            latency: histogram(
                &format!("dapr_component_{what}_latencies"),
                &format!("The latency of the operations performed on the {what} component (ms)"),
                labels,
                &buckets,
            ),
        };
        let mut components = BTreeMap::new();
        for kind in [
            Kind::State,
            Kind::Secret,
            Kind::Configuration,
            Kind::Binding,
            Kind::Lock,
            Kind::Sequencer,
            Kind::File,
        ] {
            if let Some(n) = block_name(kind) {
                components.insert(kind, pair(n, &COMPONENT_LABELS));
            }
        }
        let egress = pair(
            "pubsub_egress",
            &["app_id", "component", "namespace", "success", "topic"],
        );
        let ingress = pair(
            "pubsub_ingress",
            &[
                "app_id",
                "component",
                "namespace",
                "process_status",
                "status",
                "topic",
            ],
        );
        let input_binding = pair(
            "input_binding",
            &["app_id", "component", "namespace", "success"],
        );
        let http_responses = settings.increased_cardinality.then(|| {
            counter(
                "dapr_http_server_response_count",
                "The number of HTTP responses",
                &HTTP_LABELS,
            )
        });
        let named_pair = |count: &str, latency: &str, what: &str, labels: &[&str]| Pair {
            count: counter(count, &format!("Count of {what}."), labels),
            latency: histogram(
                latency,
                &format!("Roundtrip latency of {what} in milliseconds."),
                labels,
                &buckets,
            ),
        };
        let client = ClientFamilies {
            http: named_pair(
                "dapr_http_client_completed_count",
                "dapr_http_client_roundtrip_latency",
                "HTTP calls to the app",
                &HTTP_LABELS,
            ),
            http_sent: histogram(
                "dapr_http_client_sent_bytes",
                "Bytes sent to the app in request bodies.",
                &HTTP_LABELS,
                &SIZE_BUCKETS,
            ),
            http_received: histogram(
                "dapr_http_client_received_bytes",
                "Bytes received from the app in response bodies.",
                &["app_id"],
                &SIZE_BUCKETS,
            ),
            http_probes: named_pair(
                "dapr_http_healthprobes_completed_count",
                "dapr_http_healthprobes_roundtrip_latency",
                "HTTP health probes of the app",
                &["app_id", "status"],
            ),
            grpc: named_pair(
                "dapr_grpc_io_client_completed_rpcs",
                "dapr_grpc_io_client_roundtrip_latency",
                "gRPC calls to the app",
                &["app_id", "grpc_client_method", "grpc_client_status"],
            ),
            grpc_sent: histogram(
                "dapr_grpc_io_client_sent_bytes_per_rpc",
                "Bytes sent to the app per rpc.",
                &["app_id", "grpc_client_method"],
                &SIZE_BUCKETS,
            ),
            grpc_received: histogram(
                "dapr_grpc_io_client_received_bytes_per_rpc",
                "Bytes received from the app per rpc.",
                &["app_id", "grpc_client_method"],
                &SIZE_BUCKETS,
            ),
            grpc_probes: named_pair(
                "dapr_grpc_io_healthprobes_completed_count",
                "dapr_grpc_io_healthprobes_roundtrip_latency",
                "gRPC health probes of the app",
                &["app_id", "grpc_client_status"],
            ),
        };
        Self {
            client,
            http_requests: counter(
                "dapr_http_server_request_count",
                "Number of HTTP requests started in server.",
                &HTTP_LABELS,
            ),
            http_latency: histogram(
                "dapr_http_server_latency",
                "HTTP request end-to-end latency in server (ms).",
                &HTTP_LABELS,
                &buckets,
            ),
            http_request_bytes: histogram(
                "dapr_http_server_request_bytes",
                "HTTP request size in bytes (Content-Length).",
                &["app_id"],
                &SIZE_BUCKETS,
            ),
            http_response_bytes: histogram(
                "dapr_http_server_response_bytes",
                "HTTP response size in bytes.",
                &["app_id"],
                &SIZE_BUCKETS,
            ),
            http_responses,
            grpc_completed: counter(
                "dapr_grpc_io_server_completed_rpcs",
                "Count of RPCs by method and status.",
                &["app_id", "grpc_server_method", "grpc_server_status"],
            ),
            grpc_latency: histogram(
                "dapr_grpc_io_server_server_latency",
                "Distribution of server latency in milliseconds, by method.",
                &["app_id", "grpc_server_method", "grpc_server_status"],
                &buckets,
            ),
            loaded: counter(
                "dapr_runtime_component_loaded",
                "The number of successfully loaded components",
                &["app_id"],
            ),
            init_total: counter(
                "dapr_runtime_component_init_total",
                "The number of initialized components",
                &["app_id", "component"],
            ),
            init_fail: counter(
                "dapr_runtime_component_init_fail_total",
                "The number of component initialization failures",
                &["app_id", "component", "reason", "componentName"],
            ),
            resiliency_count: counter(
                "dapr_resiliency_count",
                "Number of times a resiliency policy has been applied to a building block.",
                &RESILIENCY_LABELS,
            ),
            resiliency_activations: counter(
                "dapr_resiliency_activations_total",
                "Number of times a resiliency policy has been activated in a building block \
                 after a failure or after a state change.",
                &RESILIENCY_LABELS,
            ),
            components,
            egress,
            ingress,
            input_binding,
            registry,
            app_id: app_id.to_owned(),
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &MetricsSettings {
        &self.settings
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    /// Records one component call of `kind` (no-op for blocks without metrics).
    pub fn component_call(
        &self,
        kind: Kind,
        component: &str,
        op: &str,
        success: bool,
        elapsed: Duration,
    ) {
        if !self.settings.enabled {
            return;
        }
        let Some(p) = self.components.get(&kind) else {
            return;
        };
        let ok = if success { "true" } else { "false" };
        let labels = [
            self.app_id.as_str(),
            component,
            self.settings.namespace.as_str(),
            dapr_operation(kind, op),
            ok,
        ];
        p.record(&labels, elapsed);
    }

    /// Records one publish to `topic` of pub/sub `component`.
    pub fn publish(&self, component: &str, topic: &str, success: bool, elapsed: Duration) {
        if !self.settings.enabled {
            return;
        }
        let ok = if success { "true" } else { "false" };
        let labels = [
            self.app_id.as_str(),
            component,
            self.settings.namespace.as_str(),
            ok,
            topic,
        ];
        self.egress.record(&labels, elapsed);
    }

    /// Records one delivery to the app: `status` is `success`, `retry` or `drop` (`dropped`
    /// by the app's `DROP` answer counts as `process_status` `drop`, `status` `success`, as in
    /// daprd).
    pub fn delivery(
        &self,
        component: &str,
        topic: &str,
        process_status: &str,
        status: &str,
        elapsed: Duration,
    ) {
        if !self.settings.enabled {
            return;
        }
        let labels = [
            self.app_id.as_str(),
            component,
            self.settings.namespace.as_str(),
            process_status,
            status,
            topic,
        ];
        self.ingress.record(&labels, elapsed);
    }

    /// Records one event of input binding `component` delivered to the app (`success`: the
    /// app took it).
    pub fn input_binding(&self, component: &str, success: bool, elapsed: Duration) {
        if !self.settings.enabled {
            return;
        }
        let ok = if success { "true" } else { "false" };
        let labels = [
            self.app_id.as_str(),
            component,
            self.settings.namespace.as_str(),
            ok,
        ];
        self.input_binding.record(&labels, elapsed);
    }

    /// Records one request to the Dapr HTTP API (and logs it, with API logging on).
    #[allow(clippy::too_many_arguments)]
    pub fn http_request(
        &self,
        method: &str,
        path: &str,
        status: u16,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        if self.settings.api_logging {
            tracing::info!(
                target: "dapr.runtime.http-info",
                method = %format_args!("{method} {path}"),
                code = status,
                duration = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                size = response_bytes,
                "HTTP API Called"
            );
        }
        if !self.settings.enabled {
            return;
        }
        let method = if self.settings.exclude_verbs {
            ""
        } else {
            http_method(method)
        };
        let path = self.path_label(path);
        let status = status.to_string();
        let labels = [self.app_id.as_str(), method, path.as_str(), status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        if let Some(r) = &self.http_responses {
            r.with_label_values(&labels).inc();
        }
        self.http_latency
            .with_label_values(&labels)
            .observe(Self::ms(elapsed));
        #[allow(clippy::cast_precision_loss)]
        {
            self.http_request_bytes
                .with_label_values(&[self.app_id.as_str()])
                .observe(request_bytes as f64);
            self.http_response_bytes
                .with_label_values(&[self.app_id.as_str()])
                .observe(response_bytes as f64);
        }
    }

    /// Records one gRPC call: `method` the full path (`/dapr.proto.runtime.v1.Dapr/GetState`),
    /// `status` the code's name (`OK`, `NotFound`...).
    pub fn grpc_request(&self, method: &str, status: &str, elapsed: Duration) {
        if self.settings.api_logging {
            tracing::info!(
                target: "dapr.runtime.grpc.api-info",
                method,
                code = status,
                duration = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "gRPC API Called"
            );
        }
        if !self.settings.enabled {
            return;
        }
        let labels = [self.app_id.as_str(), method, status];
        self.grpc_completed.with_label_values(&labels).inc();
        self.grpc_latency
            .with_label_values(&labels)
            .observe(Self::ms(elapsed));
    }

    /// Records one HTTP call to the app: `method` the verb, `path` the app's path, `status` the
    /// app's HTTP status (`None`: not reached, recorded as `500` as daprd does), body sizes in
    /// bytes.
    pub fn http_client(
        &self,
        method: &str,
        path: &str,
        status: Option<u16>,
        sent: usize,
        received: usize,
        elapsed: Duration,
    ) {
        if !self.settings.enabled {
            return;
        }
        let c = &self.client;
        let method = if self.settings.exclude_verbs {
            ""
        } else {
            http_method(method)
        };
        let path = self.client_path_label(path);
        let status = status.unwrap_or(500).to_string();
        let labels = [self.app_id.as_str(), method, path.as_str(), status.as_str()];
        c.http.record(&labels, elapsed);
        // daprd records the sent size without a status.
        let sent_labels = [self.app_id.as_str(), method, path.as_str(), ""];
        #[allow(clippy::cast_precision_loss)]
        {
            c.http_sent
                .with_label_values(&sent_labels)
                .observe(sent as f64);
            c.http_received
                .with_label_values(&[self.app_id.as_str()])
                .observe(received as f64);
        }
    }

    /// Records one gRPC call to the app: `method` the full path, `status` the code's name,
    /// message sizes in bytes (`received` 0 on an error).
    pub fn grpc_client(
        &self,
        method: &str,
        status: &str,
        sent: usize,
        received: usize,
        elapsed: Duration,
    ) {
        if !self.settings.enabled {
            return;
        }
        let c = &self.client;
        let labels = [self.app_id.as_str(), method, status];
        c.grpc.record(&labels, elapsed);
        let sized = [self.app_id.as_str(), method];
        #[allow(clippy::cast_precision_loss)]
        {
            c.grpc_sent.with_label_values(&sized).observe(sent as f64);
            c.grpc_received
                .with_label_values(&sized)
                .observe(received as f64);
        }
    }

    /// Records one app health probe: over gRPC (`status` a code name) or HTTP (`status` the
    /// HTTP status, `500` when the app was not reached).
    pub fn health_probe(&self, grpc: bool, status: &str, elapsed: Duration) {
        if !self.settings.enabled {
            return;
        }
        let p = if grpc {
            &self.client.grpc_probes
        } else {
            &self.client.http_probes
        };
        let labels = [self.app_id.as_str(), status];
        p.record(&labels, elapsed);
    }

    /// The `path` label of a call to the app: the path without its leading `/` (as daprd
    /// labels the app's method), a `pathMatching` pattern that matches it, or blank without
    /// increased cardinality.
    pub fn client_path_label(&self, path: &str) -> String {
        let bare = path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_start_matches('/');
        let slashed = format!("/{bare}");
        if STATIC_PATHS.contains(&slashed.as_str()) {
            return slashed;
        }
        if let Some(p) = self
            .settings
            .path_matching
            .iter()
            .find(|p| pattern_matches(p, &slashed))
        {
            return p.clone();
        }
        if self.settings.increased_cardinality {
            bare.to_owned()
        } else {
            String::new()
        }
    }

    /// Records a component's initialisation: `type_` as in `state.in-memory`; `error` is `None` on
    /// success, else `"init"` or `"creation"`.
    pub fn component_init(&self, type_: &str, name: &str, error: Option<&str>) {
        if !self.settings.enabled {
            return;
        }
        match error {
            None => {
                self.loaded.with_label_values(&[self.app_id.as_str()]).inc();
                self.init_total
                    .with_label_values(&[self.app_id.as_str(), type_])
                    .inc();
            }
            Some(reason) => self
                .init_fail
                .with_label_values(&[self.app_id.as_str(), type_, reason, name])
                .inc(),
        }
    }

    /// Records one use of resiliency policy `policy` (`timeout`, `retry`, `circuitbreaker`) of
    /// the Resiliency resource `name` on calls to `target` (`app_<id>`, `<Type>_<component>`
    /// such as `Statestore_statestore`; `flow_direction` `inbound` for deliveries to the app,
    /// else `outbound`), as daprd's
    /// `dapr_resiliency_count`, and with `activated` also `dapr_resiliency_activations_total`
    /// (a timeout fired, a retry made, a breaker state change). `status` is a breaker's state
    /// (`closed`, `open`, `half-open`), empty for the other policies.
    pub fn resiliency(
        &self,
        name: &str,
        policy: &str,
        target: &str,
        inbound: bool,
        status: &str,
        activated: bool,
    ) {
        if !self.settings.enabled {
            return;
        }
        let labels = [
            self.app_id.as_str(),
            if inbound { "inbound" } else { "outbound" },
            name,
            self.settings.namespace.as_str(),
            policy,
            status,
            target,
        ];
        self.resiliency_count.with_label_values(&labels).inc();
        if activated {
            self.resiliency_activations.with_label_values(&labels).inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        use prometheus::Encoder as _;
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The `path` label of an HTTP request path (see the module documentation).
    pub fn path_label(&self, path: &str) -> String {
        let normalized = legacy_path(path);
        if !self.settings.path_matching.is_empty() {
            if STATIC_PATHS.contains(&path) {
                return path.to_owned();
            }
            if let Some(p) = self
                .settings
                .path_matching
                .iter()
                .find(|p| pattern_matches(p, &normalized))
            {
                return p.clone();
            }
        }
        if self.settings.increased_cardinality {
            normalized
        } else {
            String::new()
        }
    }
}

/// Paths daprd always labels as themselves under `pathMatching`.
const STATIC_PATHS: [&str; 4] = [
    "/dapr/config",
    "/dapr/metrics",
    "/dapr/subscribe",
    "/healthz",
];

/// The HTTP verb, or `UNKNOWN` (daprd's `getMetricsMethod`).
fn http_method(m: &str) -> &str {
    match m {
        "GET" | "PUT" | "POST" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" | "CONNECT" | "TRACE" => m,
        _ => "UNKNOWN",
    }
}

/// daprd 1.14's legacy path label: state and secret keys cut off, everything else as is.
fn legacy_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    // ["", "v1.0", "state", "<store>", "<key>"...]
    if parts.len() > 4 && parts[1] == "v1.0" && (parts[2] == "state" || parts[2] == "secrets") {
        return parts[..4].join("/");
    }
    path.to_owned()
}

/// Whether `path` matches a Go 1.22 `ServeMux` pattern's path: literal segments, `{name}` for
/// one segment, `{name...}` for the rest; a trailing `/` matches any continuation.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern
        .split_once(' ')
        .map_or(pattern, |(_, p)| p)
        .trim_start_matches('/');
    let path = path.trim_start_matches('/');
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    for (i, p) in pat.iter().enumerate() {
        if p.starts_with('{') && p.ends_with("...}") {
            return true;
        }
        if p.is_empty() && i == pat.len() - 1 && i > 0 {
            return segs.len() >= i;
        }
        let Some(s) = segs.get(i) else {
            return false;
        };
        let wildcard = p.starts_with('{') && p.ends_with('}');
        if !wildcard && p != s {
            return false;
        }
    }
    segs.len() == pat.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_paths_as_daprd() {
        let m = Metrics::new("myapp", MetricsSettings::default());
        m.http_request(
            "POST",
            "/v1.0/state/statestore/k1",
            204,
            Duration::from_millis(3),
            10,
            0,
        );
        m.grpc_request(
            "/dapr.proto.runtime.v1.Dapr/GetState",
            "OK",
            Duration::from_micros(400),
        );
        m.component_call(
            Kind::State,
            "statestore",
            "transact",
            true,
            Duration::from_millis(2),
        );
        m.component_init("state.in-memory", "statestore", None);
        let text = m.encode();
        for want in [
            r#"dapr_http_server_request_count{app_id="myapp",method="POST",path="/v1.0/state/statestore",status="204"} 1"#,
            r#"dapr_http_server_response_count{app_id="myapp",method="POST",path="/v1.0/state/statestore",status="204"} 1"#,
            r#"dapr_grpc_io_server_completed_rpcs{app_id="myapp",grpc_server_method="/dapr.proto.runtime.v1.Dapr/GetState",grpc_server_status="OK"} 1"#,
            r#"dapr_component_state_count{app_id="myapp",component="statestore",namespace="","#,
            r#"operation="transaction",success="true"} 1"#,
            r#"dapr_runtime_component_init_total{app_id="myapp",component="state.in-memory"} 1"#,
            "# TYPE dapr_http_server_latency histogram",
            r#"dapr_http_server_latency_bucket{app_id="myapp",method="POST",path="/v1.0/state/statestore",status="204",le="4"} 1"#,
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn bounded_cardinality() {
        let m = Metrics::new(
            "a",
            MetricsSettings {
                increased_cardinality: false,
                path_matching: vec!["/v1.0/invoke/myapp/method/orders/{id}".into()],
                exclude_verbs: true,
                ..MetricsSettings::default()
            },
        );
        assert_eq!(
            m.path_label("/v1.0/invoke/myapp/method/orders/123"),
            "/v1.0/invoke/myapp/method/orders/{id}"
        );
        assert_eq!(m.path_label("/v1.0/invoke/myapp/method/items/1"), "");
        assert_eq!(m.path_label("/dapr/config"), "/dapr/config");
        m.http_request("GET", "/v1.0/x", 200, Duration::ZERO, 0, 0);
        let text = m.encode();
        assert!(
            text.contains(
                r#"dapr_http_server_request_count{app_id="a",method="",path="",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("dapr_http_server_response_count"), "{text}");
        assert!(pattern_matches("/a/{rest...}", "/a/b/c"));
        assert!(pattern_matches("GET /a/{x}", "/a/b"));
        assert!(!pattern_matches("/a/{x}", "/a/b/c"));
    }

    #[test]
    fn rules_rewrite_label_values() {
        let rule = |name: &str, label: &str, rep: &str, pat: &str| layotto_config::MetricRule {
            name: name.into(),
            labels: vec![(label.into(), rep.into(), pat.into())],
        };
        let m = Metrics::new(
            "a",
            MetricsSettings {
                rules: vec![
                    // With and without the `dapr_` prefix, as daprd matches them.
                    rule(
                        "dapr_http_server_request_count",
                        "path",
                        "/orders/",
                        "/orders/.+",
                    ),
                    rule("http_server_latency", "path", "/orders/", "/orders/.+"),
                    rule(
                        "dapr_component_state_count",
                        "component",
                        "store-$1",
                        "^s(\\d)$",
                    ),
                ],
                ..MetricsSettings::default()
            },
        );
        m.http_request(
            "GET",
            "/v1.0/invoke/x/method/orders/1",
            200,
            Duration::ZERO,
            0,
            0,
        );
        m.http_request(
            "GET",
            "/v1.0/invoke/x/method/orders/2",
            200,
            Duration::ZERO,
            0,
            0,
        );
        m.component_call(Kind::State, "s1", "get", true, Duration::ZERO);
        let text = m.encode();
        for want in [
            r#"dapr_http_server_request_count{app_id="a",method="GET",path="/v1.0/invoke/x/method/orders/",status="200"} 2"#,
            r#"dapr_http_server_latency_count{app_id="a",method="GET",path="/v1.0/invoke/x/method/orders/",status="200"} 2"#,
            r#"dapr_component_state_count{app_id="a",component="store-1",namespace="""#,
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        // Families without rules keep their values.
        assert!(
            text.contains(r#"path="/v1.0/invoke/x/method/orders/1""#),
            "{text}"
        );
    }
}
