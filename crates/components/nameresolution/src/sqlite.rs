//! `nameresolution.sqlite`: sidecars on one host register in a shared SQLite file
//! (`dapr/components-contrib:nameresolution/sqlite`), same tables and statements, so a
//! layotto-rs sidecar and a daprd built with this resolver find each other.
//!
//! Tables: `hosts` (`registration_id` TEXT PRIMARY KEY, `address` TEXT unique, `app_id`,
//! `namespace`, `last_update` INTEGER Unix seconds) and `metadata` (`key`, `value`; key
//! `nr-migrations` holds the migration level, `nr-last-cleanup` the last cleanup). A sidecar
//! inserts its row at start, touches `last_update` every `updateInterval - timeout`, and
//! deletes it at shutdown; a row not touched for `updateInterval` is dead and never returned.
//! Resolution picks a live row of the app id at random (the namespace is not matched, as in
//! Dapr). Cleanup deletes dead rows at most once per `cleanupInterval` across all sidecars
//! (Dapr's stored code deletes with `<`, which would remove live rows; here the dead ones go).
//!
//! Configuration keys (the Configuration's `nameResolution.configuration`): `connectionString`
//! (required; a path or `file:` URI), `tableName` (`hosts`), `metadataTableName` (`metadata`),
//! `timeout` (1s, per statement), `updateInterval` (5s), `cleanupInterval` (1h; 0 turns it
//! off), `busyTimeout` (800ms), `disableWAL` (false). Durations are Go durations or seconds.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{Error, ErrorKind, NameResolver, Registration, ResolveRequest, Result};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::duration;

/// Settings of the SQLite resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// The database file (a `file:` URI's path and parameters).
    pub connection_string: String,
    /// Table of registrations.
    pub table: String,
    /// Table of migration and cleanup markers.
    pub metadata_table: String,
    /// Limit of each statement.
    pub timeout: Duration,
    /// How long a registration lives without renewal.
    pub update_interval: Duration,
    /// How often dead rows are deleted (`None`: never).
    pub cleanup_interval: Option<Duration>,
    /// SQLite's busy timeout.
    pub busy_timeout: Duration,
    /// Whether the journal stays in rollback mode instead of WAL.
    pub disable_wal: bool,
}

fn identifier(v: &str, key: &str) -> Result<String> {
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::invalid(format!(
            "nameresolution.sqlite: {key} '{v}' is not a valid table name (letters, digits, _)"
        )));
    }
    Ok(v.to_owned())
}

impl SqliteSettings {
    /// Reads the Configuration's `nameResolution.configuration`.
    ///
    /// # Errors
    /// A missing connection string, a bad table name or duration, an interval too short for
    /// the timeout, an unknown key (`InvalidArgument`).
    pub fn from_configuration(c: &Value) -> Result<Self> {
        let mut s = Self {
            connection_string: String::new(),
            table: "hosts".to_owned(),
            metadata_table: "metadata".to_owned(),
            timeout: Duration::from_secs(1),
            update_interval: Duration::from_secs(5),
            cleanup_interval: Some(Duration::from_secs(3600)),
            busy_timeout: Duration::from_millis(800),
            disable_wal: false,
        };
        let map = match c {
            Value::Object(m) => m.clone(),
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(Error::invalid(format!(
                    "nameresolution.sqlite: configuration must be a mapping, found {other}"
                )));
            }
        };
        for (k, v) in &map {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let d = |text: &str| duration(text, &format!("nameresolution.sqlite: {k}"));
            match k.to_ascii_lowercase().as_str() {
                "connectionstring" | "url" => s.connection_string = text,
                "tablename" => s.table = identifier(&text, k)?,
                "metadatatablename" => s.metadata_table = identifier(&text, k)?,
                "timeout" | "timeoutinseconds" => s.timeout = d(&text)?,
                "updateinterval" => s.update_interval = d(&text)?,
                "cleanupinterval" | "cleanupintervalinseconds" => {
                    s.cleanup_interval = Some(d(&text)?).filter(|d| !d.is_zero());
                }
                "busytimeout" => s.busy_timeout = d(&text)?,
                "disablewal" => s.disable_wal = text.eq_ignore_ascii_case("true"),
                _ => {
                    return Err(Error::invalid(format!(
                        "nameresolution.sqlite: unknown configuration key '{k}'"
                    )));
                }
            }
        }
        if s.connection_string.is_empty() {
            return Err(Error::invalid(
                "nameresolution.sqlite: connectionString is required",
            ));
        }
        if s.timeout < Duration::from_secs(1) {
            return Err(Error::invalid(
                "nameresolution.sqlite: timeout must be at least 1s",
            ));
        }
        if s.update_interval.subsec_nanos() != 0
            || s.update_interval < s.timeout + Duration::from_secs(1)
        {
            return Err(Error::invalid(
                "nameresolution.sqlite: updateInterval must be whole seconds, at least 1s more \
                 than timeout",
            ));
        }
        let lower = s.connection_string.to_ascii_lowercase();
        for p in ["busy_timeout", "journal_mode", "foreign_keys"] {
            if lower.contains(&format!("_pragma={p}")) {
                return Err(Error::invalid(format!(
                    "nameresolution.sqlite: the connection string may not set the {p} pragma"
                )));
            }
        }
        Ok(s)
    }

    fn connect_options(&self) -> Result<SqliteConnectOptions> {
        let raw = self
            .connection_string
            .strip_prefix("file:")
            .unwrap_or(&self.connection_string);
        let memory = raw.starts_with(":memory:") || raw.contains("mode=memory");
        let o = SqliteConnectOptions::from_str(&format!("sqlite:{raw}"))
            .map_err(|e| {
                Error::invalid(format!(
                    "nameresolution.sqlite: connectionString '{}': {e}",
                    self.connection_string
                ))
            })?
            .create_if_missing(true)
            .busy_timeout(self.busy_timeout);
        Ok(match (memory, self.disable_wal) {
            (true, _) => o.journal_mode(SqliteJournalMode::Memory),
            (false, true) => o,
            (false, false) => o.journal_mode(SqliteJournalMode::Wal),
        })
    }
}

struct Registered {
    pool: SqlitePool,
    id: String,
    address: String,
}

/// The SQLite resolver.
pub struct SqliteResolver {
    settings: SqliteSettings,
    state: Mutex<Option<Arc<Registered>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn db(e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("nameresolution.sqlite: {e}"))
}

impl SqliteResolver {
    /// A resolver with `settings`; the database opens at [`NameResolver::register`].
    pub fn new(settings: SqliteSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(None),
            tasks: Mutex::default(),
        }
    }
}

/// The statements, which need only the settings (the background tasks hold a copy of them).
impl SqliteSettings {
    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| db("statement timed out"))?
            .map_err(db)
    }

    async fn migrate(&self, pool: &SqlitePool) -> Result<()> {
        let (t, m) = (&self.table, &self.metadata_table);
        let mut tx = pool
            .begin_with("BEGIN EXCLUSIVE TRANSACTION")
            .await
            .map_err(db)?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {m} (key text NOT NULL PRIMARY KEY, value text NOT NULL)"
        )))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let level: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT value FROM {m} WHERE key = 'nr-migrations'"
        )))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if level.as_deref().unwrap_or("0") == "0" {
            for stmt in [
                format!(
                    "CREATE TABLE {t} (registration_id TEXT NOT NULL PRIMARY KEY, address TEXT \
                     NOT NULL, app_id TEXT NOT NULL, namespace TEXT NOT NULL, last_update \
                     INTEGER NOT NULL)"
                ),
                format!("CREATE UNIQUE INDEX {t}_address_idx ON {t} (address)"),
                format!("CREATE INDEX {t}_last_update_idx ON {t} (last_update)"),
                format!("REPLACE INTO {m} (key, value) VALUES ('nr-migrations', '1')"),
            ] {
                sqlx::query(AssertSqlSafe(stmt))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    async fn insert(&self, r: &Registered, me: &Registration) -> Result<()> {
        let t = &self.table;
        self.timed(
            sqlx::query(AssertSqlSafe(format!(
                "REPLACE INTO {t} (registration_id, address, app_id, namespace, last_update) \
                 VALUES (?, ?, ?, ?, unixepoch(CURRENT_TIMESTAMP))"
            )))
            .bind(&r.id)
            .bind(&r.address)
            .bind(&me.app_id)
            .bind(&me.namespace)
            .execute(&r.pool),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl NameResolver for SqliteResolver {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn register(&self, me: &Registration) -> Result<()> {
        if me.app_id.is_empty() || me.host_address.is_empty() || me.internal_port == 0 {
            return Err(Error::invalid(
                "nameresolution.sqlite: the app id, host address and internal gRPC port are \
                 required",
            ));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(self.settings.connect_options()?)
            .await
            .map_err(db)?;
        self.settings.migrate(&pool).await?;
        let address = if me.host_address.contains(':') {
            format!("[{}]:{}", me.host_address, me.internal_port)
        } else {
            format!("{}:{}", me.host_address, me.internal_port)
        };
        let r = Arc::new(Registered {
            pool,
            id: uuid::Uuid::new_v4().to_string(),
            address,
        });
        self.settings.insert(&r, me).await?;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        let settings = self.settings.clone();
        let me = me.clone();
        let every = settings.update_interval - settings.timeout;
        let keep = r.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(tokio::spawn(async move {
            let t = &settings.table;
            loop {
                tokio::time::sleep(every).await;
                let touched = settings
                    .timed(
                        sqlx::query(AssertSqlSafe(format!(
                            "UPDATE {t} SET last_update = unixepoch(CURRENT_TIMESTAMP) WHERE \
                             registration_id = ? AND address = ?"
                        )))
                        .bind(&keep.id)
                        .bind(&keep.address)
                        .execute(&keep.pool),
                    )
                    .await;
                match touched {
                    Ok(r) if r.rows_affected() == 1 => {}
                    Ok(_) => {
                        // Dapr exits ("Host registration lost"); registering again keeps the
                        // app reachable.
                        tracing::error!(
                            "nameresolution.sqlite: host registration lost; registering again"
                        );
                        if let Err(e) = settings.insert(&keep, &me).await {
                            tracing::error!("{e}");
                        }
                    }
                    Err(e) => tracing::warn!("renewing the registration: {e}"),
                }
            }
        }));
        if let Some(every) = self.settings.cleanup_interval {
            let settings = self.settings.clone();
            let keep = r.clone();
            tasks.push(tokio::spawn(async move {
                let (t, m) = (&settings.table, &settings.metadata_table);
                let live = settings.update_interval.as_secs();
                loop {
                    // Only one sidecar per interval claims the cleanup.
                    let claimed = settings
                        .timed(
                            sqlx::query(AssertSqlSafe(format!(
                                "INSERT INTO {m} (key, value) VALUES ('nr-last-cleanup', \
                                 CURRENT_TIMESTAMP) ON CONFLICT (key) DO UPDATE SET value = \
                                 CURRENT_TIMESTAMP WHERE unixepoch(CURRENT_TIMESTAMP) - \
                                 unixepoch(value) > ?"
                            )))
                            .bind(i64::try_from(every.as_secs()).unwrap_or(i64::MAX) - 1)
                            .execute(&keep.pool),
                        )
                        .await;
                    if matches!(&claimed, Ok(r) if r.rows_affected() > 0) {
                        let _ = settings
                            .timed(
                                sqlx::query(AssertSqlSafe(format!(
                                    "DELETE FROM {t} WHERE unixepoch(CURRENT_TIMESTAMP) - \
                                     last_update >= {live}"
                                )))
                                .execute(&keep.pool),
                            )
                            .await;
                    }
                    tokio::time::sleep(every).await;
                }
            }));
        }
        Ok(())
    }

    async fn resolve(&self, req: &ResolveRequest) -> Result<String> {
        let r = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::unavailable("nameresolution.sqlite: not registered yet"))?;
        let t = &self.settings.table;
        let live = self.settings.update_interval.as_secs();
        let found: Option<String> = self
            .settings
            .timed(
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT address FROM {t} WHERE ROWID = (SELECT ROWID FROM {t} WHERE app_id = \
                     ? AND unixepoch(CURRENT_TIMESTAMP) - last_update < {live} ORDER BY RANDOM() \
                     LIMIT 1)"
                )))
                .bind(&req.id)
                .fetch_optional(&r.pool),
            )
            .await?;
        found.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no host found with the given ID: {}", req.id),
            )
        })
    }

    async fn close(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
        let r = self.state.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(r) = r {
            let t = &self.settings.table;
            let deleted = self
                .settings
                .timed(
                    sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {t} WHERE registration_id = ? AND address = ?"
                    )))
                    .bind(&r.id)
                    .bind(&r.address)
                    .execute(&r.pool),
                )
                .await;
            match deleted {
                Ok(d) if d.rows_affected() == 0 => {
                    tracing::warn!("failed to unregister host: no row deleted");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("unregistering: {e}"),
            }
            r.pool.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(id: &str, port: u16) -> Registration {
        Registration {
            app_id: id.into(),
            host_address: "127.0.0.1".into(),
            internal_port: port,
            ..Registration::default()
        }
    }

    #[tokio::test]
    async fn sidecars_find_each_other_through_one_file_and_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nr.db");
        let c = serde_json::json!({"connectionString": file.display().to_string()});
        let a = SqliteResolver::new(SqliteSettings::from_configuration(&c).unwrap());
        let b = SqliteResolver::new(SqliteSettings::from_configuration(&c).unwrap());
        a.register(&me("a", 50001)).await.unwrap();
        b.register(&me("b", 50002)).await.unwrap();
        let ask = |id: &str| ResolveRequest {
            id: id.into(),
            ..ResolveRequest::default()
        };
        assert_eq!(a.resolve(&ask("b")).await.unwrap(), "127.0.0.1:50002");
        assert_eq!(b.resolve(&ask("a")).await.unwrap(), "127.0.0.1:50001");
        let e = a.resolve(&ask("c")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        b.close().await;
        assert_eq!(
            a.resolve(&ask("b")).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        a.close().await;
    }

    #[test]
    fn settings_are_checked() {
        let bad = |c: Value| SqliteSettings::from_configuration(&c).unwrap_err().message;
        assert!(bad(serde_json::json!({})).contains("connectionString is required"));
        assert!(
            bad(serde_json::json!({"connectionString": "x", "tableName": "a;b"}))
                .contains("not a valid table name")
        );
        assert!(
            bad(serde_json::json!({"connectionString": "x", "updateInterval": "1s"}))
                .contains("updateInterval")
        );
        assert!(
            bad(serde_json::json!({"connectionString": "x", "colour": "red"}))
                .contains("unknown configuration key 'colour'")
        );
        let s = SqliteSettings::from_configuration(
            &serde_json::json!({"connectionString": "x", "updateInterval": "10s", "cleanupInterval": 0}),
        )
        .unwrap();
        assert_eq!(s.update_interval, Duration::from_secs(10));
        assert_eq!(s.cleanup_interval, None);
    }
}
