//! [`RedisClient`]: the connection of one Redis component.

use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use layotto_core::{Error, Health, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisConnectionInfo,
    RedisError, RedisFuture, RedisResult, Value,
};

use crate::config::RedisConfig;

/// The connection of a [`RedisClient`]: to one server, or to a Redis Cluster, where each
/// command goes to the master of its key's slot and the client follows `MOVED`/`ASK`
/// redirections and fail-overs by itself. Cheap to clone (both are handles to shared
/// multiplexed connections).
#[derive(Clone)]
pub enum Conn {
    /// One server (`redisType: node`), reconnected by the connection manager.
    Node(ConnectionManager),
    /// A Redis Cluster (`redisType: cluster`).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Sends `WAIT replicas timeout` to the server that holds `key` (in a cluster, the master
    /// of its slot) and returns how many replicas acknowledged every write that connection made
    /// so far. `timeout` is in milliseconds (0 would block forever; callers pass at least 1).
    pub async fn wait_replicas(
        &mut self,
        key: &[u8],
        replicas: usize,
        timeout_ms: u64,
    ) -> RedisResult<usize> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            Self::Node(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let v = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }
}

/// A lazily connected Redis client shared by one component.
pub struct RedisClient {
    /// What to call the component in errors, e.g. `state store 'redis'`.
    pub(crate) label: String,
    cfg: RedisConfig,
    /// The connection once `connect` succeeded; taken by `close`.
    conn: RwLock<Option<Conn>>,
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
    fn connection(&self) -> Option<Conn> {
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
        let mgr = tokio::time::timeout(self.cfg.call_timeout(), self.open())
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

    /// Opens the connection: a connection manager to the server, or a cluster connection
    /// that has read the slot map from the seed nodes.
    async fn open(&self) -> RedisResult<Conn> {
        if self.cfg.cluster_nodes.is_empty() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.cfg.dial_timeout))
                .set_response_timeout(Some(self.cfg.read_timeout))
                .set_number_of_retries(self.cfg.max_retries)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            let client = self.client()?;
            return Ok(Conn::Node(
                ConnectionManager::new_with_config(client, config).await?,
            ));
        }
        let nodes = self
            .cfg
            .cluster_nodes
            .iter()
            .map(|(h, p)| self.connection_info(h, *p))
            .collect::<RedisResult<Vec<_>>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(self.cfg.dial_timeout)
            .response_timeout(self.cfg.read_timeout)
            .retries(u32::try_from(self.cfg.max_retries).unwrap_or(u32::MAX))
            .min_retry_wait(50)
            .max_retry_wait(500)
            .tcp_settings(tcp_settings());
        if let Some(certs) = self.certificates() {
            builder = builder.certs(certs);
        }
        Ok(Conn::Cluster(
            builder.build()?.get_async_connection().await?,
        ))
    }

    /// The address, credentials and TLS mode of the server at `host:port` (no I/O).
    fn connection_info(&self, host: &str, port: u16) -> RedisResult<ConnectionInfo> {
        let mut redis_info = RedisConnectionInfo::default().set_db(self.cfg.db);
        if let Some(u) = &self.cfg.username {
            redis_info = redis_info.set_username(u);
        }
        if let Some(p) = &self.cfg.password {
            redis_info = redis_info.set_password(p);
        }
        let Some(tls) = &self.cfg.tls else {
            return Ok(ConnectionAddr::Tcp(host.to_owned(), port)
                .into_connection_info()?
                .set_redis_settings(redis_info)
                .set_tcp_settings(tcp_settings()));
        };
        // rustls needs a process-wide crypto provider; the binary installs ring at start-up,
        // this covers library users (tests) that did not.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let fragment = if tls.insecure_skip_verify {
            "#insecure"
        } else {
            ""
        };
        Ok(format!("rediss://{host}:{port}/{fragment}")
            .as_str()
            .into_connection_info()?
            .set_redis_settings(redis_info)
            .set_tcp_settings(tcp_settings()))
    }

    /// The CA and client certificates to use instead of the defaults, if any were given.
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        let tls = self.cfg.tls.as_ref()?;
        if tls.ca_cert.is_none() && tls.client.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: tls
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: tls.ca_cert.clone(),
        })
    }

    /// A `redis::Client` for the configured server (no I/O).
    fn client(&self) -> RedisResult<redis::Client> {
        let info = self.connection_info(&self.cfg.host, self.cfg.port)?;
        match self.certificates() {
            None => redis::Client::open(info),
            Some(certs) => redis::Client::build_with_tls(info, certs),
        }
    }

    /// A new dedicated RESP2 pub/sub connection (SUBSCRIBE/PUBLISH notifications), bounded by
    /// `dialTimeout + readTimeout`. It does not reconnect by itself.
    pub async fn pubsub_connection(&self) -> Result<redis::aio::PubSub> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if self.cfg.is_cluster() {
            return Err(self.err(Error::invalid(
                "a pub/sub connection to a Redis Cluster is not supported",
            )));
        }
        let client = self.client().map_err(|e| self.map_err(&e))?;
        tokio::time::timeout(self.cfg.call_timeout(), client.get_async_pubsub())
            .await
            .map_err(|_| self.timeout_err("pubsub connect"))?
            .map_err(|e| self.map_err(&e))
    }

    /// Runs `f` on a connection, bounded by `dialTimeout + readTimeout`; maps Redis errors to
    /// contract errors (connection problems are unavailable, the rest internal).
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
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

    /// Once a write of `key` was acknowledged by its master, waits (Redis `WAIT`, at most
    /// three quarters of `readTimeout`) until `replicas` replicas of that server hold it; `0` returns at once.
    /// Replication is asynchronous, so without this a write acknowledged just before its
    /// master fails over can be lost.
    ///
    /// # Errors
    /// Unavailable when fewer replicas confirmed in time, naming how many did (the write stays
    /// applied on the master and may still reach them), or when the server cannot be reached.
    pub async fn wait_replicas(&self, key: &[u8], replicas: usize) -> Result<()> {
        if replicas == 0 {
            return Ok(());
        }
        // WAIT answers when its timeout ends; leave a quarter of the response timeout for
        // that answer to arrive.
        let timeout_ms = u64::try_from(self.cfg.read_timeout.as_millis() * 3 / 4)
            .unwrap_or(u64::MAX)
            .max(1);
        let got = self
            .call("wait for replicas", |mut c| async move {
                c.wait_replicas(key, replicas, timeout_ms).await
            })
            .await?;
        if got >= replicas {
            return Ok(());
        }
        Err(self.err(Error::unavailable(format!(
            "the write of key '{}' reached {got} of the {replicas} replicas asked for within \
             {timeout_ms} ms (WAIT); it is applied on the master but may be lost if that fails \
             over",
            String::from_utf8_lossy(key)
        ))))
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
