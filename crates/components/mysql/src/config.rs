//! The connection settings shared by the MySQL components: their typed metadata (the
//! `mysql_metadata!` macro, [`ConnectionMetadata`]) and the validated [`MySqlConfig`].
//!
//! Keys as Layotto names them: the `mysql` sequencer's `mysqlUrl`, `userName`, `password`,
//! `dataBaseName`, `tableName` (`mosn/layotto:components/pkg/utils/mysql.go`, whose older
//! version read a `connectionString`), and the `snowflake` sequencer's `mysqlHost`,
//! `userName`, `password`, `databaseName`, `tableName`
//! (`components/sequencer/snowflake/snowflake.go`). Metadata keys match case-insensitively, so
//! `dataBaseName` and `databaseName` are one key. Both components read every form:
//!
//! - `mysqlHost` or `mysqlUrl`: `host`, `host:port` (default port 3306) or a `mysql://` URL,
//!   with `userName`, `password`, `databaseName`;
//! - `connectionString`: a Go driver DSN (`user:password@tcp(host:port)/db?...`, or
//!   `unix(/path/to/socket)`) or a `mysql://user:password@host:port/db` URL. Layotto's docs
//!   ask for it next to `mysqlUrl`: both may be given as long as they name one server, and the
//!   separate keys fill or override the DSN's user, password and database.
//!
//! `timeoutInSeconds` (Dapr's MySQL key: an integer of seconds or a Go duration, default 5 s)
//! bounds connecting and every statement. No TLS: Layotto's MySQL components have no TLS keys
//! and this build links no TLS library for MySQL.

use std::str::FromStr;
use std::time::Duration;

use layotto_core::metadata::{GoDuration, spec_error};
use layotto_core::{ComponentSpec, Result};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// Metadata key of the `snowflake` sequencer: the MySQL server, `host[:port]` or a URL.
pub const MYSQL_HOST_KEY: &str = "mysqlHost";
/// Metadata key of the `mysql` sequencer: the MySQL server, `host[:port]` or a URL.
pub const MYSQL_URL_KEY: &str = "mysqlUrl";
/// Metadata key: a Go driver DSN or a `mysql://` URL.
pub const CONNECTION_STRING_KEY: &str = "connectionString";
/// Metadata key: the MySQL user.
pub const USER_NAME_KEY: &str = "userName";
/// Metadata key: the password of `userName`.
pub const PASSWORD_KEY: &str = "password";
/// Metadata key: the database (the `mysql` sequencer's files spell it `dataBaseName`).
pub const DATABASE_NAME_KEY: &str = "databaseName";
/// Metadata key: the table of the component.
pub const TABLE_NAME_KEY: &str = "tableName";
/// Metadata key: bound of connecting and of every statement.
pub const TIMEOUT_KEY: &str = "timeoutInSeconds";

/// The default bound of connecting and of every statement.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default MySQL port.
pub const DEFAULT_PORT: u16 = 3306;

/// Declares the typed metadata struct of a MySQL component: the connection keys every MySQL
/// component shares (see [`ConnectionMetadata`]) followed by the component's own fields.
macro_rules! mysql_metadata {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$fattr:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Default, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            /// `mysqlHost`: `host[:port]` or a `mysql://` URL (the snowflake sequencer's key).
            pub mysql_host: Option<String>,
            /// `mysqlUrl`: `host[:port]` or a `mysql://` URL (the mysql sequencer's key).
            pub mysql_url: Option<String>,
            /// `connectionString`: a Go driver DSN or a `mysql://` URL.
            pub connection_string: Option<String>,
            /// `userName`: the MySQL user.
            pub user_name: Option<String>,
            /// `password`: the password of `userName`.
            pub password: Option<String>,
            /// `databaseName` (also spelled `dataBaseName`): the database.
            pub database_name: Option<String>,
            /// `tableName`: the component's table.
            pub table_name: Option<String>,
            /// `timeoutInSeconds`: bound of connecting and of every statement.
            pub timeout_in_seconds: Option<layotto_core::metadata::GoDuration>,
            $( $(#[$fattr])* pub $field: $ty, )*
        }

        impl $name {
            /// The connection keys alone.
            pub fn connection(&self) -> $crate::config::ConnectionMetadata {
                $crate::config::ConnectionMetadata {
                    mysql_host: self.mysql_host.clone(),
                    mysql_url: self.mysql_url.clone(),
                    connection_string: self.connection_string.clone(),
                    user_name: self.user_name.clone(),
                    password: self.password.clone(),
                    database_name: self.database_name.clone(),
                    table_name: self.table_name.clone(),
                    timeout_in_seconds: self.timeout_in_seconds,
                }
            }
        }
    };
}
pub(crate) use mysql_metadata;

mysql_metadata! {
    /// The connection keys every MySQL component reads.
    pub struct ConnectionMetadata {}
}

impl layotto_core::ComponentMetadata for ConnectionMetadata {}

/// Validated connection settings of one MySQL component.
#[derive(Clone)]
pub struct MySqlConfig {
    /// Connect options to the server (host or socket, user, password), without the database
    /// (the client adds it, and may create it); no TLS.
    pub options: MySqlConnectOptions,
    /// Where the server is, for messages: `host:port` or the socket path.
    pub endpoint: String,
    /// The metadata key the server came from, named by connection errors.
    pub endpoint_key: &'static str,
    /// The database.
    pub database: String,
    /// The user.
    pub user: String,
    /// The component's table (validated identifier).
    pub table: String,
    /// Bound of connecting and of every statement.
    pub timeout: Duration,
}

impl std::fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The parts of a server address or DSN.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parts {
    host: Option<(String, u16)>,
    socket: Option<String>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
}

impl Parts {
    /// `self` with what `other` names.
    fn merge(self, other: Parts) -> Parts {
        let (host, socket) = if other.host.is_some() || other.socket.is_some() {
            (other.host, other.socket)
        } else {
            (self.host, self.socket)
        };
        Parts {
            host,
            socket,
            user: other.user.or(self.user),
            password: other.password.or(self.password),
            database: other.database.or(self.database),
        }
    }
}

impl MySqlConfig {
    /// Validates the connection keys `m` of `spec`; `default_table` is the component's table
    /// when `tableName` is blank.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key.
    pub fn from_meta(
        spec: &ComponentSpec,
        m: &ConnectionMetadata,
        default_table: &str,
    ) -> Result<Self> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        // Layotto's docs ask for both `connectionString` and `mysqlUrl`: the DSN is read
        // first, and a host key may name its server again (or alone), never another one.
        let mut parts = Parts::default();
        let mut endpoint_key = None;
        let sources = [
            (CONNECTION_STRING_KEY, given(&m.connection_string)),
            (MYSQL_URL_KEY, given(&m.mysql_url)),
            (MYSQL_HOST_KEY, given(&m.mysql_host)),
        ];
        for (key, raw) in sources {
            let Some(raw) = raw else { continue };
            let p = if key == CONNECTION_STRING_KEY {
                parse_dsn(raw)
            } else {
                parse_address(raw)
            }
            .map_err(|why| spec_error(spec, format!("metadata '{key}': {why}")))?;
            if let Some(prev) = endpoint_key {
                let named = |x: &Parts| x.host.is_some() || x.socket.is_some();
                if named(&parts) && named(&p) && (parts.host != p.host || parts.socket != p.socket)
                {
                    return Err(spec_error(
                        spec,
                        format!("metadata '{prev}' and '{key}' name different MySQL servers"),
                    ));
                }
            }
            parts = parts.merge(p);
            endpoint_key = Some(key);
        }
        let Some(endpoint_key) = endpoint_key else {
            return Err(spec_error(
                spec,
                format!(
                    "metadata '{MYSQL_HOST_KEY}' (or '{MYSQL_URL_KEY}', \
                     '{CONNECTION_STRING_KEY}') is required: the MySQL server"
                ),
            ));
        };
        if let Some(u) = given(&m.user_name) {
            parts.user = Some(u.to_owned());
        }
        if let Some(p) = m.password.as_deref().filter(|p| !p.is_empty()) {
            parts.password = Some(p.to_owned());
        }
        if let Some(d) = given(&m.database_name) {
            parts.database = Some(d.to_owned());
        }
        let user = parts.user.clone().ok_or_else(|| {
            spec_error(
                spec,
                format!("metadata '{USER_NAME_KEY}' is required (the MySQL user)"),
            )
        })?;
        let database = parts.database.clone().ok_or_else(|| {
            spec_error(
                spec,
                format!("metadata '{DATABASE_NAME_KEY}' is required (the MySQL database)"),
            )
        })?;
        check_identifier(&database)
            .map_err(|why| spec_error(spec, format!("metadata '{DATABASE_NAME_KEY}': {why}")))?;
        let table = given(&m.table_name).unwrap_or(default_table).to_owned();
        check_identifier(&table)
            .map_err(|why| spec_error(spec, format!("metadata '{TABLE_NAME_KEY}': {why}")))?;
        let timeout = match m.timeout_in_seconds {
            None => DEFAULT_TIMEOUT,
            Some(GoDuration(d)) if d.is_zero() => {
                return Err(spec_error(
                    spec,
                    format!("metadata '{TIMEOUT_KEY}' must be greater than 0"),
                ));
            }
            Some(GoDuration(d)) => d,
        };
        let mut options = MySqlConnectOptions::new()
            .username(&user)
            .ssl_mode(MySqlSslMode::Disabled);
        if let Some(p) = &parts.password {
            options = options.password(p);
        }
        let endpoint = match (&parts.socket, &parts.host) {
            (Some(path), _) => {
                options = options.socket(path);
                path.clone()
            }
            (None, Some((host, port))) => {
                options = options.host(host).port(*port);
                format!("{host}:{port}")
            }
            (None, None) => {
                options = options.host("localhost").port(DEFAULT_PORT);
                format!("localhost:{DEFAULT_PORT}")
            }
        };
        Ok(Self {
            options,
            endpoint,
            endpoint_key,
            database,
            user,
            table,
            timeout,
        })
    }
}

/// `host`, `host:port`, `[v6]:port`, or a `mysql://` URL.
fn parse_address(raw: &str) -> std::result::Result<Parts, String> {
    if raw.starts_with("mysql://") || raw.starts_with("mariadb://") {
        return parse_url(raw);
    }
    if raw.contains(['/', '@', '?', ' ']) {
        return Err(format!(
            "must be host[:port] or a mysql:// URL, got '{raw}'"
        ));
    }
    Ok(Parts {
        host: Some(host_port(raw)?),
        ..Parts::default()
    })
}

fn host_port(raw: &str) -> std::result::Result<(String, u16), String> {
    let bad = || format!("must be host[:port], got '{raw}'");
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (raw, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    Ok((host.to_owned(), port))
}

/// A `mysql://user:password@host:port/db` URL (percent-decoding as sqlx does).
fn parse_url(raw: &str) -> std::result::Result<Parts, String> {
    let o = MySqlConnectOptions::from_str(&raw.replacen("mariadb://", "mysql://", 1))
        .map_err(|e| format!("not a valid mysql:// URL: {e}"))?;
    // sqlx keeps the password private: take it from the URL text.
    let password = raw
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|auth| auth.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| percent_decode(p));
    let user = o.get_username();
    Ok(Parts {
        host: Some((o.get_host().to_owned(), o.get_port())),
        socket: o.get_socket().map(|p| p.display().to_string()),
        user: (!user.is_empty()).then(|| user.to_owned()),
        password,
        database: o.get_database().map(str::to_owned),
    })
}

/// A Go MySQL driver DSN, `[user[:password]@][net[(addr)]]/dbname[?params]` (params are
/// ignored), or a `mysql://` URL.
fn parse_dsn(raw: &str) -> std::result::Result<Parts, String> {
    if raw.starts_with("mysql://") || raw.starts_with("mariadb://") {
        return parse_url(raw);
    }
    let shape = "must be a DSN user:password@tcp(host:port)/database or a mysql:// URL";
    // As the Go driver: the database follows the last '/' (a socket path holds '/' too).
    let (left, db) = raw
        .rsplit_once('/')
        .ok_or_else(|| format!("{shape}, got no '/database'"))?;
    let database = db.split('?').next().unwrap_or_default();
    let (userinfo, net) = match left.rsplit_once('@') {
        Some((u, n)) => (Some(u), n),
        None => (None, left),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
            None => (Some(u.to_owned()), None),
        },
    };
    let mut parts = Parts {
        user: user.filter(|u| !u.is_empty()),
        password: password.filter(|p| !p.is_empty()),
        database: (!database.is_empty()).then(|| database.to_owned()),
        ..Parts::default()
    };
    if !net.is_empty() {
        let (proto, addr) = match net.split_once('(') {
            Some((p, rest)) => (
                p,
                rest.strip_suffix(')')
                    .ok_or_else(|| format!("{shape}: unclosed '(' in '{net}'"))?,
            ),
            None => (net, ""),
        };
        match proto {
            "tcp" | "tcp6" if addr.is_empty() => {}
            "tcp" | "tcp6" => parts.host = Some(host_port(addr)?),
            "unix" if !addr.is_empty() => parts.socket = Some(addr.to_owned()),
            other => return Err(format!("{shape}: unsupported network '{other}'")),
        }
    }
    Ok(parts)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A database or table name this component interpolates into SQL: letters, digits, `_` and
/// `$`, at most 64 characters (MySQL's limit), not all digits.
pub(crate) fn check_identifier(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("'{name}' must hold 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        || name.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!(
            "'{name}' must hold only letters, digits, '_' and '$' (a plain MySQL identifier)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use layotto_core::metadata::decode;

    use super::*;

    fn cfg(s: &ComponentSpec) -> Result<MySqlConfig> {
        let m: ConnectionMetadata = decode(s)?;
        MySqlConfig::from_meta(s, &m, "dflt")
    }

    fn spec() -> ComponentSpec {
        ComponentSpec::new("m", "mysql")
            .with(USER_NAME_KEY, "root")
            .with(PASSWORD_KEY, "123456")
            .with("dataBaseName", "layotto")
    }

    #[test]
    fn layotto_keys_parse() {
        let c = cfg(&spec().with(MYSQL_HOST_KEY, "localhost:3306")).expect("valid");
        assert_eq!(c.endpoint, "localhost:3306");
        assert_eq!((c.database.as_str(), c.user.as_str()), ("layotto", "root"));
        assert_eq!(c.table, "dflt");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(!format!("{c:?}").contains("123456"));
        let c = cfg(&spec()
            .with(MYSQL_URL_KEY, "db.example")
            .with(TABLE_NAME_KEY, "t_1")
            .with(TIMEOUT_KEY, "2"))
        .expect("valid");
        assert_eq!(
            (c.endpoint.as_str(), c.table.as_str(), c.timeout),
            ("db.example:3306", "t_1", Duration::from_secs(2))
        );
        let c = cfg(&ComponentSpec::new("m", "mysql").with(
            CONNECTION_STRING_KEY,
            "u:p@ss@tcp(10.0.0.1:3307)/seq?charset=utf8&parseTime=true",
        ))
        .expect("dsn");
        assert_eq!(
            (c.endpoint.as_str(), c.user.as_str(), c.database.as_str()),
            ("10.0.0.1:3307", "u", "seq")
        );
        // Layotto's docs: both `mysqlUrl` and `connectionString`, naming one server.
        let c = cfg(&ComponentSpec::new("m", "mysql")
            .with(MYSQL_URL_KEY, "127.0.0.1:3306")
            .with(
                CONNECTION_STRING_KEY,
                "root:123456@tcp(127.0.0.1:3306)/test",
            ))
        .expect("both keys");
        assert_eq!(
            (c.endpoint.as_str(), c.database.as_str()),
            ("127.0.0.1:3306", "test")
        );
        let p = parse_dsn("u:p@ss@tcp(10.0.0.1:3307)/seq").expect("dsn");
        assert_eq!(p.password.as_deref(), Some("p@ss"));
        let p = parse_dsn("u@unix(/run/mysqld/mysqld.sock)/seq").expect("socket");
        assert_eq!(p.socket.as_deref(), Some("/run/mysqld/mysqld.sock"));
        assert_eq!(p.database.as_deref(), Some("seq"));
        let p = parse_url("mysql://u:p%40w@h:3310/d").expect("url");
        assert_eq!(p.host, Some(("h".to_owned(), 3310)));
        assert_eq!(p.password.as_deref(), Some("p@w"));
        assert_eq!(p.database.as_deref(), Some("d"));
        assert_eq!(host_port("[::1]:3307"), Ok(("::1".to_owned(), 3307)));
    }

    #[test]
    fn bad_keys_are_named() {
        for (s, key) in [
            (spec(), MYSQL_HOST_KEY),
            (spec().with(MYSQL_HOST_KEY, "h:0"), MYSQL_HOST_KEY),
            (spec().with(MYSQL_HOST_KEY, "h/x"), MYSQL_HOST_KEY),
            (
                spec().with(MYSQL_HOST_KEY, "a").with(MYSQL_URL_KEY, "b"),
                MYSQL_URL_KEY,
            ),
            (
                spec().with(CONNECTION_STRING_KEY, "nodb"),
                CONNECTION_STRING_KEY,
            ),
            (
                spec().with(CONNECTION_STRING_KEY, "u@pipe(x)/d"),
                CONNECTION_STRING_KEY,
            ),
            (
                ComponentSpec::new("m", "mysql")
                    .with(MYSQL_HOST_KEY, "h")
                    .with("databaseName", "d"),
                USER_NAME_KEY,
            ),
            (
                ComponentSpec::new("m", "mysql")
                    .with(MYSQL_HOST_KEY, "h")
                    .with(USER_NAME_KEY, "u"),
                DATABASE_NAME_KEY,
            ),
            (
                spec()
                    .with(MYSQL_HOST_KEY, "h")
                    .with(TABLE_NAME_KEY, "t; DROP TABLE x"),
                TABLE_NAME_KEY,
            ),
            (
                spec()
                    .with(MYSQL_HOST_KEY, "h")
                    .with(DATABASE_NAME_KEY, "a`b"),
                DATABASE_NAME_KEY,
            ),
            (
                spec().with(MYSQL_HOST_KEY, "h").with(TIMEOUT_KEY, "0"),
                TIMEOUT_KEY,
            ),
            (
                spec().with(MYSQL_HOST_KEY, "h").with(TIMEOUT_KEY, "soon"),
                TIMEOUT_KEY,
            ),
        ] {
            let e = cfg(&s).expect_err(key);
            assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument, "{e}");
            assert!(e.message.contains(key), "{key}: {e}");
            assert!(e.message.contains("'m'"), "names the component: {e}");
        }
    }
}
