//! The component envelope (`ComponentSpec`), health reports and the factory registry.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::block::Kind;
use crate::error::{Error, Result};
use crate::metadata::MetadataKeys;

/// String metadata passed to components and carried on requests.
pub type Metadata = HashMap<String, String>;

/// One configured component: its name (what clients address), its type (which implementation),
/// and its metadata.
///
/// Layotto JSON metadata values that are not strings (numbers, booleans, objects) are kept as
/// their JSON text, so `{"port": 6379}` arrives as `"6379"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentSpec {
    /// Name clients use, e.g. `"state_demo"`.
    pub name: String,
    /// Implementation type, e.g. `"in-memory"`, `"redis"`.
    pub type_: String,
    /// Component-specific settings.
    pub metadata: Metadata,
    /// The component version a Dapr Component YAML names (`spec.version`, e.g. `v2`); empty
    /// when none is given, which means the type's default (`v1`).
    pub version: String,
}

impl ComponentSpec {
    /// A spec with no metadata.
    pub fn new(name: impl Into<String>, type_: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            type_: type_.into(),
            metadata: Metadata::new(),
            version: String::new(),
        }
    }
    /// Sets the component version (builder style).
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
    /// Adds one metadata entry (builder style).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
    /// The metadata entry whose key is `key` in any case (the exact spelling first), if its
    /// value is not blank: `(key as written, value)`. Metadata keys match case-insensitively,
    /// as Dapr's decoder matches them.
    pub fn get_ci(&self, key: &str) -> Option<(&str, &str)> {
        let found = self.metadata.get_key_value(key).or_else(|| {
            self.metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
        })?;
        Some((found.0.as_str(), found.1.as_str())).filter(|(_, v)| !v.trim().is_empty())
    }
    /// The metadata value for `key`, if present and not blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
    /// Parses metadata `key` with `FromStr`; `Ok(None)` when absent. The error names the
    /// component and the key.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
                Error::invalid(format!(
                    "component '{}': metadata '{key}' has invalid value '{v}'",
                    self.name
                ))
            }),
        }
    }
    /// Fails with an error naming each metadata key not in `known`.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<()> {
        let mut unknown: Vec<&str> = self
            .metadata
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        Err(Error::invalid(format!(
            "component '{}' (type '{}'): unknown metadata key(s) {}; known keys: {}",
            self.name,
            self.type_,
            unknown.join(", "),
            known.join(", ")
        )))
    }
}

/// Health of one component as the actuator reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HealthStatus {
    /// Still initialising.
    #[serde(rename = "INIT")]
    Init,
    /// Serving.
    #[serde(rename = "UP")]
    Up,
    /// Not serving.
    #[serde(rename = "DOWN")]
    Down,
}

/// A health report: status plus free-form details (e.g. the last error).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Overall status.
    pub status: HealthStatus,
    /// Extra facts, e.g. `{"reason": "connection refused"}`.
    pub details: BTreeMap<String, String>,
}

impl Health {
    /// `UP` with no details.
    pub fn up() -> Self {
        Self {
            status: HealthStatus::Up,
            details: BTreeMap::new(),
        }
    }
    /// `DOWN` with `reason`.
    pub fn down(reason: impl Into<String>) -> Self {
        let mut details = BTreeMap::new();
        details.insert("reason".to_owned(), reason.into());
        Self {
            status: HealthStatus::Down,
            details,
        }
    }
}

/// A capability of a component, in Dapr's own vocabulary (the strings Dapr's metadata API
/// reports; `dapr/components-contrib:state/feature.go`, `pubsub/feature.go`).
///
/// A component claims only what it implements; the conformance suites run the cases of each
/// claimed feature and the metadata APIs report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// State: ETags and optimistic concurrency (`ETAG`).
    Etag,
    /// State: atomic multi-key transactions (`TRANSACTIONAL`).
    Transactional,
    /// State: the query API (`QUERY_API`).
    QueryApi,
    /// State: per-item time-to-live, `ttlInSeconds` (`TTL`).
    Ttl,
    /// State: deleting every key with a prefix (`DELETE_WITH_PREFIX`).
    DeleteWithPrefix,
    /// State: partition keys (`PARTITION_KEY`).
    PartitionKey,
    /// Pub/sub: per-message time-to-live (`MESSAGE_TTL`).
    MessageTtl,
    /// Pub/sub: wildcard topic subscriptions (`SUBSCRIBE_WILDCARDS`).
    SubscribeWildcards,
    /// Pub/sub: native bulk publish and subscribe (`BULK_PUBSUB`).
    BulkPubSub,
}

impl Feature {
    /// Dapr's name, e.g. `TRANSACTIONAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Etag => "ETAG",
            Feature::Transactional => "TRANSACTIONAL",
            Feature::QueryApi => "QUERY_API",
            Feature::Ttl => "TTL",
            Feature::DeleteWithPrefix => "DELETE_WITH_PREFIX",
            Feature::PartitionKey => "PARTITION_KEY",
            Feature::MessageTtl => "MESSAGE_TTL",
            Feature::SubscribeWildcards => "SUBSCRIBE_WILDCARDS",
            Feature::BulkPubSub => "BULK_PUBSUB",
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every component is, whatever its block: its lifecycle and capabilities. Each block's
/// contract (`StateStore`, `PubSub`...) has it as supertrait.
#[async_trait::async_trait]
pub trait Component: Send + Sync {
    /// Connects or prepares the backend. Called once, before serving.
    ///
    /// # Errors
    /// Whatever keeps the component from serving (unreachable backend, unreadable file).
    async fn init(&self) -> Result<()> {
        Ok(())
    }
    /// A real round trip to the backend; feeds the actuator's readiness.
    async fn health(&self) -> Health {
        Health::up()
    }
    /// Releases connections and background tasks at shutdown. Calls after `close` may fail.
    ///
    /// # Errors
    /// A failure to release cleanly (logged by the runtime; shutdown goes on).
    async fn close(&self) -> Result<()> {
        Ok(())
    }
    /// The capabilities this component implements (empty by default).
    fn features(&self) -> &'static [Feature] {
        &[]
    }
    /// Warnings about a configuration that is valid but questionable (e.g. a limit it will
    /// reach within years), known when the factory ran; `validate` prints them with the
    /// metadata warnings and start-up logs them. None by default.
    fn config_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Ties a block's contract trait object (`dyn StateStore`...) to its row of the block table,
/// so one generic [`Registries`] serves every block.
pub trait Contract: Component + 'static {
    /// The block whose contract this is.
    const KIND: Kind;
    /// The same component seen through the [`Component`] supertrait.
    fn upcast(this: Arc<Self>) -> Arc<dyn Component>;
}

/// Builds a component of trait object type `T` from its spec. Must not do I/O: parsing and
/// validating metadata only, so `layotto validate` can call it. I/O belongs in the component's
/// `init`.
pub type Factory<T> = Arc<dyn Fn(&ComponentSpec) -> Result<Arc<T>> + Send + Sync>;

/// One registered component type: its factory and the metadata keys it declares.
struct Registration<T: ?Sized> {
    factory: Factory<T>,
    keys: MetadataKeys,
}

/// Factories of one building block keyed by component type string.
pub struct Registry<T: ?Sized> {
    api: &'static str,
    factories: BTreeMap<String, Registration<T>>,
}

impl<T: ?Sized> Registry<T> {
    /// An empty registry for building block `api` (used in error messages).
    pub fn new(api: &'static str) -> Self {
        Self {
            api,
            factories: BTreeMap::new(),
        }
    }
    /// Registers `factory` under `type_` with the metadata `keys` it understands. Fails if the
    /// type is already registered.
    ///
    /// # Errors
    /// Invalid argument naming the type registered twice.
    pub fn register(
        &mut self,
        type_: &str,
        keys: MetadataKeys,
        factory: impl Fn(&ComponentSpec) -> Result<Arc<T>> + Send + Sync + 'static,
    ) -> Result<()> {
        if self.factories.contains_key(type_) {
            return Err(Error::invalid(format!(
                "{} component type '{type_}' is registered twice",
                self.api
            )));
        }
        self.factories.insert(
            type_.to_owned(),
            Registration {
                factory: Arc::new(factory),
                keys,
            },
        );
        Ok(())
    }
    /// The known type strings, sorted.
    pub fn types(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }
    fn registration(&self, type_: &str) -> Result<&Registration<T>> {
        self.factories.get(type_).ok_or_else(|| {
            Error::invalid(format!(
                "unknown {} component type '{type_}'; known types: {}",
                self.api,
                self.types().join(", ")
            ))
        })
    }
    /// Builds `spec`; an unknown type fails with an error listing the known ones.
    ///
    /// # Errors
    /// An unknown type, or the factory's error (bad metadata).
    pub fn create(&self, spec: &ComponentSpec) -> Result<Arc<T>> {
        let r = self.registration(&spec.type_)?;
        let versions = r.keys.versions();
        if !spec.version.is_empty() && !versions.contains(&spec.version.as_str()) {
            return Err(Error::invalid(format!(
                "{} component '{}': type '{}' has no version '{}' (versions: {})",
                self.api,
                spec.name,
                spec.type_,
                spec.version,
                versions.join(", ")
            )));
        }
        (r.factory)(spec)
    }
    /// The warnings `spec`'s metadata earns under its type's declared keys and the block's
    /// `runtime_keys` (see [`MetadataKeys::warnings_with`]); empty for an unknown type.
    pub fn warnings(&self, spec: &ComponentSpec, runtime_keys: &[&str]) -> Vec<String> {
        self.registration(&spec.type_)
            .map(|r| r.keys.warnings_with(&spec.metadata, runtime_keys))
            .unwrap_or_default()
    }
}

/// A component built by [`Registries::create`], seen both ways: as its block's contract
/// (`typed`, an `Arc<dyn StateStore>` and so on, taken back with [`Built::get`]) and as a
/// [`Component`].
pub struct Built {
    /// The block it serves.
    pub kind: Kind,
    /// Lifecycle and features.
    pub component: Arc<dyn Component>,
    /// Metadata warnings (unknown keys, keys accepted without effect) and the component's own
    /// [`Component::config_warnings`], one line each.
    pub warnings: Vec<String>,
    typed: Box<dyn Any + Send + Sync>,
}

impl Built {
    /// The component as contract `T`; `None` when it serves another block.
    pub fn get<T: Contract + ?Sized>(&self) -> Option<&Arc<T>> {
        self.typed.downcast_ref::<Arc<T>>()
    }
}

/// Every component type known to a runtime, per block: what the backend crates' `register`
/// functions fill and what the runtime builds components from. Blocks are keys, not fields,
/// so adding a block touches nothing here.
#[derive(Default)]
pub struct Registries {
    blocks: BTreeMap<Kind, Box<dyn Any + Send + Sync>>,
    creators: BTreeMap<Kind, Erased>,
}

/// Builds a spec as a component of one block, whatever its contract.
type CreateAny = Box<dyn Fn(&Registries, &ComponentSpec) -> Result<Built> + Send + Sync>;
/// Lists the type strings of one block.
type TypesOf = Box<dyn Fn(&Registries) -> Vec<String> + Send + Sync>;

/// The contract-independent view of one block's registry.
struct Erased {
    create: CreateAny,
    types: TypesOf,
}

impl Registries {
    /// Registries with no component type.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry of contract `T`, created on first use.
    pub fn of_mut<T: Contract + ?Sized>(&mut self) -> &mut Registry<T> {
        self.creators.entry(T::KIND).or_insert_with(|| Erased {
            create: Box::new(|r: &Registries, spec: &ComponentSpec| {
                let c = r.create::<T>(spec)?;
                let component = T::upcast(c.clone());
                let mut warnings: Vec<String> = r
                    .of::<T>()
                    .map(|x| x.warnings(spec, T::KIND.info().runtime_keys))
                    .unwrap_or_default();
                warnings.extend(component.config_warnings());
                Ok(Built {
                    kind: T::KIND,
                    component,
                    warnings,
                    typed: Box::new(c),
                })
            }),
            types: Box::new(|r: &Registries| {
                r.of::<T>()
                    .map(|x| x.types().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default()
            }),
        });
        self.blocks
            .entry(T::KIND)
            .or_insert_with(|| Box::new(Registry::<T>::new(T::KIND.info().section)))
            .downcast_mut::<Registry<T>>()
            .expect("the registry of a kind always holds that kind's contract")
    }

    /// The registry of contract `T`, if any type of it is registered.
    pub fn of<T: Contract + ?Sized>(&self) -> Option<&Registry<T>> {
        self.blocks.get(&T::KIND)?.downcast_ref::<Registry<T>>()
    }

    /// Registers `factory` for each name in `types` (a type and its aliases), declaring the
    /// metadata `keys` the component understands.
    ///
    /// # Errors
    /// Invalid argument when a type is registered twice.
    pub fn register<T: Contract + ?Sized>(
        &mut self,
        types: &[&str],
        keys: MetadataKeys,
        factory: impl Fn(&ComponentSpec) -> Result<Arc<T>> + Send + Sync + 'static,
    ) -> Result<()> {
        let factory: Factory<T> = Arc::new(factory);
        for t in types {
            let f = factory.clone();
            self.of_mut::<T>()
                .register(t, keys.clone(), move |s| f(s))?;
        }
        Ok(())
    }

    /// Builds `spec` as a component of contract `T`.
    ///
    /// # Errors
    /// An unknown type (listing the known ones) or the factory's error.
    pub fn create<T: Contract + ?Sized>(&self, spec: &ComponentSpec) -> Result<Arc<T>> {
        match self.of::<T>() {
            Some(r) if r.factories.contains_key(&spec.type_) => r.create(spec),
            _ => Err(self.unknown_type(T::KIND, &spec.type_)),
        }
    }

    /// The error for a type no registry of `kind` holds: "not supported yet" for a type one of
    /// the peers has ([`crate::BlockInfo::peer_types`]), "unknown" otherwise; both list the
    /// types this build has.
    fn unknown_type(&self, kind: Kind, type_: &str) -> Error {
        let known = self.types(kind);
        let known = if known.is_empty() {
            format!(
                "no {} component type is available in this build",
                kind.section()
            )
        } else {
            format!("known types: {}", known.join(", "))
        };
        let peer = kind.info().peer_types.iter().find(|(t, _)| *t == type_);
        match peer {
            Some((_, peer)) => Error::invalid(format!(
                "{peer}'s {} component type '{type_}' is not supported yet; {known}",
                kind.section()
            )),
            None => Error::invalid(format!(
                "unknown {} component type '{type_}'; {known}",
                kind.section()
            )),
        }
    }

    /// Builds `spec` as a component of block `kind`, whatever its contract.
    ///
    /// # Errors
    /// As [`Registries::create`].
    pub fn create_any(&self, kind: Kind, spec: &ComponentSpec) -> Result<Built> {
        match self.creators.get(&kind) {
            Some(c) if self.types(kind).contains(&spec.type_) => (c.create)(self, spec),
            _ => Err(self.unknown_type(kind, &spec.type_)),
        }
    }

    /// The known type strings of block `kind`, sorted.
    pub fn types(&self, kind: Kind) -> Vec<String> {
        self.creators
            .get(&kind)
            .map(|c| (c.types)(self))
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.creators.keys().map(|k| (k.section(), self.types(*k))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Dummy {}
    struct D;
    impl Dummy for D {}

    #[test]
    fn registry_rejects_duplicates_and_unknown_types() {
        let mut r: Registry<dyn Dummy> = Registry::new("state");
        r.register("in-memory", MetadataKeys::default(), |_| {
            Ok(Arc::new(D) as Arc<dyn Dummy>)
        })
        .expect("first registration");
        let dup = r.register("in-memory", MetadataKeys::default(), |_| {
            Ok(Arc::new(D) as Arc<dyn Dummy>)
        });
        assert!(dup.is_err_and(|e| e.message.contains("registered twice")));
        let err = r
            .create(&ComponentSpec::new("s", "redis"))
            .err()
            .expect("unknown type fails");
        assert!(err.message.contains("known types: in-memory"), "{err}");
    }

    #[test]
    fn a_type_a_peer_has_is_not_supported_yet_rather_than_unknown() {
        use crate::secret::{Secret, SecretStore};
        struct S;
        #[async_trait::async_trait]
        impl Component for S {}
        #[async_trait::async_trait]
        impl SecretStore for S {
            async fn get(&self, _: &str, _: &Metadata) -> Result<Secret> {
                Ok(Secret::new())
            }
            async fn bulk_get(&self, _: &Metadata) -> Result<HashMap<String, Secret>> {
                Ok(HashMap::new())
            }
        }
        let mut r = Registries::new();
        r.register::<dyn SecretStore>(&["local.env"], MetadataKeys::default(), |_| {
            Ok(Arc::new(S) as Arc<dyn SecretStore>)
        })
        .expect("register");
        let e = r
            .create_any(Kind::Secret, &ComponentSpec::new("s", "hashicorp.vault"))
            .err()
            .expect("vault is Dapr's");
        assert!(
            e.message.contains(
                "Dapr's secret_store component type 'hashicorp.vault' is not supported yet"
            ) && e.message.contains("known types: local.env"),
            "{e}"
        );
        let e = r
            .create_any(Kind::Secret, &ComponentSpec::new("s", "vault2"))
            .err()
            .expect("unknown");
        assert!(
            e.message
                .starts_with("unknown secret_store component type 'vault2'"),
            "{e}"
        );
        let e = r
            .create_any(Kind::File, &ComponentSpec::new("f", "minio"))
            .err()
            .expect("no file type registered");
        assert!(
            e.message
                .contains("Layotto's file component type 'minio' is not supported yet")
                && e.message.contains("no file component type is available"),
            "{e}"
        );
    }

    #[test]
    fn built_components_carry_their_config_warnings() {
        use crate::secret::{Secret, SecretStore};
        struct W;
        #[async_trait::async_trait]
        impl Component for W {
            fn config_warnings(&self) -> Vec<String> {
                vec!["runs out soon".to_owned()]
            }
        }
        #[async_trait::async_trait]
        impl SecretStore for W {
            async fn get(&self, _: &str, _: &Metadata) -> Result<Secret> {
                Ok(Secret::new())
            }
            async fn bulk_get(&self, _: &Metadata) -> Result<HashMap<String, Secret>> {
                Ok(HashMap::new())
            }
        }
        let mut r = Registries::new();
        r.register::<dyn SecretStore>(&["w"], MetadataKeys::default(), |_| {
            Ok(Arc::new(W) as Arc<dyn SecretStore>)
        })
        .expect("register");
        let built = r
            .create_any(Kind::Secret, &ComponentSpec::new("s", "w"))
            .expect("built");
        assert_eq!(built.warnings, ["runs out soon"]);
    }

    #[test]
    fn parse_and_unknown_keys_name_the_key() {
        let s = ComponentSpec::new("c", "t")
            .with("ttl", "abc")
            .with("zzz", "1");
        let e = s.parse::<i64>("ttl").expect_err("abc is no number");
        assert!(e.message.contains("'ttl'"));
        let e = s.reject_unknown(&["ttl"]).expect_err("zzz unknown");
        assert!(e.message.contains("zzz"));
    }
}
