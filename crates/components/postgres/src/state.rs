//! Dapr's `state.postgresql` state store in daprd's table layouts (components-contrib
//! `state/postgresql/v1`, `v2` and `common/component/postgresql`, Dapr 1.14), so a daprd on
//! the same database reads and writes the same rows. `spec.version` picks the layout; `v1` is
//! the default, as in daprd.
//!
//! # v1 (`tableName`, default `state`)
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS state (
//!   key text NOT NULL PRIMARY KEY,         -- the key as the runtime prefixes it: appid||key
//!   value jsonb NOT NULL,                  -- the JSON value, or a JSON string of base64
//!   isbinary boolean NOT NULL,             -- whether value holds base64 of raw bytes
//!   insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
//!   updatedate TIMESTAMP WITH TIME ZONE NULL);
//! ALTER TABLE state ADD expiredate TIMESTAMP WITH TIME ZONE;   -- migration 2
//! ```
//!
//! The ETag is the row's `xmin` (the id of the transaction that wrote it) in decimal; an ETag
//! that is no 32-bit number is a mismatch, as every wrong ETag is here (daprd answers
//! `InvalidArgument`, HTTP 400). A value written with
//! request metadata `contentType: application/json` (what Dapr's HTTP API writes) that parses
//! as JSON is stored as that JSON (read back as PostgreSQL prints jsonb: keys reordered, `": "`
//! separators); any other value as a JSON string of its base64 with `isbinary` true.
//!
//! # v2 (`tablePrefix` + `state`)
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS state (
//!   key text NOT NULL PRIMARY KEY, value bytea NOT NULL,
//!   etag uuid NOT NULL DEFAULT gen_random_uuid(),
//!   created_at timestamp with time zone NOT NULL DEFAULT now(),
//!   updated_at timestamp with time zone, expires_at timestamp with time zone);
//! CREATE INDEX ON state (expires_at);
//! ```
//!
//! Values are the bytes as given; the ETag is a fresh UUID on every write, and an ETag that is
//! no UUID is a mismatch, as in daprd. v1 and v2 default to the same table name: point them at
//! different tables (`tableName`, `tablePrefix`) on one database.
//!
//! # Both
//!
//! Tables are made by daprd's migrations, recorded in `metadataTableName` (default
//! `dapr_metadata`: key `migrations` for v1, `migrations-state-v2-<tablePrefix>` for v2) under
//! daprd's lock row, so a daprd and a sidecar starting together migrate once. A write with an
//! ETag is one `UPDATE` of a live row; none updated is an ETag mismatch. A write without one
//! is daprd's upsert; with first-write it only replaces an expired row, and a live row makes it
//! a mismatch (daprd answers a plain error there). `ttlInSeconds` sets the expiry (0 or -1:
//! none); expired rows are never read, and every `cleanupInterval` (default 1 h; 0 turns it
//! off) one sidecar, chosen by daprd's `last-cleanup` claim in the metadata table, deletes
//! them. Reads report `ttlExpireTime`. Transactions run in one PostgreSQL transaction, rolled
//! back at the first failure.
//!
//! Keys: `connectionString` (alias `url`; see [`crate::client::parse_connection_string`]) and
//! the individual `host`, `hostaddr`, `port`, `database`, `user`, `password`, `sslRootCert`
//! over it ([`crate::client::connection`]),
//! `tableName` (v1, may be `schema.table`), `tablePrefix` (v2), `metadataTableName`,
//! `timeout` (alias `timeoutInSeconds`; Go duration or seconds, default 20 s, at least 1 s),
//! `cleanupInterval` (alias `cleanupIntervalInSeconds`), `maxConns`. `queryExecMode` and
//! `connectionMaxIdleTime` are accepted without effect; `useAzureAD` and `useAWSIAM` are
//! refused as not supported.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use layotto_core::metadata::{decode, parse_duration, spec_error};
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateStore, TTL_EXPIRE_TIME_KEY,
    TransactionOp, parse_ttl, rfc3339,
};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, Error, ErrorKind, Feature, Health, Metadata,
    Result,
};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::client::{ConnectionOverrides, DEFAULT_MAX_CONNECTIONS, PgClient, PgConfig, connection};

/// daprd's default v1 table.
pub const DEFAULT_TABLE: &str = "state";
/// daprd's default metadata table.
pub const DEFAULT_METADATA_TABLE: &str = "dapr_metadata";
/// daprd's default bound of every call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// daprd's default interval between removals of expired rows.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);
/// The request metadata key naming the value's media type.
const CONTENT_TYPE_KEY: &str = "contentType";

/// Metadata of [`PgStateStore`] (Dapr's keys; see the module documentation).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PgStateMetadata {
    /// `connectionString` (alias `url`).
    #[serde(alias = "url")]
    pub connection_string: Option<String>,
    /// `host`: overrides the connection string's host. (These seven keys are read through
    /// [`ConnectionOverrides`].)
    pub host: Option<String>,
    /// `hostaddr`: the host's address (used when `host` is not given).
    pub hostaddr: Option<String>,
    /// `port`.
    pub port: Option<String>,
    /// `database`.
    pub database: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `sslRootCert`: the CA file.
    pub ssl_root_cert: Option<String>,
    /// `tableName` (v1; default `state`).
    pub table_name: Option<String>,
    /// `tablePrefix` (v2; default empty).
    pub table_prefix: Option<String>,
    /// `metadataTableName` (default `dapr_metadata`).
    pub metadata_table_name: Option<String>,
    /// `timeout` (alias `timeoutInSeconds`): Go duration or seconds.
    #[serde(alias = "timeoutInSeconds")]
    pub timeout: Option<String>,
    /// `cleanupInterval` (alias `cleanupIntervalInSeconds`): Go duration or seconds; 0 or less
    /// turns the removal of expired rows off.
    #[serde(alias = "cleanupIntervalInSeconds")]
    pub cleanup_interval: Option<String>,
    /// `maxConns`: the pool size when above 1.
    pub max_conns: Option<String>,
    /// `useAzureAD` (not supported).
    #[serde(rename = "useAzureAD")]
    pub use_azure_ad: Option<String>,
    /// `useAWSIAM` (not supported).
    #[serde(rename = "useAWSIAM")]
    pub use_aws_iam: Option<String>,
}

impl ComponentMetadata for PgStateMetadata {
    const NO_EFFECT: &'static [&'static str] = &["queryExecMode", "connectionMaxIdleTime"];
    const VERSIONS: &'static [&'static str] = &["v1", "v2"];
}

/// The table layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    V1,
    V2,
}

/// The SQL of one table layout.
#[derive(Debug)]
struct Sql {
    layout: Layout,
    table: String,
    meta: String,
    migration_key: String,
    migrations: Vec<String>,
    get: String,
    upsert: String,
    update: String,
    delete: String,
    delete_etag: String,
    gc_claim: String,
    gc_delete: String,
}

impl Sql {
    fn new(layout: Layout, table: &str, meta: &str, prefix: &str) -> Self {
        match layout {
            Layout::V1 => Self {
                layout,
                table: table.to_owned(),
                meta: meta.to_owned(),
                migration_key: "migrations".to_owned(),
                migrations: vec![
                    format!(
                        "CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, \
                         value jsonb NOT NULL, isbinary boolean NOT NULL, insertdate TIMESTAMP \
                         WITH TIME ZONE NOT NULL DEFAULT NOW(), updatedate TIMESTAMP WITH TIME \
                         ZONE NULL)"
                    ),
                    format!("ALTER TABLE {table} ADD expiredate TIMESTAMP WITH TIME ZONE"),
                ],
                get: format!(
                    "SELECT value::text, isbinary, xmin::text, \
                     EXTRACT(EPOCH FROM expiredate)::bigint FROM {table} WHERE key = $1 AND \
                     (expiredate IS NULL OR expiredate >= CURRENT_TIMESTAMP)"
                ),
                upsert: format!(
                    "INSERT INTO {table} AS t (key, value, isbinary, expiredate) VALUES ($1, \
                     $2::jsonb, $3, {{ttl}}) ON CONFLICT (key) DO UPDATE SET value = \
                     excluded.value, isbinary = excluded.isbinary, updatedate = \
                     CURRENT_TIMESTAMP, expiredate = {{ttl}}{{where}}"
                ),
                update: format!(
                    "UPDATE {table} SET value = $2::jsonb, isbinary = $3, updatedate = \
                     CURRENT_TIMESTAMP, expiredate = {{ttl}} WHERE key = $1 AND xmin::text = $4 \
                     AND (expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)"
                ),
                delete: format!("DELETE FROM {table} WHERE key = $1"),
                delete_etag: format!("DELETE FROM {table} WHERE key = $1 AND xmin::text = $2"),
                gc_claim: gc_claim(meta, "last-cleanup"),
                gc_delete: format!(
                    "DELETE FROM {table} WHERE expiredate IS NOT NULL AND expiredate < now()"
                ),
            },
            Layout::V2 => {
                let gc_key = format!("last-cleanup-state-v2-{prefix}");
                Self {
                    layout,
                    table: table.to_owned(),
                    meta: meta.to_owned(),
                    migration_key: format!("migrations-state-v2-{prefix}"),
                    migrations: vec![format!(
                        "CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, \
                         value bytea NOT NULL, etag uuid NOT NULL DEFAULT gen_random_uuid(), \
                         created_at timestamp with time zone NOT NULL DEFAULT now(), updated_at \
                         timestamp with time zone, expires_at timestamp with time zone); CREATE \
                         INDEX ON {table} (expires_at);"
                    )],
                    get: format!(
                        "SELECT value, etag::text, EXTRACT(EPOCH FROM expires_at)::bigint FROM \
                         {table} WHERE key = $1 AND (expires_at IS NULL OR expires_at >= now())"
                    ),
                    upsert: format!(
                        "INSERT INTO {table} AS t (key, value, etag, expires_at) VALUES ($1, $2, \
                         gen_random_uuid(), {{ttl}}) ON CONFLICT (key) DO UPDATE SET value = $2, \
                         updated_at = now(), etag = gen_random_uuid(), expires_at = \
                         {{ttl}}{{where}}"
                    ),
                    update: format!(
                        "UPDATE {table} SET value = $2, updated_at = now(), etag = \
                         gen_random_uuid(), expires_at = {{ttl}} WHERE key = $1 AND etag = \
                         $3::uuid AND (expires_at IS NULL OR expires_at >= now())"
                    ),
                    delete: format!("DELETE FROM {table} WHERE key = $1"),
                    delete_etag: format!("DELETE FROM {table} WHERE key = $1 AND etag = $2::uuid"),
                    gc_claim: gc_claim(meta, &gc_key),
                    gc_delete: format!(
                        "DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at < now()"
                    ),
                }
            }
        }
    }

    /// The upsert of a write without ETag, with the expiry `ttl` (SQL) and, for first-write,
    /// the condition that only an expired row is replaced.
    fn upsert(&self, ttl: &str, first_write: bool) -> String {
        let expiry = match self.layout {
            Layout::V1 => "t.expiredate",
            Layout::V2 => "t.expires_at",
        };
        let cond = if first_write {
            format!(" WHERE ({expiry} IS NOT NULL AND {expiry} < CURRENT_TIMESTAMP)")
        } else {
            String::new()
        };
        self.upsert.replace("{ttl}", ttl).replace("{where}", &cond)
    }

    /// The expiry of `ttlInSeconds` (a validated integer, spliced as daprd does).
    fn ttl(&self, metadata: &Metadata) -> Result<String> {
        let now = match self.layout {
            Layout::V1 => "CURRENT_TIMESTAMP",
            Layout::V2 => "now()",
        };
        Ok(match parse_ttl(metadata)? {
            Some(d) if !d.is_zero() => format!("{now} + interval '{} seconds'", d.as_secs()),
            _ => "NULL".to_owned(),
        })
    }
}

/// daprd's claim of the next removal of expired rows (`commonsql` garbage collector).
fn gc_claim(meta: &str, key: &str) -> String {
    format!(
        "INSERT INTO {meta} (key, value) VALUES ('{key}', now()::text) ON CONFLICT (key) DO \
         UPDATE SET value = now()::text WHERE (EXTRACT('epoch' FROM now() - \
         {meta}.value::timestamp with time zone) * 1000)::bigint > $1"
    )
}

/// Whether `name` is a table name daprd's SQL can carry unquoted: `[schema.]table`, each an
/// identifier of letters, digits and `_` not starting with a digit.
fn check_table(name: &str) -> std::result::Result<(), String> {
    let ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with(|c: char| c.is_ascii_digit())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| ok(p)) {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a table name ([schema.]table of letters, digits and '_')"
        ))
    }
}

/// A Go duration or a number of seconds (daprd's metadata decoding).
fn duration(raw: &str) -> Option<Duration> {
    parse_duration(raw, Duration::from_secs)
}

/// Dapr's PostgreSQL state store (type `state.postgresql`). See the module documentation.
#[derive(Debug)]
pub struct PgStateStore {
    client: Arc<PgClient>,
    sql: Arc<Sql>,
    cleanup_interval: Option<Duration>,
    cleaner: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PgStateStore {
    /// Factory: [`PgStateMetadata`]; `spec.version` `v2` for the v2 layout. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: PgStateMetadata = decode(spec)?;
        let layout = if spec.version == "v2" {
            Layout::V2
        } else {
            Layout::V1
        };
        for (key, v) in [
            ("useAzureAD", &meta.use_azure_ad),
            ("useAWSIAM", &meta.use_aws_iam),
        ] {
            if v.as_deref().is_some_and(|v| v.trim() == "true") {
                return Err(spec_error(
                    spec,
                    format!("metadata '{key}': cloud identity authentication is not supported"),
                ));
            }
        }
        // The individual connection keys, declared in the metadata struct above.
        let overrides: ConnectionOverrides = decode(spec)?;
        let (options, endpoint) = connection(meta.connection_string.as_deref(), &overrides)
            .map_err(|e| spec_error(spec, e))?;
        let timeout = match meta.timeout.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_TIMEOUT,
            Some(raw) => duration(raw)
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    spec_error(
                        spec,
                        format!(
                            "metadata 'timeout': expected a duration of at least 1s, got '{raw}'"
                        ),
                    )
                })?,
        };
        let cleanup_interval =
            match meta.cleanup_interval.as_deref().map(str::trim) {
                None | Some("") => Some(DEFAULT_CLEANUP_INTERVAL),
                Some(raw) => {
                    let d = duration(raw)
                    .or_else(|| raw.parse::<i64>().ok().filter(|n| *n <= 0).map(|_| Duration::ZERO))
                    .ok_or_else(|| {
                        spec_error(
                            spec,
                            format!(
                                "metadata 'cleanupInterval': expected a duration such as 1h or a \
                                 number of seconds, got '{raw}'"
                            ),
                        )
                    })?;
                    if d > Duration::from_secs(365 * 24 * 3600) {
                        return Err(spec_error(
                            spec,
                            format!("metadata 'cleanupInterval': '{raw}' is longer than a year"),
                        ));
                    }
                    (!d.is_zero()).then_some(d)
                }
            };
        let max_connections = match meta.max_conns.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_MAX_CONNECTIONS,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if n > 1 => n,
                Ok(_) => DEFAULT_MAX_CONNECTIONS,
                Err(_) => {
                    return Err(spec_error(
                        spec,
                        format!("metadata 'maxConns': expected a whole number, got '{raw}'"),
                    ));
                }
            },
        };
        fn pick(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let meta_table = pick(&meta.metadata_table_name).unwrap_or(DEFAULT_METADATA_TABLE);
        check_table(meta_table)
            .map_err(|why| spec_error(spec, format!("metadata 'metadataTableName': {why}")))?;
        let prefix = pick(&meta.table_prefix).unwrap_or_default();
        let table = match layout {
            Layout::V1 => {
                if !prefix.is_empty() {
                    return Err(spec_error(
                        spec,
                        "metadata 'tablePrefix' belongs to version v2; v1 takes 'tableName'",
                    ));
                }
                pick(&meta.table_name).unwrap_or(DEFAULT_TABLE).to_owned()
            }
            Layout::V2 => {
                if pick(&meta.table_name).is_some() {
                    return Err(spec_error(
                        spec,
                        "metadata 'tableName' belongs to version v1; v2 takes 'tablePrefix'",
                    ));
                }
                format!("{prefix}state")
            }
        };
        check_table(&table).map_err(|why| spec_error(spec, format!("the state table: {why}")))?;
        let cfg = PgConfig {
            options,
            endpoint,
            timeout,
            max_connections,
        };
        Ok(Self {
            sql: Arc::new(Sql::new(layout, &table, meta_table, prefix)),
            client: Arc::new(PgClient::new(format!("state store '{}'", spec.name), cfg)),
            cleanup_interval,
            cleaner: Mutex::new(None),
        })
    }

    /// The state table.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(self.client.err(Error::empty_field("key")));
        }
        Ok(())
    }

    fn mismatch(&self, key: &str) -> Error {
        self.client.err(Error::new(
            ErrorKind::EtagMismatch,
            format!("possible etag mismatch for key '{key}': no live row matches the key and ETag"),
        ))
    }

    /// The ETag as the layout compares it: v1 a 32-bit number, v2 a UUID; `None` for one of
    /// another shape, which no row can match.
    fn etag(&self, etag: &str) -> Option<String> {
        match self.sql.layout {
            Layout::V1 => etag.parse::<u32>().ok().map(|n| n.to_string()),
            Layout::V2 => uuid::Uuid::parse_str(etag).ok().map(|u| u.to_string()),
        }
    }

    /// Runs daprd's migrations under its lock row.
    async fn migrate(&self) -> Result<()> {
        let sql = self.sql.clone();
        self.client
            .call("migrate the state tables", |p| async move {
                let create_meta = format!(
                    "CREATE TABLE IF NOT EXISTS {} (key text NOT NULL PRIMARY KEY, value text NOT NULL)",
                    sql.meta
                );
                for attempt in 0.. {
                    match sqlx::raw_sql(AssertSqlSafe(create_meta.clone())).execute(&p).await {
                        Err(e) if attempt < 3 && crate::client::sqlstate(&e).as_deref() == Some("23505") => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        r => {
                            r?;
                            break;
                        }
                    }
                }
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {} (key, value) VALUES ('lock', 'lock') ON CONFLICT (key) DO NOTHING",
                    sql.meta
                )))
                .execute(&p)
                .await?;
                let mut lock = p.begin().await?;
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT value FROM {} WHERE key = 'lock' FOR UPDATE",
                    sql.meta
                )))
                .execute(&mut *lock)
                .await?;
                let level: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT value FROM {} WHERE key = $1",
                    sql.meta
                )))
                .bind(&sql.migration_key)
                .fetch_optional(&p)
                .await?;
                let level: usize = level.and_then(|l| l.trim().parse().ok()).unwrap_or(0);
                for (i, m) in sql.migrations.iter().enumerate().skip(level) {
                    match sqlx::raw_sql(AssertSqlSafe(m.clone())).execute(&p).await {
                        Err(e) if crate::client::sqlstate(&e).as_deref() == Some("23505") => {}
                        r => {
                            r?;
                        }
                    }
                    sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE \
                         SET value = $2",
                        sql.meta
                    )))
                    .bind(&sql.migration_key)
                    .bind((i + 1).to_string())
                    .execute(&p)
                    .await?;
                }
                lock.rollback().await
            })
            .await
    }

    /// Removes expired rows when this sidecar wins daprd's claim.
    async fn cleanup(client: &PgClient, sql: &Sql, interval: Duration) -> Result<u64> {
        let (claim, delete) = (sql.gc_claim.clone(), sql.gc_delete.clone());
        let millis = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX) - 100;
        client
            .call("remove expired rows", |p| async move {
                let won = sqlx::query(AssertSqlSafe(claim))
                    .bind(millis)
                    .execute(&p)
                    .await?
                    .rows_affected();
                if won == 0 {
                    return Ok(0);
                }
                Ok(sqlx::query(AssertSqlSafe(delete))
                    .execute(&p)
                    .await?
                    .rows_affected())
            })
            .await
    }

    /// One write on `conn`.
    async fn write(&self, conn: &mut PgConnection, req: &SetRequest) -> Result<Write> {
        self.check_key(&req.key)?;
        let ttl = self.sql.ttl(&req.metadata).map_err(|e| {
            self.client
                .err(e.context(format_args!("key '{}'", req.key)))
        })?;
        let etag = match req.etag_to_check() {
            Some(e) => match self.etag(e) {
                Some(e) => Some(e),
                None => return Ok(Write::Mismatch),
            },
            None => None,
        };
        let first_write = req.options.concurrency == Concurrency::FirstWrite;
        let r = match self.sql.layout {
            Layout::V1 => {
                let (value, binary) = encode_v1(&req.value, &req.metadata);
                match &etag {
                    Some(e) => {
                        sqlx::query(AssertSqlSafe(self.sql.update.replace("{ttl}", &ttl)))
                            .bind(&req.key)
                            .bind(value)
                            .bind(binary)
                            .bind(e)
                            .execute(&mut *conn)
                            .await
                    }
                    None => {
                        sqlx::query(AssertSqlSafe(self.sql.upsert(&ttl, first_write)))
                            .bind(&req.key)
                            .bind(value)
                            .bind(binary)
                            .execute(&mut *conn)
                            .await
                    }
                }
            }
            Layout::V2 => match &etag {
                Some(e) => {
                    sqlx::query(AssertSqlSafe(self.sql.update.replace("{ttl}", &ttl)))
                        .bind(&req.key)
                        .bind(req.value.as_ref())
                        .bind(e)
                        .execute(&mut *conn)
                        .await
                }
                None => {
                    sqlx::query(AssertSqlSafe(self.sql.upsert(&ttl, first_write)))
                        .bind(&req.key)
                        .bind(req.value.as_ref())
                        .execute(&mut *conn)
                        .await
                }
            },
        };
        let n = r
            .map_err(|e| {
                self.client
                    .map_err(&e)
                    .context(format_args!("set '{}'", req.key))
            })?
            .rows_affected();
        Ok(if n == 1 { Write::Done } else { Write::Mismatch })
    }

    /// One delete on `conn`.
    async fn remove(&self, conn: &mut PgConnection, req: &DeleteRequest) -> Result<Write> {
        self.check_key(&req.key)?;
        let r = match req.etag_to_check() {
            None => sqlx::query(AssertSqlSafe(self.sql.delete.clone()))
                .bind(&req.key)
                .execute(&mut *conn)
                .await
                .map(|_| Write::Done),
            Some(e) => {
                let Some(e) = self.etag(e) else {
                    return Ok(Write::Mismatch);
                };
                sqlx::query(AssertSqlSafe(self.sql.delete_etag.clone()))
                    .bind(&req.key)
                    .bind(e)
                    .execute(&mut *conn)
                    .await
                    .map(|r| {
                        if r.rows_affected() == 1 {
                            Write::Done
                        } else {
                            Write::Mismatch
                        }
                    })
            }
        };
        r.map_err(|e| {
            self.client
                .map_err(&e)
                .context(format_args!("delete '{}'", req.key))
        })
    }
}

/// The `value` and `isbinary` columns of a v1 row (see the module documentation).
fn encode_v1(value: &[u8], metadata: &Metadata) -> (String, bool) {
    let json = metadata
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(CONTENT_TYPE_KEY) && v == "application/json");
    if json
        && let Ok(text) = std::str::from_utf8(value)
        && serde_json::from_str::<serde_json::Value>(text).is_ok()
    {
        return (text.to_owned(), false);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    (serde_json::Value::String(b64).to_string(), true)
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Done,
    Mismatch,
}

#[async_trait]
impl Component for PgStateStore {
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        self.migrate().await?;
        if let Some(every) = self.cleanup_interval {
            let (client, sql) = (self.client.clone(), self.sql.clone());
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tick.tick().await;
                    match Self::cleanup(&client, &sql, every).await {
                        Ok(n) if n > 0 => tracing::debug!(rows = n, "removed expired state rows"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("removing expired state rows: {e}"),
                    }
                }
            });
            if let Some(old) = self
                .cleaner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .replace(task)
            {
                old.abort();
            }
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    async fn close(&self) -> Result<()> {
        if let Some(t) = self
            .cleaner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        self.client.close().await;
        Ok(())
    }

    fn features(&self) -> &'static [Feature] {
        match self.sql.layout {
            Layout::V1 => &[
                Feature::Etag,
                Feature::Transactional,
                Feature::Ttl,
                Feature::QueryApi,
            ],
            // daprd's v2 has no query API either.
            Layout::V2 => &[Feature::Etag, Feature::Transactional, Feature::Ttl],
        }
    }
}

#[async_trait]
impl StateStore for PgStateStore {
    async fn query(
        &self,
        query: &layotto_core::query::Query,
    ) -> Result<layotto_core::query::QueryResponse> {
        use crate::query::Param;
        if self.sql.layout == Layout::V2 {
            return Err(self.client.err(Error::unsupported(
                "the v2 layout has no query API (as in daprd); use version v1",
            )));
        }
        let built = crate::query::build(&self.sql.table, query);
        let rows = self
            .client
            .call("query", |p| async move {
                let mut q = sqlx::query(AssertSqlSafe(built.sql));
                for param in built.params {
                    q = match param {
                        Param::Text(t) => q.bind(t),
                        Param::Path(parts) => q.bind(parts),
                        Param::Number(n) => q.bind(n),
                    };
                }
                q.fetch_all(&p).await
            })
            .await?;
        let mut results = Vec::with_capacity(rows.len());
        for row in rows {
            let bad = |e: sqlx::Error| {
                self.client
                    .err(Error::internal(format!("query: unreadable row: {e}")))
            };
            let key: String = row.try_get(0).map_err(bad)?;
            let data: String = row.try_get(1).map_err(bad)?;
            let etag: String = row.try_get(2).map_err(bad)?;
            results.push(layotto_core::query::QueryItem {
                key,
                data: Bytes::from(data),
                etag: Some(etag),
            });
        }
        Ok(layotto_core::query::QueryResponse {
            token: query.next_token(results.len()),
            results,
        })
    }

    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Option<StateItem>> {
        self.check_key(key)?;
        let (sql, k) = (self.sql.get.clone(), key.to_owned());
        let row = self
            .client
            .call("get", |p| async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(k)
                    .fetch_optional(&p)
                    .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let bad = |e: &dyn std::fmt::Display| {
            self.client
                .err(Error::internal(format!("key '{key}': unreadable row: {e}")))
        };
        let (data, etag, expires): (Bytes, String, Option<i64>) = match self.sql.layout {
            Layout::V1 => {
                let text: String = row.try_get(0).map_err(|e| bad(&e))?;
                let binary: bool = row.try_get(1).map_err(|e| bad(&e))?;
                let data = if binary {
                    let s: String = serde_json::from_str(&text).map_err(|e| bad(&e))?;
                    Bytes::from(
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .map_err(|e| bad(&e))?,
                    )
                } else {
                    Bytes::from(text)
                };
                (
                    data,
                    row.try_get(2).map_err(|e| bad(&e))?,
                    row.try_get(3).map_err(|e| bad(&e))?,
                )
            }
            Layout::V2 => {
                let data: Vec<u8> = row.try_get(0).map_err(|e| bad(&e))?;
                (
                    Bytes::from(data),
                    row.try_get(1).map_err(|e| bad(&e))?,
                    row.try_get(2).map_err(|e| bad(&e))?,
                )
            }
        };
        let mut metadata = Metadata::new();
        if let Some(secs) = expires.and_then(|s| u64::try_from(s).ok()) {
            metadata.insert(
                TTL_EXPIRE_TIME_KEY.to_owned(),
                rfc3339(UNIX_EPOCH + Duration::from_secs(secs)),
            );
        }
        Ok(Some(StateItem {
            data,
            etag: Some(etag),
            metadata,
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        let mut conn = self
            .client
            .call("connect", |p| async move { p.acquire().await })
            .await?;
        match tokio::time::timeout(self.client_timeout(), self.write(&mut conn, &req)).await {
            Err(_) => Err(self
                .client
                .err(Error::unavailable(format!("set '{}' timed out", req.key)))),
            Ok(Ok(Write::Done)) => Ok(()),
            Ok(Ok(Write::Mismatch)) => Err(self.mismatch(&req.key)),
            Ok(Err(e)) => Err(e),
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let mut conn = self
            .client
            .call("connect", |p| async move { p.acquire().await })
            .await?;
        match tokio::time::timeout(self.client_timeout(), self.remove(&mut conn, &req)).await {
            Err(_) => Err(self.client.err(Error::unavailable(format!(
                "delete '{}' timed out",
                req.key
            )))),
            Ok(Ok(Write::Done)) => Ok(()),
            Ok(Ok(Write::Mismatch)) => Err(self.mismatch(&req.key)),
            Ok(Err(e)) => Err(e),
        }
    }

    async fn transact(&self, ops: Vec<TransactionOp>, _metadata: &Metadata) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let pool = self.client.pool()?;
        let run = async {
            let mut tx = pool
                .begin()
                .await
                .map_err(|e| self.client.map_err(&e).context("begin"))?;
            for op in &ops {
                let (done, key) = match op {
                    TransactionOp::Upsert(r) => (self.write(&mut tx, r).await?, &r.key),
                    TransactionOp::Delete(r) => (self.remove(&mut tx, r).await?, &r.key),
                };
                if done == Write::Mismatch {
                    // Dropping the transaction rolls it back.
                    return Err(self.mismatch(key));
                }
            }
            tx.commit()
                .await
                .map_err(|e| self.client.map_err(&e).context("commit"))
        };
        match tokio::time::timeout(self.client_timeout(), run).await {
            Err(_) => Err(self
                .client
                .err(Error::unavailable("transaction timed out (rolled back)"))),
            Ok(r) => r,
        }
    }
}

impl PgStateStore {
    fn client_timeout(&self) -> Duration {
        self.client.timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(version: &str, pairs: &[(&str, &str)]) -> ComponentSpec {
        let mut s = ComponentSpec::new("pg", "postgresql")
            .with("connectionString", "host=127.0.0.1 user=postgres");
        s.version = version.to_owned();
        for (k, v) in pairs {
            s = s.with(*k, *v);
        }
        s
    }

    #[test]
    fn layouts_and_bad_metadata() {
        let v1 = PgStateStore::from_spec(&spec("", &[])).expect("v1");
        assert_eq!((v1.table(), v1.sql.layout), ("state", Layout::V1));
        let v2 = PgStateStore::from_spec(&spec("v2", &[("tablePrefix", "app_")])).expect("v2");
        assert_eq!((v2.table(), v2.sql.layout), ("app_state", Layout::V2));
        assert_eq!(v2.sql.migration_key, "migrations-state-v2-app_");
        let s = PgStateStore::from_spec(&spec("v1", &[("tableName", "public.orders")]))
            .expect("schema");
        assert_eq!(s.table(), "public.orders");
        for (version, pairs, why) in [
            (
                "v1",
                vec![("tableName", "x; DROP TABLE y")],
                "is not a table name",
            ),
            ("v1", vec![("tablePrefix", "p_")], "belongs to version v2"),
            ("v2", vec![("tableName", "t")], "belongs to version v1"),
            ("v1", vec![("timeout", "500ms")], "at least 1s"),
            ("v1", vec![("cleanupInterval", "soon")], "'cleanupInterval'"),
            ("v1", vec![("useAzureAD", "true")], "not supported"),
            (
                "v1",
                vec![("port", "abc")],
                "metadata 'port': 'abc' is not a port number",
            ),
            (
                "v1",
                vec![("sslRootCert", "/ca.crt")],
                "metadata 'sslRootCert'",
            ),
            (
                "v1",
                vec![("connectionString", "colour=blue")],
                "unknown connection string key",
            ),
        ] {
            let e = PgStateStore::from_spec(&spec(version, &pairs)).expect_err(why);
            assert!(e.message.contains(why), "{pairs:?}: {}", e.message);
        }
        let off = PgStateStore::from_spec(&spec("", &[("cleanupInterval", "0")])).expect("off");
        assert_eq!(off.cleanup_interval, None);
    }

    #[test]
    fn values_and_ttl_as_daprd_writes_them() {
        let json = Metadata::from([("contentType".to_owned(), "application/json".to_owned())]);
        assert_eq!(
            encode_v1(br#"{"a":1}"#, &json),
            (r#"{"a":1}"#.to_owned(), false)
        );
        assert_eq!(
            encode_v1(br#"{"a":1}"#, &Metadata::new()),
            ("\"eyJhIjoxfQ==\"".to_owned(), true)
        );
        assert!(encode_v1(b"not json", &json).1);
        let v1 = Sql::new(Layout::V1, "state", "dapr_metadata", "");
        let ttl = |n: &str| Metadata::from([("ttlInSeconds".to_owned(), n.to_owned())]);
        assert_eq!(
            v1.ttl(&ttl("30")).expect("ttl"),
            "CURRENT_TIMESTAMP + interval '30 seconds'"
        );
        assert_eq!(v1.ttl(&ttl("0")).expect("ttl"), "NULL");
        assert_eq!(v1.ttl(&ttl("-1")).expect("ttl"), "NULL");
        assert!(v1.ttl(&ttl("x")).is_err());
        assert!(
            v1.upsert("NULL", true)
                .ends_with("WHERE (t.expiredate IS NOT NULL AND t.expiredate < CURRENT_TIMESTAMP)")
        );
    }
}
