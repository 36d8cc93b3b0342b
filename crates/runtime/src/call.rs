//! The component table and the one call path.
//!
//! Every component call of every block, from every edge, goes through here:
//! [`Components::target`] resolves the store (not configured / empty name / unknown name are
//! told apart the same way for every block), [`Target::key`] applies the component's key
//! layout, and [`Target::run`] runs the call under the caller's deadline (see
//! [`with_deadline`]). `run` is the seam where metrics, tracing and resiliency policies attach;
//! nothing below it knows about them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use layotto_core::pubsub::Subscription;
use layotto_core::{Built, Contract, Error, Kind, Result};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

use layotto_config::resiliency::TargetPolicies;

use arc_swap::ArcSwap;
use layotto_config::ComponentEntry;

use crate::RegisteredComponent;
use crate::input_bindings::BindingRoute;
use crate::keys::KeyPrefix;
use crate::metrics::Metrics;
use crate::resiliency::{Guarded, Policies, judge_component};
use crate::segments::SegmentCache;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` with `deadline` as the deadline of every component call it makes: a call still
/// running at the deadline fails with [`layotto_core::ErrorKind::DeadlineExceeded`] naming the
/// component and operation (it may or may not have taken effect, so it is no "retry safely"). Edges call this with the client's deadline (gRPC `grpc-timeout`).
pub async fn with_deadline<F: Future>(deadline: Instant, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// One configured component.
pub(crate) struct Entry {
    /// The component, as its contract and as a `Component`.
    pub built: Built,
    /// Its key layout (identity for blocks without one).
    pub keys: KeyPrefix,
    /// A pub/sub's component-level `consumerID`: the consumer group of its subscriptions
    /// that name none.
    pub consumer_id: Option<String>,
    /// Its Resiliency policies (set by [`Components::prepare`]).
    pub policies: ComponentPolicies,
    /// What the metadata API lists of it.
    pub registered: RegisteredComponent,
    /// A sequencer's WEAK id segments.
    pub segments: Option<SegmentCache>,
    /// A binding's `direction` and `route`.
    pub route: Option<BindingRoute>,
    /// The configuration it was built from, secrets resolved (a reload rebuilds it only when
    /// this changes).
    pub source: ComponentEntry,
}

impl Entry {
    /// Whether `other` describes this component unchanged: same block, name, type, version,
    /// metadata and format (where it was written does not count).
    pub fn built_from(&self, other: &ComponentEntry) -> bool {
        self.source.kind == other.kind
            && self.source.spec == other.spec
            && self.source.origin == other.origin
    }
}

/// The Resiliency policies of one component.
#[derive(Default)]
pub(crate) struct ComponentPolicies {
    /// The metrics `target` label: `<Type>_<name>` (daprd's `ResiliencyComponentTarget`).
    pub target: String,
    /// Around calls to the component.
    pub outbound: Option<TargetPolicies>,
    /// Around its deliveries to the app.
    pub inbound: Option<TargetPolicies>,
}

impl ComponentPolicies {
    /// The inbound policies with the metrics target, as a delivery handler keeps them (none
    /// when no inbound policy targets the component).
    pub fn inbound_guard(&self) -> Option<Arc<(TargetPolicies, String)>> {
        let p = self.inbound.clone()?;
        Some(Arc::new((p, self.target.clone())))
    }
}

/// The component type daprd's Resiliency names a block by (`Statestore`, `Pubsub`, ...;
/// `dapr/dapr:pkg/resiliency/resiliency.go`); Layotto's own blocks by their name.
pub(crate) fn resiliency_type(kind: Kind) -> &'static str {
    match kind {
        Kind::State => "Statestore",
        Kind::PubSub => "Pubsub",
        Kind::Binding => "Binding",
        Kind::Secret => "Secretstore",
        Kind::Configuration => "Configuration",
        Kind::Lock => "Lock",
        Kind::Sequencer => "Sequencer",
        Kind::File => "File",
        Kind::Hello => "Hello",
    }
}

/// The components of one moment: by block then name, and in configuration order.
#[derive(Default)]
pub(crate) struct Table {
    blocks: BTreeMap<Kind, BTreeMap<String, Arc<Entry>>>,
    order: Vec<Arc<Entry>>,
}

impl Table {
    /// Component `name` of block `kind`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Arc<Entry>> {
        self.blocks.get(&kind)?.get(name)
    }

    /// Every component, in configuration order.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.order
    }

    /// The names of block `kind`'s components, sorted.
    pub fn names(&self, kind: Kind) -> Vec<&str> {
        self.blocks
            .get(&kind)
            .map(|b| b.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Every configured component, by block and name, the metrics their calls record and the
/// Resiliency policies they run under.
///
/// The table is swapped whole when components are reloaded ([`Components::replace`]): a call
/// resolves its component once ([`Components::target`]) and holds it until it returns, so
/// calls in flight finish on the component they started on.
pub(crate) struct Components {
    table: ArcSwap<Table>,
    metrics: Arc<Metrics>,
    policies: Arc<Policies>,
}

impl Components {
    /// No components yet; calls record into `metrics` and run under `policies`.
    pub fn new(metrics: Arc<Metrics>, policies: Arc<Policies>) -> Self {
        Self {
            table: ArcSwap::from_pointee(Table::default()),
            metrics,
            policies,
        }
    }

    /// `entry` with the Resiliency policies targeting it.
    pub fn prepare(&self, mut entry: Entry) -> Entry {
        let kind = resiliency_type(entry.built.kind);
        let name = &entry.registered.name;
        entry.policies = ComponentPolicies {
            target: format!("{kind}_{name}"),
            outbound: self.policies.component(name, kind, false),
            inbound: self.policies.component(name, kind, true),
        };
        entry
    }

    /// Makes `entries` (in configuration order) the components every later call finds;
    /// returns the table they replace.
    pub fn replace(&self, entries: Vec<Arc<Entry>>) -> Arc<Table> {
        let mut blocks: BTreeMap<Kind, BTreeMap<String, Arc<Entry>>> = BTreeMap::new();
        for e in &entries {
            blocks
                .entry(e.built.kind)
                .or_default()
                .insert(e.registered.name.clone(), e.clone());
        }
        self.table.swap(Arc::new(Table {
            blocks,
            order: entries,
        }))
    }

    /// The components as they are now (a later reload does not change what this holds).
    pub fn snapshot(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Component `name` of block `kind`.
    pub fn entry(&self, kind: Kind, name: &str) -> Option<Arc<Entry>> {
        self.table.load().get(kind, name).cloned()
    }

    /// `None` when block `kind` has no component, else whether one is named `name`.
    pub fn has(&self, kind: Kind, name: &str) -> Option<bool> {
        let table = self.table.load();
        let block = table.blocks.get(&kind).filter(|b| !b.is_empty())?;
        Some(block.contains_key(name))
    }

    /// Resolves component `name` of contract `T`.
    ///
    /// # Errors
    /// `NotConfigured` when the block has no component; `InvalidArgument` when `name` is
    /// empty; `StoreNotFound` when no component of the block has that name.
    pub fn target<'a, T: Contract + ?Sized>(&'a self, name: &'a str) -> Result<Target<'a, T>> {
        let api = T::KIND.api();
        let table = self.table.load();
        let block = match table.blocks.get(&T::KIND) {
            Some(b) if !b.is_empty() => b,
            _ => return Err(Error::not_configured(api)),
        };
        if name.is_empty() {
            return Err(Error::invalid(format!(
                "{api} store name is empty (known: {})",
                table.names(T::KIND).join(", ")
            )));
        }
        let entry = block
            .get(name)
            .ok_or_else(|| Error::store_not_found(api, name))?;
        let component = entry.built.get::<T>().ok_or_else(|| {
            Error::internal(format!("{api} store '{name}' has the wrong contract"))
        })?;
        Ok(Target {
            name,
            component: component.clone(),
            entry: entry.clone(),
            metrics: &self.metrics,
            policies: &self.policies,
        })
    }
}

/// A resolved component of contract `T`, ready for one call.
pub(crate) struct Target<'a, T: ?Sized> {
    /// The name the client used.
    pub name: &'a str,
    /// The component.
    pub component: Arc<T>,
    /// Its table entry, held until the call returns (a reload closes a replaced component
    /// only once no call holds it).
    entry: Arc<Entry>,
    /// Where the call is recorded.
    pub metrics: &'a Metrics,
    /// The Resiliency policies and breakers.
    policies: &'a Policies,
}

impl<T: Contract + ?Sized> Target<'_, T> {
    /// Its key layout.
    pub fn keys(&self) -> &KeyPrefix {
        &self.entry.keys
    }

    /// Its component-level `consumerID` (pub/sub only).
    pub fn consumer_id(&self) -> Option<&str> {
        self.entry.consumer_id.as_deref()
    }

    /// `subscription`, holding this component as a call does: a reload that replaces it
    /// closes it only once the subscription is dropped (or its drain limit passes).
    pub fn hold(&self, subscription: Subscription) -> Subscription {
        let entry = self.entry.clone();
        Subscription::new(move || {
            drop(subscription);
            drop(entry);
        })
    }

    /// A binding's `direction` and `route`.
    pub fn route(&self) -> Option<&BindingRoute> {
        self.entry.route.as_ref()
    }

    /// Its Resiliency policies.
    pub fn resiliency(&self) -> &ComponentPolicies {
        &self.entry.policies
    }

    /// A sequencer's WEAK id segments.
    pub fn segments(&self) -> Option<&SegmentCache> {
        self.entry.segments.as_ref()
    }

    /// The stored form of the client's `key` (request field `field`, named in errors).
    ///
    /// # Errors
    /// An empty key or one containing `||`.
    pub fn key(&self, key: &str, field: &str) -> Result<String> {
        self.entry.keys.apply(key, field)
    }

    /// Runs operation `op` (e.g. `"get"`) of this component, each attempt made by `call`:
    /// under its outbound Resiliency policies (timeout, circuit breaker, retries of errors
    /// that are not about the request itself), each attempt under the deadline set with
    /// [`with_deadline`], if any, and recorded in the component metrics (`op` is their
    /// `operation` label).
    ///
    /// # Errors
    /// The component's error, `DeadlineExceeded` when the deadline or the policy's timeout
    /// passes first, `Unavailable` when the circuit breaker is open.
    pub async fn run<R, F, Fut>(&self, op: &str, mut call: F) -> Result<R>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        match &self.entry.policies.outbound {
            None => self.run_once(op, call()).await,
            Some(p) => {
                let to = Guarded {
                    target: &self.entry.policies.target,
                    endpoint: self.name,
                    inbound: false,
                };
                let once = || self.run_once(op, call());
                self.policies
                    .run(p, &to, self.metrics, once, judge_component)
                    .await
            }
        }
    }

    /// Runs operation `op` once, without Resiliency policies (a call that cannot be made
    /// again: it consumes a stream, or registers a handler): under the deadline, recorded.
    ///
    /// # Errors
    /// As [`Target::run`], without the policies'.
    pub async fn run_once<R>(&self, op: &str, call: impl Future<Output = Result<R>>) -> Result<R> {
        let started = Instant::now();
        let span = crate::trace::start(
            format!("{}/{op}", T::KIND.api()),
            SpanKind::Client,
            &Context::current(),
            vec![KeyValue::new("component", self.name.to_owned())],
        );
        let r = match span {
            None => self.deadlined(op, call).await,
            Some(cx) => {
                let r = self.deadlined(op, call).with_context(cx.clone()).await;
                crate::trace::finish(&cx, r.as_ref().err().map(|e| e.message.as_str()));
                r
            }
        };
        self.metrics
            .component_call(T::KIND, self.name, op, r.is_ok(), started.elapsed());
        r
    }

    async fn deadlined<R>(&self, op: &str, call: impl Future<Output = Result<R>>) -> Result<R> {
        match DEADLINE.try_with(|d| *d) {
            Err(_) => call.await,
            Ok(deadline) => {
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), call).await
                {
                    Ok(r) => r,
                    Err(_) => Err(Error::deadline_exceeded(format!(
                        "{} store '{}': {op} did not finish before the call's deadline",
                        T::KIND.api(),
                        self.name
                    ))),
                }
            }
        }
    }
}
