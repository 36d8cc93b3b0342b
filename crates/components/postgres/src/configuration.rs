//! Dapr's `configuration.postgresql` (components-contrib `configuration/postgres`): items read
//! from a table the user keeps, changes pushed by a trigger through `NOTIFY`.
//!
//! The table is the user's, as in Dapr (docs.dapr.io "PostgreSQL configuration store"):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS configtable (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL,
//!   VERSION VARCHAR NOT NULL, METADATA JSON);
//! CREATE OR REPLACE FUNCTION notify_event() RETURNS TRIGGER AS $$
//!   DECLARE data json; notification json;
//!   BEGIN
//!     IF (TG_OP = 'DELETE') THEN data = row_to_json(OLD); ELSE data = row_to_json(NEW); END IF;
//!     notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
//!     PERFORM pg_notify('config', notification::text);
//!     RETURN NULL;
//!   END;
//! $$ LANGUAGE plpgsql;
//! CREATE TRIGGER config AFTER INSERT OR UPDATE OR DELETE ON configtable
//!   FOR EACH ROW EXECUTE PROCEDURE notify_event();
//! ```
//!
//! `init` fails when the table does not exist. A get returns, per key, the row with the highest
//! numeric `version` (as daprd), the version in the item's metadata `version` and the row's
//! `metadata` object in the rest of it; keys may hold only letters, digits, `.`, `/` and `_`.
//! A subscription needs the request metadata `pgNotifyChannel` (the channel the trigger
//! notifies) and gets every notification of its keys (all keys when it names none); a
//! `DELETE` arrives as the item with empty content. The store is read-only, as Dapr's: saving
//! and deleting is the table owner's business (`Unsupported`). Group and label do not apply.
//!
//! Keys: `connectionString` (alias `url`) and the individual `host`, `hostaddr`, `port`,
//! `database`, `user`, `password`, `sslRootCert` over it, `table` (required: lower-case letters, digits,
//! `.`, `/`, `_`, at most 64 characters, as daprd checks), `timeout` (alias
//! `timeoutInSeconds`), `maxConns`; `connMaxIdleTime`/`connectionMaxIdleTime` and
//! `queryExecMode` are accepted without effect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::configuration::{ConfigChanges, ConfigItem, ConfigQuery, ConfigStore};
use layotto_core::metadata::{decode, parse_duration, spec_error};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Metadata, Result};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

use crate::client::{ConnectionOverrides, DEFAULT_MAX_CONNECTIONS, PgClient, PgConfig, connection};

/// The subscription metadata key naming the channel to `LISTEN` on.
pub const NOTIFY_CHANNEL_KEY: &str = "pgNotifyChannel";

/// Metadata of [`PgConfigStore`] (Dapr's keys; see the module documentation).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PgConfigMetadata {
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
    /// `table` (required).
    pub table: Option<String>,
    /// `timeout` (alias `timeoutInSeconds`): Go duration or seconds, default 20 s.
    #[serde(alias = "timeoutInSeconds")]
    pub timeout: Option<String>,
    /// `maxConns`: the pool size when above 1.
    pub max_conns: Option<String>,
}

impl ComponentMetadata for PgConfigMetadata {
    const NO_EFFECT: &'static [&'static str] =
        &["connMaxIdleTime", "connectionMaxIdleTime", "queryExecMode"];
}

/// Dapr's PostgreSQL configuration store (type `configuration.postgresql`).
#[derive(Debug)]
pub struct PgConfigStore {
    client: Arc<PgClient>,
    table: String,
}

impl PgConfigStore {
    /// Factory: [`PgConfigMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending metadata key.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: PgConfigMetadata = decode(spec)?;
        let table = meta.table.as_deref().map(str::trim).unwrap_or_default();
        if table.is_empty() {
            return Err(spec_error(
                spec,
                "metadata 'table' (the configuration table) is required",
            ));
        }
        if table.len() > 64
            || !table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "./_".contains(c))
        {
            return Err(spec_error(
                spec,
                format!(
                    "metadata 'table': '{table}' must be at most 64 lower-case letters, digits, \
                     '.', '/' or '_'"
                ),
            ));
        }
        // The individual connection keys, declared in the metadata struct above.
        let overrides: ConnectionOverrides = decode(spec)?;
        let (options, endpoint) = connection(meta.connection_string.as_deref(), &overrides)
            .map_err(|e| spec_error(spec, e))?;
        let timeout = match meta.timeout.as_deref().map(str::trim) {
            None | Some("") => Duration::from_secs(20),
            Some(raw) => parse_duration(raw, Duration::from_secs).ok_or_else(|| {
                spec_error(
                    spec,
                    format!("metadata 'timeout': expected a duration, got '{raw}'"),
                )
            })?,
        };
        let max_connections = meta
            .max_conns
            .as_deref()
            .and_then(|m| m.trim().parse::<u32>().ok())
            .filter(|n| *n > 1)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        Ok(Self {
            client: Arc::new(PgClient::new(
                format!("configuration store '{}'", spec.name),
                PgConfig {
                    options,
                    endpoint,
                    timeout,
                    max_connections,
                },
            )),
            table: table.to_owned(),
        })
    }

    fn read_only(&self) -> Error {
        self.client.err(Error::unsupported(format!(
            "the PostgreSQL configuration store is read-only, as Dapr's: write table '{}' \
             directly",
            self.table
        )))
    }
}

/// The item of one row or notification: the version in metadata `version`, then the row's
/// metadata object.
fn item(key: String, value: String, version: String, metadata: Option<&Value>) -> ConfigItem {
    let mut md = Metadata::new();
    if let Some(Value::Object(m)) = metadata {
        for (k, v) in m {
            md.insert(
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            );
        }
    }
    md.insert("version".to_owned(), version);
    ConfigItem {
        key,
        content: value,
        metadata: md,
        ..ConfigItem::default()
    }
}

/// Whether `key` is one daprd accepts (`^[a-zA-Z0-9./_]*$`).
fn valid_key(key: &str) -> bool {
    key.chars()
        .all(|c| c.is_ascii_alphanumeric() || "./_".contains(c))
}

#[async_trait]
impl Component for PgConfigStore {
    async fn init(&self) -> Result<()> {
        self.client.connect().await?;
        let table = self.table.clone();
        let exists: bool = self
            .client
            .call("check the configuration table", |p| async move {
                sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_tables WHERE tablename = $1)")
                    .bind(table)
                    .fetch_one(&p)
                    .await
            })
            .await?;
        if exists {
            Ok(())
        } else {
            Err(self.client.err(Error::invalid(format!(
                "configuration table '{}' (metadata 'table') does not exist",
                self.table
            ))))
        }
    }

    async fn health(&self) -> Health {
        self.client.health().await
    }

    async fn close(&self) -> Result<()> {
        self.client.close().await;
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for PgConfigStore {
    async fn get(&self, query: &ConfigQuery) -> Result<Vec<ConfigItem>> {
        if let Some(k) = query.keys.iter().find(|k| !valid_key(k)) {
            return Err(self.client.err(Error::invalid(format!(
                "invalid key '{k}': letters, digits, '.', '/' and '_' only"
            ))));
        }
        let mut sql = format!(
            "SELECT key::text, value::text, version::text, metadata::text FROM {}",
            self.table
        );
        if !query.keys.is_empty() {
            sql.push_str(" WHERE key = ANY($1)");
        }
        let keys = query.keys.clone();
        let rows = self
            .client
            .call("get", |p| async move {
                let q = sqlx::query(AssertSqlSafe(sql));
                let q = if keys.is_empty() { q } else { q.bind(keys) };
                q.fetch_all(&p).await
            })
            .await?;
        // daprd: per key, the row with the highest numeric version (-1 when not a number).
        let mut best: HashMap<String, (i64, ConfigItem)> = HashMap::new();
        for row in rows {
            let cols: (String, String, String, Option<String>) = (
                row.try_get(0).unwrap_or_default(),
                row.try_get(1).unwrap_or_default(),
                row.try_get(2).unwrap_or_default(),
                row.try_get(3).unwrap_or_default(),
            );
            let (key, value, version, metadata) = cols;
            let rank = version.trim().parse::<i64>().unwrap_or(-1);
            let md = metadata.and_then(|m| serde_json::from_str::<Value>(&m).ok());
            if best.get(&key).is_none_or(|(r, _)| rank > *r) {
                let it = item(key.clone(), value, version, md.as_ref());
                best.insert(key, (rank, it));
            }
        }
        let mut out: Vec<ConfigItem> = best.into_values().map(|(_, i)| i).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn set(&self, _app_id: &str, _items: Vec<ConfigItem>, _md: &Metadata) -> Result<()> {
        Err(self.read_only())
    }

    async fn delete(&self, _query: &ConfigQuery) -> Result<()> {
        Err(self.read_only())
    }

    async fn subscribe(&self, query: &ConfigQuery) -> Result<ConfigChanges> {
        let channel = query
            .metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(NOTIFY_CHANNEL_KEY))
            .map(|(_, v)| v.trim().to_owned())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                self.client.err(Error::invalid(format!(
                    "unable to subscribe to '{}': metadata '{NOTIFY_CHANNEL_KEY}' (the channel \
                     the table's trigger notifies) is required",
                    self.table
                )))
            })?;
        // daprd splices the name into `LISTEN`, where PostgreSQL folds a plain identifier to
        // lower case; here it is quoted, so fold it the same way first.
        let plain = channel
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        let channel = if plain {
            channel.to_ascii_lowercase()
        } else {
            channel
        };
        // A connection of its own: a LISTEN holds it for as long as the subscription lives.
        let own = self.client.dedicated_pool();
        let mut listener = self
            .client
            .call("listen", |_| async move {
                let mut l = sqlx::postgres::PgListener::connect_with(&own).await?;
                l.listen(&channel).await?;
                Ok(l)
            })
            .await?;
        let client = self.client.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let keys = query.keys.clone();
        tokio::spawn(async move {
            loop {
                let n = tokio::select! {
                    () = tx.closed() => return,
                    n = listener.recv() => n,
                };
                let n = match n {
                    Ok(n) => n,
                    Err(_) if client.is_closed() => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "configuration notifications: connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let Ok(payload) = serde_json::from_str::<Value>(n.payload()) else {
                    tracing::info!(payload = %n.payload(), "configuration notification is no JSON; ignored");
                    continue;
                };
                let Some(Value::Object(data)) = payload.get("data") else {
                    tracing::info!(payload = %n.payload(), "configuration notification without 'data'; ignored");
                    continue;
                };
                let field = |name: &str| {
                    data.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                };
                let text = |name: &str| {
                    field(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let key = text("key");
                if !keys.is_empty() && !keys.contains(&key) {
                    continue;
                }
                let deleted = payload.get("action").and_then(Value::as_str) == Some("DELETE");
                let value = if deleted {
                    String::new()
                } else {
                    text("value")
                };
                let it = item(key, value, text("version"), field("metadata"));
                if tx.send(vec![it]).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
