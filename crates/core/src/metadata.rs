//! Typed component metadata: one decoder for every component.
//!
//! A component declares its metadata as a struct deriving `serde::Deserialize` (field names as
//! the peers spell the keys, e.g. `#[serde(rename_all = "camelCase")]`, aliases with
//! `#[serde(alias = "...")]`) and implements [`ComponentMetadata`]. [`decode`] reads the string
//! metadata map into it the way Dapr's `dapr/kit` `metadata.DecodeMetadata` does:
//!
//! - keys match field names case-insensitively (`redishost` fills `redisHost`);
//! - blank values count as absent (the field keeps its default);
//! - booleans: `y`, `yes`, `true`, `t`, `on`, `1` are true and `n`, `no`, `false`, `f`, `off`,
//!   `0` false, in any case (`dapr/kit:utils.IsTruthy`); anything else is an error here, where
//!   Dapr would read it as false;
//! - numbers are parsed from their text; lists ([`Vec`]) are comma-separated;
//! - [`GoDuration`]: a Go duration (`5s`, `1m30s`, `500ms`) or a bare integer of seconds;
//!   [`MillisDuration`]: the same, but a bare integer is milliseconds (Dapr's Redis settings);
//! - [`ByteSize`]: a Kubernetes quantity such as `4Mi`, `512k` or `1048576`.
//!
//! Keys the struct does not declare are not errors: the peers ignore them, so a file that works
//! with them must start here. [`MetadataKeys::warnings`] names each such key (and each key the
//! component accepts without effect) so `layotto validate` prints it and start-up logs it.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use crate::component::{ComponentSpec, Metadata};
use crate::error::{Error, Result};

/// Keys Dapr's runtime reads for every state store that mean nothing here (no actors, no
/// outbox): accepted, each reported as having no effect. (The keys this runtime reads itself,
/// such as `keyPrefix` or `consumerID`, are each block's [`crate::BlockInfo::runtime_keys`].)
pub const RUNTIME_NO_EFFECT_KEYS: &[&str] = &[
    "actorStateStore",
    "outboxPublishPubsub",
    "outboxPublishTopic",
    "outboxPubsub",
    "outboxDiscardWhenMissingState",
];

/// The metadata struct of one component type.
pub trait ComponentMetadata: DeserializeOwned {
    /// Keys the peers accept for this component that have no effect here (e.g. Dapr's Redis
    /// connection-pool tuning): accepted, and reported by [`MetadataKeys::warnings`].
    const NO_EFFECT: &'static [&'static str] = &[];
    /// The component versions (Dapr's `spec.version`) the type implements; a Component YAML
    /// naming another is refused. The first is the default when none is given.
    const VERSIONS: &'static [&'static str] = &["v1"];
}

/// The keys a component type declares: what its metadata struct reads and what it accepts
/// without effect. Built once per type with [`MetadataKeys::of`].
#[derive(Debug, Clone, Default)]
pub struct MetadataKeys {
    known: Vec<&'static str>,
    no_effect: Vec<&'static str>,
    versions: Vec<&'static str>,
}

impl MetadataKeys {
    /// The keys of metadata struct `M` (field names and aliases) and its no-effect keys.
    pub fn of<M: ComponentMetadata>() -> Self {
        Self {
            known: field_names::<M>(),
            no_effect: M::NO_EFFECT.to_vec(),
            versions: M::VERSIONS.to_vec(),
        }
    }

    /// The component versions the type implements (`v1` when it declares none).
    pub fn versions(&self) -> Vec<&'static str> {
        if self.versions.is_empty() {
            vec!["v1"]
        } else {
            self.versions.clone()
        }
    }

    /// The declared keys, sorted, without duplicates.
    pub fn known(&self) -> Vec<&'static str> {
        let set: BTreeSet<&'static str> = self.known.iter().copied().collect();
        set.into_iter().collect()
    }

    /// [`MetadataKeys::warnings_with`] without keys read by the runtime.
    pub fn warnings(&self, metadata: &Metadata) -> Vec<String> {
        self.warnings_with(metadata, &[])
    }

    /// One warning line per key of `metadata` that is neither declared nor in `runtime_keys`
    /// (the keys the runtime reads for this block; the line names the known keys), and per key
    /// accepted without effect. Keys match case-insensitively. Sorted by key.
    pub fn warnings_with(&self, metadata: &Metadata, runtime_keys: &[&str]) -> Vec<String> {
        let mut keys: Vec<&String> = metadata.keys().collect();
        keys.sort();
        let matches = |list: &[&str], k: &str| list.iter().any(|x| x.eq_ignore_ascii_case(k));
        let mut out = Vec::new();
        for k in keys {
            if matches(&self.known, k) || matches(runtime_keys, k) {
                continue;
            }
            if matches(&self.no_effect, k) || matches(RUNTIME_NO_EFFECT_KEYS, k) {
                out.push(format!("metadata '{k}' is accepted but has no effect here"));
            } else {
                let mut known = self.known();
                known.extend(runtime_keys.iter().filter(|k| !self.known.contains(k)));
                out.push(format!(
                    "unknown metadata key '{k}' is ignored; known keys: {}",
                    known.join(", ")
                ));
            }
        }
        out
    }
}

/// Decodes `spec`'s metadata into `M` (see the module docs for the rules).
///
/// # Errors
/// Invalid argument naming the component, its type and the key: a value of the wrong shape or a
/// missing required key.
pub fn decode<M: DeserializeOwned>(spec: &ComponentSpec) -> Result<M> {
    M::deserialize(MetaDeserializer { spec }).map_err(|e| spec_error(spec, e.0))
}

/// An invalid-argument error about `spec`'s metadata, naming the component and its type as
/// [`decode`] does: `component 'NAME' (type 'TYPE'): MESSAGE`. For the checks a component
/// makes after decoding (a value out of range, keys that go together).
pub fn spec_error(spec: &ComponentSpec, message: impl fmt::Display) -> Error {
    spec_context(spec, Error::invalid(message.to_string()))
}

/// `error` (of any kind) with the component and its type in front, as [`decode`] names them:
/// for a metadata helper's error (say `parse_bigger_than`'s) surfacing from a factory.
pub fn spec_context(spec: &ComponentSpec, error: Error) -> Error {
    error.context(format_args!(
        "component '{}' (type '{}')",
        spec.name, spec.type_
    ))
}

/// The field names (with aliases) serde derives for `M`.
fn field_names<M: DeserializeOwned>() -> Vec<&'static str> {
    struct Probe;
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = DeError;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
            Err(DeError(String::new()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, DeError> {
            Err(DeError(fields.join("\u{0}")))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let Err(DeError(joined)) = M::deserialize(Probe) else {
        return Vec::new();
    };
    if joined.is_empty() {
        return Vec::new();
    }
    // Field names are 'static in serde's derive; keep them by leaking once per type (a
    // handful of short strings per component type, at registration).
    joined
        .split('\u{0}')
        .map(|s| &*Box::leak(s.to_owned().into_boxed_str()))
        .collect()
}

/// A decoding error (text only; [`decode`] adds the component).
#[derive(Debug)]
struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

struct MetaDeserializer<'a> {
    spec: &'a ComponentSpec,
}

impl<'de> de::Deserializer<'de> for MetaDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(DeError(
            "component metadata decodes only into a struct".to_owned(),
        ))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let mut entries: Vec<(&'static str, &str)> = Vec::new();
        let mut keys: Vec<&String> = self.spec.metadata.keys().collect();
        keys.sort();
        for k in keys {
            let v = &self.spec.metadata[k];
            if v.trim().is_empty() {
                continue;
            }
            let field = fields
                .iter()
                .find(|f| **f == k.as_str())
                .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(k)));
            if let Some(f) = field {
                entries.push((f, v.as_str()));
            }
        }
        visitor.visit_map(Entries {
            entries: entries.into_iter(),
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

struct Entries<'a, I: Iterator<Item = (&'static str, &'a str)>> {
    entries: I,
    value: Option<(&'static str, &'a str)>,
}

impl<'de, 'a, I: Iterator<Item = (&'static str, &'a str)>> de::MapAccess<'de> for Entries<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((field, value)) => {
                self.value = Some((field, value));
                seed.deserialize(field.into_deserializer()).map(Some)
            }
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| DeError("metadata value without key".to_owned()))?;
        seed.deserialize(Value { key, value }).map_err(|e| {
            // Errors of the value's own type (durations, sizes) do not know the key.
            if e.0.contains(&format!("'{key}'")) {
                e
            } else {
                DeError(format!("metadata '{key}': {}", e.0))
            }
        })
    }
}

/// One metadata value, read as the field's type asks.
struct Value<'a> {
    key: &'static str,
    value: &'a str,
}

impl Value<'_> {
    fn bad(&self, what: &str) -> DeError {
        DeError(format!(
            "metadata '{}' must be {what}, got '{}'",
            self.key, self.value
        ))
    }
    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        self.value.trim().parse().map_err(|_| self.bad(what))
    }
}

macro_rules! numbers {
    ($($method:ident $visit:ident $t:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n: $t = self.number($what)?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.value)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match parse_truthy(self.value) {
            Some(b) => visitor.visit_bool(b),
            None => Err(self.bad("true or false")),
        }
    }

    numbers! {
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_u8 visit_u8 u8, "a non-negative integer";
        deserialize_u16 visit_u16 u16, "a non-negative integer";
        deserialize_u32 visit_u32 u32, "a non-negative integer";
        deserialize_u64 visit_u64 u64, "a non-negative integer";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let key = self.key;
        let items = self
            .value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(move |value| Value { key, value });
        visitor.visit_seq(de::value::SeqDeserializer::new(items))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self.value.trim().into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct map
        struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, DeError> for Value<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Go's truthy and falsy words (`dapr/kit:utils.IsTruthy` plus their negations); `None` for
/// anything else.
pub fn parse_truthy(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "t" | "on" | "1" => Some(true),
        "n" | "no" | "false" | "f" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A duration written as a Go duration (`5s`, `1m30s`, `1.5h`, `500ms`) or a bare integer of
/// **seconds** (`dapr/kit` metadata decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

/// A duration written as a Go duration or a bare integer of **milliseconds** (the `Duration`
/// of Dapr's Redis settings, `dapr/components-contrib:common/component/redis/settings.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct MillisDuration(pub Duration);

/// A size in bytes written as a Kubernetes quantity: `1048576`, `512k`, `4Mi`, `1G`, `2Gi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl<'de> de::Deserialize<'de> for GoDuration {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s, Duration::from_secs)
            .map(GoDuration)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "expected seconds or a duration like '5s', '500ms', '2m', got '{s}'"
                ))
            })
    }
}

impl<'de> de::Deserialize<'de> for MillisDuration {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s, Duration::from_millis)
            .map(MillisDuration)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "expected milliseconds or a duration like '5s', '500ms', '2m', got '{s}'"
                ))
            })
    }
}

impl<'de> de::Deserialize<'de> for ByteSize {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_byte_size(&s).map(ByteSize).ok_or_else(|| {
            de::Error::custom(format!(
                "expected a size in bytes such as '1048576', '512k' or '4Mi', got '{s}'"
            ))
        })
    }
}

/// Parses a Go duration string (units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; fractions allowed;
/// no sign) or a bare integer converted with `bare`; `None` for anything else or an
/// overflow.
pub fn parse_duration(raw: &str, bare: fn(u64) -> Duration) -> Option<Duration> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(bare(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    // Bounded above and non-negative: the cast is exact enough for nanoseconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(Duration::from_nanos(total as u64))
}

/// Parses a Kubernetes quantity in bytes: an integer with an optional binary (`Ki`, `Mi`, `Gi`,
/// `Ti`, `Pi`, `Ei`) or decimal (`k`, `M`, `G`, `T`, `P`, `E`) suffix.
pub fn parse_byte_size(raw: &str) -> Option<u64> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Substitutes Dapr's metadata placeholders in `value`, as `daprd` does before a component
/// sees its metadata: each `{uuid}` becomes a new random UUID, `{podName}` the `POD_NAME`
/// environment variable, `{namespace}` `<NAMESPACE>.<app id>` and `{appID}` the app id.
///
/// # Errors
/// Invalid argument when `{podName}` is used and `POD_NAME` is unset or empty (Dapr refuses
/// the component the same way).
pub fn substitute_placeholders(
    key: &str,
    value: &str,
    app_id: &str,
    new_uuid: &mut dyn FnMut() -> String,
) -> Result<String> {
    if !value.contains('{') {
        return Ok(value.to_owned());
    }
    let mut v = value.to_owned();
    while let Some(i) = v.find("{uuid}") {
        v.replace_range(i..i + "{uuid}".len(), &new_uuid());
    }
    if v.contains("{podName}") {
        let pod = std::env::var("POD_NAME").unwrap_or_default();
        if pod.is_empty() {
            return Err(Error::invalid(format!(
                "metadata '{key}' refers to {{podName}} but the POD_NAME environment variable is not set"
            )));
        }
        v = v.replace("{podName}", &pod);
    }
    if v.contains("{namespace}") {
        let ns = std::env::var("NAMESPACE").unwrap_or_default();
        v = v.replace("{namespace}", &format!("{ns}.{app_id}"));
    }
    Ok(v.replace("{appID}", app_id))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn spec_error_names_the_component_and_its_type() {
        let e = spec_error(&ComponentSpec::new("seq", "mysql"), "bad 'tableName'");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(e.message, "component 'seq' (type 'mysql'): bad 'tableName'");
    }

    #[test]
    fn spec_context_keeps_the_kind() {
        let spec = ComponentSpec::new("seq", "etcd");
        let e = spec_context(&spec, Error::unavailable("down"));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.message, "component 'seq' (type 'etcd'): down");
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Meta {
        redis_host: String,
        #[serde(alias = "redisDB")]
        db: u32,
        enable_tls: bool,
        dial_timeout: Option<MillisDuration>,
        ttl: Option<GoDuration>,
        max_size: Option<ByteSize>,
        hosts: Vec<String>,
    }
    impl ComponentMetadata for Meta {
        const NO_EFFECT: &'static [&'static str] = &["poolSize"];
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Required {
        url: String,
    }
    impl ComponentMetadata for Required {}

    fn spec(pairs: &[(&str, &str)]) -> ComponentSpec {
        pairs
            .iter()
            .fold(ComponentSpec::new("c", "t"), |s, (k, v)| s.with(*k, *v))
    }

    #[test]
    fn decodes_like_dapr() {
        let m: Meta = decode(&spec(&[
            ("REDISHOST", "h:1"),
            ("redisDB", "3"),
            ("enableTLS", "Yes"),
            ("dialTimeout", "250"),
            ("ttl", "90"),
            ("maxSize", "4Mi"),
            ("hosts", "a:1, b:2,"),
            ("somethingElse", "x"),
        ]))
        .expect("decodes");
        assert_eq!(m.redis_host, "h:1");
        assert_eq!(m.db, 3);
        assert!(m.enable_tls);
        assert_eq!(
            m.dial_timeout,
            Some(MillisDuration(Duration::from_millis(250)))
        );
        assert_eq!(m.ttl, Some(GoDuration(Duration::from_secs(90))));
        assert_eq!(m.max_size, Some(ByteSize(4 << 20)));
        assert_eq!(m.hosts, ["a:1", "b:2"]);
        let m: Meta = decode(&spec(&[("ttl", "1m30s"), ("db", " ")])).expect("decodes");
        assert_eq!(m.ttl, Some(GoDuration(Duration::from_secs(90))));
        assert_eq!(m.db, 0, "blank is absent");
    }

    #[test]
    fn bad_values_name_the_key_and_component() {
        let e = decode::<Meta>(&spec(&[("db", "x")])).expect_err("not a number");
        assert!(
            e.message.contains("'db'") && e.message.contains("component 'c'"),
            "{e}"
        );
        let e = decode::<Meta>(&spec(&[("enableTLS", "maybe")])).expect_err("not a bool");
        assert!(e.message.contains("enable"), "{e}");
        let e = decode::<Meta>(&spec(&[("ttl", "5 parsecs")])).expect_err("not a duration");
        assert!(
            e.message.contains("5 parsecs") && e.message.contains("'ttl'"),
            "{e}"
        );
        let e = decode::<Required>(&spec(&[])).expect_err("url is required");
        assert!(e.message.contains("url"), "{e}");
    }

    #[test]
    fn warnings_name_unknown_and_no_effect_keys() {
        let keys = MetadataKeys::of::<Meta>();
        assert!(keys.known().contains(&"redisDB"), "aliases are keys");
        let w = keys.warnings_with(
            &spec(&[
                ("redisHost", "x"),
                ("poolSize", "3"),
                ("bogus", "1"),
                ("keyPrefix", "none"),
                ("actorStateStore", "true"),
            ])
            .metadata,
            &["keyPrefix"],
        );
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("actorStateStore") && w[0].contains("no effect"));
        assert!(w[1].contains("'bogus'") && w[1].contains("redisHost"));
        assert!(w[2].contains("poolSize") && w[2].contains("no effect"));
    }

    #[test]
    fn parses_go_durations_and_bare_milliseconds() {
        let p = |s| parse_duration(s, Duration::from_millis);
        assert_eq!(p("250"), Some(Duration::from_millis(250)));
        assert_eq!(p("5s"), Some(Duration::from_secs(5)));
        assert_eq!(p("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(p("2m"), Some(Duration::from_secs(120)));
        assert_eq!(p("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(p("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(p("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "5x", "-1s", "1.2.3s", "5 s"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_durations_and_placeholders() {
        assert_eq!(parse_byte_size("512k"), Some(512_000));
        assert_eq!(parse_byte_size("2Gi"), Some(2 << 30));
        assert_eq!(parse_byte_size("4mb"), None);
        assert_eq!(
            parse_duration("1.5s", Duration::from_secs),
            Some(Duration::from_millis(1500))
        );
        assert!(parse_duration("-1s", Duration::from_secs).is_none());
        let mut n = 0;
        let mut uuid = || {
            n += 1;
            format!("u{n}")
        };
        let v = substitute_placeholders("k", "{uuid}-{uuid}-{appID}", "app", &mut uuid)
            .expect("no podName");
        assert_eq!(v, "u1-u2-app");
    }
}
