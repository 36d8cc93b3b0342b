//! The component envelope (`ComponentSpec`), health reports and the factory registry.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::{Error, Result};

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
}

impl ComponentSpec {
    /// A spec with no metadata.
    pub fn new(name: impl Into<String>, type_: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            type_: type_.into(),
            metadata: Metadata::new(),
        }
    }
    /// Adds one metadata entry (builder style).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
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

/// Builds a component of trait object type `T` from its spec. Must not do I/O: parsing and
/// validating metadata only, so `layotto validate` can call it. I/O belongs in the component's
/// `init`.
pub type Factory<T> = Arc<dyn Fn(&ComponentSpec) -> Result<Arc<T>> + Send + Sync>;

/// Factories of one building block keyed by component type string.
pub struct Registry<T: ?Sized> {
    api: &'static str,
    factories: BTreeMap<String, Factory<T>>,
}

impl<T: ?Sized> Registry<T> {
    /// An empty registry for building block `api` (used in error messages).
    pub fn new(api: &'static str) -> Self {
        Self {
            api,
            factories: BTreeMap::new(),
        }
    }
    /// Registers `factory` under `type_`. Fails if the type is already registered.
    pub fn register(
        &mut self,
        type_: &str,
        factory: impl Fn(&ComponentSpec) -> Result<Arc<T>> + Send + Sync + 'static,
    ) -> Result<()> {
        if self.factories.contains_key(type_) {
            return Err(Error::invalid(format!(
                "{} component type '{type_}' is registered twice",
                self.api
            )));
        }
        self.factories.insert(type_.to_owned(), Arc::new(factory));
        Ok(())
    }
    /// The known type strings, sorted.
    pub fn types(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }
    /// Builds `spec`; an unknown type fails with an error listing the known ones.
    pub fn create(&self, spec: &ComponentSpec) -> Result<Arc<T>> {
        match self.factories.get(&spec.type_) {
            Some(f) => f(spec),
            None => Err(Error::invalid(format!(
                "unknown {} component type '{}'; known types: {}",
                self.api,
                spec.type_,
                self.types().join(", ")
            ))),
        }
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
        r.register("in-memory", |_| Ok(Arc::new(D) as Arc<dyn Dummy>))
            .expect("first registration");
        let dup = r.register("in-memory", |_| Ok(Arc::new(D) as Arc<dyn Dummy>));
        assert!(dup.is_err_and(|e| e.message.contains("registered twice")));
        let err = r
            .create(&ComponentSpec::new("s", "redis"))
            .err()
            .expect("unknown type fails");
        assert!(err.message.contains("known types: in-memory"), "{err}");
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
