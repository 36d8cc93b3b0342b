//! Dapr's `state.mysql` state store in Dapr's table layout (`dapr/components-contrib:
//! state/mysql/mysql.go`, Dapr 1.13/1.14), so a daprd on the same database reads and writes the
//! same rows.
//!
//! # Tables
//!
//! `init` creates the database `schemaName` (default `dapr_state_store`) when missing, then
//! the state table `tableName` (default `state`) and the metadata table `metadataTableName`
//! (default `dapr_metadata`), with daprd's DDL and column order:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS state (
//!   id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY,
//!                                           -- the key as the runtime prefixes it: appid||key
//!   value JSON NOT NULL,                    -- the JSON value, or a JSON string of base64
//!   isbinary BOOLEAN NOT NULL,              -- whether value holds base64 of raw bytes
//!   insertDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
//!   updateDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
//!   eTag VARCHAR(36) NOT NULL,              -- a fresh UUID v4 on every write
//!   expiredate TIMESTAMP NULL,              -- CURRENT_TIMESTAMP + ttlInSeconds, or NULL
//!   INDEX expiredate_idx(expiredate)
//! );
//! CREATE TABLE IF NOT EXISTS dapr_metadata (id VARCHAR(255) NOT NULL PRIMARY KEY, value TEXT NOT NULL);
//! ```
//!
//! The one difference from daprd's DDL is the `id` column's character set: daprd takes the
//! server's default, which on a `latin1` server refuses non-Latin keys and on MySQL 8 compares
//! keys case-insensitively (`A` and `a` one row); here keys are exact UTF-8 (`utf8mb4` with a
//! binary NO PAD collation: `utf8mb4_nopad_bin` on MariaDB, `utf8mb4_0900_bin` on MySQL 8, so
//! `k` and `k ` are two keys). daprd reads and writes such a table unchanged. A TTL reaching
//! past 2038-01-19 (the end of `TIMESTAMP`) is refused.
//!
//! # Values
//!
//! As daprd: a value written with request metadata `contentType: application/json` (what
//! Dapr's HTTP API writes, and Dapr's gRPC API when the client says so) that parses as JSON is
//! stored as that JSON (`isbinary` 0); any other value as a JSON string of its padded standard
//! base64 (`isbinary` 1). Reads give the stored JSON text, or the decoded bytes.
//!
//! # ETags, TTL, transactions
//!
//! A write with an ETag is one `UPDATE ... WHERE id = ? AND eTag = ?` on a live row; no row
//! updated (absent, expired, other ETag) is an ETag mismatch. First-write without an ETag
//! removes the key's expired row, then `INSERT`s: a live row makes the insert a duplicate key,
//! answered as a mismatch (daprd's single `REPLACE ... WITH` statement is MySQL-only). Other
//! writes are daprd's `REPLACE INTO`. A delete with an ETag that deletes no row is a mismatch.
//! Expired rows are never read; every `cleanupInterval` (default 1 h; 0 turns it off) one
//! sidecar, chosen by daprd's `last-cleanup` row in the metadata table, deletes them.
//! Transactions run in one MySQL transaction, rolled back at the first failure (or when the
//! call is cut short by `timeoutInSeconds`).
//!
//! Keys: `connectionString` (a Go driver DSN such as `user:pass@tcp(host:3306)/`, as Dapr's
//! docs show it; the database comes from `schemaName`), `schemaName`, `tableName`,
//! `metadataTableName`, `timeoutInSeconds` (default 20), `cleanupInterval` (Go duration or
//! seconds). `pemPath` (TLS) is refused as not supported yet. Layotto's `mysqlHost`,
//! `userName`, `password` are read too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use layotto_core::metadata::{decode, spec_error};
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateStore, TTL_EXPIRE_TIME_KEY,
    TransactionOp, parse_ttl,
};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, Error, ErrorKind, Feature, Health, Metadata,
    Result,
};
use sqlx::{AssertSqlSafe, MySqlConnection, Row};

use crate::client::{ER_DUP_ENTRY, MySqlClient};
use crate::config::{MySqlConfig, check_identifier, mysql_metadata};

/// Dapr's default database of the state store.
pub const DEFAULT_SCHEMA: &str = "dapr_state_store";
/// Dapr's default state table.
pub const DEFAULT_TABLE: &str = "state";
/// Dapr's default metadata table.
pub const DEFAULT_METADATA_TABLE: &str = "dapr_metadata";
/// Dapr's default statement timeout of this store.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Dapr's default interval between removals of expired rows.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);
/// The widest key the `id` column holds (characters).
pub const MAX_KEY_LEN: usize = 255;
/// The request metadata key naming the value's media type.
const CONTENT_TYPE_KEY: &str = "contentType";

mysql_metadata! {
    /// Metadata of [`MySqlStateStore`]: the connection keys (see [`crate::config`]) plus
    /// Dapr's `schemaName`, `metadataTableName`, `cleanupInterval` and `pemPath`.
    pub struct MySqlStateMetadata {
        /// `schemaName`: the database (default `dapr_state_store`).
        pub schema_name: Option<String>,
        /// `metadataTableName` (default `dapr_metadata`).
        pub metadata_table_name: Option<String>,
        /// `cleanupInterval`: Go duration or seconds between removals of expired rows; 0 turns
        /// them off.
        pub cleanup_interval: Option<String>,
        /// `pemPath`: CA file for TLS (not supported yet).
        pub pem_path: Option<String>,
    }
}

impl ComponentMetadata for MySqlStateMetadata {
    /// Dapr's docs name them, daprd reads neither.
    const NO_EFFECT: &'static [&'static str] = &["cleanupIntervalInSeconds", "pemContents"];
}

/// The SQL of one table pair.
#[derive(Debug)]
struct Sql {
    create: String,
    create_meta: String,
    check: String,
    get: String,
    update: String,
    delete_expired_key: String,
    insert: String,
    replace: String,
    delete: String,
    delete_etag: String,
    claim_first: String,
    claim_cleanup: String,
    cleanup: String,
}

const LIVE: &str = "(expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)";

impl Sql {
    fn new(table: &str, meta: &str) -> Self {
        Self {
            create: format!(
                "CREATE TABLE IF NOT EXISTS `{table}` (id VARCHAR({MAX_KEY_LEN}) CHARACTER SET \
                 utf8mb4 COLLATE {{collation}} NOT NULL PRIMARY KEY, value JSON NOT NULL, isbinary BOOLEAN NOT NULL, insertDate TIMESTAMP NOT \
                 NULL DEFAULT CURRENT_TIMESTAMP, updateDate TIMESTAMP NOT NULL DEFAULT \
                 CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, eTag VARCHAR(36) NOT NULL, \
                 expiredate TIMESTAMP NULL, INDEX expiredate_idx(expiredate))"
            ),
            create_meta: format!(
                "CREATE TABLE IF NOT EXISTS `{meta}` (id VARCHAR(255) NOT NULL PRIMARY KEY, value \
                 TEXT NOT NULL)"
            ),
            check: format!(
                "SELECT id, value, isbinary, insertDate, updateDate, eTag, expiredate FROM \
                 `{table}` LIMIT 0"
            ),
            get: format!(
                "SELECT CAST(value AS CHAR), eTag, isbinary, \
                 CAST(IFNULL(UNIX_TIMESTAMP(expiredate), 0) AS SIGNED) FROM `{table}` WHERE id = \
                 ? AND {LIVE}"
            ),
            update: format!(
                "UPDATE `{table}` SET value = ?, eTag = ?, isbinary = ?, expiredate = {{ttl}} \
                 WHERE id = ? AND eTag = ? AND {LIVE}"
            ),
            delete_expired_key: format!(
                "DELETE FROM `{table}` WHERE id = ? AND expiredate IS NOT NULL AND expiredate <= \
                 CURRENT_TIMESTAMP"
            ),
            insert: format!(
                "INSERT INTO `{table}` (id, value, eTag, isbinary, expiredate) VALUES (?, ?, ?, ?, \
                 {{ttl}})"
            ),
            replace: format!(
                "REPLACE INTO `{table}` (id, value, eTag, isbinary, expiredate) VALUES (?, ?, ?, \
                 ?, {{ttl}})"
            ),
            delete: format!("DELETE FROM `{table}` WHERE id = ?"),
            delete_etag: format!("DELETE FROM `{table}` WHERE id = ? AND eTag = ?"),
            // The row daprd claims with one `INSERT ... ON DUPLICATE KEY UPDATE`; as two
            // statements here, since the driver counts matched rather than changed rows.
            claim_first: format!(
                "INSERT IGNORE INTO `{meta}` (id, value) VALUES ('last-cleanup', \
                 CURRENT_TIMESTAMP)"
            ),
            claim_cleanup: format!(
                "UPDATE `{meta}` SET value = CURRENT_TIMESTAMP WHERE id = 'last-cleanup' AND \
                 CURRENT_TIMESTAMP > DATE_ADD(value, INTERVAL ?*1000 MICROSECOND)"
            ),
            cleanup: format!(
                "DELETE FROM `{table}` WHERE expiredate IS NOT NULL AND expiredate <= \
                 CURRENT_TIMESTAMP"
            ),
        }
    }
}

/// Dapr's MySQL state store (type `state.mysql`). See the module documentation.
#[derive(Debug)]
pub struct MySqlStateStore {
    client: Arc<MySqlClient>,
    sql: Arc<Sql>,
    cleanup_interval: Option<Duration>,
    cleaner: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The database a Go DSN names (`.../db?...`), if any.
fn dsn_database(dsn: &str) -> Option<&str> {
    let after = dsn.rsplit_once('/')?.1;
    let db = after.split('?').next().unwrap_or_default();
    (!db.is_empty()).then_some(db)
}

impl MySqlStateStore {
    /// Factory: [`MySqlStateMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: MySqlStateMetadata = decode(spec)?;
        if meta
            .pem_path
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty())
        {
            return Err(spec_error(
                spec,
                "metadata 'pemPath': TLS to MySQL is not supported yet",
            ));
        }
        let mut conn = meta.connection();
        let schema = meta
            .schema_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let dsn_db = conn.connection_string.as_deref().and_then(dsn_database);
        if conn.database_name.is_none() && (schema.is_some() || dsn_db.is_none()) {
            conn.database_name = Some(schema.unwrap_or(DEFAULT_SCHEMA).to_owned());
        }
        let mut cfg = MySqlConfig::from_meta(spec, &conn, DEFAULT_TABLE)?;
        if conn.timeout_in_seconds.is_none() {
            cfg.timeout = DEFAULT_TIMEOUT;
        }
        let meta_table = meta
            .metadata_table_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_METADATA_TABLE)
            .to_owned();
        check_identifier(&meta_table)
            .map_err(|why| spec_error(spec, format!("metadata 'metadataTableName': {why}")))?;
        let cleanup_interval = match meta.cleanup_interval.as_deref().map(str::trim) {
            None | Some("") => Some(DEFAULT_CLEANUP_INTERVAL),
            Some(raw) => {
                let d = layotto_core::metadata::parse_duration(raw, Duration::from_secs)
                    .or_else(|| {
                        raw.parse::<i64>()
                            .ok()
                            .filter(|n| *n <= 0)
                            .map(|_| Duration::ZERO)
                    })
                    .ok_or_else(|| {
                        spec_error(
                            spec,
                            format!(
                                "metadata 'cleanupInterval': expected a duration such as 1h or \
                                 a number of seconds, got '{raw}'"
                            ),
                        )
                    })?;
                (!d.is_zero()).then_some(d)
            }
        };
        Ok(Self {
            sql: Arc::new(Sql::new(&cfg.table, &meta_table)),
            client: Arc::new(MySqlClient::new(
                format!("state store '{}'", spec.name),
                cfg,
            )),
            cleanup_interval,
            cleaner: Mutex::new(None),
        })
    }

    /// The state table.
    pub fn table(&self) -> &str {
        &self.client.config().table
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(self.client.err(Error::empty_field("key")));
        }
        if key.chars().count() > MAX_KEY_LEN {
            return Err(self.client.err(Error::invalid(format!(
                "key '{key}' is longer than {MAX_KEY_LEN} characters (the width of column 'id' \
                 of table '{}')",
                self.table()
            ))));
        }
        Ok(())
    }

    fn mismatch(&self, key: &str) -> Error {
        self.client.err(Error::new(
            ErrorKind::EtagMismatch,
            format!("possible etag mismatch for key '{key}': no row matches the key and ETag"),
        ))
    }

    /// Removes expired rows when this sidecar wins daprd's `last-cleanup` claim.
    async fn cleanup(client: &MySqlClient, sql: &Sql, interval: Duration) -> Result<u64> {
        let (first, claim, delete) = (
            sql.claim_first.clone(),
            sql.claim_cleanup.clone(),
            sql.cleanup.clone(),
        );
        let millis = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX) - 100;
        client
            .call("remove expired rows", |p| async move {
                let mut won = sqlx::query(AssertSqlSafe(first))
                    .execute(&p)
                    .await?
                    .rows_affected();
                if won == 0 {
                    won = sqlx::query(AssertSqlSafe(claim))
                        .bind(millis)
                        .execute(&p)
                        .await?
                        .rows_affected();
                }
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
}

/// The SQL of the expiry of `metadata`'s `ttlInSeconds`: `NULL` or `CURRENT_TIMESTAMP +
/// INTERVAL n SECOND` (a validated integer, so it is spliced as daprd does).
fn ttl_sql(metadata: &Metadata) -> Result<String> {
    Ok(match parse_ttl(metadata)? {
        Some(d) if !d.is_zero() => {
            // MySQL's TIMESTAMP ends at 2038-01-19 03:14:07 UTC.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            if now.saturating_add(d.as_secs()) > i32::MAX.unsigned_abs().into() {
                return Err(Error::invalid(format!(
                    "metadata 'ttlInSeconds' = {} expires after 2038-01-19, the end of MySQL's \
                     TIMESTAMP column 'expiredate'",
                    d.as_secs()
                )));
            }
            format!("CURRENT_TIMESTAMP + INTERVAL {} SECOND", d.as_secs())
        }
        _ => "NULL".to_owned(),
    })
}

/// The `value` and `isbinary` columns of `value` (see the module documentation).
fn encode_value(value: &[u8], metadata: &Metadata) -> (String, bool) {
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

/// One write on `conn` (see the module documentation).
async fn write(
    conn: &mut MySqlConnection,
    sql: &Sql,
    req: &SetRequest,
    ttl: &str,
) -> std::result::Result<Write, sqlx::Error> {
    let (value, binary) = encode_value(&req.value, &req.metadata);
    let etag = uuid::Uuid::new_v4().to_string();
    if let Some(expected) = req.etag_to_check() {
        let n = sqlx::query(AssertSqlSafe(sql.update.replace("{ttl}", ttl)))
            .bind(&value)
            .bind(&etag)
            .bind(binary)
            .bind(&req.key)
            .bind(expected)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        return Ok(if n == 0 { Write::Mismatch } else { Write::Done });
    }
    if req.options.concurrency == Concurrency::FirstWrite {
        sqlx::query(AssertSqlSafe(sql.delete_expired_key.clone()))
            .bind(&req.key)
            .execute(&mut *conn)
            .await?;
        let r = sqlx::query(AssertSqlSafe(sql.insert.replace("{ttl}", ttl)))
            .bind(&req.key)
            .bind(&value)
            .bind(&etag)
            .bind(binary)
            .execute(&mut *conn)
            .await;
        return match r {
            Ok(_) => Ok(Write::Done),
            Err(e) if crate::client::mysql_number(&e) == Some(ER_DUP_ENTRY) => Ok(Write::Mismatch),
            Err(e) => Err(e),
        };
    }
    sqlx::query(AssertSqlSafe(sql.replace.replace("{ttl}", ttl)))
        .bind(&req.key)
        .bind(&value)
        .bind(&etag)
        .bind(binary)
        .execute(&mut *conn)
        .await?;
    Ok(Write::Done)
}

/// One delete on `conn`.
async fn remove(
    conn: &mut MySqlConnection,
    sql: &Sql,
    req: &DeleteRequest,
) -> std::result::Result<Write, sqlx::Error> {
    match req.etag_to_check() {
        None => {
            sqlx::query(AssertSqlSafe(sql.delete.clone()))
                .bind(&req.key)
                .execute(&mut *conn)
                .await?;
            Ok(Write::Done)
        }
        Some(etag) => {
            let n = sqlx::query(AssertSqlSafe(sql.delete_etag.clone()))
                .bind(&req.key)
                .bind(etag)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(if n == 1 { Write::Done } else { Write::Mismatch })
        }
    }
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Done,
    Mismatch,
}

#[async_trait]
impl Component for MySqlStateStore {
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        let sql = self.sql.clone();
        self.client
            .call("create the state tables", |p| async move {
                // Keys compare exactly, trailing spaces too: a NO PAD binary collation.
                let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&p).await?;
                let collation = if version.contains("MariaDB") {
                    "utf8mb4_nopad_bin"
                } else if version.starts_with('5') {
                    "utf8mb4_bin"
                } else {
                    "utf8mb4_0900_bin"
                };
                sqlx::raw_sql(AssertSqlSafe(sql.create.replace("{collation}", collation)))
                    .execute(&p)
                    .await?;
                sqlx::raw_sql(AssertSqlSafe(sql.create_meta.clone()))
                    .execute(&p)
                    .await?;
                sqlx::raw_sql(AssertSqlSafe(sql.check.clone()))
                    .execute(&p)
                    .await
            })
            .await
            .map_err(|e| {
                Error::new(
                    e.kind,
                    format!(
                        "{} (table '{}' must have daprd's columns id, value, isbinary, \
                         insertDate, updateDate, eTag, expiredate)",
                        e.message,
                        self.table()
                    ),
                )
            })?;
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
        &[Feature::Etag, Feature::Transactional, Feature::Ttl]
    }
}

#[async_trait]
impl StateStore for MySqlStateStore {
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
        let decode = |e: sqlx::Error| {
            self.client
                .err(Error::internal(format!("get '{key}': {e}")))
        };
        let value: String = row.try_get(0).map_err(decode)?;
        let etag: String = row.try_get(1).map_err(decode)?;
        let binary: bool = row.try_get(2).map_err(decode)?;
        let expires: i64 = row.try_get(3).map_err(decode)?;
        let data = if binary {
            let b64: String = serde_json::from_str(&value).map_err(|e| {
                self.client.err(Error::internal(format!(
                    "get '{key}': isbinary row whose value is no JSON string: {e}"
                )))
            })?;
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| {
                    self.client.err(Error::internal(format!(
                        "get '{key}': bad base64 value: {e}"
                    )))
                })?
                .into()
        } else {
            Bytes::from(value)
        };
        let mut metadata = Metadata::new();
        if let Ok(secs) = u64::try_from(expires)
            && secs > 0
        {
            metadata.insert(
                TTL_EXPIRE_TIME_KEY.to_owned(),
                layotto_core::state::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs)),
            );
        }
        Ok(Some(StateItem {
            data,
            etag: Some(etag),
            metadata,
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        self.transact(vec![TransactionOp::Upsert(req)], &Metadata::new())
            .await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        self.transact(vec![TransactionOp::Delete(req)], &Metadata::new())
            .await
    }

    async fn transact(&self, ops: Vec<TransactionOp>, _metadata: &Metadata) -> Result<()> {
        let mut ttls = Vec::with_capacity(ops.len());
        for op in &ops {
            self.check_key(op.key())?;
            ttls.push(match op {
                TransactionOp::Upsert(r) => ttl_sql(&r.metadata).map_err(|e| self.client.err(e))?,
                TransactionOp::Delete(_) => String::new(),
            });
        }
        if ops.is_empty() {
            return Ok(());
        }
        let sql = self.sql.clone();
        let what = if ops.len() == 1 {
            "write"
        } else {
            "transaction"
        };
        let failed = self
            .client
            .call(what, |p| async move {
                // One operation runs alone (as daprd); more in a sqlx transaction, which rolls
                // back when dropped unfinished (a mismatch, an error, the call's timeout).
                if let [op] = ops.as_slice() {
                    let mut conn = p.acquire().await?;
                    let r = match op {
                        TransactionOp::Upsert(r) => write(&mut conn, &sql, r, &ttls[0]).await?,
                        TransactionOp::Delete(r) => remove(&mut conn, &sql, r).await?,
                    };
                    return Ok((r == Write::Mismatch).then(|| op.key().to_owned()));
                }
                let mut tx = p.begin().await?;
                for (op, ttl) in ops.iter().zip(&ttls) {
                    let r = match op {
                        TransactionOp::Upsert(r) => write(&mut tx, &sql, r, ttl).await?,
                        TransactionOp::Delete(r) => remove(&mut tx, &sql, r).await?,
                    };
                    if r == Write::Mismatch {
                        tx.rollback().await?;
                        return Ok(Some(op.key().to_owned()));
                    }
                }
                tx.commit().await?;
                Ok(None)
            })
            .await?;
        match failed {
            Some(key) => Err(self.mismatch(&key)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_daprd_stores_them() {
        let json = Metadata::from([("contentType".to_owned(), "application/json".to_owned())]);
        assert_eq!(
            encode_value(br#"{"a":1}"#, &json),
            (r#"{"a":1}"#.to_owned(), false)
        );
        // Not JSON, or no JSON content type: base64 in a JSON string.
        assert_eq!(
            encode_value(b"hello", &json),
            (r#""aGVsbG8=""#.to_owned(), true)
        );
        assert_eq!(
            encode_value(br#"{"a":1}"#, &Metadata::new()),
            (r#""eyJhIjoxfQ==""#.to_owned(), true)
        );
        assert_eq!(dsn_database("u:p@tcp(h:3306)/?x=y"), None);
        assert_eq!(dsn_database("u:p@tcp(h:3306)/db?x=y"), Some("db"));
    }

    #[test]
    fn keys_and_defaults() {
        let spec = ComponentSpec::new("s", "state.mysql").with(
            "connectionString",
            "root:pw@tcp(127.0.0.1:3306)/?allowNativePasswords=true",
        );
        let s = MySqlStateStore::from_spec(&spec).expect("valid");
        assert_eq!(s.table(), DEFAULT_TABLE);
        assert_eq!(s.client.config().database, DEFAULT_SCHEMA);
        assert_eq!(s.client.config().timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.cleanup_interval, Some(DEFAULT_CLEANUP_INTERVAL));
        let off =
            MySqlStateStore::from_spec(&spec.clone().with("cleanupInterval", "0")).expect("valid");
        assert_eq!(off.cleanup_interval, None);
        let e =
            MySqlStateStore::from_spec(&spec.clone().with("pemPath", "/ca.pem")).expect_err("tls");
        assert!(e.message.contains("pemPath"), "{e}");
        let e = MySqlStateStore::from_spec(&spec.with("tableName", "bad name")).expect_err("bad");
        assert!(e.message.contains("tableName"), "{e}");
    }
}
