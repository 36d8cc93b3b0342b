//! The connection settings shared by the MongoDB components ([`MongoConfig`]).
//!
//! Layotto's lock and sequencer read `mosn/layotto:components/pkg/utils/mongo.go`'s keys:
//! `mongoHost`, `server`, `username`, `mongoPassword`, `databaseName` (default `layottoStore`),
//! `collectionName` (default `layottoCollection`), `writeConcern`, `readConcern`,
//! `operationTimeout` (a Go duration, default 5 s) and `params`. Dapr's `state.mongodb`
//! (`dapr/components-contrib:state/mongodb/mongodb.go`) names the host `host` and the password
//! `password`, defaults to `daprStore` / `daprCollection` and also takes a whole
//! `connectionString`. Both build the same connection string:
//! `mongodb://[USER:PASSWORD@]HOST/DATABASE PARAMS` (`params` is appended as written, so it
//! starts with `?`: `?tls=true&tlsCAFile=/ca.pem`). Here user and password are percent-encoded
//! (upstream pastes them raw, which breaks on `@` or `:`), and the string is parsed when the
//! config is read, so a bad one is an error naming the key at `validate`.
//!
//! `server` (a `mongodb+srv://` DNS seed list) needs DNS lookups this build does not make: it is
//! refused as not supported yet.

use std::time::Duration;

use layotto_core::metadata::{GoDuration, spec_error};
use layotto_core::{ComponentSpec, Error, Result};
use mongodb::options::{
    ClientOptions, ConnectionString, HostInfo, ReadConcern, ReadConcernLevel, WriteConcern,
};

/// Layotto's default operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Database and collection defaults of Layotto's lock and sequencer.
pub const LAYOTTO_DEFAULTS: (&str, &str) = ("layottoStore", "layottoCollection");
/// Database and collection defaults of Dapr's `state.mongodb`.
pub const DAPR_DEFAULTS: (&str, &str) = ("daprStore", "daprCollection");

/// The metadata every MongoDB component reads, before validation; each component's metadata
/// struct fills it.
#[derive(Debug, Default)]
pub struct RawConfig<'a> {
    /// The host key's name (`mongoHost` or `host`) and value.
    pub host: (&'static str, Option<&'a str>),
    /// The password key's name (`mongoPassword` or `password`) and value.
    pub password: (&'static str, Option<&'a str>),
    /// `server`.
    pub server: Option<&'a str>,
    /// `username`.
    pub username: Option<&'a str>,
    /// `databaseName`.
    pub database_name: Option<&'a str>,
    /// `collectionName`.
    pub collection_name: Option<&'a str>,
    /// `writeConcern`.
    pub write_concern: Option<&'a str>,
    /// `readConcern`.
    pub read_concern: Option<&'a str>,
    /// `operationTimeout`.
    pub operation_timeout: Option<GoDuration>,
    /// `params`.
    pub params: Option<&'a str>,
    /// `connectionString` (Dapr's state store only).
    pub connection_string: Option<&'a str>,
}

/// Validated connection settings of one MongoDB component.
#[derive(Clone)]
pub struct MongoConfig {
    /// The parsed connection string.
    conn: ConnectionString,
    /// The hosts, for messages (never the credentials).
    pub hosts: String,
    /// The metadata key the hosts came from, named by connection errors.
    pub host_key: &'static str,
    /// Database of the collection.
    pub database: String,
    /// The collection holding the component's documents.
    pub collection: String,
    /// Write concern of every write (`None`: the server's default).
    pub write_concern: Option<WriteConcern>,
    /// Read concern of every read (`None`: the server's default).
    pub read_concern: Option<ReadConcern>,
    /// Bound of every call, connecting included.
    pub timeout: Duration,
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("hosts", &self.hosts)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

impl MongoConfig {
    /// Validates `raw`; `defaults` is (database, collection) when the keys are absent.
    ///
    /// # Errors
    /// Invalid argument naming the component and the key: no host, both `host` and `server`,
    /// `server` (not supported yet), a connection string the driver refuses, an unknown
    /// `writeConcern` / `readConcern`, a zero `operationTimeout`.
    pub fn new(spec: &ComponentSpec, raw: &RawConfig<'_>, defaults: (&str, &str)) -> Result<Self> {
        let database = given(raw.database_name).unwrap_or(defaults.0).to_owned();
        let collection = given(raw.collection_name).unwrap_or(defaults.1).to_owned();
        let (host_key, uri) = if let Some(cs) = given(raw.connection_string) {
            ("connectionString", cs.to_owned())
        } else {
            let host = given(raw.host.1);
            if given(raw.server).is_some() {
                return Err(spec_error(
                    spec,
                    if host.is_some() {
                        format!(
                            "metadata '{}' and 'server' are mutually exclusive",
                            raw.host.0
                        )
                    } else {
                        format!(
                            "metadata 'server': mongodb+srv:// seed lists are not supported yet; \
                             give the hosts in '{}'",
                            raw.host.0
                        )
                    },
                ));
            }
            let host = host.ok_or_else(|| {
                spec_error(spec, format!("metadata '{}' is required", raw.host.0))
            })?;
            let auth = match (given(raw.username), given(raw.password.1)) {
                (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
                _ => String::new(),
            };
            let params = raw.params.map(str::trim).unwrap_or_default();
            (
                raw.host.0,
                format!("mongodb://{auth}{host}/{database}{params}"),
            )
        };
        let conn = ConnectionString::parse(&uri).map_err(|e| {
            spec_error(
                spec,
                format!(
                    "metadata '{host_key}' (with 'params'): not a MongoDB connection string: {}",
                    redact(&e.to_string(), raw.password.1)
                ),
            )
        })?;
        let hosts = match &conn.host_info {
            HostInfo::HostIdentifiers(hosts) => hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            _ => {
                return Err(spec_error(
                    spec,
                    format!(
                        "metadata '{host_key}': mongodb+srv:// seed lists are not supported yet"
                    ),
                ));
            }
        };
        let timeout = raw.operation_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        if timeout.is_zero() {
            return Err(spec_error(
                spec,
                "metadata 'operationTimeout' must be above 0",
            ));
        }
        Ok(Self {
            conn,
            hosts,
            host_key,
            database,
            collection,
            write_concern: given(raw.write_concern)
                .map(|w| write_concern(spec, w))
                .transpose()?,
            read_concern: given(raw.read_concern)
                .map(|r| read_concern(spec, r))
                .transpose()?,
            timeout,
        })
    }

    /// The driver's options: the connection string, with every timeout set to the operation
    /// timeout (so an unreachable server fails a call instead of hanging).
    ///
    /// # Errors
    /// Invalid argument when the driver refuses the options (already parsed, so not expected).
    pub async fn client_options(&self) -> Result<ClientOptions> {
        let mut o = ClientOptions::parse(self.conn.clone())
            .await
            .map_err(|e| Error::invalid(format!("metadata '{}': {e}", self.host_key)))?;
        o.server_selection_timeout = Some(self.timeout);
        o.connect_timeout = Some(self.timeout);
        o.app_name.get_or_insert_with(|| "layotto-rs".to_owned());
        Ok(o)
    }
}

/// `w` in a connection string's user-info part.
fn encode(w: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(w.len());
    for b in w.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `text` with the password replaced (driver messages may quote the string).
fn redact(text: &str, password: Option<&str>) -> String {
    match given(password) {
        Some(p) => text.replace(p, "***").replace(&encode(p), "***"),
        None => text.to_owned(),
    }
}

/// Layotto's `writeConcern`: `majority` or a number of nodes; journaled as upstream.
fn write_concern(spec: &ComponentSpec, w: &str) -> Result<WriteConcern> {
    let b = WriteConcern::builder()
        .journal(true)
        .w_timeout(DEFAULT_TIMEOUT);
    if w == "majority" {
        return Ok(b.w(mongodb::options::Acknowledgment::Majority).build());
    }
    let n: u32 = w.parse().map_err(|_| {
        spec_error(
            spec,
            format!("metadata 'writeConcern': '{w}' is neither 'majority' nor a number of nodes"),
        )
    })?;
    Ok(b.w(mongodb::options::Acknowledgment::Nodes(n)).build())
}

/// Layotto's `readConcern` levels.
fn read_concern(spec: &ComponentSpec, r: &str) -> Result<ReadConcern> {
    let level = match r {
        "local" => ReadConcernLevel::Local,
        "majority" => ReadConcernLevel::Majority,
        "available" => ReadConcernLevel::Available,
        "linearizable" => ReadConcernLevel::Linearizable,
        "snapshot" => ReadConcernLevel::Snapshot,
        _ => {
            return Err(spec_error(
                spec,
                format!(
                    "metadata 'readConcern': '{r}' is not one of local, majority, available, \
                     linearizable, snapshot"
                ),
            ));
        }
    };
    Ok(ReadConcern::from(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(host: Option<&str>) -> RawConfig<'_> {
        RawConfig {
            host: ("mongoHost", host),
            password: ("mongoPassword", None),
            ..RawConfig::default()
        }
    }

    #[test]
    fn builds_layottos_connection_string() {
        let spec = ComponentSpec::new("m", "mongo");
        let c = MongoConfig::new(&spec, &raw(Some("localhost:27017")), LAYOTTO_DEFAULTS)
            .expect("valid");
        assert_eq!(c.hosts, "localhost:27017");
        assert_eq!(
            (c.database.as_str(), c.collection.as_str()),
            LAYOTTO_DEFAULTS
        );
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        let mut r = raw(Some("h1:1,h2:2"));
        r.username = Some("u@x");
        r.password = ("mongoPassword", Some("p:w/"));
        r.params = Some("?connectTimeoutMS=100");
        r.database_name = Some("db");
        let c = MongoConfig::new(&spec, &r, LAYOTTO_DEFAULTS).expect("valid");
        assert_eq!(c.hosts, "h1:1,h2:2");
        assert_eq!(c.database, "db");
        assert_eq!(encode("p:w/"), "p%3Aw%2F");
    }

    #[test]
    fn bad_settings_name_the_key() {
        let spec = ComponentSpec::new("m", "mongo");
        let e = MongoConfig::new(&spec, &raw(None), LAYOTTO_DEFAULTS).expect_err("no host");
        assert!(e.message.contains("'mongoHost' is required"), "{e}");
        let mut r = raw(None);
        r.server = Some("cluster.example");
        let e = MongoConfig::new(&spec, &r, LAYOTTO_DEFAULTS).expect_err("srv");
        assert!(
            e.message.contains("'server'") && e.message.contains("not supported yet"),
            "{e}"
        );
        let mut r = raw(Some("h"));
        r.params = Some("?tls=maybe");
        let e = MongoConfig::new(&spec, &r, LAYOTTO_DEFAULTS).expect_err("bad param");
        assert!(e.message.contains("'mongoHost'"), "{e}");
        let mut r = raw(Some("h"));
        r.write_concern = Some("all");
        let e = MongoConfig::new(&spec, &r, LAYOTTO_DEFAULTS).expect_err("bad w");
        assert!(e.message.contains("'writeConcern'"), "{e}");
        let mut r = raw(Some("h"));
        r.read_concern = Some("strong");
        let e = MongoConfig::new(&spec, &r, LAYOTTO_DEFAULTS).expect_err("bad r");
        assert!(e.message.contains("'readConcern'"), "{e}");
    }
}
