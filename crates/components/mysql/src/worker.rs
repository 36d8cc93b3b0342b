//! Worker ids of the `snowflake` sequencer, leased in a MySQL table.
//!
//! # Table
//!
//! Layotto's worker table (`tableName`, default `layotto_sequencer_snowflake`: `ID`,
//! `HOST_NAME`, `PORT`, `CREATED`, one row per worker id, never released) plus the two columns
//! a lease needs; `init` creates it, or adds the two columns to a table Layotto made:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `layotto_sequencer_snowflake` (
//!   ID             BIGINT NOT NULL AUTO_INCREMENT,  -- the worker id
//!   HOST_NAME      VARCHAR(64) NOT NULL,            -- host name of the holder
//!   PORT           VARCHAR(64) NOT NULL,            -- lease token of the holder (unique per start)
//!   CREATED        DATETIME NOT NULL,               -- when the holder took the worker id
//!                                                   -- (TIMESTAMP in a table Layotto made)
//!   EXPIRES_AT     BIGINT NULL,                     -- lease end, ms since the Unix epoch
//!                                                   -- (database clock); NULL: never (Layotto's rows)
//!   LAST_TIMESTAMP BIGINT NOT NULL DEFAULT 0,       -- highest id time the holder may use
//!   PRIMARY KEY (ID)
//! ) ENGINE=InnoDB
//! ```
//!
//! A sidecar takes the lowest worker id in `1..=2^workerBits-1` whose lease has expired (one
//! `UPDATE ... WHERE EXPIRES_AT < now ORDER BY ID LIMIT 1`, which the database serialises), or
//! else inserts the next id; rows Layotto's Go sidecars insert have no expiry and stay theirs.
//! The holder renews every third of the lease (`workerLeaseTtl`, default 30 s) with
//! `UPDATE ... WHERE ID = ? AND PORT = <its token>`; zero rows means another sidecar took the
//! worker id after the lease ran out, and the holder stops using it. Expiry is measured on
//! the database's clock; the holder counts its lease from just before each renewal was sent,
//! on its monotonic clock, and stops handing out ids before the database would let the worker
//! id go. `LAST_TIMESTAMP` is written before an id with a higher time is handed out, so the
//! next holder of the worker id starts above every time its predecessors may have used,
//! whatever their clocks said. `close` ends the lease at once (`EXPIRES_AT = 0`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use layotto_core::{Error, Result};
use sqlx::{AssertSqlSafe, Row};

use crate::client::{ER_DUP_ENTRY, ER_DUP_FIELDNAME, MySqlClient, mysql_number};

/// Layotto's default worker table of the `snowflake` sequencer.
pub const DEFAULT_TABLE: &str = "layotto_sequencer_snowflake";

/// The database clock in milliseconds since the Unix epoch (sqlx sessions run in UTC).
const DB_NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// A worker id held by this sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The worker id.
    pub worker: i64,
    /// The highest id time this holder may use (persisted as `LAST_TIMESTAMP`).
    pub horizon: i64,
    /// When this holder must stop using the worker id unless renewed (its monotonic clock).
    pub deadline: Instant,
}

/// The worker table of one snowflake sequencer and this sidecar's identity in it.
#[derive(Debug)]
pub struct WorkerTable {
    table: String,
    ttl: Duration,
    token: String,
    host: String,
}

impl WorkerTable {
    /// The table `table`, leases of `ttl`, with a fresh lease token.
    pub fn new(table: &str, ttl: Duration) -> Self {
        Self {
            table: table.to_owned(),
            ttl,
            token: uuid::Uuid::new_v4().simple().to_string(),
            host: host_name(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// This sidecar's lease token (the `PORT` column of the rows it holds).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lease length.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// The local deadline of a lease renewed by a statement sent at `sent`: nine tenths of the
    /// lease, leaving room for clocks that run at slightly different rates.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.ttl.mul_f64(0.9)
    }

    /// Creates the table, or adds the lease columns to one made by Layotto.
    pub async fn ensure(&self, c: &MySqlClient) -> Result<()> {
        let t = &self.table;
        let create: Arc<str> = Arc::from(format!(
            "CREATE TABLE IF NOT EXISTS `{t}` (\
             ID BIGINT NOT NULL AUTO_INCREMENT COMMENT 'worker id', \
             HOST_NAME VARCHAR(64) NOT NULL COMMENT 'host name of the holder', \
             PORT VARCHAR(64) NOT NULL COMMENT 'lease token of the holder', \
             CREATED DATETIME NOT NULL COMMENT 'when the holder took the worker id', \
             EXPIRES_AT BIGINT NULL COMMENT 'lease end, ms since the Unix epoch, database clock', \
             LAST_TIMESTAMP BIGINT NOT NULL DEFAULT 0 COMMENT 'highest id time the holder may use', \
             PRIMARY KEY (ID)) ENGINE=InnoDB"
        ));
        c.call("create table", |p| async move {
            sqlx::raw_sql(AssertSqlSafe(create)).execute(&p).await
        })
        .await?;
        let table = t.clone();
        let columns: Vec<String> = c
            .call("check table", |p| async move {
                sqlx::query_scalar::<_, String>(
                    "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                )
                .bind(table)
                .fetch_all(&p)
                .await
            })
            .await?;
        let has = |name: &str| columns.iter().any(|c| c.eq_ignore_ascii_case(name));
        if let Some(missing) = ["ID", "PORT", "HOST_NAME", "CREATED"]
            .into_iter()
            .find(|c| !has(c))
        {
            return Err(c.err(Error::invalid(format!(
                "table '{t}' (metadata 'tableName') exists without column {missing}: it is not \
                 a snowflake worker table"
            ))));
        }
        for (name, ddl) in [
            ("EXPIRES_AT", "BIGINT NULL"),
            ("LAST_TIMESTAMP", "BIGINT NOT NULL DEFAULT 0"),
        ] {
            if has(name) {
                continue;
            }
            let alter: Arc<str> = Arc::from(format!("ALTER TABLE `{t}` ADD COLUMN {name} {ddl}"));
            let r = c
                .call("add lease column", |p| async move {
                    match sqlx::raw_sql(AssertSqlSafe(alter)).execute(&p).await {
                        // Another sidecar added it first.
                        Err(e) if mysql_number(&e) == Some(ER_DUP_FIELDNAME) => Ok(()),
                        r => r.map(|_| ()),
                    }
                })
                .await;
            r?;
            tracing::info!(table = %t, column = name, "added a lease column to the snowflake worker table");
        }
        Ok(())
    }

    /// Takes a worker id in `1..=max_worker`: the lowest one whose lease expired, else the
    /// next new one. Errors: unavailable when every worker id is leased.
    pub async fn acquire(&self, c: &MySqlClient, max_worker: i64) -> Result<Lease> {
        for _ in 0..16 {
            let sent = Instant::now();
            if let Some(l) = self.take_expired(c, max_worker, sent).await? {
                return Ok(l);
            }
            match self.insert_next(c, max_worker, sent).await? {
                Insert::Taken(l) => return Ok(l),
                Insert::Full => {
                    return Err(c.err(Error::unavailable(format!(
                        "all {max_worker} worker ids of table '{}' are leased (metadata \
                         'workerBits' sets how many there are)",
                        self.table
                    ))));
                }
                // A concurrent sidecar took the same new id: try again.
                Insert::Raced => tokio::task::yield_now().await,
            }
        }
        Err(c.err(Error::unavailable(format!(
            "could not lease a worker id in table '{}': too much contention",
            self.table
        ))))
    }

    async fn take_expired(
        &self,
        c: &MySqlClient,
        max_worker: i64,
        sent: Instant,
    ) -> Result<Option<Lease>> {
        let sql: Arc<str> = Arc::from(format!(
            "UPDATE `{}` SET HOST_NAME = ?, PORT = ?, CREATED = NOW(), \
             EXPIRES_AT = {DB_NOW_MS} + ? \
             WHERE ID BETWEEN 1 AND ? AND EXPIRES_AT IS NOT NULL AND EXPIRES_AT < {DB_NOW_MS} \
             ORDER BY ID LIMIT 1",
            self.table
        ));
        let (host, token, ttl) = (self.host.clone(), self.token.clone(), self.ttl_ms());
        let taken = c
            .call("lease worker id", |p| async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(host)
                    .bind(token)
                    .bind(ttl)
                    .bind(max_worker)
                    .execute(&p)
                    .await
            })
            .await?
            .rows_affected();
        if taken == 0 {
            return Ok(None);
        }
        self.read_own(c, sent).await.map(Some)
    }

    /// The row this sidecar's token holds, read back after taking it.
    async fn read_own(&self, c: &MySqlClient, sent: Instant) -> Result<Lease> {
        let sql: Arc<str> = Arc::from(format!(
            "SELECT ID, LAST_TIMESTAMP FROM `{}` WHERE PORT = ? ORDER BY ID DESC LIMIT 1",
            self.table
        ));
        let token = self.token.clone();
        let row = c
            .call("read leased worker id", |p| async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(token)
                    .fetch_one(&p)
                    .await
            })
            .await?;
        let (worker, horizon): (i64, i64) = (row.get(0), row.get(1));
        Ok(Lease {
            worker,
            horizon,
            deadline: self.deadline(sent),
        })
    }

    async fn insert_next(&self, c: &MySqlClient, max_worker: i64, sent: Instant) -> Result<Insert> {
        let sql: Arc<str> = Arc::from(format!(
            "INSERT INTO `{t}` (ID, HOST_NAME, PORT, CREATED, EXPIRES_AT, LAST_TIMESTAMP) \
             SELECT COALESCE(MAX(ID), 0) + 1, ?, ?, NOW(), {DB_NOW_MS} + ?, 0 FROM `{t}` \
             HAVING COALESCE(MAX(ID), 0) + 1 <= ?",
            t = self.table
        ));
        let (host, token, ttl) = (self.host.clone(), self.token.clone(), self.ttl_ms());
        let r = c
            .call("lease new worker id", |p| async move {
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(host)
                    .bind(token)
                    .bind(ttl)
                    .bind(max_worker)
                    .execute(&p)
                    .await;
                match r {
                    Ok(r) => Ok(Some(r.rows_affected())),
                    // Duplicate id or deadlock between two sidecars inserting at once.
                    Err(e) if matches!(mysql_number(&e), Some(ER_DUP_ENTRY | 1213)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(match r {
            None => Insert::Raced,
            Some(0) => Insert::Full,
            Some(_) => Insert::Taken(self.read_own(c, sent).await?),
        })
    }

    /// Renews the lease of `worker` and raises its persisted horizon to at least `horizon`.
    /// `None` when another sidecar holds the worker id now.
    pub async fn renew(&self, c: &MySqlClient, worker: i64, horizon: i64) -> Result<Option<Lease>> {
        let sent = Instant::now();
        let sql: Arc<str> = Arc::from(format!(
            "UPDATE `{}` SET EXPIRES_AT = {DB_NOW_MS} + ?, \
             LAST_TIMESTAMP = GREATEST(LAST_TIMESTAMP, ?) WHERE ID = ? AND PORT = ?",
            self.table
        ));
        let (token, ttl) = (self.token.clone(), self.ttl_ms());
        let matched = c
            .call("renew worker lease", |p| async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(ttl)
                    .bind(horizon)
                    .bind(worker)
                    .bind(token)
                    .execute(&p)
                    .await
            })
            .await?
            .rows_affected();
        Ok((matched > 0).then(|| Lease {
            worker,
            horizon,
            deadline: self.deadline(sent),
        }))
    }

    /// Ends the lease of `worker` now, so another sidecar may take it (it starts above the
    /// persisted horizon).
    pub async fn release(&self, c: &MySqlClient, worker: i64) -> Result<()> {
        let sql: Arc<str> = Arc::from(format!(
            "UPDATE `{}` SET EXPIRES_AT = 0 WHERE ID = ? AND PORT = ?",
            self.table
        ));
        let token = self.token.clone();
        c.call("release worker lease", |p| async move {
            sqlx::query(AssertSqlSafe(sql))
                .bind(worker)
                .bind(token)
                .execute(&p)
                .await
        })
        .await?;
        Ok(())
    }
}

/// The outcome of inserting a new worker id.
enum Insert {
    Taken(Lease),
    Full,
    Raced,
}

/// This host's name (for the `HOST_NAME` column), at most 64 characters.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    name.chars().take(64).collect()
}
