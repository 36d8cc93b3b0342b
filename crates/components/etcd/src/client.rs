//! [`EtcdClient`]: the connection of one etcd component.

use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use layotto_core::{Error, Health, Result};

use crate::config::{EtcdConfig, PASSWORD_KEY, USERNAME_KEY};

/// An etcd client shared by one component, connected in `init`.
///
/// The underlying gRPC channel reconnects by itself; every call is bounded by the configured
/// `dialTimeout`, so an unreachable cluster fails calls with
/// [`layotto_core::ErrorKind::Unavailable`] instead of hanging.
pub struct EtcdClient {
    /// What to call the component in errors, e.g. `lock store 'etcd'`.
    pub(crate) label: String,
    cfg: EtcdConfig,
    client: RwLock<Option<Client>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("label", &self.label)
            .field("cfg", &self.cfg)
            .field("connected", &self.current().is_some())
            .finish()
    }
}

impl EtcdClient {
    /// A client for `cfg` (no I/O); `label` prefixes every error message.
    pub fn new(label: String, cfg: EtcdConfig) -> Self {
        Self {
            label,
            cfg,
            client: RwLock::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EtcdConfig {
        &self.cfg
    }

    fn current(&self) -> Option<Client> {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Prefixes `e` with the component label.
    pub fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    fn options(&self) -> ConnectOptions {
        let d = self.cfg.dial_timeout;
        let mut o = ConnectOptions::new()
            .with_connect_timeout(d)
            .with_keep_alive(Duration::from_secs(10), d)
            .with_keep_alive_while_idle(true)
            .with_auto_token_refresh(true);
        if let Some((u, p)) = &self.cfg.user {
            o = o.with_user(u.clone(), p.clone());
        }
        if let Some(tls) = &self.cfg.tls {
            // rustls needs a process-wide crypto provider; the binary installs ring at start-up,
            // this covers library users (tests) that did not.
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca));
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(Identity::from_pem(cert, key));
            }
            o = o.with_tls(t);
        }
        o
    }

    /// Connects and makes one round trip (idempotent). Errors: unavailable when no endpoint
    /// answers within `dialTimeout`; permission denied naming `username`/`password` when etcd
    /// refuses the credentials.
    pub async fn connect(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if self.current().is_some() {
            return Ok(());
        }
        let what = format!("connect (metadata '{}')", self.cfg.endpoints_key);
        let connect = Client::connect(self.cfg.endpoints.clone(), Some(self.options()));
        let client = tokio::time::timeout(self.cfg.dial_timeout, connect)
            .await
            .map_err(|_| self.timeout_err(&what))?
            .map_err(|e| self.map_err(&e).context(&what))?;
        let mut probe = client.clone();
        tokio::time::timeout(self.cfg.dial_timeout, probe.status())
            .await
            .map_err(|_| self.timeout_err(&what))?
            .map_err(|e| self.map_err(&e).context(&what))?;
        let mut slot = self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_err());
        }
        if slot.is_none() {
            *slot = Some(client);
        }
        Ok(())
    }

    /// Drops the client; later calls fail as unavailable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Whether [`EtcdClient::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn closed_err(&self) -> Error {
        self.err(Error::unavailable("the component is closed"))
    }

    /// The connected client. Errors: unavailable before `init` succeeded or after `close`.
    pub fn client(&self) -> Result<Client> {
        self.current().ok_or_else(|| {
            if self.is_closed() {
                self.closed_err()
            } else {
                self.err(Error::unavailable(
                    "not connected to etcd (init has not succeeded)",
                ))
            }
        })
    }

    /// Runs `f` on the client, bounded by `dialTimeout`; maps etcd errors to contract errors
    /// (connection problems are unavailable, refused credentials permission denied, the rest
    /// internal), each naming `what`.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = self.client()?;
        match tokio::time::timeout(self.cfg.dial_timeout, f(client)).await {
            Err(_) => Err(self.timeout_err(what)),
            Ok(r) => r.map_err(|e| self.map_err(&e).context(what)),
        }
    }

    /// A real round trip (the maintenance `Status` call).
    pub async fn health(&self) -> Health {
        match self
            .call("status", |mut c| async move { c.status().await })
            .await
        {
            Ok(_) => Health::up(),
            Err(e) => Health::down(e.message),
        }
    }

    /// Unavailable: `what` got no answer within `dialTimeout`.
    pub(crate) fn timeout_err(&self, what: &str) -> Error {
        self.err(Error::no_answer(
            what,
            format_args!("etcd at {}", self.cfg.endpoints.join(";")),
            self.cfg.dial_timeout,
        ))
    }

    /// The contract error of an etcd client error.
    pub(crate) fn map_err(&self, e: &etcd_client::Error) -> Error {
        use etcd_client::Error as E;
        let at = self.cfg.endpoints.join(";");
        let msg = format!("etcd at {at}: {e}");
        let credentials = || {
            Error::permission_denied(format!(
                "{msg} (check metadata '{USERNAME_KEY}' and '{PASSWORD_KEY}')"
            ))
        };
        self.err(match e {
            // gRPC status codes by number: this crate stays off the transport crates.
            E::GRpcStatus(s) => match s.code() as i32 {
                grpc::CANCELLED
                | grpc::UNKNOWN
                | grpc::DEADLINE_EXCEEDED
                | grpc::RESOURCE_EXHAUSTED
                | grpc::ABORTED
                | grpc::UNAVAILABLE => Error::unavailable(msg),
                grpc::UNAUTHENTICATED | grpc::PERMISSION_DENIED => credentials(),
                grpc::INVALID_ARGUMENT if s.message().contains("authentication failed") => {
                    credentials()
                }
                _ => Error::internal(msg),
            },
            E::TransportError(_) | E::IoError(_) | E::EndpointError(_) => Error::unavailable(msg),
            _ => Error::internal(msg),
        })
    }
}

/// The gRPC status codes etcd errors are told apart by (`grpc/grpc:doc/statuscodes.md`).
mod grpc {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// Runs `fut` in the background, logging its error: best-effort clean-ups (revoking a lease
/// nobody needs) that must not delay the caller.
pub(crate) fn spawn_cleanup<F>(what: &'static str, fut: F)
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            tracing::debug!(error = %e, "{what} failed");
        }
    });
}
