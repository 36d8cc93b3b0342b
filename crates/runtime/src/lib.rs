//! The layotto-rs runtime.
//!
//! Builds every configured component from a [`layotto_config::Config`] and the component
//! [`Registries`], owns their lifecycle and health, and offers each building block as plain
//! async domain calls (no proto types): the edge crates (gRPC, HTTP) translate requests into
//! these calls and their errors into status codes. Key prefixing, CloudEvent wrapping, WEAK
//! sequencer segments and pub/sub delivery to the app live here, so every API surface shares them.

pub mod app_channel;
pub mod cloudevent;
pub mod keys;
pub mod segments;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use layotto_components::Registries;
use layotto_config::{ComponentEntry, Config, Kind, Origin, Problems};
use layotto_core::binding::{BindingRequest, BindingResponse, OutputBinding};
use layotto_core::configuration::{ConfigChanges, ConfigItem, ConfigQuery, ConfigStore};
use layotto_core::file::{ByteStream, FileMeta, FileStore, ListPage, ListRequest};
use layotto_core::hello::Hello;
use layotto_core::lock::{LockStatus, LockStore};
use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest, Subscription};
use layotto_core::secret::{Secret, SecretStore};
use layotto_core::sequencer::Sequencer;
use layotto_core::state::{
    BulkGetItem, DeleteRequest, SetRequest, StateItem, StateStore, TransactionOp,
};
use layotto_core::{ComponentSpec, Error, Health, HealthStatus, Metadata, Result};

pub use app_channel::{
    AppChannel, ChannelError, EventOutcome, InvokeRequest, InvokeResponse, TopicSubscription,
};
pub use cloudevent::TopicEvent;
use keys::KeyPrefix;
use segments::SegmentCache;

/// Components of one building block by name.
struct Block<T> {
    api: &'static str,
    items: BTreeMap<String, T>,
}

impl<T> Block<T> {
    fn new(api: &'static str) -> Self {
        Self {
            api,
            items: BTreeMap::new(),
        }
    }
    /// The component `name`: not-configured when the block has none, invalid argument when
    /// `name` is empty or unknown.
    fn get(&self, name: &str) -> Result<&T> {
        if self.items.is_empty() {
            return Err(Error::not_configured(self.api));
        }
        if name.is_empty() {
            return Err(Error::invalid(format!(
                "{} store name is empty (known: {})",
                self.api,
                self.names().join(", ")
            )));
        }
        self.items
            .get(name)
            .ok_or_else(|| Error::store_not_found(self.api, name))
    }
    fn names(&self) -> Vec<&str> {
        self.items.keys().map(String::as_str).collect()
    }
}

struct Prefixed<T: ?Sized> {
    inner: Arc<T>,
    keys: KeyPrefix,
}

struct SequencerEntry {
    inner: Arc<dyn Sequencer>,
    keys: KeyPrefix,
    segments: SegmentCache,
}

/// A named health probe of one component.
type Probe = (
    String,
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Health> + Send + Sync>,
);

/// An initialisation step of one component.
type Init = (
    String,
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<()>> + Send + Sync>,
);

const READY_INIT: u8 = 0;
const READY_STARTED: u8 = 1;
const READY_FAILED: u8 = 2;

/// Overall health with per-component details, as the actuator reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthReport {
    /// Aggregate status.
    pub status: HealthStatus,
    /// Per component (`<kind>/<name>`, plus `runtime_startup`).
    pub components: BTreeMap<String, Health>,
}

/// The runtime: every configured component, ready to serve domain calls.
pub struct Runtime {
    app_id: String,
    hellos: Block<Arc<dyn Hello>>,
    state: Block<Prefixed<dyn StateStore>>,
    locks: Block<Prefixed<dyn LockStore>>,
    sequencers: Block<SequencerEntry>,
    configs: Block<Arc<dyn ConfigStore>>,
    pubsubs: Block<Arc<dyn PubSub>>,
    secrets: Block<Arc<dyn SecretStore>>,
    files: Block<Arc<dyn FileStore>>,
    bindings: Block<Arc<dyn OutputBinding>>,
    probes: Vec<Probe>,
    inits: Vec<Init>,
    ready: AtomicU8,
    startup_error: Mutex<Option<String>>,
    app_subscriptions: Mutex<Vec<Subscription>>,
    app_topics: Mutex<Vec<TopicSubscription>>,
    app_stopped: std::sync::atomic::AtomicBool,
    app_channel: Mutex<Option<Arc<dyn AppChannel>>>,
    app_connection: Mutex<Option<AppConnection>>,
    registered: Vec<RegisteredComponent>,
    attributes: Mutex<BTreeMap<String, String>>,
}

/// Publish/subscribe metadata key that turns CloudEvent wrapping off (Dapr's name).
pub const RAW_PAYLOAD_KEY: &str = "rawPayload";

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
    /// Component type within the block, e.g. `redis`, `in-memory`, `local.file`.
    pub type_: String,
}

impl RegisteredComponent {
    /// The type as a Dapr resource spells it: `<block>.<type>`, e.g. `state.redis`,
    /// `pubsub.in-memory`, `secretstores.local.file`, `bindings.http` (blocks Dapr lacks keep
    /// Layotto's section name: `sequencer.redis`, `file.local`, `hellos.helloworld`).
    pub fn dapr_type(&self) -> String {
        let block = match self.kind {
            Kind::State => "state",
            Kind::PubSub => "pubsub",
            Kind::Lock => "lock",
            Kind::Configuration => "configuration",
            Kind::Secret => "secretstores",
            Kind::Binding => "bindings",
            Kind::Sequencer => "sequencer",
            Kind::File => "file",
            Kind::Hello => "hellos",
        };
        format!("{block}.{}", self.type_)
    }
}

macro_rules! probe {
    ($probes:ident, $inits:ident, $label:expr, $c:expr) => {{
        let c = $c.clone();
        $probes.push((
            $label.clone(),
            Arc::new(move || {
                let c = c.clone();
                Box::pin(async move { c.health().await })
            }),
        ));
        let c = $c.clone();
        $inits.push((
            $label,
            Arc::new(move || {
                let c = c.clone();
                Box::pin(async move { c.init().await })
            }),
        ));
    }};
}

/// Checks every component of `config` against `registries` without I/O, collecting all
/// problems (unknown types, bad metadata, bad key prefixes).
///
/// # Errors
/// Every problem found, each with file and JSON path.
pub fn validate(config: &Config, registries: &Registries) -> std::result::Result<(), Problems> {
    let app_id = config.app.app_id.clone();
    config.check_components(|entry| {
        create(registries, entry, &app_id)
            .map(drop)
            .map_err(|e| e.message)
    })
}

/// Resolves Dapr `secretKeyRef` metadata of every component of `config`: each reference is
/// read from the secret store its component names in `auth.secretStore` (built and
/// initialised here, before the runtime) and written into the component's metadata.
///
/// # Errors
/// Every reference that cannot be resolved, each naming the component, the metadata key and
/// why: no `auth.secretStore`, an unknown or failing store, a missing secret or key.
pub async fn resolve_secret_refs(
    config: &mut Config,
    registries: &Registries,
) -> std::result::Result<(), Problems> {
    let mut stores: HashMap<String, Arc<dyn SecretStore>> = HashMap::new();
    let mut problems = Vec::new();
    for i in 0..config.components.len() {
        let entry = &config.components[i];
        if entry.secret_refs.is_empty() {
            continue;
        }
        let problem = |message: String| layotto_config::Problem {
            file: entry.file.clone(),
            path: entry.path.clone(),
            message,
        };
        let Some(store_name) = entry.secret_store.clone() else {
            problems.push(problem(format!(
                "metadata '{}' uses secretKeyRef but the component names no secret store \
                 (auth.secretStore)",
                entry.secret_refs[0].metadata_key
            )));
            continue;
        };
        let store = if let Some(s) = stores.get(&store_name) {
            s.clone()
        } else {
            let Some(spec) = config
                .of_kind(Kind::Secret)
                .find(|e| e.spec.name == store_name)
                .map(|e| e.spec.clone())
            else {
                problems.push(problem(format!(
                    "secret store '{store_name}' (auth.secretStore) is not configured"
                )));
                continue;
            };
            let built = match registries.secrets.create(&spec) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(problem(format!("secret store '{store_name}': {e}")));
                    continue;
                }
            };
            if let Err(e) = built.init().await {
                problems.push(problem(format!("secret store '{store_name}': {e}")));
                continue;
            }
            stores.insert(store_name.clone(), built.clone());
            built
        };
        let mut resolved = Vec::new();
        for r in &entry.secret_refs {
            match store.get(&r.secret_name, &Metadata::new()).await {
                Ok(secret) => match secret.get(&r.secret_key) {
                    Some(v) => resolved.push((r.metadata_key.clone(), v.clone())),
                    None => problems.push(problem(format!(
                        "metadata '{}': secret '{}' of store '{store_name}' has no key '{}'",
                        r.metadata_key, r.secret_name, r.secret_key
                    ))),
                },
                Err(e) => problems.push(problem(format!(
                    "metadata '{}': secret '{}' of store '{store_name}': {e}",
                    r.metadata_key, r.secret_name
                ))),
            }
        }
        config.components[i].spec.metadata.extend(resolved);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

enum Built {
    Hello(Arc<dyn Hello>),
    State(Prefixed<dyn StateStore>),
    Lock(Prefixed<dyn LockStore>),
    Sequencer(SequencerEntry),
    Config(Arc<dyn ConfigStore>),
    PubSub(Arc<dyn PubSub>),
    Secret(Arc<dyn SecretStore>),
    File(Arc<dyn FileStore>),
    Binding(Arc<dyn OutputBinding>),
}

/// Builds the component of `entry`, with the key layout of its origin: Layotto keeps state
/// keys unprefixed and locks under `lock|||`; Dapr prefixes state keys with the app id and
/// locks under `lock||` (see [`layotto_config::Origin`]).
fn create(r: &Registries, entry: &ComponentEntry, app_id: &str) -> Result<Built> {
    let spec = &entry.spec;
    let dapr = entry.origin == Origin::Dapr;
    Ok(match entry.kind {
        Kind::Hello => Built::Hello(r.hellos.create(spec)?),
        Kind::State => Built::State(Prefixed {
            inner: r.state.create(spec)?,
            keys: KeyPrefix::resolve(spec, app_id, if dapr { "appid" } else { "none" }, "")?,
        }),
        Kind::Lock => Built::Lock(Prefixed {
            inner: r.lock.create(spec)?,
            keys: KeyPrefix::resolve(
                spec,
                app_id,
                "appid",
                if dapr { "lock||" } else { "lock|||" },
            )?,
        }),
        Kind::Sequencer => {
            let keys = KeyPrefix::resolve(spec, app_id, "appid", "sequencer|||")?;
            let inner = r.sequencer.create(&stored_floors(spec, &keys)?)?;
            Built::Sequencer(SequencerEntry {
                segments: SegmentCache::new(inner.clone(), segments::DEFAULT_SEGMENT_SIZE),
                inner,
                keys,
            })
        }
        Kind::Configuration => Built::Config(r.configuration.create(spec)?),
        Kind::PubSub => Built::PubSub(r.pubsub.create(spec)?),
        Kind::Secret => Built::Secret(r.secrets.create(spec)?),
        Kind::File => Built::File(r.file.create(spec)?),
        Kind::Binding => Built::Binding(r.bindings.create(spec)?),
    })
}

/// `spec` with its `biggerThan` floors keyed by stored (prefixed) keys, as the component sees
/// keys in requests.
fn stored_floors(spec: &ComponentSpec, keys: &KeyPrefix) -> Result<ComponentSpec> {
    use layotto_core::sequencer::{BIGGER_THAN_KEY, parse_bigger_than};
    let floors = parse_bigger_than(spec.get(BIGGER_THAN_KEY))
        .map_err(|e| e.context(format!("component '{}'", spec.name)))?;
    if floors.is_empty() {
        return Ok(spec.clone());
    }
    let stored = floors
        .into_iter()
        .map(|(k, v)| Ok((keys.apply(&k, BIGGER_THAN_KEY)?, v)))
        .collect::<Result<HashMap<_, _>>>()?;
    let text = serde_json::to_string(&stored)
        .map_err(|e| Error::internal(format!("encoding {BIGGER_THAN_KEY}: {e}")))?;
    let mut spec = spec.clone();
    spec.metadata.insert(BIGGER_THAN_KEY.to_owned(), text);
    Ok(spec)
}

impl Runtime {
    /// Builds every component of `config` (no I/O). Call [`Runtime::init`] before serving.
    ///
    /// # Errors
    /// Every configuration problem at once.
    pub fn build(config: &Config, registries: &Registries) -> std::result::Result<Self, Problems> {
        let app_id = config.app.app_id.clone();
        let mut rt = Self {
            app_id: app_id.clone(),
            hellos: Block::new("hello"),
            state: Block::new("state"),
            locks: Block::new("lock"),
            sequencers: Block::new("sequencer"),
            configs: Block::new("configuration"),
            pubsubs: Block::new("pubsub"),
            secrets: Block::new("secret"),
            files: Block::new("file"),
            bindings: Block::new("binding"),
            probes: Vec::new(),
            inits: Vec::new(),
            ready: AtomicU8::new(READY_INIT),
            startup_error: Mutex::new(None),
            app_subscriptions: Mutex::new(Vec::new()),
            app_topics: Mutex::new(Vec::new()),
            app_stopped: std::sync::atomic::AtomicBool::new(false),
            app_channel: Mutex::new(None),
            app_connection: Mutex::new(None),
            registered: Vec::new(),
            attributes: Mutex::new(BTreeMap::new()),
        };
        let (probes, inits) = (&mut rt.probes, &mut rt.inits);
        let mut problems = Vec::new();
        for entry in &config.components {
            let spec = &entry.spec;
            let name = spec.name.clone();
            let label = format!("{}/{}", entry.kind.section(), name);
            rt.registered.push(RegisteredComponent {
                name: name.clone(),
                kind: entry.kind,
                type_: spec.type_.clone(),
            });
            let built = match create(registries, entry, &app_id) {
                Ok(built) => built,
                Err(e) => {
                    problems.push(layotto_config::Problem {
                        file: entry.file.clone(),
                        path: entry.path.clone(),
                        message: e.message,
                    });
                    continue;
                }
            };
            match built {
                Built::Hello(c) => {
                    rt.hellos.items.insert(name, c);
                }
                Built::State(c) => {
                    probe!(probes, inits, label, c.inner);
                    rt.state.items.insert(name, c);
                }
                Built::Lock(c) => {
                    probe!(probes, inits, label, c.inner);
                    rt.locks.items.insert(name, c);
                }
                Built::Sequencer(c) => {
                    probe!(probes, inits, label, c.inner);
                    rt.sequencers.items.insert(name, c);
                }
                Built::Config(c) => {
                    probe!(probes, inits, label, c);
                    rt.configs.items.insert(name, c);
                }
                Built::PubSub(c) => {
                    probe!(probes, inits, label, c);
                    rt.pubsubs.items.insert(name, c);
                }
                Built::Secret(c) => {
                    probe!(probes, inits, label, c);
                    rt.secrets.items.insert(name, c);
                }
                Built::File(c) => {
                    probe!(probes, inits, label, c);
                    rt.files.items.insert(name, c);
                }
                Built::Binding(c) => {
                    probe!(probes, inits, label, c);
                    rt.bindings.items.insert(name, c);
                }
            }
        }
        if problems.is_empty() {
            Ok(rt)
        } else {
            Err(Problems(problems))
        }
    }

    /// Initialises every component (connects backends, loads files).
    ///
    /// # Errors
    /// The first component that fails, named; readiness then reports DOWN.
    pub async fn init(&self) -> Result<()> {
        for (label, init) in &self.inits {
            if let Err(e) = init().await {
                let e = e.context(format!("initialising component {label}"));
                self.fail_startup(&e.message);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Marks start-up complete: readiness turns from INIT to the components' health.
    pub fn mark_started(&self) {
        self.ready.store(READY_STARTED, Ordering::SeqCst);
    }

    fn fail_startup(&self, reason: &str) {
        *self.startup_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
        self.ready.store(READY_FAILED, Ordering::SeqCst);
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Liveness: UP while the process serves.
    pub fn liveness(&self) -> HealthReport {
        let mut components = BTreeMap::new();
        components.insert("runtime".to_owned(), Health::up());
        HealthReport {
            status: HealthStatus::Up,
            components,
        }
    }

    /// Readiness: INIT until start-up completes, then UP only if every component is UP.
    /// Each component is probed with a real round trip, concurrently.
    pub async fn readiness(&self) -> HealthReport {
        let mut components = BTreeMap::new();
        let startup = match self.ready.load(Ordering::SeqCst) {
            READY_INIT => Health {
                status: HealthStatus::Init,
                details: BTreeMap::new(),
            },
            READY_FAILED => Health::down(
                self.startup_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_default(),
            ),
            _ => Health::up(),
        };
        let mut status = startup.status;
        components.insert("runtime_startup".to_owned(), startup);
        let probes = futures::future::join_all(self.probes.iter().map(|(label, p)| {
            let fut = p();
            async move {
                let h = tokio::time::timeout(std::time::Duration::from_secs(3), fut)
                    .await
                    .unwrap_or_else(|_| Health::down("health check timed out after 3 s"));
                (label.clone(), h)
            }
        }))
        .await;
        for (label, h) in probes {
            if h.status != HealthStatus::Up && status == HealthStatus::Up {
                status = HealthStatus::Down;
            }
            components.insert(label, h);
        }
        HealthReport { status, components }
    }

    // ----- hello -----

    /// Greets `name` with the hello component `service_name`.
    ///
    /// # Errors
    /// Not configured / unknown component.
    pub async fn say_hello(&self, service_name: &str, name: &str) -> Result<String> {
        self.hellos.get(service_name)?.say_hello(name).await
    }

    /// Lifecycle API: applies `metadata` to component `name` of `kind` (`hellos`/`hello`).
    ///
    /// # Errors
    /// Invalid argument for an unknown kind or component; the component's own error for bad
    /// metadata.
    pub fn apply_configuration(&self, kind: &str, name: &str, metadata: &Metadata) -> Result<()> {
        match kind {
            "hello" | "hellos" | "helloworld" => self.hellos.get(name)?.apply_config(metadata),
            "" => Err(Error::empty_field("component_config.kind")),
            other => Err(Error::invalid(format!(
                "component kind '{other}' does not accept dynamic configuration (supported: hellos)"
            ))),
        }
    }

    // ----- state -----

    /// Reads `key` of `store`; `Ok(None)` when absent.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, component failure.
    pub async fn get_state(
        &self,
        store: &str,
        key: &str,
        metadata: &Metadata,
    ) -> Result<Option<StateItem>> {
        let s = self.state.get(store)?;
        let k = s.keys.apply(key, "key")?;
        s.inner.get(&k, metadata).await
    }

    /// Reads many keys of `store`; items come back with the client's keys.
    ///
    /// # Errors
    /// Unknown store, an empty or illegal key, component failure.
    pub async fn get_bulk_state(
        &self,
        store: &str,
        keys: &[String],
        metadata: &Metadata,
    ) -> Result<Vec<BulkGetItem>> {
        let s = self.state.get(store)?;
        let stored = keys
            .iter()
            .map(|k| s.keys.apply(k, "key"))
            .collect::<Result<Vec<_>>>()?;
        let mut items = s.inner.bulk_get(&stored, metadata).await?;
        for it in &mut items {
            it.key = s.keys.strip(&it.key).to_owned();
        }
        Ok(items)
    }

    /// Writes `items` to `store` (keys as the client gave them).
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, ETag mismatch, bad TTL, component failure.
    pub async fn save_state(&self, store: &str, mut items: Vec<SetRequest>) -> Result<()> {
        let s = self.state.get(store)?;
        for it in &mut items {
            it.key = s.keys.apply(&it.key, "key")?;
        }
        match items.len() {
            0 => Ok(()),
            1 => s.inner.set(items.remove(0)).await,
            _ => s.inner.bulk_set(items).await,
        }
    }

    /// Deletes keys of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, ETag mismatch, component failure.
    pub async fn delete_state(&self, store: &str, mut reqs: Vec<DeleteRequest>) -> Result<()> {
        let s = self.state.get(store)?;
        for r in &mut reqs {
            r.key = s.keys.apply(&r.key, "key")?;
        }
        match reqs.len() {
            0 => Ok(()),
            1 => s.inner.delete(reqs.remove(0)).await,
            _ => s.inner.bulk_delete(reqs).await,
        }
    }

    /// Applies `ops` to `store` atomically, in order.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, ETag mismatch (nothing applied), component failure.
    pub async fn transact_state(
        &self,
        store: &str,
        mut ops: Vec<TransactionOp>,
        metadata: &Metadata,
    ) -> Result<()> {
        let s = self.state.get(store)?;
        for op in &mut ops {
            let key = match op {
                TransactionOp::Upsert(r) => &mut r.key,
                TransactionOp::Delete(r) => &mut r.key,
            };
            *key = s.keys.apply(key, "key")?;
        }
        s.inner.transact(ops, metadata).await
    }

    // ----- lock -----

    fn lock_args<'a>(
        &'a self,
        store: &str,
        resource: &str,
        owner: &str,
    ) -> Result<(&'a Prefixed<dyn LockStore>, String)> {
        let l = self.locks.get(store)?;
        let key = l.keys.apply(resource, "resource_id")?;
        if owner.is_empty() {
            return Err(Error::empty_field("lock_owner"));
        }
        Ok((l, key))
    }

    fn lease(expire: i32) -> Result<std::time::Duration> {
        if expire <= 0 {
            return Err(Error::invalid(format!(
                "expire must be a positive number of seconds, got {expire}"
            )));
        }
        Ok(std::time::Duration::from_secs(expire.unsigned_abs().into()))
    }

    /// Tries to take `resource` for `owner` for `expire` seconds; `Ok(false)` if held.
    ///
    /// # Errors
    /// Unknown store, empty resource or owner, non-positive expire, component failure.
    pub async fn try_lock(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
        expire: i32,
    ) -> Result<bool> {
        let (l, key) = self.lock_args(store, resource, owner)?;
        let lease = Self::lease(expire)?;
        l.inner.try_lock(&key, owner, lease).await
    }

    /// Releases `resource` held by `owner`.
    ///
    /// # Errors
    /// Unknown store, empty resource or owner, component failure.
    pub async fn unlock(&self, store: &str, resource: &str, owner: &str) -> Result<LockStatus> {
        let (l, key) = self.lock_args(store, resource, owner)?;
        l.inner.unlock(&key, owner).await
    }

    /// Extends the lease of `resource` held by `owner` to `expire` seconds from now.
    ///
    /// # Errors
    /// Unknown store, empty resource or owner, non-positive expire, component failure.
    pub async fn lock_keep_alive(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
        expire: i32,
    ) -> Result<LockStatus> {
        let (l, key) = self.lock_args(store, resource, owner)?;
        let lease = Self::lease(expire)?;
        l.inner.keep_alive(&key, owner, lease).await
    }

    // ----- sequencer -----

    /// The next id of `key`: from the store when `strong`, else from an in-process segment.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, component failure.
    pub async fn next_id(&self, store: &str, key: &str, strong: bool) -> Result<i64> {
        let s = self.sequencers.get(store)?;
        let k = s.keys.apply(key, "key")?;
        if strong {
            s.inner.get_next_id(&k).await
        } else {
            s.segments.next_id(&k).await
        }
    }

    // ----- configuration -----

    fn config_query(&self, mut q: ConfigQuery) -> ConfigQuery {
        if q.app_id.is_empty() {
            q.app_id.clone_from(&self.app_id);
        }
        q
    }

    /// Reads configuration items.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn get_configuration(
        &self,
        store: &str,
        query: ConfigQuery,
    ) -> Result<Vec<ConfigItem>> {
        let c = self.configs.get(store)?;
        c.get(&self.config_query(query)).await
    }

    /// Saves configuration items of `app_id` (blank = this app).
    ///
    /// # Errors
    /// Unknown store, an item with an empty key, component failure.
    pub async fn save_configuration(
        &self,
        store: &str,
        app_id: &str,
        items: Vec<ConfigItem>,
        metadata: &Metadata,
    ) -> Result<()> {
        let c = self.configs.get(store)?;
        if items.iter().any(|i| i.key.is_empty()) {
            return Err(Error::empty_field("items.key"));
        }
        let app = if app_id.is_empty() {
            &self.app_id
        } else {
            app_id
        };
        c.set(app, items, metadata).await
    }

    /// Deletes configuration items.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn delete_configuration(&self, store: &str, query: ConfigQuery) -> Result<()> {
        let c = self.configs.get(store)?;
        c.delete(&self.config_query(query)).await
    }

    /// Subscribes to changes.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn subscribe_configuration(
        &self,
        store: &str,
        query: ConfigQuery,
    ) -> Result<ConfigChanges> {
        let c = self.configs.get(store)?;
        c.subscribe(&self.config_query(query)).await
    }

    // ----- pub/sub -----

    /// Publishes `data` to `topic`, wrapped in a CloudEvent unless it already is one or
    /// `metadata` has `rawPayload: "true"` (Dapr's raw messages: published as given).
    ///
    /// # Errors
    /// Unknown pub/sub, empty topic, a malformed CloudEvent, component failure.
    pub async fn publish(
        &self,
        pubsub: &str,
        topic: &str,
        data: &[u8],
        content_type: &str,
        metadata: Metadata,
    ) -> Result<()> {
        let p = self.pubsubs.get(pubsub)?;
        if topic.is_empty() {
            return Err(Error::empty_field("topic"));
        }
        let data = if cloudevent::is_raw_payload(&metadata) {
            bytes::Bytes::copy_from_slice(data)
        } else {
            cloudevent::envelope(&self.app_id, topic, pubsub, data, content_type)?
        };
        p.publish(Message {
            topic: topic.to_owned(),
            data,
            metadata,
        })
        .await
        .map_err(|e| e.context(format!("pubsub '{pubsub}'")))
    }

    /// Subscribes `handler` to `topic` of `pubsub` in this app's consumer group (unless
    /// `metadata` names another `consumerID`). The handler gets decoded CloudEvents (with
    /// `rawPayload: "true"` in `metadata`: every message as an opaque payload) and
    /// returns `Ok` to acknowledge or `Err` to have the event redelivered.
    ///
    /// # Errors
    /// Unknown pub/sub, empty topic, component failure.
    pub async fn subscribe(
        &self,
        pubsub: &str,
        topic: &str,
        mut metadata: Metadata,
        handler: impl Fn(TopicEvent) -> futures::future::BoxFuture<'static, Result<()>>
        + Send
        + Sync
        + 'static,
    ) -> Result<Subscription> {
        let p = self.pubsubs.get(pubsub)?;
        if topic.is_empty() {
            return Err(Error::empty_field("topic"));
        }
        if !self.app_id.is_empty() {
            metadata
                .entry(layotto_core::pubsub::CONSUMER_ID_KEY.to_owned())
                .or_insert_with(|| self.app_id.clone());
        }
        let (t, name) = (topic.to_owned(), pubsub.to_owned());
        let raw = cloudevent::is_raw_payload(&metadata);
        let handler: Handler = Arc::new(move |m: Message| {
            handler(if raw {
                cloudevent::raw_event(&m.data, &t, &name, m.metadata)
            } else {
                cloudevent::decode(&m.data, &t, &name, m.metadata)
            })
        });
        p.subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                metadata,
            },
            handler,
        )
        .await
    }

    /// Every configured component, in configuration order.
    pub fn components(&self) -> &[RegisteredComponent] {
        &self.registered
    }

    /// The attributes set through the metadata API (Dapr `SetMetadata`), sorted by key.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        lock(&self.attributes).clone()
    }

    /// Sets attribute `key` to `value` (Dapr `SetMetadata`); later calls overwrite.
    ///
    /// # Errors
    /// An empty key.
    pub fn set_attribute(&self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::empty_field("key"));
        }
        lock(&self.attributes).insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// The topics the app subscribed to through its app channel.
    pub fn app_subscriptions(&self) -> Vec<TopicSubscription> {
        lock(&self.app_topics).clone()
    }

    /// Records how the app is reached (for the metadata API).
    pub fn set_app_connection(&self, connection: AppConnection) {
        *lock(&self.app_connection) = Some(connection);
    }

    /// How the app is reached, when an app channel is configured.
    pub fn app_connection(&self) -> Option<AppConnection> {
        lock(&self.app_connection).clone()
    }

    /// Makes `channel` the way to reach the app for service invocation (also done by
    /// [`Runtime::start_app_subscriptions`]).
    pub fn set_app_channel(&self, channel: Arc<dyn AppChannel>) {
        *lock(&self.app_channel) = Some(channel);
    }

    /// Invokes `req.method` on app `app_id` through the app channel.
    ///
    /// Only this sidecar's own app is reachable (there is no name resolution across sidecars
    /// yet).
    ///
    /// # Errors
    /// Empty app id or method (`InvalidArgument`); another app id (`NotFound`); no app channel
    /// configured or the app unreachable (`Unavailable`); the app cannot take invocations
    /// (`Unsupported`).
    pub async fn invoke_service(
        &self,
        app_id: &str,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse> {
        if app_id.is_empty() {
            return Err(Error::empty_field("app id"));
        }
        if req.method.is_empty() {
            return Err(Error::empty_field("method"));
        }
        if app_id != self.app_id {
            return Err(Error::not_found(format!(
                "app id '{app_id}' is not known: this sidecar reaches only its own app '{}'",
                self.app_id
            )));
        }
        let channel = lock(&self.app_channel).clone().ok_or_else(|| {
            Error::unavailable(format!(
                "app '{app_id}' has no app channel (start the sidecar with an app port)"
            ))
        })?;
        channel.invoke(req).await.map_err(|e| match e {
            ChannelError::Unimplemented => Error::new(
                layotto_core::ErrorKind::Unsupported,
                format!("app '{app_id}' does not accept service invocation"),
            ),
            ChannelError::Unavailable(m) => {
                Error::unavailable(format!("invoking '{}' on app '{app_id}': {m}", req.method))
            }
        })
    }

    /// Asks the app which topics it subscribes to (retrying while its callback server is
    /// down), starts delivering to it, then watches it: when a delivery finds the app
    /// unreachable and a probe (`list_subscriptions`) confirms it, every app subscription is
    /// dropped, so the other members of its consumer groups take over the messages it had not
    /// acknowledged (Dapr unsubscribes an unhealthy app the same way); once the app answers
    /// again its subscriptions are renewed. Runs until [`Runtime::stop_app_subscriptions`].
    pub async fn start_app_subscriptions(self: &Arc<Self>, channel: Arc<dyn AppChannel>) {
        self.set_app_channel(channel.clone());
        let app_down = Arc::new(tokio::sync::Notify::new());
        loop {
            let Some(subs) = self.await_app_subscriptions(channel.as_ref()).await else {
                return;
            };
            if self.app_stopped.load(Ordering::SeqCst) {
                return;
            }
            self.subscribe_app(&channel, subs, &app_down).await;
            loop {
                app_down.notified().await;
                if self.app_stopped.load(Ordering::SeqCst) {
                    return;
                }
                match channel.list_subscriptions().await {
                    Err(ChannelError::Unavailable(e)) => {
                        tracing::warn!(error = %e, "app unreachable: unsubscribing until it returns, so other members of its consumer groups take its messages");
                        self.drop_app_subscriptions();
                        break;
                    }
                    // Reachable: the failure was transient; deliveries retry by themselves.
                    Ok(_) | Err(ChannelError::Unimplemented) => {}
                }
            }
        }
    }

    /// The app's subscriptions, asked until it answers; `None` when it has no such callback or
    /// the runtime is stopping.
    async fn await_app_subscriptions(
        &self,
        channel: &dyn AppChannel,
    ) -> Option<Vec<TopicSubscription>> {
        let mut attempt = 0u32;
        loop {
            if self.app_stopped.load(Ordering::SeqCst) {
                return None;
            }
            match channel.list_subscriptions().await {
                Ok(s) => return Some(s),
                Err(ChannelError::Unimplemented) => {
                    tracing::info!(
                        "app does not implement ListTopicSubscriptions; no subscriptions"
                    );
                    return None;
                }
                Err(e) => {
                    attempt += 1;
                    let delay = layotto_core::pubsub::retry_delay(attempt);
                    tracing::warn!(error = %e, ?delay, "app callback not reachable; retrying ListTopicSubscriptions");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Subscribes every topic of `subs` for the app; a delivery that finds the app unreachable
    /// notifies `app_down`.
    async fn subscribe_app(
        &self,
        channel: &Arc<dyn AppChannel>,
        subs: Vec<TopicSubscription>,
        app_down: &Arc<tokio::sync::Notify>,
    ) {
        for s in subs {
            let ch = channel.clone();
            let sub = Arc::new(s.clone());
            let down = app_down.clone();
            let handler = move |ev: TopicEvent| {
                let (ch, sub, down) = (ch.clone(), sub.clone(), down.clone());
                let fut: futures::future::BoxFuture<'static, Result<()>> =
                    Box::pin(async move { deliver_to_app(ch.as_ref(), &sub, &ev, &down).await });
                fut
            };
            match self
                .subscribe(&s.pubsub_name, &s.topic, s.metadata.clone(), handler)
                .await
            {
                Ok(sub) => {
                    tracing::info!(pubsub = %s.pubsub_name, topic = %s.topic, "subscribed for app");
                    lock(&self.app_subscriptions).push(sub);
                    lock(&self.app_topics).push(s);
                }
                Err(e) => {
                    tracing::error!(pubsub = %s.pubsub_name, topic = %s.topic, error = %e, "app subscription refused");
                }
            }
        }
    }

    fn drop_app_subscriptions(&self) {
        lock(&self.app_subscriptions).clear();
        lock(&self.app_topics).clear();
    }

    /// Stops delivering to the app for good.
    pub fn stop_app_subscriptions(&self) {
        self.app_stopped.store(true, Ordering::SeqCst);
        self.drop_app_subscriptions();
    }

    // ----- secrets -----

    /// The secret `key` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty key, not found, component failure.
    pub async fn get_secret(&self, store: &str, key: &str, metadata: &Metadata) -> Result<Secret> {
        let s = self.secrets.get(store)?;
        if key.is_empty() {
            return Err(Error::empty_field("key"));
        }
        s.get(key, metadata).await
    }

    /// Every secret of `store`.
    ///
    /// # Errors
    /// Unknown store, component failure.
    pub async fn get_bulk_secret(
        &self,
        store: &str,
        metadata: &Metadata,
    ) -> Result<HashMap<String, Secret>> {
        self.secrets.get(store)?.bulk_get(metadata).await
    }

    // ----- files -----

    fn file(&self, store: &str, name: &str) -> Result<&Arc<dyn FileStore>> {
        let f = self.files.get(store)?;
        if name.is_empty() {
            return Err(Error::empty_field("name"));
        }
        Ok(f)
    }

    /// Streams file `name` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, not found.
    pub async fn get_file(
        &self,
        store: &str,
        name: &str,
        metadata: &Metadata,
    ) -> Result<ByteStream> {
        self.file(store, name)?.get(name, metadata).await
    }

    /// Writes file `name` of `store` from `data`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, component failure.
    pub async fn put_file(
        &self,
        store: &str,
        name: &str,
        data: ByteStream,
        metadata: &Metadata,
    ) -> Result<()> {
        self.file(store, name)?.put(name, data, metadata).await
    }

    /// Lists one page of `store`.
    ///
    /// # Errors
    /// Unknown store, refused directory, component failure.
    pub async fn list_files(&self, store: &str, req: &ListRequest) -> Result<ListPage> {
        self.files.get(store)?.list(req).await
    }

    /// Deletes file `name` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, not found.
    pub async fn delete_file(&self, store: &str, name: &str, metadata: &Metadata) -> Result<()> {
        self.file(store, name)?.delete(name, metadata).await
    }

    /// Facts about file `name` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, not found.
    pub async fn file_meta(
        &self,
        store: &str,
        name: &str,
        metadata: &Metadata,
    ) -> Result<FileMeta> {
        self.file(store, name)?.stat(name, metadata).await
    }

    // ----- bindings -----

    /// Invokes output binding `name`.
    ///
    /// # Errors
    /// Unknown binding, unsupported operation, component failure.
    pub async fn invoke_binding(&self, name: &str, req: BindingRequest) -> Result<BindingResponse> {
        let b = self.bindings.get(name)?;
        if req.operation.is_empty() {
            return Err(Error::empty_field("operation"));
        }
        let ops = b.operations();
        if !ops.iter().any(|o| o == &req.operation) {
            return Err(Error::invalid(format!(
                "binding '{name}' does not support operation '{}' (supported: {})",
                req.operation,
                ops.join(", ")
            )));
        }
        b.invoke(req).await
    }
}

/// Delivers one event through the app channel, mapping the app's answer to ack/redeliver:
/// SUCCESS and DROP acknowledge, RETRY and an unreachable app redeliver, an app that does not
/// implement the callback drops.
/// Locks `m`, recovering from poisoning (the guarded data stays consistent: every critical
/// section is a single push, clear or clone).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn deliver_to_app(
    ch: &dyn AppChannel,
    sub: &TopicSubscription,
    ev: &TopicEvent,
    app_down: &tokio::sync::Notify,
) -> Result<()> {
    match ch.deliver(sub, ev).await {
        Ok(EventOutcome::Success) => Ok(()),
        Ok(EventOutcome::Drop) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, "app dropped event");
            Ok(())
        }
        Ok(EventOutcome::Retry) => Err(Error::unavailable(format!(
            "app asked to retry event {}",
            ev.id
        ))),
        Err(ChannelError::Unimplemented) => {
            tracing::warn!(id = %ev.id, topic = %ev.topic, "app does not implement OnTopicEvent; dropping event");
            Ok(())
        }
        Err(e) => {
            app_down.notify_one();
            Err(Error::unavailable(format!(
                "delivering event {} to app: {e}",
                ev.id
            )))
        }
    }
}
