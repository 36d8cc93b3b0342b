//! The connection settings shared by the ZooKeeper components ([`ZkConfig`]) and the node
//! paths they derive from keys ([`node_path`]).
//!
//! Keys as `mosn/layotto:components/pkg/utils/zookeeper.go` names them: `zookeeperHosts`
//! (`;`-separated; the state store also takes Dapr's `servers`, `,`-separated),
//! `zookeeperPassword`, `sessionTimeout`, `logInfo` (no effect here), plus `keyPrefixPath`.
//! Keys match case-insensitively, so Layotto's own spelling in Go (`SessionTimeout`, `LogInfo`)
//! and its config files' (`sessionTimeout`, `logInfo`) both work. (Layotto's Go lookup is
//! case-sensitive on `SessionTimeout`, so Layotto itself ignores the `sessionTimeout` its files
//! set and uses 5 s.)

use std::time::Duration;

use base64::Engine;
use layotto_core::metadata::{GoDuration, spec_error};
use layotto_core::{ComponentSpec, Error, Result};

/// Metadata key: ZooKeeper servers, `host` or `host:port` (default port 2181), separated by
/// `;` (Layotto) or `,` (Dapr). Required.
pub const HOSTS_KEY: &str = "zookeeperHosts";
/// Metadata key of the state store's servers (Dapr's `state.zookeeper` name of the hosts).
pub const SERVERS_KEY: &str = "servers";
/// Metadata key: `user:password` for ZooKeeper's `digest` authentication, added to every
/// session (Layotto parses this key but never uses it). Blank means none.
pub const PASSWORD_KEY: &str = "zookeeperPassword";
/// Metadata key: the session timeout asked of the server, a bare integer of seconds (Layotto)
/// or a Go duration (`3s`, Dapr); default 5 s. It also bounds every call: an unreachable server
/// fails calls with `UNAVAILABLE` within it.
pub const SESSION_TIMEOUT_KEY: &str = "sessionTimeout";
/// Metadata key: parent path of every node (default `/`, Layotto's layout).
pub const KEY_PREFIX_PATH_KEY: &str = "keyPrefixPath";
/// Metadata key Layotto reads to turn the Go client's logging on: no effect here.
pub const LOG_INFO_KEY: &str = "logInfo";

/// Layotto's default session timeout.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(5);

/// The first character of an encoded node name (see [`node_path`]).
pub const ENCODED_MARK: char = '~';

/// Validated connection settings of one ZooKeeper component.
#[derive(Clone)]
pub struct ZkConfig {
    /// The servers, `host[:port]` each.
    pub hosts: Vec<String>,
    /// The metadata key the hosts came from, named by connection errors.
    pub hosts_key: &'static str,
    /// Session timeout asked of the server, and the bound of every call.
    pub session_timeout: Duration,
    /// `user:password` for digest authentication.
    pub digest: Option<String>,
}

impl std::fmt::Debug for ZkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkConfig")
            .field("hosts", &self.hosts)
            .field("hosts_key", &self.hosts_key)
            .field("session_timeout", &self.session_timeout)
            .field(
                "digest",
                &self
                    .digest
                    .as_deref()
                    .and_then(|d| d.split_once(':'))
                    .map(|(u, _)| u),
            )
            .finish()
    }
}

impl ZkConfig {
    /// Validates the connection keys of `spec`: `hosts` as written under `hosts_key`.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key.
    pub fn new(
        spec: &ComponentSpec,
        hosts_key: &'static str,
        hosts: Option<&str>,
        password: Option<&str>,
        session_timeout: Option<GoDuration>,
    ) -> Result<Self> {
        let hosts: Vec<String> = hosts
            .unwrap_or_default()
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if hosts.is_empty() {
            return Err(spec_error(
                spec,
                format!("metadata '{hosts_key}' is required (';'-separated host[:port] list)"),
            ));
        }
        for h in &hosts {
            if !valid_host(h) {
                return Err(spec_error(
                    spec,
                    format!("metadata '{hosts_key}' must list host or host:port, got '{h}'"),
                ));
            }
        }
        let session_timeout = match session_timeout {
            None => DEFAULT_SESSION_TIMEOUT,
            Some(GoDuration(d)) if d < Duration::from_millis(100) => {
                return Err(spec_error(
                    spec,
                    format!("metadata '{SESSION_TIMEOUT_KEY}' must be at least 100ms, got {d:?}"),
                ));
            }
            Some(GoDuration(d)) => d,
        };
        let digest = match password.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) if p.split_once(':').is_some_and(|(u, _)| !u.is_empty()) => Some(p.to_owned()),
            Some(_) => {
                return Err(spec_error(
                    spec,
                    format!(
                        "metadata '{PASSWORD_KEY}' must be 'user:password' (ZooKeeper digest \
                         authentication)"
                    ),
                ));
            }
        };
        Ok(Self {
            hosts,
            hosts_key,
            session_timeout,
            digest,
        })
    }

    /// The connect string of the ZooKeeper client: `host:port,host:port`.
    pub fn connect_string(&self) -> String {
        self.hosts.join(",")
    }
}

/// `host` or `host:port` with a port in 1..=65535.
fn valid_host(h: &str) -> bool {
    if h.contains('/') || h.contains(char::is_whitespace) {
        return false;
    }
    match h.rsplit_once(':') {
        None => true,
        Some((host, port)) => {
            !host.trim_matches(['[', ']']).is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
    }
}

/// The parent path of every node: `keyPrefixPath` cleaned to `/a/b` form (leading `/` added,
/// trailing `/` and empty segments dropped), `/` when absent. Segments `.` and `..` are
/// refused.
///
/// # Errors
/// Invalid argument naming the component and `keyPrefixPath`.
pub fn key_prefix(spec: &ComponentSpec, raw: Option<&str>) -> Result<String> {
    let segments: Vec<&str> = raw
        .unwrap_or_default()
        .split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for s in &segments {
        if *s == "." || *s == ".." || !valid_name(s) {
            return Err(spec_error(
                spec,
                format!("metadata '{KEY_PREFIX_PATH_KEY}' is not a valid ZooKeeper path: '{s}'"),
            ));
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Whether `name` is usable as one ZooKeeper node name: not empty, no `/`, not `.` or `..`,
/// and none of the characters ZooKeeper refuses (`PathUtils.validatePath`: controls,
/// `U+D800..U+F8FF`, `U+FFF0..U+FFFF`, and characters outside the BMP, which Java stores as
/// surrogates).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| {
            let u = u32::from(c);
            c != '/' && !matches!(u, 0x0000..=0x001f | 0x007f..=0x009f | 0xd800..=0xf8ff | 0xfff0..)
        })
}

/// The node path of `key` under `prefix`: `<prefix>/<key>` as Layotto's and Dapr's Go
/// components write it (`"/" + key`, `path.Join(keyPrefixPath, key)`) when `key` is a valid
/// node name, else `<prefix>/~<base64url(key)>` (keys with `/`, characters ZooKeeper
/// refuses, or starting with `~`): the Go components cannot store such keys at all, and the
/// mapping stays one-to-one.
///
/// # Errors
/// Invalid argument for an empty key.
pub fn node_path(prefix: &str, key: &str, field: &str) -> Result<String> {
    if key.is_empty() {
        return Err(Error::empty_field(field));
    }
    let sep = if prefix.ends_with('/') { "" } else { "/" };
    if valid_name(key) && !key.starts_with(ENCODED_MARK) {
        Ok(format!("{prefix}{sep}{key}"))
    } else {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes());
        Ok(format!("{prefix}{sep}{ENCODED_MARK}{enc}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ComponentSpec {
        ComponentSpec::new("z", "zookeeper")
    }

    #[test]
    fn hosts_timeouts_and_passwords() {
        let c = ZkConfig::new(&spec(), HOSTS_KEY, Some("a;b:2182, c:1"), None, None).expect("ok");
        assert_eq!(c.connect_string(), "a,b:2182,c:1");
        assert_eq!(c.session_timeout, DEFAULT_SESSION_TIMEOUT);
        let c = ZkConfig::new(
            &spec(),
            HOSTS_KEY,
            Some("a"),
            Some("u:secret"),
            Some(GoDuration(Duration::from_secs(3))),
        )
        .expect("ok");
        assert!(!format!("{c:?}").contains("secret"));
        for (hosts, pw, to, key) in [
            (None, None, None, HOSTS_KEY),
            (Some("h:0"), None, None, HOSTS_KEY),
            (Some("h:x"), None, None, HOSTS_KEY),
            (Some("h"), Some("nocolon"), None, PASSWORD_KEY),
            (
                Some("h"),
                None,
                Some(GoDuration(Duration::ZERO)),
                SESSION_TIMEOUT_KEY,
            ),
        ] {
            let e = ZkConfig::new(&spec(), HOSTS_KEY, hosts, pw, to).expect_err(key);
            assert!(e.message.contains(key) && e.message.contains("'z'"), "{e}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(key_prefix(&spec(), None).expect("ok"), "/");
        assert_eq!(key_prefix(&spec(), Some("/")).expect("ok"), "/");
        assert_eq!(key_prefix(&spec(), Some("a/b/")).expect("ok"), "/a/b");
        assert!(key_prefix(&spec(), Some("/a/../b")).is_err());
        assert_eq!(
            node_path("/", "lock|||app||r", "k").expect("ok"),
            "/lock|||app||r"
        );
        assert_eq!(node_path("/p", "app||k", "k").expect("ok"), "/p/app||k");
        assert_eq!(node_path("/", "ключ", "k").expect("ok"), "/ключ");
        let enc = node_path("/", "a/b", "k").expect("ok");
        assert_eq!(enc, "/~YS9i");
        assert_ne!(node_path("/", "~YS9i", "k").expect("ok"), enc);
        assert!(node_path("/", "🔑", "k").expect("ok").starts_with("/~"));
        assert!(node_path("/", "..", "k").expect("ok").starts_with("/~"));
        assert!(node_path("/", "", "key").is_err());
    }
}
