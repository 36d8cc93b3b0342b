//! [`MongoClient`]: the driver client and collection of one component.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use layotto_core::{Error, ErrorKind as Kind, Health, Result};
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::CollectionOptions;
use mongodb::{Client, Collection};

use crate::config::MongoConfig;

/// MongoDB's duplicate-key error code (an insert or upsert on an `_id` that exists).
pub const DUPLICATE_KEY: i32 = 11000;

/// The driver client of one component (its connection pool reconnects by itself) and the
/// component's collection. Created in `init` (no I/O) and checked with a `ping`. Every call,
/// connecting included, is bounded by `operationTimeout`: an unreachable server fails calls with
/// [`layotto_core::ErrorKind::Unavailable`] instead of hanging.
pub struct MongoClient {
    /// What to call the component in errors, e.g. `lock store 'm'`.
    pub(crate) label: String,
    cfg: MongoConfig,
    /// The client, the component's collection and its guard collection.
    inner: OnceLock<(Client, Collection<Document>, Collection<Document>)>,
    closed: AtomicBool,
    /// Whether read-modify-writes need a [`MongoClient::guarded`] section (the server is
    /// FerretDB, whose updates are not atomic).
    guard: AtomicBool,
}

impl std::fmt::Debug for MongoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoClient")
            .field("label", &self.label)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl MongoClient {
    /// A client for `cfg` (no I/O); `label` prefixes every error message.
    pub fn new(label: String, cfg: MongoConfig) -> Self {
        Self {
            label,
            cfg,
            inner: OnceLock::new(),
            closed: AtomicBool::new(false),
            guard: AtomicBool::new(true),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MongoConfig {
        &self.cfg
    }

    /// Prefixes `e` with the component label.
    pub fn err(&self, e: Error) -> Error {
        e.context(&self.label)
    }

    /// Creates the driver client and makes one round trip (`ping`). Idempotent.
    ///
    /// # Errors
    /// Unavailable when no server answers within `operationTimeout`; permission denied naming
    /// `username` when the server refuses the credentials.
    pub async fn connect(&self) -> Result<()> {
        if self.inner.get().is_none() {
            let opts = self.cfg.client_options().await.map_err(|e| self.err(e))?;
            let client = Client::with_options(opts).map_err(|e| self.map_err(&e, "connect"))?;
            let mut co = CollectionOptions::default();
            co.write_concern.clone_from(&self.cfg.write_concern);
            co.read_concern.clone_from(&self.cfg.read_concern);
            let db = client.database(&self.cfg.database);
            let coll = db.collection_with_options::<Document>(&self.cfg.collection, co.clone());
            // Guards live beside the data, never among it: no key can collide with one.
            let guards = db.collection_with_options::<Document>(
                &format!("{}_guards", self.cfg.collection),
                co,
            );
            let _ = self.inner.set((client, coll, guards));
        }
        let info = self
            .call("buildInfo", |_, db| async move {
                db.run_command(doc! { "buildInfo": 1 }).await
            })
            .await?;
        let ferretdb = info.contains_key("ferretdbVersion");
        self.guard.store(ferretdb, Ordering::SeqCst);
        if ferretdb {
            tracing::debug!(
                component = %self.label,
                "FerretDB: read-modify-writes run under guard documents"
            );
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.call("ping", |_, c| async move {
            c.run_command(doc! { "ping": 1 }).await.map(|_| ())
        })
        .await
    }

    /// Runs `f` on the database and collection, bounded by `operationTimeout`; maps driver
    /// errors to contract errors naming `what`. `f` answers the errors it expects itself (a
    /// duplicate key...).
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Collection<Document>, mongodb::Database) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.err(Error::unavailable("the component is closed")));
        }
        let Some((client, coll, _)) = self.inner.get() else {
            return Err(self.err(Error::unavailable("the component was not initialised")));
        };
        let db = client.database(&self.cfg.database);
        match tokio::time::timeout(self.cfg.timeout, f(coll.clone(), db)).await {
            Ok(r) => r.map_err(|e| self.map_err(&e, what)),
            Err(_) => Err(self.err(Error::no_answer(
                what,
                format_args!(
                    "MongoDB at {} (metadata '{}')",
                    self.cfg.hosts, self.cfg.host_key
                ),
                self.cfg.timeout,
            ))),
        }
    }

    /// Runs the read-modify-write `f` of document `id` so that no other guarded section of
    /// `id` overlaps it, where the server needs that.
    ///
    /// MongoDB applies each single-document update atomically, filter included, so there `f`
    /// just runs. FerretDB 1.x does not: its update matches the filter on a read, then writes
    /// the computed document by `_id` (`internal/backends/sqlite/collection.go`, `UpdateAll`),
    /// so two concurrent `$inc`s can both apply to the same value. There `f` runs while this
    /// component holds the guard document `{_id: "<id>", owner, Expire}` in the collection
    /// `<collectionName>_guards`: taken by `insertOne` (unique `_id`, atomic on FerretDB too),
    /// deleted by its owner afterwards. A guard whose holder died (or gave up) is taken over once
    /// its `Expire` (5 × `operationTimeout` + 1 s, on the holder's clock) has passed. The holder
    /// writes only within one `operationTimeout` of taking it, and a section that ends
    /// unavailable (a call timed out: the server may still be running it) or is cancelled keeps
    /// its guard until it expires rather than let another writer in early. Clocks of sidecars
    /// sharing a server are assumed to differ by less than that margin.
    ///
    /// # Errors
    /// Unavailable when the guard stays held by others for a whole `operationTimeout`; else
    /// what `f` returns.
    pub async fn guarded<T, F, Fut>(&self, what: &str, id: &str, f: F) -> Result<T>
    where
        F: FnOnce(Guard) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if !self.guard.load(Ordering::SeqCst) {
            return f(Guard { until: None }).await;
        }
        let gid = id.to_owned();
        let owner = uuid::Uuid::new_v4().to_string();
        let lifetime = self.cfg.timeout * 5 + Duration::from_secs(1);
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let expire = now_plus(lifetime);
            let fresh = doc! { "_id": &gid, "owner": &owner, "Expire": expire };
            let taken = self
                .call_guards(what, |c| async move {
                    match c.insert_one(fresh).await {
                        Ok(_) => Ok(true),
                        Err(e) if is_duplicate_key(&e) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if taken {
                break;
            }
            let g = gid.clone();
            let held = self
                .call_guards(what, |c| async move { c.find_one(doc! { "_id": g }).await })
                .await?;
            if let Some(h) = held
                && h.get_datetime("Expire")
                    .map_or(true, |e| *e <= now_plus(Duration::ZERO))
            {
                // Its holder died or gave up: take it over (only that holder's guard).
                let stale = doc! { "_id": &gid, "owner": h.get_str("owner").unwrap_or_default() };
                self.call_guards(what, |c| async move { c.delete_one(stale).await })
                    .await?;
                continue;
            }
            if started.elapsed() >= self.cfg.timeout {
                return Err(self.err(Error::unavailable(format!(
                    "{what}: '{id}' stayed busy with other writers for {:?}",
                    self.cfg.timeout
                ))));
            }
            // Backing off (1, 2, 4 ... 32 ms, plus jitter) keeps waiting writers from loading
            // the server the holder needs: FerretDB serialises writes, so a busy loop of failed
            // inserts slowed the holder enough to starve waiters past the timeout.
            attempt = (attempt + 1).min(5);
            let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
            tokio::time::sleep(Duration::from_millis((1 << attempt) + jitter)).await;
        }
        // Writes inside must land well before another component may take the guard over.
        let r = f(Guard {
            until: Some(std::time::Instant::now() + self.cfg.timeout),
        })
        .await;
        if matches!(&r, Err(e) if matches!(e.kind, Kind::Unavailable | Kind::DeadlineExceeded)) {
            // A call may still be running on the server: the guard expires by itself.
            return r;
        }
        let mine = doc! { "_id": &gid, "owner": &owner };
        if let Err(e) = self
            .call_guards(what, |c| async move { c.delete_one(mine).await })
            .await
        {
            tracing::warn!(error = %e, "guard of '{id}' not released; it expires by itself");
        }
        r
    }

    /// [`MongoClient::call`] on the guard collection.
    async fn call_guards<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Collection<Document>) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        let Some((_, _, guards)) = self.inner.get() else {
            return Err(self.err(Error::unavailable("the component was not initialised")));
        };
        let guards = guards.clone();
        self.call(what, |_, _| f(guards)).await
    }

    /// Asks for a TTL index on the date field `field` (documents expire at its value), as
    /// upstream's components do, so a real MongoDB removes expired documents. Best effort: a
    /// server without TTL indexes (FerretDB) is no error, the components check expiry
    /// themselves.
    pub async fn ttl_index(&self, field: &str) {
        let index = mongodb::IndexModel::builder()
            .keys(doc! { field: 1 })
            .options(
                mongodb::options::IndexOptions::builder()
                    .expire_after(Duration::ZERO)
                    .build(),
            )
            .build();
        if let Err(e) = self
            .call("create a TTL index", |c, _| async move {
                c.create_index(index).await
            })
            .await
        {
            tracing::debug!(error = %e, field, "no TTL index; expiry is checked in queries");
        }
    }

    /// A real round trip: `ping`.
    pub async fn health(&self) -> Health {
        match self.ping().await {
            Ok(()) => Health::up(),
            Err(e) => Health::down(e.message),
        }
    }

    /// Closes the client's connections; later calls fail as unavailable.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some((client, _, _)) = self.inner.get() {
            client.clone().shutdown().await;
        }
    }

    /// The contract error of a driver error.
    pub(crate) fn map_err(&self, e: &mongodb::error::Error, what: &str) -> Error {
        let msg = format!("{what}: MongoDB at {}: {e}", self.cfg.hosts);
        self.err(match &*e.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::Shutdown => {
                Error::unavailable(format!("{msg} (metadata '{}')", self.cfg.host_key))
            }
            ErrorKind::Authentication { .. } => {
                Error::permission_denied(format!("{msg} (check metadata 'username')"))
            }
            // Unauthorized, AuthenticationFailed.
            ErrorKind::Command(c) if c.code == 13 || c.code == 18 => {
                Error::permission_denied(format!("{msg} (check metadata 'username')"))
            }
            ErrorKind::InvalidArgument { .. } => Error::invalid(msg),
            _ => Error::internal(msg),
        })
    }
}

/// The section [`MongoClient::guarded`] runs in: writes check [`Guard::check`] first.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    until: Option<std::time::Instant>,
}

impl Guard {
    /// Fails unavailable when the guard is too close to its expiry to write safely.
    ///
    /// # Errors
    /// Unavailable, naming `what`.
    pub fn check(&self, what: &str) -> Result<()> {
        match self.until {
            Some(u) if std::time::Instant::now() >= u => Err(Error::unavailable(format!(
                "{what}: the server was too slow to finish within the guard's lifetime"
            ))),
            _ => Ok(()),
        }
    }
}

/// Whether `e` is a duplicate-key error (of an insert, or of an upsert that lost a race).
pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// The current time as a BSON date (milliseconds since the epoch), plus `after`.
pub(crate) fn now_plus(after: std::time::Duration) -> mongodb::bson::DateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = (now + after).as_millis();
    mongodb::bson::DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}
