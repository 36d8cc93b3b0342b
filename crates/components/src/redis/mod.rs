//! Redis components (feature `redis`): state (Dapr's hash layout), lock, Redlock lock over
//! independent hosts (Layotto's `redis_cluster`), sequencer, pub/sub (Redis Streams, Dapr's
//! `pubsub.redis`) and configuration.
//!
//! All of them share [`RedisConfig`], parsed from the metadata keys of the peers' Redis
//! components (`redisHost`, `redisPassword`, `redisUsername`, `db`, `enableTLS`, `clientCert`,
//! `clientKey`, `caCert`, `insecureSkipVerify`, `maxRetries`, `dialTimeout`, `readTimeout`), and
//! [`RedisClient`], a
//! [`redis::aio::ConnectionManager`] created in `init` that reconnects by itself. Every call is
//! bounded by `dialTimeout + readTimeout`; a backend that cannot be reached fails with
//! [`layotto_core::ErrorKind::Unavailable`].

mod cluster_lock;
mod configuration;
mod lock;
mod pubsub;
mod sequencer;
mod state;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use layotto_core::{ComponentSpec, Error, Health, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult};

use crate::util::{parse_bool, parse_duration, reject_unknown};

pub use cluster_lock::{CLUSTER_TYPE, HOSTS_KEY, LOCK_CLUSTER_TYPE, RedisClusterLock};
pub use configuration::RedisConfigStore;
pub use lock::RedisLock;
pub use pubsub::{
    CONCURRENCY_KEY, MAX_LEN_APPROX_KEY, PROCESSING_TIMEOUT_KEY, QUEUE_DEPTH_KEY,
    REDELIVER_INTERVAL_KEY, RedisPubSub,
};
pub use sequencer::RedisSequencer;
pub use state::{MAX_VALUE_BYTES_KEY, RedisStateStore};

/// Type string of every Redis component.
pub const TYPE: &str = "redis";
/// Dapr-style type string of the Redis state store.
pub const STATE_TYPE: &str = "state.redis";
/// Dapr-style type string of the Redis lock store.
pub const LOCK_TYPE: &str = "lock.redis";
/// Dapr-style type string of the Redis sequencer.
pub const SEQUENCER_TYPE: &str = "sequencer.redis";
/// Dapr-style type string of the Redis pub/sub.
pub const PUBSUB_TYPE: &str = "pubsub.redis";
/// Dapr-style type string of the Redis configuration store.
pub const CONFIGURATION_TYPE: &str = "configuration.redis";

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

/// The connection keys every Redis component accepts.
const COMMON_KEYS: [&str; 12] = [
    HOST_KEY,
    PASSWORD_KEY,
    USERNAME_KEY,
    DB_KEY,
    ENABLE_TLS_KEY,
    CLIENT_CERT_KEY,
    CLIENT_KEY_KEY,
    CA_CERT_KEY,
    INSECURE_SKIP_VERIFY_KEY,
    MAX_RETRIES_KEY,
    DIAL_TIMEOUT_KEY,
    READ_TIMEOUT_KEY,
];

/// Metadata keys of Dapr's Redis components (components-contrib
/// `common/component/redis/metadata.go`) that tune its Go client and have no counterpart here;
/// accepted and ignored, so Dapr's component files (e.g. `dapr init`'s `actorStateStore`) load
/// unchanged.
pub const DAPR_TOLERATED_KEYS: [&str; 12] = [
    "actorStateStore",
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

/// Dapr's spellings of [`DB_KEY`] and [`MAX_RETRIES_KEY`].
const DAPR_DB_KEY: &str = "redisDB";
const DAPR_MAX_RETRIES_KEY: &str = "redisMaxRetries";

/// Dapr switches that select deployments not supported here; only their default is accepted.
const DAPR_UNSUPPORTED: [(&str, &str); 3] = [
    ("redisType", "node"),
    ("failover", "false"),
    ("useEntraID", "false"),
];

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
    /// Reads the TLS keys of `spec`; `None` unless `enableTLS` is true.
    fn from_spec(spec: &ComponentSpec) -> Result<Option<Self>> {
        let ctx = |e: Error| e.context(format_args!("component '{}'", spec.name));
        let enabled = parse_bool(spec, ENABLE_TLS_KEY, false)?;
        let tls_only = [
            CLIENT_CERT_KEY,
            CLIENT_KEY_KEY,
            CA_CERT_KEY,
            INSECURE_SKIP_VERIFY_KEY,
        ];
        if !enabled {
            if let Some(k) = tls_only
                .iter()
                .find(|k| spec.get(k).is_some_and(|v| !v.is_empty()))
            {
                return Err(ctx(Error::invalid(format!(
                    "metadata '{k}' needs '{ENABLE_TLS_KEY}: true'"
                ))));
            }
            return Ok(None);
        }
        let ca_cert = pem(spec, CA_CERT_KEY, PemKind::Certs).map_err(ctx)?;
        let cert = pem(spec, CLIENT_CERT_KEY, PemKind::Certs).map_err(ctx)?;
        let key = pem(spec, CLIENT_KEY_KEY, PemKind::Key).map_err(ctx)?;
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
            insecure_skip_verify: parse_bool(spec, INSECURE_SKIP_VERIFY_KEY, false)?,
        }))
    }
}

#[derive(Clone, Copy)]
enum PemKind {
    Certs,
    Key,
}

/// The PEM of metadata `key`: its text when it holds a PEM block, else the file it names;
/// checked to contain at least one certificate (or one private key).
fn pem(spec: &ComponentSpec, key: &str, kind: PemKind) -> Result<Option<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(raw) = spec.get(key).filter(|v| !v.trim().is_empty()) else {
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
            .field("max_retries", &self.max_retries)
            .field("dial_timeout", &self.dial_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisConfig {
    /// Parses the connection keys of `spec`; `extra` are further keys the component accepts.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key: unknown keys, missing or
    /// malformed `redisHost`, non-integer `db`/`maxRetries`, bad durations, TLS keys without
    /// `enableTLS=true`, certificate keys that hold no PEM certificate / key.
    pub fn from_spec(spec: &ComponentSpec, extra: &[&str]) -> Result<Self> {
        let mut known: Vec<&str> = COMMON_KEYS.to_vec();
        known.extend_from_slice(extra);
        known.extend_from_slice(&DAPR_TOLERATED_KEYS);
        known.extend([DAPR_DB_KEY, DAPR_MAX_RETRIES_KEY]);
        known.extend(DAPR_UNSUPPORTED.iter().map(|(k, _)| *k));
        reject_unknown(spec, &known)?;
        let raw_host = spec.get(HOST_KEY).ok_or_else(|| {
            spec_err(
                spec,
                format!("metadata '{HOST_KEY}' is required (host:port)"),
            )
        })?;
        let (host, port) = split_host_port(raw_host.trim()).ok_or_else(|| {
            spec_err(
                spec,
                format!("metadata '{HOST_KEY}' must be host:port, got '{raw_host}'"),
            )
        })?;
        Self::parse_shared(spec, host, port)
    }

    /// Parses `hosts_key` (a comma-separated `host:port` list, at least one) and the shared
    /// connection keys, applied to every host; `extra` are further keys the component accepts.
    /// The singular `redisHost` is rejected with a hint to use `hosts_key`.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key.
    pub fn from_spec_hosts(
        spec: &ComponentSpec,
        hosts_key: &str,
        extra: &[&str],
    ) -> Result<Vec<Self>> {
        if spec.get(HOST_KEY).is_some() {
            return Err(spec_err(
                spec,
                format!(
                    "metadata '{HOST_KEY}' is not supported here: list every host in \
                     '{hosts_key}' (comma-separated host:port)"
                ),
            ));
        }
        let mut known: Vec<&str> = COMMON_KEYS
            .iter()
            .copied()
            .filter(|k| *k != HOST_KEY)
            .collect();
        known.push(hosts_key);
        known.extend_from_slice(extra);
        known.extend_from_slice(&DAPR_TOLERATED_KEYS);
        known.extend([DAPR_DB_KEY, DAPR_MAX_RETRIES_KEY]);
        known.extend(DAPR_UNSUPPORTED.iter().map(|(k, _)| *k));
        reject_unknown(spec, &known)?;
        let raw = spec.get(hosts_key).unwrap_or_default();
        if raw.trim().is_empty() {
            return Err(spec_err(
                spec,
                format!("metadata '{hosts_key}' is required (comma-separated host:port list)"),
            ));
        }
        raw.split(',')
            .map(|h| {
                let (host, port) = split_host_port(h.trim()).ok_or_else(|| {
                    spec_err(
                        spec,
                        format!(
                            "metadata '{hosts_key}' must be a comma-separated host:port list, \
                             got '{}' in '{raw}'",
                            h.trim()
                        ),
                    )
                })?;
                Self::parse_shared(spec, host, port)
            })
            .collect()
    }

    /// Parses every connection key except the host.
    fn parse_shared(spec: &ComponentSpec, host: String, port: u16) -> Result<Self> {
        let ctx = |e: Error| e.context(format_args!("component '{}'", spec.name));
        for (key, only) in DAPR_UNSUPPORTED {
            if let Some(v) = spec.get(key)
                && !v.is_empty()
                && !v.eq_ignore_ascii_case(only)
            {
                return Err(ctx(Error::invalid(format!(
                    "metadata '{key}: {v}' is not supported (only '{only}')"
                ))));
            }
        }
        let spec = &aliased(
            spec,
            &[
                (DAPR_DB_KEY, DB_KEY),
                (DAPR_MAX_RETRIES_KEY, MAX_RETRIES_KEY),
            ],
        )
        .map_err(ctx)?;
        let tls = RedisTls::from_spec(spec)?;
        let db = spec.parse::<i64>(DB_KEY)?.unwrap_or(0);
        if db < 0 {
            return Err(ctx(Error::invalid(format!(
                "metadata '{DB_KEY}' must be >= 0, got {db}"
            ))));
        }
        let duration = |key: &str, default: Duration| -> Result<Duration> {
            match spec.get(key) {
                None => Ok(default),
                Some(raw) => match parse_duration(key, raw).map_err(ctx)? {
                    d if d.is_zero() => Err(ctx(Error::invalid(format!(
                        "metadata '{key}' must be greater than 0"
                    )))),
                    d => Ok(d),
                },
            }
        };
        Ok(Self {
            host,
            port,
            // Blank means none (configs carry `"redisPassword": ""`); AUTH "" would fail.
            username: spec
                .get(USERNAME_KEY)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            password: spec
                .get(PASSWORD_KEY)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            db,
            max_retries: spec.parse::<usize>(MAX_RETRIES_KEY)?.unwrap_or(3),
            dial_timeout: duration(DIAL_TIMEOUT_KEY, Duration::from_secs(5))?,
            read_timeout: duration(READ_TIMEOUT_KEY, Duration::from_secs(3))?,
            tls,
        })
    }

    /// The upper bound of one call: connect plus response time.
    fn call_timeout(&self) -> Duration {
        self.dial_timeout + self.read_timeout
    }
}

/// `spec` with each Dapr spelling (`redisDB`) moved to ours (`db`); both given is an error.
fn aliased(spec: &ComponentSpec, pairs: &[(&str, &str)]) -> Result<ComponentSpec> {
    let mut out = spec.clone();
    for (theirs, ours) in pairs {
        if let Some(v) = out.metadata.remove(*theirs) {
            if out.metadata.contains_key(*ours) {
                return Err(Error::invalid(format!(
                    "metadata '{theirs}' and '{ours}' mean the same; give one"
                )));
            }
            out.metadata.insert((*ours).to_owned(), v);
        }
    }
    Ok(out)
}

/// An invalid-argument error naming the component of `spec`.
fn spec_err(spec: &ComponentSpec, msg: String) -> Error {
    Error::invalid(msg).context(format_args!("component '{}'", spec.name))
}

/// `host:port` (IPv6 as `[addr]:port`).
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port > 0).then(|| (host.to_owned(), port))
}

/// A lazily connected Redis client shared by one component.
pub struct RedisClient {
    /// What to call the component in errors, e.g. `state store 'redis'`.
    label: String,
    cfg: RedisConfig,
    conn: OnceLock<ConnectionManager>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("label", &self.label)
            .field("cfg", &self.cfg)
            .field("connected", &self.conn.get().is_some())
            .finish()
    }
}

impl RedisClient {
    /// A client for `cfg`; `label` prefixes every error message.
    pub fn new(label: String, cfg: RedisConfig) -> Self {
        Self {
            label,
            cfg,
            conn: OnceLock::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.cfg
    }

    /// Prefixes `e` with the component label.
    pub fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    /// Connects (idempotent). Errors: unavailable when the server cannot be reached in time.
    pub async fn connect(&self) -> Result<()> {
        if self.conn.get().is_some() {
            return Ok(());
        }
        let client = self.client()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.cfg.dial_timeout))
            .set_response_timeout(Some(self.cfg.read_timeout))
            .set_number_of_retries(self.cfg.max_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mgr = tokio::time::timeout(
            self.cfg.call_timeout(),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| self.timeout_err("connect"))?
        .map_err(|e| self.map_err(&e))?;
        let _ = self.conn.set(mgr);
        Ok(())
    }

    /// A `redis::Client` for the configured server (no I/O).
    fn client(&self) -> Result<redis::Client> {
        let mut redis_info = RedisConnectionInfo::default().set_db(self.cfg.db);
        if let Some(u) = &self.cfg.username {
            redis_info = redis_info.set_username(u);
        }
        if let Some(p) = &self.cfg.password {
            redis_info = redis_info.set_password(p);
        }
        let Some(tls) = &self.cfg.tls else {
            let info = ConnectionAddr::Tcp(self.cfg.host.clone(), self.cfg.port)
                .into_connection_info()
                .map_err(|e| self.map_err(&e))?
                .set_redis_settings(redis_info)
                .set_tcp_settings(tcp_settings());
            return redis::Client::open(info).map_err(|e| self.map_err(&e));
        };
        // rustls needs a process-wide crypto provider; the binary installs ring at start-up,
        // this covers library users (tests) that did not.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let host = if self.cfg.host.contains(':') {
            format!("[{}]", self.cfg.host)
        } else {
            self.cfg.host.clone()
        };
        let fragment = if tls.insecure_skip_verify {
            "#insecure"
        } else {
            ""
        };
        let info = format!("rediss://{host}:{}/{fragment}", self.cfg.port)
            .as_str()
            .into_connection_info()
            .map_err(|e| self.map_err(&e))?
            .set_redis_settings(redis_info)
            .set_tcp_settings(tcp_settings());
        if tls.ca_cert.is_none() && tls.client.is_none() {
            return redis::Client::open(info).map_err(|e| self.map_err(&e));
        }
        let certs = redis::TlsCertificates {
            client_tls: tls
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: tls.ca_cert.clone(),
        };
        redis::Client::build_with_tls(info, certs).map_err(|e| self.map_err(&e))
    }

    /// A new dedicated RESP2 pub/sub connection (SUBSCRIBE/PUBLISH notifications), bounded by
    /// `dialTimeout + readTimeout`. It does not reconnect by itself.
    pub async fn pubsub_connection(&self) -> Result<redis::aio::PubSub> {
        let client = self.client()?;
        tokio::time::timeout(self.cfg.call_timeout(), client.get_async_pubsub())
            .await
            .map_err(|_| self.timeout_err("pubsub connect"))?
            .map_err(|e| self.map_err(&e))
    }

    /// Runs `f` on a connection, bounded by `dialTimeout + readTimeout`; maps Redis errors to
    /// contract errors (connection problems are unavailable, the rest internal).
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn.get().cloned().ok_or_else(|| {
            self.err(Error::unavailable(
                "not connected to redis (init has not succeeded)",
            ))
        })?;
        match tokio::time::timeout(self.cfg.call_timeout(), f(conn)).await {
            Err(_) => Err(self.timeout_err(what)),
            Ok(r) => r.map_err(|e| self.map_err(&e).context(what)),
        }
    }

    /// A real PING round trip.
    pub async fn health(&self) -> Health {
        let r: Result<String> = self
            .call("ping", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await;
        match r {
            Ok(_) => Health::up(),
            Err(e) => Health::down(e.message),
        }
    }

    fn timeout_err(&self, what: &str) -> Error {
        self.err(Error::unavailable(format!(
            "{what}: redis at {}:{} did not answer within {:?}",
            self.cfg.host,
            self.cfg.port,
            self.cfg.call_timeout()
        )))
    }

    fn map_err(&self, e: &RedisError) -> Error {
        let unreachable = e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error();
        let msg = format!("redis at {}:{}: {e}", self.cfg.host, self.cfg.port);
        self.err(if unreachable {
            Error::unavailable(msg)
        } else {
            Error::internal(msg)
        })
    }
}

/// TCP settings of every Redis connection: `TCP_NODELAY` on, as Go (and so Dapr's Redis
/// client) sets by default. Commands are small and answered at once, so Nagle's algorithm
/// only holds back a command written while an earlier one is unacknowledged.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

#[cfg(test)]
mod tests {
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
            &[],
        )
        .expect("valid");
        assert_eq!((c.host.as_str(), c.port, c.db), ("127.0.0.1", 6379, 2));
        assert_eq!(c.dial_timeout, Duration::from_secs(2));
        assert_eq!(c.read_timeout, Duration::from_millis(750));
        assert!(!format!("{c:?}").contains("secret"));
        for (s, key) in [
            (spec().with(DB_KEY, "abc"), DB_KEY),
            (ComponentSpec::new("r", "redis"), HOST_KEY),
            (
                ComponentSpec::new("r", "redis").with(HOST_KEY, "nohost"),
                HOST_KEY,
            ),
            (spec().with("bogus", "1"), "bogus"),
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
            (spec().with(MAX_RETRIES_KEY, "-1"), MAX_RETRIES_KEY),
        ] {
            let e = RedisConfig::from_spec(&s, &[]).expect_err(key);
            assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument);
            assert!(e.message.contains(key), "{key}: {e}");
        }
        assert!(RedisConfig::from_spec(&spec().with(ENABLE_TLS_KEY, "false"), &[]).is_ok());
        // Dapr's own component files load: its client tuning keys are accepted, its spellings
        // of db and maxRetries are understood, unsupported deployments are named.
        let dapr = RedisConfig::from_spec(
            &spec()
                .with("actorStateStore", "true")
                .with("poolSize", "20")
                .with("redisDB", "3")
                .with("redisMaxRetries", "5")
                .with("redisType", "node"),
            &[],
        )
        .expect("Dapr's keys");
        assert_eq!((dapr.db, dapr.max_retries), (3, 5));
        for (k, v) in [("redisType", "cluster"), ("failover", "true")] {
            let e = RedisConfig::from_spec(&spec().with(k, v), &[]).expect_err(k);
            assert!(e.message.contains(k), "{e}");
        }
        let both = RedisConfig::from_spec(&spec().with("redisDB", "1").with(DB_KEY, "1"), &[]);
        assert!(both.is_err_and(|e| e.message.contains("redisDB")));
        let tls = RedisConfig::from_spec(&spec().with(ENABLE_TLS_KEY, "true"), &[]).expect("tls");
        assert!(
            tls.tls
                .is_some_and(|t| !t.insecure_skip_verify && t.ca_cert.is_none())
        );
        let blank = RedisConfig::from_spec(&spec().with(PASSWORD_KEY, ""), &[]).expect("blank");
        assert!(blank.password.is_none(), "blank password means none");
        assert_eq!(
            split_host_port("[::1]:7000"),
            Some(("::1".to_owned(), 7000))
        );
    }
}
