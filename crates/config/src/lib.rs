//! Loads Layotto's own MOSN-style JSON configuration (`configs/config_*.json` of `mosn/layotto`)
//! unchanged into one domain [`Config`], and validates it, collecting **every** problem before
//! anything is bound.
//!
//! What is read from the MOSN document:
//!
//! - the listener filter of type `grpc` (exactly one, in any listener of any server): its
//!   `config.grpc_config` is the runtime configuration and its listener's `address` is the gRPC
//!   bind address (a unix socket path when the listener says `"network": "unix"`);
//! - the listener carrying a stream filter of type `actuator_filter`, if any: the actuator HTTP
//!   address.
//!
//! - the gRPC listener's `flowControlFilter` stream filter: a per-method rate limit.
//!
//! Everything else is classified, never skipped silently: `grpc_config` sections whose API is
//! not served yet (`oss`, `sms`, `email`, `cryption`...) are errors naming the API; MOSN parts
//! without effect here (top-level `tracing`, `metrics`, `pprof`, xDS `dynamic_resources` /
//! `static_resources`, the `grpc_metric` stream filter, `proxy` network filters, routers with
//! routes, unknown keys) are accepted with one warning each ([`Config::warnings`]).
//!
//! Dapr `Component` YAML resources (`--resources-path DIR`) are read by [`load_resources`] and
//! added to a config with [`Config::merge_components`]; Dapr's `Configuration` resource
//! (`--config FILE`) by [`load_configuration`].

mod dapr;
mod dapr_configuration;
pub mod http_endpoint;
mod layotto;
mod node;
pub mod resiliency;
pub mod subscription;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use layotto_core::ComponentSpec;

pub use dapr::{API_VERSION, load_resources, parse_resources};
pub use dapr_configuration::{
    ApiAccessRule, DEFAULT_SAMPLING_RATE, DaprConfiguration, MetricRule, NameResolutionSpec,
    SecretScope, is_layotto_json, load_configuration, parse_configuration,
};
pub use http_endpoint::{HttpEndpoint, load_http_endpoints, parse_http_endpoints};
pub use resiliency::{load_resiliency, parse_resiliency};
pub use subscription::{
    BulkSubscribe, DeclaredSubscription, RouteRule, load_subscriptions, parse_subscriptions,
    resource_kind_warnings,
};

/// The building block a component serves (the block table lives in `layotto-core`).
pub use layotto_core::Kind;

/// Where spans go and how many are kept: Dapr's Configuration `spec.tracing`, or a Layotto
/// config's MOSN `tracing` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TracingSpec {
    /// Fraction of new traces sampled, 0 to 1 (`samplingRate`); a sampled parent is followed.
    pub sampling_rate: f64,
    /// OTLP exporter.
    pub otlp: Option<OtlpExporter>,
    /// Zipkin collector URL (`http://host:9411/api/v2/spans`).
    pub zipkin: Option<String>,
    /// Spans also written to standard output, one JSON object a line (Dapr's `stdout: true`,
    /// Layotto's SOFATracer `stdout` exporter).
    pub stdout: bool,
    /// The service name of the spans (default: the app id).
    pub service_name: Option<String>,
}

/// An OTLP span exporter (`tracing.otel` of Dapr's Configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExporter {
    /// `host:port`, or a URL.
    pub endpoint: String,
    /// `grpc` (default port 4317) or `http` (protobuf over HTTP, port 4318, `/v1/traces`).
    pub http: bool,
    /// TLS to the collector (`isSecure`).
    pub secure: bool,
}

/// Where the gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address, e.g. `127.0.0.1:34904`.
    Tcp(SocketAddr),
    /// A unix domain socket path (listener with `"network": "unix"`).
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    /// `127.0.0.1:34904` or `unix:/tmp/client-proxy.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The `grpc_config.app` section: who the application is and where its callback server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// `app_id`; empty when absent (Layotto tolerates that).
    pub app_id: String,
    /// `grpc_callback_host`; `"127.0.0.1"` when absent or empty.
    pub grpc_callback_host: String,
    /// `grpc_callback_port`; `None` when absent or `0` (Go's zero value: no callback).
    pub grpc_callback_port: Option<u16>,
}

impl Default for ListenAddr {
    /// Layotto's default gRPC address, `127.0.0.1:34904`.
    fn default() -> Self {
        ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 34904)))
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            app_id: String::new(),
            grpc_callback_host: DEFAULT_CALLBACK_HOST.to_owned(),
            grpc_callback_port: None,
        }
    }
}

/// Default for [`AppConfig::grpc_callback_host`].
pub const DEFAULT_CALLBACK_HOST: &str = "127.0.0.1";

/// One configured component and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentEntry {
    /// The building block (which section it came from).
    pub kind: Kind,
    /// Name, type and flattened metadata.
    pub spec: ComponentSpec,
    /// Where in `file` the component is: a JSON path such as
    /// `$.servers[0].listeners[0].filter_chains[0].filters[0].config.grpc_config.state.state_demo`
    /// for Layotto, `doc[1]` (the YAML document index) for Dapr resources.
    pub path: String,
    /// The file the component was read from (the config source for Layotto JSON).
    pub file: String,
    /// Which peer's format the component came from; picks the default key layouts.
    pub origin: Origin,
    /// Metadata still to be read from a secret store before the component is built: Dapr
    /// `secretKeyRef` items (from [`ComponentEntry::secret_store`]) and Layotto `secret_ref`
    /// items (each from its own `store_name`).
    pub secret_refs: Vec<SecretRef>,
    /// Dapr `auth.secretStore`: the secret store that resolves `secret_refs` that name none.
    pub secret_store: Option<String>,
    /// Layotto `component_ref`: components this one names.
    pub component_refs: Vec<ComponentRef>,
}

/// The peer whose configuration format declared a component.
///
/// Key layouts differ between the peers and follow the origin by default (a component's
/// `keyPrefix` metadata overrides the strategy):
///
/// | block | Layotto | Dapr |
/// |---|---|---|
/// | state | `<key>` (strategy `none`) | `<appid>\|\|<key>` (`appid`; `dapr/dapr:pkg/components/state/state_config.go`) |
/// | lock | `lock\|\|\|<appid>\|\|<key>` | `lock\|\|<appid>\|\|<key>` (`dapr/dapr:pkg/components/lock/lock_config.go`) |
/// | sequencer | `sequencer\|\|\|<appid>\|\|<key>` | (no Dapr block: Layotto's) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Layotto's MOSN JSON (`grpc_config` sections).
    Layotto,
    /// A Dapr `Component` resource (YAML, `apiVersion: dapr.io/v1alpha1`).
    ///
    /// What Dapr itself does (`dapr/dapr`, `dapr/components-contrib`, master in 2025), so that
    /// data written by `daprd` reads back the same:
    ///
    /// **State keys** (`dapr/dapr:pkg/components/state/state_config.go`,
    /// `SaveStateConfiguration` / `GetModifiedStateKey`): metadata `keyPrefix` (the name matched
    /// case-insensitively; the value **lower-cased**) picks the strategy; the separator is `||`:
    /// - `appid` (default; also when absent or empty): `<appid>||<key>`, or `<key>` when the app
    ///   id is empty;
    /// - `name`: `<store name>||<key>`;
    /// - `namespace`: `<$NAMESPACE>.<appid>||<key>`; `<appid>||<key>` when the `NAMESPACE`
    ///   environment variable is empty; `<key>` when the app id is empty;
    /// - `none`: `<key>`;
    /// - any other value is a custom prefix: `<lower-cased value>||<key>`.
    ///
    /// A key or prefix containing `||` is refused (`input key/keyPrefix '<k>' can't contain
    /// '||'`). Keys are un-prefixed (bulk get, query) with `SplitN(key, "||", 3)[1]`.
    ///
    /// **Lock keys** (`dapr/dapr:pkg/components/lock/lock_config.go`, `GetModifiedLockKey`):
    /// always `lock||` first; `keyPrefix` as for state (case-insensitive name, lower-cased
    /// value), without `namespace`:
    /// - `appid` (default): `lock||<appid>||<resourceId>`, or `lock||<resourceId>` when the app
    ///   id is empty;
    /// - `name`: `lock||<store name>||<resourceId>`;
    /// - `none`: `lock||<resourceId>`;
    /// - custom: `lock||<lower-cased value>||<resourceId>`.
    ///
    /// **`configuration.redis`** (`dapr/components-contrib:configuration/redis/redis.go`,
    /// `configuration/redis/internal/redis_value.go`, `common/component/redis/v9client.go`):
    /// - the Redis key is the configuration item key itself (no prefix; database from metadata
    ///   `redisDB`, default 0), a plain string read with `GET`; keys of another type
    ///   (`WRONGTYPE`) and missing keys are skipped, and items with an empty value left out;
    /// - the value is `<value>||<version>`: split on `||`, part 0 is the value, part 1 the
    ///   version (`""` without `||`; further parts dropped);
    /// - a get without keys reads every key (`KEYS *`);
    /// - subscribe runs `CONFIG SET notify-keyspace-events Kg$xe` (releases before the shared
    ///   Redis client: `KA`), then `SUBSCRIBE __keyspace@<db>__:<key>` for each requested key,
    ///   or `PSUBSCRIBE __keyspace@<db>__:*` when none is given; on every notification it
    ///   re-reads that key and sends `{key: item}` (an empty item when the key is gone), all
    ///   keys of one request sharing one subscription id; the event name (`set`, `del`, ...)
    ///   is not looked at.
    ///
    /// **`pubsub.redis`** (`dapr/components-contrib:pubsub/redis/redis.go`,
    /// `common/component/redis/redis.go`; `dapr/dapr:pkg/runtime/processor/pubsub/pubsub.go`):
    /// - the stream is the topic name, unprefixed: `XADD <topic> [MAXLEN ~ <maxLenApprox>] *
    ///   data <payload> [metadata <request metadata as a JSON object>]`; the runtime publishes
    ///   a CloudEvent JSON envelope as `data` unless `rawPayload` is set;
    /// - the consumer group **and** the consumer name are both metadata `consumerID`, which
    ///   the runtime sets to the app id when it is empty (after trimming); the group is made
    ///   by `XGROUP CREATE <topic> <consumerID> 0 MKSTREAM` (`BUSYGROUP` ignored), so a new
    ///   group starts at the beginning of the stream; reads are
    ///   `XREADGROUP GROUP <consumerID> <consumerID> COUNT <queueDepth> BLOCK ... STREAMS
    ///   <topic> >`;
    /// - a message is `XACK`ed once its handler succeeds; messages pending longer than
    ///   `processingTimeout` (default 60 s; a bare number is milliseconds) are taken back with
    ///   `XPENDING` + `XCLAIM` every `redeliverInterval` (default 15 s); `queueDepth` defaults
    ///   to 100, `concurrency` to 10.
    ///
    /// **Metadata templates** (`dapr/dapr:pkg/runtime/meta/meta.go`, `convertItemsToProps`):
    /// before a component is initialised the runtime replaces `{uuid}` (a new UUID for each
    /// occurrence), `{podName}` (an error when unknown), `{namespace}` (by
    /// `<namespace>.<appid>`) and `{appID}` in every metadata value; [`load_resources`]
    /// leaves them as written.
    ///
    /// **Secrets** (`dapr/dapr:pkg/runtime/processor/secret/secret.go`, `ProcessResource`):
    /// each `secretKeyRef` is read from the store named by `auth.secretStore` (Kubernetes
    /// mode: `kubernetes` when unset), the key defaulting to the secret's name; a non-empty
    /// secret replaces the item's value. Dapr also fills `envRef` items from the environment;
    /// [`load_resources`] reports `envRef` as unsupported.
    ///
    /// **Loading** (`dapr/dapr:pkg/internal/loader/disk/disk.go`): `daprd` reads `*.yaml` /
    /// `*.yml` files of each resources directory (not recursively), splits documents on `---`,
    /// looks only at `kind` (not `apiVersion`), rejects names that are not path segments, drops
    /// resources of another namespace when `NAMESPACE` is set, and refuses a name used twice
    /// **across all component kinds**; this loader only refuses a (kind, name) pair twice.
    Dapr,
}

/// A Dapr metadata item given as `secretKeyRef: {name, key}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The metadata key to fill, e.g. `redisPassword`.
    pub metadata_key: String,
    /// The secret's name in the secret store.
    pub secret_name: String,
    /// The key within the secret (Dapr: defaults to the secret's name; Layotto's `sub_key`,
    /// defaulting to `key`).
    pub secret_key: String,
    /// The secret store to read it from: Layotto's `store_name`; `None` for Dapr, whose
    /// component names one store for all (`auth.secretStore`).
    pub store: Option<String>,
}

/// A Layotto `component_ref`: another component this one names (`config_store`,
/// `secret_store`), which must exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRef {
    /// The block of the named component.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Where the reference is written.
    pub path: String,
}

/// A loaded and validated Layotto configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Where it came from: a file path or `"<embedded config_standalone.json>"`.
    pub source: String,
    /// The gRPC bind address.
    pub grpc: ListenAddr,
    /// The actuator HTTP bind address; `None` when no listener has an `actuator_filter`.
    pub actuator: Option<SocketAddr>,
    /// The `app` section.
    pub app: AppConfig,
    /// Every component, sorted by [`Kind::ALL`] order, then name.
    pub components: Vec<ComponentEntry>,
    /// Parts of the file that are accepted without effect (MOSN tracing, metrics, xDS...), one
    /// warning each: `validate` prints them, `start` logs them once.
    pub warnings: Vec<Problem>,
    /// The gRPC listener's MOSN `flowControlFilter`, when present and switched on.
    pub flow_control: Option<FlowControl>,
    /// The port of MOSN's Prometheus metrics sink (`metrics.sinks[].type: prometheus`,
    /// `config.port`; 34903 in Layotto's files): the metrics are served there on every
    /// interface, as MOSN does.
    pub metrics_port: Option<u16>,
    /// The MOSN `tracing` section, when it exports spans.
    pub tracing: Option<TracingSpec>,
    /// MOSN's `default_log_level` of the server holding the gRPC listener (`DEBUG`, `INFO`,
    /// `WARN`, `ERROR`...), used when `RUST_LOG` is not set.
    pub log_level: Option<String>,
    /// Which secrets the secrets API may hand out, per store (Dapr's Configuration
    /// `spec.secrets.scopes`); a store without a scope hands out every key.
    pub secret_scopes: Vec<SecretScope>,
    /// Dapr's `Resiliency` resources from the resources path, merged.
    pub resiliency: resiliency::Resiliency,
    /// Dapr's `HTTPEndpoint` resources from the resources path.
    pub http_endpoints: Vec<HttpEndpoint>,
    /// Dapr's declarative `Subscription` resources from the resources path that apply to
    /// this app, in load order.
    pub subscriptions: Vec<DeclaredSubscription>,
}

/// MOSN's `flowControlFilter` stream filter on the gRPC listener: a per-method rate limit
/// (`mosn/layotto:docs/en/start/stream_filter/flow_control.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowControl {
    /// One rule per limited method.
    pub rules: Vec<FlowRule>,
}

/// One `flowControlFilter` rule: at most `threshold` calls of `resource` per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    /// The gRPC method path, e.g. `/spec.proto.runtime.v1.Runtime/SayHello`.
    pub resource: String,
    /// Calls allowed per window.
    pub threshold: u32,
    /// The window: `grade` seconds (Layotto documents `grade` as "threshold update cycle,
    /// unit: second"; Sentinel's `grade: 1` is a per-second limit, the same thing).
    pub window: std::time::Duration,
}

impl Config {
    /// The components of `kind`, sorted by name.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &ComponentEntry> {
        self.components.iter().filter(move |e| e.kind == kind)
    }

    /// Appends `more` (e.g. Dapr resources) and keeps [`Config::components`] sorted; returns a
    /// problem for every component whose kind and name is already taken (it is not added).
    pub fn merge_components(&mut self, more: Vec<ComponentEntry>) -> Vec<Problem> {
        let mut problems = Vec::new();
        for entry in more {
            if let Some(other) = self
                .components
                .iter()
                .find(|e| e.kind == entry.kind && e.spec.name == entry.spec.name)
            {
                problems.push(Problem {
                    file: entry.file.clone(),
                    path: entry.path.clone(),
                    message: format!(
                        "{} component '{}' is already defined in {} at {}",
                        entry.kind, entry.spec.name, other.file, other.path
                    ),
                });
                continue;
            }
            self.components.push(entry);
        }
        let order = |k: Kind| Kind::ALL.iter().position(|x| *x == k);
        self.components
            .sort_by(|a, b| (order(a.kind), &a.spec.name).cmp(&(order(b.kind), &b.spec.name)));
        problems
    }

    /// Runs `check` on every component (typically: build it with the registry of its kind,
    /// without I/O) and collects every failure as a [`Problem`] at the component's path.
    pub fn check_components(
        &self,
        check: impl Fn(&ComponentEntry) -> Result<(), String>,
    ) -> Result<(), Problems> {
        let problems: Vec<Problem> = self
            .components
            .iter()
            .filter_map(|entry| {
                check(entry).err().map(|message| Problem {
                    file: entry.file.clone(),
                    path: entry.path.clone(),
                    message,
                })
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config source ([`Config::source`]), the Dapr resource file, or the resources
    /// directory when it cannot be read.
    pub file: String,
    /// Where: a JSON path such as `$.servers[0].listeners[0].address`, a YAML path such as
    /// `doc[1].spec.metadata[2].value` (document index in the file), `line:column` for
    /// malformed JSON or YAML, or `$` for a whole file or directory.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.path, self.message)
    }
}

/// Every problem found in a configuration (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// The problems, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Parses and validates Layotto JSON `text`; `source` names it in problems and becomes
/// [`Config::source`].
///
/// Malformed JSON gives one problem at `line:column`; otherwise every structural problem is
/// reported at once. Component types are not checked here (see [`Config::check_components`]).
pub fn parse(text: &str, source: &str) -> Result<Config, Problems> {
    layotto::parse(text, source)
}

/// Like [`parse`], but also returns what could be read of a config that has problems, so a
/// caller can check its components too and report everything at once. The config is `None`
/// when the JSON is malformed or has no usable gRPC listener.
pub fn parse_partial(text: &str, source: &str) -> (Option<Config>, Vec<Problem>) {
    layotto::parse_partial(text, source)
}

/// [`parse_partial`] of the file at `path` (an unreadable file gives one problem).
pub fn load_partial(path: &Path) -> (Option<Config>, Vec<Problem>) {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_partial(&text, &source),
        Err(e) => (
            None,
            vec![Problem {
                file: source,
                path: "$".to_owned(),
                message: format!("cannot read config file: {e}"),
            }],
        ),
    }
}

/// Reads and parses the file at `path`. An unreadable file gives one problem naming the file
/// and the OS error.
pub fn load(path: &Path) -> Result<Config, Problems> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &source),
        Err(e) => Err(Problems(vec![Problem {
            file: source,
            path: "$".to_owned(),
            message: format!("cannot read config file: {e}"),
        }])),
    }
}

/// The embedded default configuration: gRPC on `127.0.0.1:34904`, actuator on
/// `127.0.0.1:34999`, and an in-memory (or local) component of every kind.
pub const STANDALONE: &str = include_str!("../../../configs/config_standalone.json");

/// [`Config::source`] of [`standalone`].
pub const STANDALONE_SOURCE: &str = "<embedded config_standalone.json>";

/// Parses [`STANDALONE`].
pub fn standalone() -> Result<Config, Problems> {
    parse(STANDALONE, STANDALONE_SOURCE)
}
