//! [`RedisClient`]: the connection of one Redis component.

use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use layotto_core::{Error, Health, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult};

use crate::config::RedisConfig;

/// A lazily connected Redis client shared by one component.
pub struct RedisClient {
    /// What to call the component in errors, e.g. `state store 'redis'`.
    pub(crate) label: String,
    cfg: RedisConfig,
    /// The connection once `connect` succeeded; taken by `close`.
    conn: RwLock<Option<ConnectionManager>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("label", &self.label)
            .field("cfg", &self.cfg)
            .field("connected", &self.connection().is_some())
            .finish()
    }
}

impl RedisClient {
    /// A client for `cfg`; `label` prefixes every error message.
    pub fn new(label: String, cfg: RedisConfig) -> Self {
        Self {
            label,
            cfg,
            conn: RwLock::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The connection, if connected.
    fn connection(&self) -> Option<ConnectionManager> {
        self.conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Drops the connection; later calls (and `connect`) fail as unavailable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.conn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn closed_err(&self) -> Error {
        self.err(Error::unavailable("the component is closed"))
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
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if self.connection().is_some() {
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
        let mut conn = self
            .conn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if conn.is_none() {
            *conn = Some(mgr);
        }
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
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
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
        let conn = self.connection().ok_or_else(|| {
            if self.closed.load(Ordering::SeqCst) {
                self.closed_err()
            } else {
                self.err(Error::unavailable(
                    "not connected to redis (init has not succeeded)",
                ))
            }
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

    /// Unavailable: `what` got no answer within the call timeout.
    pub(crate) fn timeout_err(&self, what: &str) -> Error {
        self.err(Error::no_answer(
            what,
            format_args!("redis at {}:{}", self.cfg.host, self.cfg.port),
            self.cfg.call_timeout(),
        ))
    }

    pub(crate) fn map_err(&self, e: &RedisError) -> Error {
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
