//! The connection settings shared by the Redis components: their typed metadata
//! (the `redis_metadata!` macro, [`ConnectionMetadata`]) and the validated [`RedisConfig`].

use std::time::Duration;

use layotto_core::metadata::{MillisDuration, decode};
use layotto_core::{ComponentMetadata, ComponentSpec, Error, Result};

/// Metadata key: `host:port` of the server (required).
pub const HOST_KEY: &str = "redisHost";
/// Metadata key: password (AUTH).
pub const PASSWORD_KEY: &str = "redisPassword";
/// Metadata key: ACL user name.
pub const USERNAME_KEY: &str = "redisUsername";
/// Metadata key: database number.
pub const DB_KEY: &str = "db";
/// Metadata key: connect over TLS (`true`/`false`, default `false`; Dapr's name). The server
/// certificate is verified against `caCert` when given, else the system roots.
pub const ENABLE_TLS_KEY: &str = "enableTLS";
/// Metadata key: client certificate chain for mutual TLS, PEM text or a path to a PEM file
/// (Dapr's name; needs `clientKey`).
pub const CLIENT_CERT_KEY: &str = "clientCert";
/// Metadata key: private key of `clientCert`, PEM text or a path to a PEM file (Dapr's name).
pub const CLIENT_KEY_KEY: &str = "clientKey";
/// Metadata key: CA certificate(s) the server certificate must chain to, PEM text or a path to
/// a PEM file; replaces the system roots.
pub const CA_CERT_KEY: &str = "caCert";
/// Metadata key: `true` accepts any server certificate (no verification at all). Dapr's Redis
/// components always skip verification when TLS is on; here it must be asked for.
pub const INSECURE_SKIP_VERIFY_KEY: &str = "insecureSkipVerify";
/// Metadata key: reconnect attempts before a call fails.
pub const MAX_RETRIES_KEY: &str = "maxRetries";
/// Metadata key: connect timeout (duration or milliseconds).
pub const DIAL_TIMEOUT_KEY: &str = "dialTimeout";
/// Metadata key: response timeout (duration or milliseconds).
pub const READ_TIMEOUT_KEY: &str = "readTimeout";

/// Metadata keys of Dapr's Redis components (components-contrib
/// `common/component/redis/metadata.go`) that tune its Go client and have no counterpart here:
/// accepted without effect (each reported as such by the registry), so Dapr's component files
/// load unchanged. `actorStateStore` is one of the runtime's own no-effect keys.
pub const DAPR_TOLERATED_KEYS: &[&str] = &[
    "writeTimeout",
    "poolSize",
    "poolTimeout",
    "maxConnAge",
    "minIdleConns",
    "idleCheckFrequency",
    "idleTimeout",
    "redisMinRetryInterval",
    "redisMaxRetryInterval",
    "maxRetryBackoff",
    "queryIndexes",
];

/// Dapr's spellings of [`DB_KEY`] and [`MAX_RETRIES_KEY`] (serde aliases of those fields).
const DAPR_ALIASES: [(&str, &str); 2] = [("redisDB", DB_KEY), ("redisMaxRetries", MAX_RETRIES_KEY)];

/// Declares the typed metadata struct of a Redis component: the connection keys every Redis
/// component shares (see [`ConnectionMetadata`]) followed by the component's own fields, with
/// [`ComponentMetadata::NO_EFFECT`] = [`DAPR_TOLERATED_KEYS`] and a `connection()` accessor.
macro_rules! redis_metadata {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$fattr:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Default, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            /// `redisHost`: `host:port` of the server (required, except by the Redlock lock).
            pub redis_host: Option<String>,
            /// `redisPassword`: password (AUTH); blank means none.
            pub redis_password: Option<String>,
            /// `redisUsername`: ACL user name; blank means none.
            pub redis_username: Option<String>,
            /// `db` (Dapr: `redisDB`): database number, `>= 0` (default 0).
            #[serde(alias = "redisDB")]
            pub db: Option<i64>,
            /// `enableTLS`: connect over TLS (default false).
            #[serde(rename = "enableTLS")]
            pub enable_tls: bool,
            /// `clientCert`: client certificate chain (PEM text or file) for mutual TLS.
            pub client_cert: Option<String>,
            /// `clientKey`: private key of `clientCert` (PEM text or file).
            pub client_key: Option<String>,
            /// `caCert`: CA certificate(s) replacing the system roots (PEM text or file).
            pub ca_cert: Option<String>,
            /// `insecureSkipVerify`: accept any server certificate (needs `enableTLS`).
            pub insecure_skip_verify: Option<bool>,
            /// `maxRetries` (Dapr: `redisMaxRetries`): reconnect attempts (default 3).
            #[serde(alias = "redisMaxRetries")]
            pub max_retries: Option<usize>,
            /// `dialTimeout`: connect timeout, milliseconds or a duration (default 5 s).
            pub dial_timeout: Option<layotto_core::metadata::MillisDuration>,
            /// `readTimeout`: response timeout, milliseconds or a duration (default 3 s).
            pub read_timeout: Option<layotto_core::metadata::MillisDuration>,
            /// `redisType`: Dapr's deployment switch: `node` (default) or `cluster` (Redis
            /// Cluster; `redisHost` then lists seed nodes, comma-separated).
            pub redis_type: Option<String>,
            /// `failover`: Dapr's Sentinel switch; only `false` is supported.
            pub failover: Option<String>,
            /// `useEntraID`: Dapr's Azure authentication switch; only `false` is supported.
            #[serde(rename = "useEntraID")]
            pub use_entra_id: Option<String>,
            $( $(#[$fattr])* pub $field: $ty, )*
        }

        impl layotto_core::ComponentMetadata for $name {
            const NO_EFFECT: &'static [&'static str] = $crate::config::DAPR_TOLERATED_KEYS;
        }

        impl $name {
            /// The connection keys alone.
            pub fn connection(&self) -> $crate::config::ConnectionMetadata {
                $crate::config::ConnectionMetadata {
                    redis_host: self.redis_host.clone(),
                    redis_password: self.redis_password.clone(),
                    redis_username: self.redis_username.clone(),
                    db: self.db,
                    enable_tls: self.enable_tls,
                    client_cert: self.client_cert.clone(),
                    client_key: self.client_key.clone(),
                    ca_cert: self.ca_cert.clone(),
                    insecure_skip_verify: self.insecure_skip_verify,
                    max_retries: self.max_retries,
                    dial_timeout: self.dial_timeout,
                    read_timeout: self.read_timeout,
                    redis_type: self.redis_type.clone(),
                    failover: self.failover.clone(),
                    use_entra_id: self.use_entra_id.clone(),
                }
            }
        }
    };
}
pub(crate) use redis_metadata;

redis_metadata! {
    /// The connection keys every Redis component reads (the metadata of the Redis lock store,
    /// which has no other key).
    pub struct ConnectionMetadata {}
}

/// Decodes the metadata `M` of a Redis component: as [`decode`], after refusing `db` and Dapr's
/// `redisDB` given together. With both `maxRetries` and Dapr's `redisMaxRetries`,
/// `redisMaxRetries` counts, as in daprd.
///
/// # Errors
/// Invalid argument naming the component and the key.
pub fn decode_redis<M: ComponentMetadata>(spec: &ComponentSpec) -> Result<M> {
    let has = |k: &str| {
        spec.metadata
            .iter()
            .any(|(key, v)| key.eq_ignore_ascii_case(k) && !v.trim().is_empty())
    };
    // Dapr's own pages give both `maxRetries` and `redisMaxRetries`: daprd's client takes
    // `redisMaxRetries` (its `maxRetries` only stands in when that is absent), so here too.
    if has("redisMaxRetries") && has(MAX_RETRIES_KEY) {
        let mut trimmed = spec.clone();
        trimmed
            .metadata
            .retain(|k, _| !k.eq_ignore_ascii_case(MAX_RETRIES_KEY));
        return decode_redis(&trimmed);
    }
    for (theirs, ours) in DAPR_ALIASES {
        if has(theirs) && has(ours) {
            return Err(spec_err(
                spec,
                format!("metadata '{theirs}' and '{ours}' mean the same; give one"),
            ));
        }
    }
    decode(spec)
}

/// Metadata key (layotto-rs; Dapr has none): how many replicas must hold a write before it is
/// acknowledged (Redis `WAIT`, up to three quarters of `readTimeout`; default 0 = do not wait). Replication
/// is asynchronous, so a write acknowledged just before its master fails over can otherwise be
/// lost. Read by the state store (saves, deletes, transactions) and the pub/sub (publishes).
pub const WAIT_FOR_REPLICAS_KEY: &str = "waitForReplicas";

/// Metadata key: Dapr's deployment switch, `node` (default) or `cluster`.
pub const REDIS_TYPE_KEY: &str = "redisType";

/// Dapr switches that select deployments not supported here, with the only accepted value.
fn unsupported(m: &ConnectionMetadata) -> [(&'static str, Option<&str>, &'static str); 2] {
    [
        ("failover", m.failover.as_deref(), "false"),
        ("useEntraID", m.use_entra_id.as_deref(), "false"),
    ]
}

/// Whether `redisType` selects Redis Cluster (`cluster`; `node` or absent: one server).
///
/// # Errors
/// Invalid argument for any other value.
fn is_cluster(spec: &ComponentSpec, m: &ConnectionMetadata) -> Result<bool> {
    match m.redis_type.as_deref().map(str::trim) {
        None | Some("") => Ok(false),
        Some(t) if t.eq_ignore_ascii_case("node") => Ok(false),
        Some(t) if t.eq_ignore_ascii_case("cluster") => Ok(true),
        Some(t) => Err(spec_err(
            spec,
            format!("metadata '{REDIS_TYPE_KEY}: {t}' is not supported (only 'node' or 'cluster')"),
        )),
    }
}

/// Connection settings shared by the Redis components.
#[derive(Clone)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name.
    pub username: Option<String>,
    /// Password; never printed by `Debug`.
    pub password: Option<String>,
    /// Database number.
    pub db: i64,
    /// Redis Cluster (`redisType: cluster`): every `host:port` of `redisHost`, the seed nodes
    /// from which the client learns the cluster's slots; `host`/`port` are the first. Empty for
    /// one server.
    pub cluster_nodes: Vec<(String, u16)>,
    /// Reconnect attempts.
    pub max_retries: usize,
    /// Connect timeout.
    pub dial_timeout: Duration,
    /// Response timeout.
    pub read_timeout: Duration,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<RedisTls>,
}

/// TLS settings of a Redis connection (all PEM, already read and checked).
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificates replacing the system roots.
    pub ca_cert: Option<Vec<u8>>,
    /// Client certificate chain and private key for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca_cert", &self.ca_cert.is_some())
            .field("client", &self.client.as_ref().map(|_| "<redacted>"))
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

impl RedisTls {
    /// Reads the TLS keys of `m`; `None` unless `enableTLS` is true.
    fn from_meta(spec: &ComponentSpec, m: &ConnectionMetadata) -> Result<Option<Self>> {
        let ctx = |e: Error| e.context(format_args!("component '{}'", spec.name));
        if !m.enable_tls {
            let given = [
                (CLIENT_CERT_KEY, m.client_cert.is_some()),
                (CLIENT_KEY_KEY, m.client_key.is_some()),
                (CA_CERT_KEY, m.ca_cert.is_some()),
                (INSECURE_SKIP_VERIFY_KEY, m.insecure_skip_verify.is_some()),
            ];
            if let Some((k, _)) = given.iter().find(|(_, g)| *g) {
                return Err(ctx(Error::invalid(format!(
                    "metadata '{k}' needs '{ENABLE_TLS_KEY}: true'"
                ))));
            }
            return Ok(None);
        }
        let ca_cert = pem(m.ca_cert.as_deref(), CA_CERT_KEY, PemKind::Certs).map_err(ctx)?;
        let cert = pem(m.client_cert.as_deref(), CLIENT_CERT_KEY, PemKind::Certs).map_err(ctx)?;
        let key = pem(m.client_key.as_deref(), CLIENT_KEY_KEY, PemKind::Key).map_err(ctx)?;
        let client = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ctx(Error::invalid(format!(
                    "metadata '{CLIENT_CERT_KEY}' needs '{CLIENT_KEY_KEY}'"
                ))));
            }
            (None, Some(_)) => {
                return Err(ctx(Error::invalid(format!(
                    "metadata '{CLIENT_KEY_KEY}' needs '{CLIENT_CERT_KEY}'"
                ))));
            }
        };
        Ok(Some(Self {
            ca_cert,
            client,
            insecure_skip_verify: m.insecure_skip_verify.unwrap_or(false),
        }))
    }
}

#[derive(Clone, Copy)]
enum PemKind {
    Certs,
    Key,
}

/// The PEM of metadata `key` (value `raw`): its text when it holds a PEM block, else the file
/// it names; checked to contain at least one certificate (or one private key).
fn pem(raw: Option<&str>, key: &str, kind: PemKind) -> Result<Option<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(raw) = raw.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let bytes = if raw.contains("-----BEGIN") {
        raw.as_bytes().to_vec()
    } else {
        std::fs::read(raw.trim()).map_err(|e| {
            Error::invalid(format!(
                "metadata '{key}': neither PEM text nor a readable file '{}': {e}",
                raw.trim()
            ))
        })?
    };
    let ok = match kind {
        PemKind::Certs => {
            let certs: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(&bytes).collect();
            // Every certificate is a DER SEQUENCE; catches pasted garbage early.
            matches!(certs, Ok(c) if !c.is_empty() && c.iter().all(|d| d.first() == Some(&0x30)))
        }
        PemKind::Key => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
    };
    if !ok {
        let what = match kind {
            PemKind::Certs => "a PEM certificate",
            PemKind::Key => "a PEM private key",
        };
        return Err(Error::invalid(format!(
            "metadata '{key}' does not hold {what}"
        )));
    }
    Ok(Some(bytes))
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("cluster_nodes", &self.cluster_nodes)
            .field("max_retries", &self.max_retries)
            .field("dial_timeout", &self.dial_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisConfig {
    /// Decodes and validates the connection keys of `spec` (one server, `redisHost`).
    ///
    /// # Errors
    /// As [`RedisConfig::from_meta`], and decoding errors naming the key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let m: ConnectionMetadata = decode_redis(spec)?;
        Self::from_meta(spec, &m)
    }

    /// Validates the decoded connection keys `m` of `spec`: one server (`redisHost` is
    /// `host:port`) or, with `redisType: cluster`, a Redis Cluster (`redisHost` is a
    /// comma-separated `host:port` list of seed nodes, as in Dapr).
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key: missing or malformed
    /// `redisHost`, negative `db` (or any but 0 in a cluster, which has only database 0), zero
    /// timeouts, TLS keys without `enableTLS=true`, certificate keys that hold no PEM
    /// certificate / key, unsupported Dapr deployments (`failover`, `useEntraID`).
    pub fn from_meta(spec: &ComponentSpec, m: &ConnectionMetadata) -> Result<Self> {
        let raw_host = m.redis_host.as_deref().ok_or_else(|| {
            spec_err(
                spec,
                format!("metadata '{HOST_KEY}' is required (host:port)"),
            )
        })?;
        if !is_cluster(spec, m)? {
            let (host, port) = split_host_port(raw_host.trim()).ok_or_else(|| {
                spec_err(
                    spec,
                    format!("metadata '{HOST_KEY}' must be host:port, got '{raw_host}'"),
                )
            })?;
            return Self::shared(spec, m, host, port);
        }
        let nodes = host_list(spec, &format!("'{HOST_KEY}' of a Redis Cluster"), raw_host)?;
        let (host, port) = nodes[0].clone();
        let mut cfg = Self::shared(spec, m, host, port)?;
        if cfg.db != 0 {
            return Err(spec_err(
                spec,
                format!(
                    "metadata '{DB_KEY}: {}' is not possible with '{REDIS_TYPE_KEY}: cluster': \
                     a Redis Cluster has only database 0",
                    cfg.db
                ),
            ));
        }
        cfg.cluster_nodes = nodes;
        Ok(cfg)
    }

    /// Whether this is a Redis Cluster (`redisType: cluster`).
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }

    /// Refuses a Redis Cluster for a component that cannot run on one, giving `reason`.
    ///
    /// # Errors
    /// Invalid argument naming the component, `redisType: cluster` and `reason`.
    pub fn refuse_cluster(&self, spec: &ComponentSpec, reason: &str) -> Result<()> {
        if self.is_cluster() {
            return Err(spec_err(
                spec,
                format!(
                    "metadata '{REDIS_TYPE_KEY}: cluster' is not supported by '{}': {reason}",
                    spec.type_
                ),
            ));
        }
        Ok(())
    }

    /// Validates `hosts` (metadata `hosts_key`: a comma-separated `host:port` list, at least
    /// one) and the shared connection keys `m`, applied to every host. The singular
    /// `redisHost` is rejected with a hint to use `hosts_key`.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key.
    pub fn from_meta_hosts(
        spec: &ComponentSpec,
        m: &ConnectionMetadata,
        hosts_key: &str,
        hosts: Option<&str>,
    ) -> Result<Vec<Self>> {
        if m.redis_host.is_some() {
            return Err(spec_err(
                spec,
                format!(
                    "metadata '{HOST_KEY}' is not supported here: list every host in \
                     '{hosts_key}' (comma-separated host:port)"
                ),
            ));
        }
        let raw = hosts.unwrap_or_default();
        if raw.trim().is_empty() {
            return Err(spec_err(
                spec,
                format!("metadata '{hosts_key}' is required (comma-separated host:port list)"),
            ));
        }
        if is_cluster(spec, m)? {
            return Err(spec_err(
                spec,
                format!(
                    "metadata '{REDIS_TYPE_KEY}: cluster' is not supported here: the hosts of \
                     '{hosts_key}' are independent servers"
                ),
            ));
        }
        host_list(spec, &format!("'{hosts_key}'"), raw)?
            .into_iter()
            .map(|(host, port)| Self::shared(spec, m, host, port))
            .collect()
    }

    /// Validates every connection key except the host.
    fn shared(
        spec: &ComponentSpec,
        m: &ConnectionMetadata,
        host: String,
        port: u16,
    ) -> Result<Self> {
        for (key, value, only) in unsupported(m) {
            if let Some(v) = value
                && !v.eq_ignore_ascii_case(only)
            {
                return Err(spec_err(
                    spec,
                    format!("metadata '{key}: {v}' is not supported (only '{only}')"),
                ));
            }
        }
        let tls = RedisTls::from_meta(spec, m)?;
        let db = m.db.unwrap_or(0);
        if db < 0 {
            return Err(spec_err(
                spec,
                format!("metadata '{DB_KEY}' must be >= 0, got {db}"),
            ));
        }
        let duration = |key: &str, value: Option<MillisDuration>, default: Duration| match value {
            None => Ok(default),
            Some(MillisDuration(d)) if d.is_zero() => Err(spec_err(
                spec,
                format!("metadata '{key}' must be greater than 0"),
            )),
            Some(MillisDuration(d)) => Ok(d),
        };
        Ok(Self {
            host,
            port,
            // Blank means none (configs carry `"redisPassword": ""`); AUTH "" would fail.
            username: m.redis_username.clone(),
            password: m.redis_password.clone(),
            db,
            cluster_nodes: Vec::new(),
            max_retries: m.max_retries.unwrap_or(3),
            dial_timeout: duration(DIAL_TIMEOUT_KEY, m.dial_timeout, Duration::from_secs(5))?,
            read_timeout: duration(READ_TIMEOUT_KEY, m.read_timeout, Duration::from_secs(3))?,
            tls,
        })
    }

    /// The upper bound of one call: connect plus response time.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.dial_timeout + self.read_timeout
    }
}

/// An invalid-argument error naming the component of `spec`.
pub(crate) fn spec_err(spec: &ComponentSpec, msg: String) -> Error {
    Error::invalid(msg).context(format_args!("component '{}'", spec.name))
}

/// The `host:port` entries of the comma-separated list `raw`, metadata `key` of `spec`.
///
/// # Errors
/// Invalid argument naming `key` and the entry that is no `host:port`.
fn host_list(spec: &ComponentSpec, key: &str, raw: &str) -> Result<Vec<(String, u16)>> {
    raw.split(',')
        .map(|h| {
            split_host_port(h.trim()).ok_or_else(|| {
                spec_err(
                    spec,
                    format!(
                        "metadata {key} must be a comma-separated host:port list, got '{}' in \
                         '{raw}'",
                        h.trim()
                    ),
                )
            })
        })
        .collect()
}

/// `host:port` (IPv6 as `[addr]:port`).
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port > 0).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use layotto_core::MetadataKeys;

    use super::*;

    fn spec() -> ComponentSpec {
        ComponentSpec::new("r", "redis").with(HOST_KEY, "127.0.0.1:6379")
    }

    #[test]
    fn parses_and_names_bad_keys() {
        let c = RedisConfig::from_spec(
            &spec()
                .with(DB_KEY, "2")
                .with(DIAL_TIMEOUT_KEY, "2s")
                .with(READ_TIMEOUT_KEY, "750")
                .with(PASSWORD_KEY, "secret")
                .with("keyPrefix", "appid"),
        )
        .expect("valid");
        assert_eq!((c.host.as_str(), c.port, c.db), ("127.0.0.1", 6379, 2));
        assert_eq!(c.dial_timeout, Duration::from_secs(2));
        assert_eq!(c.read_timeout, Duration::from_millis(750));
        assert!(!format!("{c:?}").contains("secret"));
        for (s, key) in [
            (spec().with(DB_KEY, "abc"), DB_KEY),
            (spec().with(DB_KEY, "-1"), DB_KEY),
            (ComponentSpec::new("r", "redis"), HOST_KEY),
            (
                ComponentSpec::new("r", "redis").with(HOST_KEY, "nohost"),
                HOST_KEY,
            ),
            (spec().with(ENABLE_TLS_KEY, "maybe"), ENABLE_TLS_KEY),
            (spec().with(CA_CERT_KEY, "/x.pem"), CA_CERT_KEY),
            (
                spec()
                    .with(ENABLE_TLS_KEY, "true")
                    .with(CA_CERT_KEY, "nonsense"),
                CA_CERT_KEY,
            ),
            (
                spec().with(ENABLE_TLS_KEY, "true").with(
                    CA_CERT_KEY,
                    "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
                ),
                CA_CERT_KEY,
            ),
            (
                spec()
                    .with(ENABLE_TLS_KEY, "true")
                    .with(INSECURE_SKIP_VERIFY_KEY, "sure"),
                INSECURE_SKIP_VERIFY_KEY,
            ),
            (spec().with(READ_TIMEOUT_KEY, "soon"), READ_TIMEOUT_KEY),
            (spec().with(READ_TIMEOUT_KEY, "0"), READ_TIMEOUT_KEY),
            (spec().with(MAX_RETRIES_KEY, "-1"), MAX_RETRIES_KEY),
        ] {
            let e = RedisConfig::from_spec(&s).expect_err(key);
            assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument);
            assert!(e.message.contains(key), "{key}: {e}");
        }
        assert!(RedisConfig::from_spec(&spec().with(ENABLE_TLS_KEY, "false")).is_ok());
        // Dapr's own component files load: its client tuning keys are accepted, its spellings
        // of db and maxRetries are understood, unsupported deployments are named.
        let dapr = RedisConfig::from_spec(
            &spec()
                .with("actorStateStore", "true")
                .with("poolSize", "20")
                .with("redisDB", "3")
                .with("redisMaxRetries", "5")
                .with("redisType", "node"),
        )
        .expect("Dapr's keys");
        assert_eq!((dapr.db, dapr.max_retries), (3, 5));
        for (k, v) in [("redisType", "sentinel"), ("failover", "true")] {
            let e = RedisConfig::from_spec(&spec().with(k, v)).expect_err(k);
            assert!(e.message.contains(k), "{e}");
        }
        // A Redis Cluster: redisHost lists the seed nodes.
        let c = RedisConfig::from_spec(
            &spec()
                .with(HOST_KEY, "10.0.0.1:7000, 10.0.0.2:7001")
                .with(REDIS_TYPE_KEY, "cluster"),
        )
        .expect("cluster");
        assert!(c.is_cluster());
        assert_eq!(
            c.cluster_nodes,
            [("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7001)]
        );
        let e = RedisConfig::from_spec(
            &spec()
                .with(HOST_KEY, "10.0.0.1:7000,nope")
                .with(REDIS_TYPE_KEY, "cluster"),
        )
        .expect_err("bad seed");
        assert!(e.message.contains("'nope'"), "{e}");
        assert!(!RedisConfig::from_spec(&spec()).expect("node").is_cluster());
        let both = RedisConfig::from_spec(&spec().with("redisDB", "1").with(DB_KEY, "1"));
        assert!(both.is_err_and(|e| e.message.contains("redisDB")));
        let tls = RedisConfig::from_spec(&spec().with(ENABLE_TLS_KEY, "true")).expect("tls");
        assert!(
            tls.tls
                .is_some_and(|t| !t.insecure_skip_verify && t.ca_cert.is_none())
        );
        let blank = RedisConfig::from_spec(&spec().with(PASSWORD_KEY, "")).expect("blank");
        assert!(blank.password.is_none(), "blank password means none");
        assert_eq!(
            split_host_port("[::1]:7000"),
            Some(("::1".to_owned(), 7000))
        );
    }

    #[test]
    fn unknown_keys_warn_and_dapr_tuning_keys_have_no_effect() {
        let s = spec()
            .with("bogus", "1")
            .with("poolSize", "20")
            .with("redisDB", "1")
            .with("keyPrefix", "appid");
        RedisConfig::from_spec(&s).expect("unknown keys are ignored");
        let keys = MetadataKeys::of::<ConnectionMetadata>();
        assert!(keys.known().contains(&"redisDB") && keys.known().contains(&"enableTLS"));
        let w = keys.warnings_with(&s.metadata, layotto_core::Kind::State.info().runtime_keys);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("'bogus'") && w[0].contains("redisHost"),
            "{w:?}"
        );
        assert!(
            w[1].contains("poolSize") && w[1].contains("no effect"),
            "{w:?}"
        );
    }
}
