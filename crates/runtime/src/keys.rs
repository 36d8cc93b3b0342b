//! Key prefixing, as Dapr and Layotto lay keys out in shared backends.
//!
//! State keys follow Dapr's `GetModifiedStateKey` (`<prefix>||<key>`; docs.dapr.io "State
//! sharing between applications"); lock and sequencer keys follow
//! `mosn/layotto:components/pkg/utils` (`lock|||<prefix>||<key>`, `sequencer|||<prefix>||<key>`).
//! The strategy is component metadata `keyPrefix`: `none`, `appid`, `name` (the component name)
//! or any other text used literally. Keys containing `||` are always rejected.

use layotto_config::Origin;
use layotto_core::{ComponentSpec, Error, Kind, Result};

/// Component metadata key choosing the prefix strategy.
pub const KEY_PREFIX_KEY: &str = "keyPrefix";
const SEPARATOR: &str = "||";

/// A resolved key prefix of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix {
    namespace: &'static str,
    prefix: Option<String>,
}

impl KeyPrefix {
    /// Keys passed through unchanged (blocks without a key layout).
    pub fn identity() -> Self {
        Self {
            namespace: "",
            prefix: None,
        }
    }

    /// The key layout of a component of block `kind` declared in `origin`'s format: Layotto
    /// keeps state keys unprefixed and locks under `lock|||`; Dapr prefixes state keys with the
    /// app id and locks under `lock||`; sequencers use `sequencer|||` (see
    /// [`layotto_config::Origin`]); other blocks have no key layout.
    ///
    /// # Errors
    /// Invalid argument when a custom prefix contains `||`.
    pub fn for_component(
        kind: Kind,
        origin: Origin,
        spec: &ComponentSpec,
        app_id: &str,
    ) -> Result<Self> {
        let dapr = origin == Origin::Dapr;
        match kind {
            Kind::State => Self::resolve(spec, app_id, if dapr { "appid" } else { "none" }, ""),
            Kind::Lock => Self::resolve(
                spec,
                app_id,
                "appid",
                if dapr { "lock||" } else { "lock|||" },
            ),
            Kind::Sequencer => Self::resolve(spec, app_id, "appid", "sequencer|||"),
            _ => Ok(Self::identity()),
        }
    }

    /// Resolves the strategy of `spec` for `app_id`; `default` is the strategy used when the
    /// component sets none (`"none"` for state, `"appid"` for lock and sequencer).
    ///
    /// # Errors
    /// Invalid argument when a custom prefix contains `||`.
    pub fn resolve(
        spec: &ComponentSpec,
        app_id: &str,
        default: &str,
        namespace: &'static str,
    ) -> Result<Self> {
        let strategy = spec.get_ci(KEY_PREFIX_KEY).map_or(default, |(_, v)| v);
        let prefix = match strategy.to_ascii_lowercase().as_str() {
            "none" => None,
            "appid" => (!app_id.is_empty()).then(|| app_id.to_owned()),
            "name" => Some(spec.name.clone()),
            _ if strategy.contains(SEPARATOR) => {
                return Err(Error::invalid(format!(
                    "component '{}': metadata '{KEY_PREFIX_KEY}' must not contain '{SEPARATOR}'",
                    spec.name
                )));
            }
            _ => Some(strategy.to_owned()),
        };
        Ok(Self { namespace, prefix })
    }

    /// The stored form of `key`.
    ///
    /// # Errors
    /// Invalid argument for an empty key or one containing `||`.
    pub fn apply(&self, key: &str, field: &str) -> Result<String> {
        if key.is_empty() {
            return Err(Error::empty_field(field));
        }
        if key.contains(SEPARATOR) {
            return Err(Error::invalid(format!(
                "{field} '{key}' must not contain '{SEPARATOR}'"
            )));
        }
        Ok(match &self.prefix {
            Some(p) => format!("{}{p}{SEPARATOR}{key}", self.namespace),
            None => format!("{}{key}", self.namespace),
        })
    }

    /// What every stored key of this layout starts with (`<appid>||` for a Dapr state
    /// store; empty for an unprefixed layout).
    pub fn stored_prefix(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{}{p}{SEPARATOR}", self.namespace),
            None => self.namespace.to_owned(),
        }
    }

    /// The client's form of a stored key (inverse of [`Self::apply`]).
    pub fn strip<'a>(&self, stored: &'a str) -> &'a str {
        let rest = stored.strip_prefix(self.namespace).unwrap_or(stored);
        match &self.prefix {
            Some(p) => rest
                .strip_prefix(p.as_str())
                .and_then(|r| r.strip_prefix(SEPARATOR))
                .unwrap_or(rest),
            None => rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies() {
        let spec = ComponentSpec::new("store1", "in-memory");
        let none = KeyPrefix::resolve(&spec, "app1", "none", "").expect("none");
        assert_eq!(none.apply("k", "key").expect("ok"), "k");
        let appid = KeyPrefix::resolve(&spec, "app1", "appid", "lock|||").expect("appid");
        assert_eq!(
            appid.apply("r", "resource_id").expect("ok"),
            "lock|||app1||r"
        );
        assert_eq!(appid.strip("lock|||app1||r"), "r");
        let name = KeyPrefix::resolve(&spec.clone().with("keyPrefix", "name"), "a", "none", "")
            .expect("name");
        assert_eq!(name.apply("k", "key").expect("ok"), "store1||k");
        let custom = KeyPrefix::resolve(&spec.clone().with("keyPrefix", "shared"), "a", "none", "")
            .expect("custom");
        assert_eq!(custom.apply("k", "key").expect("ok"), "shared||k");
        assert_eq!(custom.strip("shared||k"), "k");
        assert!(none.apply("a||b", "key").is_err());
        assert!(none.apply("", "key").is_err());
        let any_case =
            KeyPrefix::resolve(&spec.clone().with("KEYPREFIX", "none"), "a", "appid", "")
                .expect("any case");
        assert_eq!(
            any_case.apply("k", "key").expect("ok"),
            "k",
            "the key matches in any case"
        );
        assert!(KeyPrefix::resolve(&spec.with("keyPrefix", "x||y"), "a", "none", "").is_err());
    }
}
