//! [`MySqlClient`]: the connection pool of one MySQL component.

use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use layotto_core::{Error, Health, Result};
use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::config::{DATABASE_NAME_KEY, MySqlConfig, PASSWORD_KEY, USER_NAME_KEY};

/// Connections a component keeps at most.
const MAX_CONNECTIONS: u32 = 8;

/// A MySQL connection pool shared by one component, made in `init`.
///
/// Connections are tested before use and reopened after the server comes back; every call is
/// bounded by `timeoutInSeconds`, so an unreachable server fails calls with
/// [`layotto_core::ErrorKind::Unavailable`] instead of hanging.
pub struct MySqlClient {
    /// What to call the component in errors, e.g. `sequencer 'seq'`.
    pub(crate) label: String,
    cfg: MySqlConfig,
    pool: RwLock<Option<MySqlPool>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for MySqlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlClient")
            .field("label", &self.label)
            .field("cfg", &self.cfg)
            .field("connected", &self.current().is_some())
            .finish()
    }
}

impl MySqlClient {
    /// A client for `cfg` (no I/O); `label` prefixes every error message.
    pub fn new(label: String, cfg: MySqlConfig) -> Self {
        Self {
            label,
            cfg,
            pool: RwLock::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MySqlConfig {
        &self.cfg
    }

    /// The bound of every call.
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    fn current(&self) -> Option<MySqlPool> {
        self.pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Prefixes `e` with the component label.
    pub fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    /// Opens the pool and makes one round trip (idempotent); creates the database when it does
    /// not exist yet. Errors: unavailable when the server does not answer within the timeout;
    /// permission denied naming `userName`/`password` when it refuses the credentials.
    pub async fn connect(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if self.current().is_some() {
            return Ok(());
        }
        let what = format!("connect (metadata '{}')", self.cfg.endpoint_key);
        let pool = MySqlPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(self.cfg.timeout)
            .idle_timeout(Some(Duration::from_secs(60)))
            .test_before_acquire(true)
            .connect_lazy_with(self.cfg.options.clone().database(&self.cfg.database));
        match self.ping(&pool, &what).await {
            Err(e) if e.is_unknown_database => {
                self.create_database(&what).await?;
                self.ping(&pool, &what).await.map_err(|e| e.error)?;
            }
            r => r.map_err(|e| e.error)?,
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

    async fn ping(&self, pool: &MySqlPool, what: &str) -> std::result::Result<(), PingError> {
        match tokio::time::timeout(self.cfg.timeout, sqlx::query("SELECT 1").execute(pool)).await {
            Err(_) => Err(PingError {
                error: self.timeout_err(what),
                is_unknown_database: false,
            }),
            Ok(Err(e)) => Err(PingError {
                is_unknown_database: mysql_number(&e) == Some(ER_BAD_DB),
                error: self.map_err(&e).context(what),
            }),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// `CREATE DATABASE IF NOT EXISTS` over a connection without a database.
    async fn create_database(&self, what: &str) -> Result<()> {
        let db = &self.cfg.database;
        let run = async {
            let mut c = self.cfg.options.clone().connect().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE IF NOT EXISTS `{db}`"
            )))
            .execute(&mut c)
            .await?;
            c.close().await
        };
        match tokio::time::timeout(self.cfg.timeout, run).await {
            Err(_) => Err(self.timeout_err(what)),
            Ok(Err(e)) => Err(self.map_err(&e).context(format_args!(
                "database '{db}' (metadata '{DATABASE_NAME_KEY}') does not exist and could not \
                 be created"
            ))),
            Ok(Ok(())) => {
                tracing::info!(component = %self.label, database = %db, "created the MySQL database");
                Ok(())
            }
        }
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

    /// Whether [`MySqlClient::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn closed_err(&self) -> Error {
        self.err(Error::unavailable("the component is closed"))
    }

    /// The pool. Errors: unavailable before `init` succeeded or after `close`.
    pub fn pool(&self) -> Result<MySqlPool> {
        self.current().ok_or_else(|| {
            if self.is_closed() {
                self.closed_err()
            } else {
                self.err(Error::unavailable(
                    "not connected to MySQL (init has not succeeded)",
                ))
            }
        })
    }

    /// Runs `f` on the pool, bounded by the timeout; maps MySQL errors to contract errors
    /// (connection problems are unavailable, refused credentials permission denied, the rest
    /// internal), each naming `what`.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(MySqlPool) -> Fut,
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

    /// Unavailable: `what` got no answer within the timeout.
    pub(crate) fn timeout_err(&self, what: &str) -> Error {
        self.err(Error::no_answer(
            what,
            format_args!("MySQL at {}", self.cfg.endpoint),
            self.cfg.timeout,
        ))
    }

    /// The contract error of a sqlx error.
    pub(crate) fn map_err(&self, e: &sqlx::Error) -> Error {
        use sqlx::Error as E;
        let msg = format!("MySQL at {}: {e}", self.cfg.endpoint);
        self.err(match e {
            E::Io(_)
            | E::Tls(_)
            | E::Protocol(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed => Error::unavailable(msg),
            E::Configuration(_) => Error::invalid(msg),
            E::Database(_) => match mysql_number(e) {
                Some(1044 | 1045 | 1142 | 1143 | 1227 | 1698) => Error::permission_denied(format!(
                    "{msg} (check metadata '{USER_NAME_KEY}' and '{PASSWORD_KEY}')"
                )),
                Some(ER_BAD_DB) => {
                    Error::invalid(format!("{msg} (check metadata '{DATABASE_NAME_KEY}')"))
                }
                // Too many connections, server shutdown, lock wait timeout, deadlock,
                // connection killed, read-only (failover), disconnected for inactivity.
                Some(1040 | 1053 | 1205 | 1213 | 1290 | 1836 | 1927 | 4031) => {
                    Error::unavailable(msg)
                }
                _ => Error::internal(msg),
            },
            _ => Error::internal(msg),
        })
    }
}

/// A failed first round trip, telling "the database does not exist" apart.
struct PingError {
    error: Error,
    is_unknown_database: bool,
}

/// MySQL's `ER_BAD_DB_ERROR` (unknown database).
const ER_BAD_DB: u16 = 1049;
/// MySQL's `ER_DUP_ENTRY` (duplicate key).
pub(crate) const ER_DUP_ENTRY: u16 = 1062;
/// MySQL's `ER_DUP_FIELDNAME` (a column added twice).
pub(crate) const ER_DUP_FIELDNAME: u16 = 1060;

/// The MySQL error number of `e`, if the server answered with an error.
pub(crate) fn mysql_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number)
}
