//! [`ZkClient`]: the ZooKeeper session of one component.

use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use layotto_core::{Error, Health, Result};
use zookeeper_client as zk;

use crate::config::{PASSWORD_KEY, ZkConfig};

/// One ZooKeeper session shared by every call of a component (Layotto's lock opens a session
/// per `TryLock`, and ZooKeeper refuses more than 60 connections per client address by
/// default).
///
/// The session reconnects by itself after a connection loss; a session that ended (expired,
/// closed) is replaced by a new one at the next call. Every call, connecting included, is
/// bounded by the session timeout: an unreachable server fails calls with
/// [`layotto_core::ErrorKind::Unavailable`] instead of hanging.
pub struct ZkClient {
    /// What to call the component in errors, e.g. `lock store 'zk'`.
    pub(crate) label: String,
    cfg: ZkConfig,
    current: RwLock<Option<zk::Client>>,
    connecting: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

impl std::fmt::Debug for ZkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkClient")
            .field("label", &self.label)
            .field("cfg", &self.cfg)
            .field("session", &self.session_id())
            .finish()
    }
}

/// Whether a session in `state` can serve no more calls.
fn ended(state: zk::SessionState) -> bool {
    matches!(
        state,
        zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
    )
}

impl ZkClient {
    /// A client for `cfg` (no I/O); `label` prefixes every error message.
    pub fn new(label: String, cfg: ZkConfig) -> Self {
        Self {
            label,
            cfg,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ZkConfig {
        &self.cfg
    }

    fn live(&self) -> Option<zk::Client> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .filter(|c| !ended(c.state()))
    }

    /// The id of the current session, if one is open.
    pub fn session_id(&self) -> Option<i64> {
        self.live().map(|c| c.session_id().0)
    }

    /// Prefixes `e` with the component label.
    pub fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    fn closed_err(&self) -> Error {
        self.err(Error::unavailable("the component is closed"))
    }

    /// The live session, opening a new one when there is none (or it ended).
    async fn client(&self) -> Result<zk::Client> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if let Some(c) = self.live() {
            return Ok(c);
        }
        // No `fail_eagerly`: a server still starting (or restarting) gets the whole timeout
        // of the call to accept the session.
        let mut connector = zk::Client::connector().with_session_timeout(self.cfg.session_timeout);
        if let Some(d) = &self.cfg.digest {
            connector = connector.with_auth("digest", d.as_bytes());
        }
        let client = connector
            .connect(&self.cfg.connect_string())
            .await
            .map_err(|e| {
                self.map_err(&e, &format!("connect (metadata '{}')", self.cfg.hosts_key))
            })?;
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if let Some(old) = slot.replace(client.clone()) {
            tracing::info!(
                component = %self.label,
                old = %old.session_id(),
                new = %client.session_id(),
                "ZooKeeper session replaced"
            );
        }
        Ok(client)
    }

    /// Opens the session and makes one round trip (idempotent). Errors: unavailable when no
    /// server answers within the session timeout; permission denied naming
    /// `zookeeperPassword` when the server refuses the credentials.
    pub async fn connect(&self) -> Result<()> {
        self.call("connect", |c| async move { c.check_stat("/").await })
            .await
            .map(|_| ())
    }

    /// Runs `f` on the live session (opening one if needed), the whole bounded by the session
    /// timeout; maps ZooKeeper errors to contract errors naming `what`. `f` answers the
    /// ZooKeeper errors it expects itself (a missing node...).
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(zk::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, zk::Error>>,
    {
        let run = async {
            let c = self.client().await?;
            let session = c.session_id();
            f(c).await.map_err(|e| {
                if matches!(e, zk::Error::SessionExpired | zk::Error::ClientClosed) {
                    self.drop_session(session);
                }
                self.map_err(&e, what)
            })
        };
        match tokio::time::timeout(self.cfg.session_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_err(what)),
        }
    }

    /// Forgets session `id` if it is the current one (it ended): the next call opens a new one.
    fn drop_session(&self, id: zk::SessionId) {
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|c| c.session_id() == id) {
            slot.take();
        }
    }

    /// A real round trip: `exists /`.
    pub async fn health(&self) -> Health {
        match self
            .call("health", |c| async move { c.check_stat("/").await })
            .await
        {
            Ok(_) => Health::up(),
            Err(e) => Health::down(e.message),
        }
    }

    /// Closes the session (its ephemeral nodes go with it); later calls fail as unavailable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let old = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // The session closes (`CloseSession`) when its last handle drops.
        drop(old);
    }

    /// Whether [`ZkClient::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Unavailable: `what` got no answer within the session timeout.
    pub(crate) fn timeout_err(&self, what: &str) -> Error {
        self.err(Error::no_answer(
            what,
            format_args!(
                "ZooKeeper at {} (metadata '{}')",
                self.cfg.connect_string(),
                self.cfg.hosts_key
            ),
            self.cfg.session_timeout,
        ))
    }

    /// The contract error of a ZooKeeper error.
    pub(crate) fn map_err(&self, e: &zk::Error, what: &str) -> Error {
        use zk::Error as E;
        let msg = format!("{what}: ZooKeeper at {}: {e}", self.cfg.connect_string());
        self.err(match e {
            E::NoHosts
            | E::Timeout
            | E::ConnectionLoss
            | E::SessionExpired
            | E::SessionMoved
            | E::ClientClosed
            | E::Throttled
            | E::NotReadOnly
            // The client's connection-level failures (I/O errors, "no response from
            // connection in ..."): the request may or may not have been applied.
            | E::Custom(_) => Error::unavailable(msg),
            E::NoAuth | E::AuthFailed => {
                Error::permission_denied(format!("{msg} (check metadata '{PASSWORD_KEY}')"))
            }
            E::BadArguments(_) => Error::invalid(msg),
            _ => Error::internal(msg),
        })
    }
}
