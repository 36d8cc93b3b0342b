//! [`PgClient`]: the connection pool of one PostgreSQL component, and Dapr's
//! `connectionString` in both of the forms pgx reads.

use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use layotto_core::{Error, Health, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

/// Connections a component keeps at most unless `maxConns` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// The driver options read from `connectionString`.
    pub options: PgConnectOptions,
    /// `host:port`, for messages.
    pub endpoint: String,
    /// Bound of every call (`timeout`/`timeoutInSeconds`, default 20 s).
    pub timeout: Duration,
    /// Pool size (`maxConns` when above 1).
    pub max_connections: u32,
}

/// Reads Dapr's `connectionString`: a URL (`postgres://user:pw@host:5432/db?sslmode=disable`)
/// or libpq key/value pairs (`host=localhost port=5432 user=postgres password=example
/// dbname=dapr sslmode=disable`, values optionally single-quoted), as pgx's `ParseConfig` takes
/// them. Keys: `host`, `port`, `user`, `password`, `dbname`/`database`, `sslmode`
/// (`disable`, `allow`, `prefer`; the modes that demand TLS and `sslrootcert` are refused: no
/// TLS yet), `application_name`, `connect_timeout` and `search_path` (ignored: the table name may carry a
/// schema); any other key is refused by name.
///
/// # Errors
/// A malformed string, naming what is wrong (never echoing the password).
pub fn parse_connection_string(
    raw: &str,
) -> std::result::Result<(PgConnectOptions, String), String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("missing connection string".to_owned());
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        let o: PgConnectOptions = raw
            .parse()
            .map_err(|e: sqlx::Error| format!("not a valid PostgreSQL URL: {e}"))?;
        if let Some(mode) = raw
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("sslmode="))
        {
            ssl_mode(mode)?;
        }
        let endpoint = format!("{}:{}", o.get_host(), o.get_port());
        return Ok((o, endpoint));
    }
    let mut o = PgConnectOptions::new_without_pgpass();
    for (k, v) in key_values(raw)? {
        o = match k.as_str() {
            "host" => o.host(&v),
            "port" => o.port(
                v.parse()
                    .map_err(|_| format!("port '{v}' is not a port number"))?,
            ),
            "user" => o.username(&v),
            "password" => o.password(&v),
            "dbname" | "database" => o.database(&v),
            "sslmode" => o.ssl_mode(ssl_mode(&v)?),
            "sslrootcert" => return Err(NO_TLS.to_owned()),
            "application_name" => o.application_name(&v),
            "connect_timeout" | "search_path" | "pool_max_conns" => o,
            other => return Err(format!("unknown connection string key '{other}'")),
        };
    }
    let endpoint = format!("{}:{}", o.get_host(), o.get_port());
    Ok((o, endpoint))
}

/// Why TLS settings are refused.
const NO_TLS: &str = "TLS to PostgreSQL is not supported yet (sslmode require, verify-ca, \
                      verify-full and sslrootcert)";

/// A libpq `sslmode` this build can honour: `disable`, `allow` and `prefer` (which connect in
/// plain text here); the modes that demand TLS are refused.
fn ssl_mode(v: &str) -> std::result::Result<PgSslMode, String> {
    match v.parse::<PgSslMode>() {
        Ok(m @ (PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer)) => Ok(m),
        Ok(_) => Err(NO_TLS.to_owned()),
        Err(_) => Err(format!("sslmode '{v}' is not a libpq ssl mode")),
    }
}

/// `connectionString` with Dapr's individual connection keys applied over it (`host`,
/// `hostaddr`, `port`, `database`, `user`, `password`: each overrides that part of the string;
/// with any of them the string may be left out). `sslRootCert` is refused: no TLS yet.
///
/// # Errors
/// A malformed string or port, naming the metadata key.
pub fn connection(
    raw: Option<&str>,
    overrides: &ConnectionOverrides,
) -> std::result::Result<(PgConnectOptions, String), String> {
    let raw = raw.map(str::trim).unwrap_or_default();
    let any = [
        &overrides.host,
        &overrides.hostaddr,
        &overrides.port,
        &overrides.database,
        &overrides.user,
        &overrides.password,
        &overrides.ssl_root_cert,
    ]
    .iter()
    .any(|o| o.as_deref().is_some_and(|v| !v.trim().is_empty()));
    let (mut o, _) = if raw.is_empty() && any {
        (PgConnectOptions::new_without_pgpass(), String::new())
    } else {
        parse_connection_string(raw).map_err(|e| format!("metadata 'connectionString': {e}"))?
    };
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(h) = set(&overrides.host).or(set(&overrides.hostaddr)) {
        o = o.host(h);
    }
    if let Some(p) = set(&overrides.port) {
        o = o.port(
            p.parse()
                .map_err(|_| format!("metadata 'port': '{p}' is not a port number"))?,
        );
    }
    if let Some(d) = set(&overrides.database) {
        o = o.database(d);
    }
    if let Some(u) = set(&overrides.user) {
        o = o.username(u);
    }
    if let Some(p) = set(&overrides.password) {
        o = o.password(p);
    }
    if set(&overrides.ssl_root_cert).is_some() {
        return Err(format!("metadata 'sslRootCert': {NO_TLS}"));
    }
    let endpoint = format!("{}:{}", o.get_host(), o.get_port());
    Ok((o, endpoint))
}

/// Dapr's individual connection keys (see [`connection`]).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectionOverrides {
    /// `host`.
    pub host: Option<String>,
    /// `hostaddr`.
    pub hostaddr: Option<String>,
    /// `port`.
    pub port: Option<String>,
    /// `database`.
    pub database: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `sslRootCert`: refused (no TLS yet).
    pub ssl_root_cert: Option<String>,
}

/// The `key=value` pairs of a libpq connection string.
fn key_values(raw: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("'{key}' has no '=value'"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("the quoted value of '{key}' is not closed")),
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next());
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.to_ascii_lowercase(), value));
    }
}

/// A PostgreSQL connection pool shared by one component, made in `init`.
///
/// Connections are tested before use and reopened after the server comes back; every call is
/// bounded by the timeout, so an unreachable server fails calls with
/// [`layotto_core::ErrorKind::Unavailable`] instead of hanging.
pub struct PgClient {
    /// What to call the component in errors, e.g. `state store 'pg'`.
    pub(crate) label: String,
    cfg: PgConfig,
    pool: RwLock<Option<PgPool>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for PgClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgClient")
            .field("label", &self.label)
            .field("endpoint", &self.cfg.endpoint)
            .field("connected", &self.current().is_some())
            .finish_non_exhaustive()
    }
}

impl PgClient {
    /// A client for `cfg` (no I/O); `label` prefixes every error message.
    pub fn new(label: String, cfg: PgConfig) -> Self {
        Self {
            label,
            cfg,
            pool: RwLock::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The bound of every call.
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    fn current(&self) -> Option<PgPool> {
        self.pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Prefixes `e` with the component label.
    pub fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    /// Opens the pool and makes one round trip (idempotent).
    ///
    /// # Errors
    /// Unavailable when the server does not answer within the timeout; permission denied when
    /// it refuses the credentials; invalid when the database does not exist.
    pub async fn connect(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if self.current().is_some() {
            return Ok(());
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.cfg.max_connections)
            .min_connections(0)
            .acquire_timeout(self.cfg.timeout)
            .idle_timeout(Some(Duration::from_secs(60)))
            .test_before_acquire(true)
            .connect_lazy_with(self.cfg.options.clone());
        match tokio::time::timeout(self.cfg.timeout, sqlx::query("SELECT 1").execute(&pool)).await {
            Err(_) => return Err(self.timeout_err("connect (metadata 'connectionString')")),
            Ok(Err(e)) => {
                return Err(self
                    .map_err(&e)
                    .context("connect (metadata 'connectionString')"));
            }
            Ok(Ok(_)) => {}
        }
        let mut slot = self
            .pool
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if slot.is_none() {
            *slot = Some(pool);
        }
        Ok(())
    }

    /// A pool of one connection of its own, outside the component's pool, for a `LISTEN`
    /// that holds its connection for as long as it lives.
    pub fn dedicated_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.cfg.timeout)
            .connect_lazy_with(self.cfg.options.clone())
    }

    /// Whether [`PgClient::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the pool; later calls fail as unavailable.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let pool = self
            .pool
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(p) = pool {
            let _ = tokio::time::timeout(self.cfg.timeout, p.close()).await;
        }
    }

    fn closed_err(&self) -> Error {
        self.err(Error::unavailable("the component is closed"))
    }

    /// The pool. Errors: unavailable before `init` succeeded or after `close`.
    pub fn pool(&self) -> Result<PgPool> {
        self.current().ok_or_else(|| {
            if self.closed.load(Ordering::SeqCst) {
                self.closed_err()
            } else {
                self.err(Error::unavailable(
                    "not connected to PostgreSQL (init has not succeeded)",
                ))
            }
        })
    }

    /// Runs `f` on the pool, bounded by the timeout; maps PostgreSQL errors to contract errors,
    /// each naming `what`.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        let pool = self.pool()?;
        match tokio::time::timeout(self.cfg.timeout, f(pool)).await {
            Err(_) => Err(self.timeout_err(what)),
            Ok(r) => r.map_err(|e| self.map_err(&e).context(what)),
        }
    }

    /// A real round trip (`SELECT 1`).
    pub async fn health(&self) -> Health {
        let r = self
            .call("health", |p| async move {
                sqlx::query("SELECT 1").execute(&p).await
            })
            .await;
        match r {
            Ok(_) => Health::up(),
            Err(e) => Health::down(e.message),
        }
    }

    fn timeout_err(&self, what: &str) -> Error {
        self.err(Error::no_answer(
            what,
            format_args!("PostgreSQL at {}", self.cfg.endpoint),
            self.cfg.timeout,
        ))
    }

    /// The contract error of a sqlx error, by SQLSTATE class.
    pub(crate) fn map_err(&self, e: &sqlx::Error) -> Error {
        use sqlx::Error as E;
        let msg = format!("PostgreSQL at {}: {e}", self.cfg.endpoint);
        self.err(match e {
            E::Io(_)
            | E::Tls(_)
            | E::Protocol(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed => Error::unavailable(msg),
            E::Configuration(_) => Error::invalid(msg),
            E::Database(d) => match d.code().as_deref().unwrap_or_default() {
                c if c.starts_with("28") || c == "42501" => Error::permission_denied(format!(
                    "{msg} (check the user and password of metadata 'connectionString')"
                )),
                "3D000" => Error::invalid(format!(
                    "{msg} (check the database of metadata 'connectionString')"
                )),
                // Connection exceptions, too many connections, shutting down, cannot connect
                // now, serialization failure, deadlock, read-only (a standby).
                c if c.starts_with("08")
                    || matches!(
                        c,
                        "53300" | "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "25006"
                    ) =>
                {
                    Error::unavailable(msg)
                }
                _ => Error::internal(msg),
            },
            _ => Error::internal(msg),
        })
    }
}

/// The SQLSTATE of `e`, if the server answered with an error.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_connection_string_forms_parse() {
        let (o, at) = parse_connection_string(
            "host=db.local port=6543 user=dapr password='p w\\'x' dbname=state sslmode=disable",
        )
        .expect("key/value");
        assert_eq!(at, "db.local:6543");
        assert_eq!(o.get_username(), "dapr");
        assert_eq!(o.get_database(), Some("state"));
        let (o, at) = parse_connection_string("postgres://u:p@127.0.0.1:5433/db?sslmode=disable")
            .expect("url");
        assert_eq!(
            (at.as_str(), o.get_database()),
            ("127.0.0.1:5433", Some("db"))
        );
        for (bad, why) in [
            ("", "missing connection string"),
            ("host", "'host' has no '=value'"),
            ("host='x", "not closed"),
            ("port=abc", "not a port number"),
            ("sslmode=sometimes", "not a libpq ssl mode"),
            ("sslmode=require", "TLS to PostgreSQL is not supported yet"),
            (
                "postgres://h/db?sslmode=verify-full",
                "TLS to PostgreSQL is not supported yet",
            ),
            ("colour=blue", "unknown connection string key 'colour'"),
        ] {
            let e = parse_connection_string(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
