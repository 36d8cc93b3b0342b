//! The `mysql` sequencer (Layotto's `components/sequencer/mysql`): ids from a table.
//!
//! # Table
//!
//! `init` creates the table (name from `tableName`, default `layotto_sequencer`) when it does
//! not exist, and checks that an existing one has these columns:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `layotto_sequencer` (
//!   `sequencer_key`   VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
//!   `sequencer_value` BIGINT NOT NULL,  -- the last id handed out for the key
//!   `version`         BIGINT NOT NULL,  -- 1 on insert, +1 on every change
//!   PRIMARY KEY (`sequencer_key`)
//! ) ENGINE=InnoDB
//! ```
//!
//! One row per key (as the runtime stores it, `sequencer|||<appid>||<key>`, at most 255
//! characters). Every id or segment is one atomic statement,
//! `INSERT ... ON DUPLICATE KEY UPDATE sequencer_value = LAST_INSERT_ID(sequencer_value + n)`:
//! the first id of a key is 1, `get_next_id` adds 1, `get_segment(n)` adds `n` and returns
//! `value - n + 1 ..= value`, so STRONG ids and WEAK segments of several sidecars never
//! overlap. `biggerThan` floors raise a key's value to the floor in `init` (the next id is
//! above it); upstream instead refuses to start.
//!
//! # Upstream's faults
//!
//! Layotto's Go component never worked against a real server, so there is no Layotto data to
//! read back: it never opens a connection (`db` stays nil outside its mock tests); its SQL
//! passes the table name as a bind parameter (`SELECT ... FROM ?`, `INSERT INTO ?(...)`,
//! `UPDATE ? SET ...`), uses `+=` (`sequencer_value += 1, version += 1`) and `==`
//! (`WHERE sequencer_key == ?`), none of which MySQL accepts; its `CREATE TABLE` has no
//! `version` column although every query reads it, and a 32-bit `INT` value; it never commits
//! its transactions, closes the shared connection pool after every call, returns the value it
//! read instead of the incremented one (two callers get the same id) and ignores the rows
//! affected by its optimistic `WHERE version = ?`; `GetSegment` answers "not supported" next
//! to a segment; its `biggerThan` check ignores query errors.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::metadata::{decode, spec_error};
use layotto_core::sequencer::{BIGGER_THAN_KEY, Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, ErrorKind, Health, Result};
use sqlx::AssertSqlSafe;

use crate::client::MySqlClient;
use crate::config::{MySqlConfig, TABLE_NAME_KEY, mysql_metadata};

/// Layotto's default table of the `mysql` sequencer.
pub const DEFAULT_TABLE: &str = "layotto_sequencer";

/// The longest key (characters) the table holds.
pub const MAX_KEY_LEN: usize = 255;

mysql_metadata! {
    /// Metadata of [`MySqlSequencer`]: the connection keys (see [`crate::config`]) plus
    /// `biggerThan`. Layotto's files also set `segmentCacheEnable` and `segmentStep`, which no
    /// Layotto component reads: accepted without effect.
    pub struct MySqlSequencerMetadata {
        /// `biggerThan`: a JSON object key -> integer; every id of a key is greater than its
        /// value (applied in `init`).
        pub bigger_than: Option<String>,
    }
}

impl ComponentMetadata for MySqlSequencerMetadata {
    const NO_EFFECT: &'static [&'static str] = &["segmentCacheEnable", "segmentStep"];
}

/// The statements of one table.
#[derive(Debug)]
struct Sql {
    create: Arc<str>,
    check: Arc<str>,
    bump: Arc<str>,
    floor: Arc<str>,
}

impl Sql {
    fn new(table: &str) -> Self {
        let s = |text: String| Arc::<str>::from(text);
        Self {
            create: s(format!(
                "CREATE TABLE IF NOT EXISTS `{table}` (\
                 `sequencer_key` VARCHAR({MAX_KEY_LEN}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin \
                 NOT NULL, \
                 `sequencer_value` BIGINT NOT NULL, \
                 `version` BIGINT NOT NULL, \
                 PRIMARY KEY (`sequencer_key`)) ENGINE=InnoDB"
            )),
            check: s(format!(
                "SELECT `sequencer_key`, `sequencer_value`, `version` FROM `{table}` LIMIT 0"
            )),
            bump: s(format!(
                "INSERT INTO `{table}` (`sequencer_key`, `sequencer_value`, `version`) \
                 VALUES (?, LAST_INSERT_ID(?), 1) ON DUPLICATE KEY UPDATE \
                 `sequencer_value` = LAST_INSERT_ID(`sequencer_value` + ?), \
                 `version` = `version` + 1"
            )),
            floor: s(format!(
                "INSERT INTO `{table}` (`sequencer_key`, `sequencer_value`, `version`) \
                 VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE \
                 `version` = IF(`sequencer_value` < ?, `version` + 1, `version`), \
                 `sequencer_value` = GREATEST(`sequencer_value`, ?)"
            )),
        }
    }
}

/// Sequencer on a MySQL table (type `mysql`). See the module documentation.
#[derive(Debug)]
pub struct MySqlSequencer {
    client: MySqlClient,
    floors: HashMap<String, i64>,
    sql: Sql,
}

impl MySqlSequencer {
    /// Factory: [`MySqlSequencerMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: MySqlSequencerMetadata = decode(spec)?;
        let cfg = MySqlConfig::from_meta(spec, &meta.connection(), DEFAULT_TABLE)?;
        let floors = parse_bigger_than(meta.bigger_than.as_deref())
            .map_err(|e| spec_error(spec, e.message))?;
        if let Some(k) = floors.keys().find(|k| k.chars().count() > MAX_KEY_LEN) {
            return Err(spec_error(
                spec,
                format!("metadata '{BIGGER_THAN_KEY}': key '{k}' is longer than {MAX_KEY_LEN}"),
            ));
        }
        Ok(Self {
            sql: Sql::new(&cfg.table),
            client: MySqlClient::new(format!("sequencer '{}'", spec.name), cfg),
            floors,
        })
    }

    /// The table of this sequencer.
    pub fn table(&self) -> &str {
        &self.client.config().table
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(self.client.err(Error::empty_field("key")));
        }
        if key.chars().count() > MAX_KEY_LEN {
            return Err(self.client.err(Error::invalid(format!(
                "key '{key}' is longer than {MAX_KEY_LEN} characters (the width of column \
                 'sequencer_key' of table '{}')",
                self.table()
            ))));
        }
        Ok(())
    }

    /// Adds `n` to the value of `key` (a new key starts at `n`); the new value.
    async fn bump(&self, what: &str, key: &str, n: i64) -> Result<i64> {
        let sql = self.sql.bump.clone();
        let key = key.to_owned();
        let id = self
            .client
            .call(what, |pool| async move {
                let mut conn = pool.acquire().await?;
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(&key)
                    .bind(n)
                    .bind(n)
                    .execute(&mut *conn)
                    .await?;
                match i64::try_from(r.last_insert_id()) {
                    Ok(id) if id > 0 => Ok(id),
                    _ => {
                        sqlx::query_scalar::<_, i64>("SELECT CAST(LAST_INSERT_ID() AS SIGNED)")
                            .fetch_one(&mut *conn)
                            .await
                    }
                }
            })
            .await?;
        if id < n {
            return Err(self.client.err(Error::internal(format!(
                "{what}: MySQL returned id {id}, below the segment size {n}"
            ))));
        }
        Ok(id)
    }

    /// Creates the table if missing, then checks its columns.
    async fn ensure_table(&self) -> Result<()> {
        let (create, check) = (self.sql.create.clone(), self.sql.check.clone());
        self.client
            .call("create table", |p| async move {
                sqlx::raw_sql(AssertSqlSafe(create)).execute(&p).await
            })
            .await?;
        self.client
            .call("check table", |p| async move {
                sqlx::query(AssertSqlSafe(check)).fetch_all(&p).await
            })
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Unavailable | ErrorKind::PermissionDenied => e,
                _ => self.client.err(Error::invalid(format!(
                    "table '{}' (metadata '{TABLE_NAME_KEY}') must have the columns \
                     sequencer_key, sequencer_value and version: {}",
                    self.table(),
                    e.message
                ))),
            })?;
        Ok(())
    }
}

#[async_trait]
impl Component for MySqlSequencer {
    /// Connects (creating the database if missing), creates or checks the table, then raises
    /// every key with a `biggerThan` floor to at least that floor. Errors: unavailable,
    /// permission denied, or invalid argument naming the table.
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        self.ensure_table().await?;
        for (k, floor) in &self.floors {
            if *floor <= 0 {
                continue;
            }
            let (sql, key, floor) = (self.sql.floor.clone(), k.clone(), *floor);
            self.client
                .call(BIGGER_THAN_KEY, |p| async move {
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(key)
                        .bind(floor)
                        .bind(floor)
                        .bind(floor)
                        .execute(&p)
                        .await
                })
                .await
                .map_err(|e| e.context(format_args!("key '{k}'")))?;
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    /// Closes the pool.
    async fn close(&self) -> Result<()> {
        self.client.close().await;
        Ok(())
    }
}

#[async_trait]
impl Sequencer for MySqlSequencer {
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        self.check_key(key)?;
        self.bump("get_next_id", key, 1).await
    }

    /// Always a segment: `size` ids reserved by one statement.
    async fn get_segment(&self, key: &str, size: u32) -> Result<Option<Segment>> {
        if size == 0 {
            return Err(self
                .client
                .err(Error::invalid("segment size must be greater than 0")));
        }
        self.check_key(key)?;
        let n = i64::from(size);
        let to = self.bump("get_segment", key, n).await?;
        Ok(Some(Segment {
            from: to - n + 1,
            to,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layotto_keys_and_no_effect_keys() {
        let spec = ComponentSpec::new("s", "mysql")
            .with("mysqlUrl", "localhost:3306")
            .with("userName", "root")
            .with("password", "123456")
            .with("dataBaseName", "layotto")
            .with("tableName", "seq")
            .with("segmentCacheEnable", "false")
            .with("segmentStep", "1")
            .with("biggerThan", r#"{"k": 5}"#);
        let s = MySqlSequencer::from_spec(&spec).expect("valid");
        assert_eq!(s.table(), "seq");
        assert_eq!(s.floors.get("k"), Some(&5));
        assert!(s.sql.bump.contains("INSERT INTO `seq`"));
        let w = layotto_core::MetadataKeys::of::<MySqlSequencerMetadata>().warnings_with(
            &spec.metadata,
            layotto_core::Kind::Sequencer.info().runtime_keys,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|l| l.contains("no effect")), "{w:?}");
        let e = MySqlSequencer::from_spec(&spec.clone().with("biggerThan", "nope")).expect_err("");
        assert!(
            e.message.contains("biggerThan") && e.message.contains("'s'"),
            "{e}"
        );
        let d = MySqlSequencer::from_spec(&spec.with("tableName", "")).expect("default table");
        assert_eq!(d.table(), DEFAULT_TABLE);
    }
}
