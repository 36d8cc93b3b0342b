//! The connection settings shared by the etcd components: their typed metadata (the
//! `etcd_metadata!` macro, [`ConnectionMetadata`]) and the validated [`EtcdConfig`].
//!
//! Keys as `mosn/layotto:components/pkg/utils/etcd.go` names them: `endpoints` (`;`-separated),
//! `dialTimeout` (seconds), `username`, `password`, `keyPrefixPath` (lock and sequencer only),
//! `tlsCa`, `tlsCert`, `tlsCertKey`.

use std::time::Duration;

use layotto_core::metadata::{GoDuration, spec_error};
use layotto_core::{ComponentSpec, Error, Result};

/// Metadata key: the etcd endpoints, `host:port` (or `http://` / `https://` URLs) separated by
/// `;` as in Layotto (`,` is accepted too). Required.
pub const ENDPOINTS_KEY: &str = "endpoints";
/// Metadata key: connect timeout and the bound of every call, a Go duration or a bare integer of
/// seconds (Layotto's unit; default 5 s).
pub const DIAL_TIMEOUT_KEY: &str = "dialTimeout";
/// Metadata key: user name for etcd authentication; blank means none.
pub const USERNAME_KEY: &str = "username";
/// Metadata key: password of `username`.
pub const PASSWORD_KEY: &str = "password";
/// Metadata key: the prefix of every lock and sequencer key (Layotto's `keyPrefixPath`,
/// default `/layotto/`; a missing leading or trailing `/` is added, as Layotto's
/// `addPathSeparator` does).
pub const KEY_PREFIX_PATH_KEY: &str = "keyPrefixPath";
/// Metadata key: CA certificate(s) the server certificate must chain to (PEM text or a path to
/// a PEM file). Any TLS key turns TLS on; TLS needs this one (no system roots are built in).
pub const TLS_CA_KEY: &str = "tlsCa";
/// Metadata key: client certificate for mutual TLS (PEM text or file; needs `tlsCertKey`).
pub const TLS_CERT_KEY: &str = "tlsCert";
/// Metadata key: private key of `tlsCert` (PEM text or file).
pub const TLS_CERT_KEY_KEY: &str = "tlsCertKey";

/// Layotto's default key prefix of locks and sequencers.
pub const DEFAULT_KEY_PREFIX: &str = "/layotto/";
/// Layotto's default dial timeout.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Declares the typed metadata struct of an etcd component: the connection keys every etcd
/// component shares (see [`ConnectionMetadata`]) followed by the component's own fields.
macro_rules! etcd_metadata {
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
            /// `endpoints`: `;`-separated `host:port` list (required).
            pub endpoints: Option<String>,
            /// `dialTimeout`: connect timeout and call bound, seconds or a Go duration.
            pub dial_timeout: Option<layotto_core::metadata::GoDuration>,
            /// `username`: etcd user; blank means none.
            pub username: Option<String>,
            /// `password`: password of `username`.
            pub password: Option<String>,
            /// `tlsCa`: CA certificate(s), PEM text or file.
            pub tls_ca: Option<String>,
            /// `tlsCert`: client certificate, PEM text or file.
            pub tls_cert: Option<String>,
            /// `tlsCertKey`: private key of `tlsCert`, PEM text or file.
            pub tls_cert_key: Option<String>,
            $( $(#[$fattr])* pub $field: $ty, )*
        }

        impl $name {
            /// The connection keys alone.
            pub fn connection(&self) -> $crate::config::ConnectionMetadata {
                $crate::config::ConnectionMetadata {
                    endpoints: self.endpoints.clone(),
                    dial_timeout: self.dial_timeout,
                    username: self.username.clone(),
                    password: self.password.clone(),
                    tls_ca: self.tls_ca.clone(),
                    tls_cert: self.tls_cert.clone(),
                    tls_cert_key: self.tls_cert_key.clone(),
                }
            }
        }
    };
}
pub(crate) use etcd_metadata;

etcd_metadata! {
    /// The connection keys every etcd component reads.
    pub struct ConnectionMetadata {}
}

impl layotto_core::ComponentMetadata for ConnectionMetadata {}

/// TLS settings of an etcd connection (PEM, already read and checked).
#[derive(Clone)]
pub struct EtcdTls {
    /// CA certificates the server must chain to.
    pub ca: Vec<u8>,
    /// Client certificate and key for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Validated connection settings of one etcd component.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Endpoints as given (`host:port` or URLs).
    pub endpoints: Vec<String>,
    /// The metadata key the endpoints came from (`endpoints`, or `address` of the
    /// configuration store), named by connection errors.
    pub endpoints_key: &'static str,
    /// Connect timeout and bound of every call.
    pub dial_timeout: Duration,
    /// User name and password.
    pub user: Option<(String, String)>,
    /// TLS; `None` for plain HTTP/2.
    pub tls: Option<EtcdTls>,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("endpoints_key", &self.endpoints_key)
            .field("dial_timeout", &self.dial_timeout)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .finish()
    }
}

impl EtcdConfig {
    /// Validates the connection keys `m` of `spec`; `endpoints` may come from another key
    /// (the configuration store's `address`), named by `endpoints_key` in errors.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key.
    pub fn from_meta(
        spec: &ComponentSpec,
        m: &ConnectionMetadata,
        endpoints: Option<(&'static str, Vec<String>)>,
    ) -> Result<Self> {
        let (endpoints_key, endpoints) = match endpoints {
            Some((k, list)) => (k, list),
            None => (
                ENDPOINTS_KEY,
                split_list(m.endpoints.as_deref().unwrap_or_default()),
            ),
        };
        if endpoints.is_empty() {
            return Err(spec_error(
                spec,
                format!("metadata '{endpoints_key}' is required (';'-separated host:port list)"),
            ));
        }
        for e in &endpoints {
            if !valid_endpoint(e) {
                return Err(spec_error(
                    spec,
                    format!("metadata '{endpoints_key}' must list host:port endpoints, got '{e}'"),
                ));
            }
        }
        let dial_timeout = match m.dial_timeout {
            None => DEFAULT_DIAL_TIMEOUT,
            Some(GoDuration(d)) if d.is_zero() => {
                return Err(spec_error(
                    spec,
                    format!("metadata '{DIAL_TIMEOUT_KEY}' must be greater than 0"),
                ));
            }
            Some(GoDuration(d)) => d,
        };
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        let user = match (&m.username, &m.password) {
            (u, p) if blank(u) && !blank(p) => {
                return Err(spec_error(
                    spec,
                    format!("metadata '{PASSWORD_KEY}' needs '{USERNAME_KEY}'"),
                ));
            }
            (u, _) if blank(u) => None,
            (Some(u), p) => Some((u.trim().to_owned(), p.clone().unwrap_or_default())),
            (None, _) => None,
        };
        let tls = tls(spec, m)?;
        if tls.is_some()
            && let Some(e) = endpoints.iter().find(|e| e.starts_with("http://"))
        {
            return Err(spec_error(
                spec,
                format!("metadata '{endpoints_key}': '{e}' is plain http but TLS keys are set"),
            ));
        }
        Ok(Self {
            endpoints,
            endpoints_key,
            dial_timeout,
            user,
            tls,
        })
    }
}

/// The TLS settings of `m`: `None` unless a TLS key is set.
fn tls(spec: &ComponentSpec, m: &ConnectionMetadata) -> Result<Option<EtcdTls>> {
    let ctx = |e: Error| e.context(format_args!("component '{}'", spec.name));
    let ca = pem(m.tls_ca.as_deref(), TLS_CA_KEY, PemKind::Certs).map_err(ctx)?;
    let cert = pem(m.tls_cert.as_deref(), TLS_CERT_KEY, PemKind::Certs).map_err(ctx)?;
    let key = pem(m.tls_cert_key.as_deref(), TLS_CERT_KEY_KEY, PemKind::Key).map_err(ctx)?;
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(spec_error(
                spec,
                format!("metadata '{TLS_CERT_KEY}' needs '{TLS_CERT_KEY_KEY}'"),
            ));
        }
        (None, Some(_)) => {
            return Err(spec_error(
                spec,
                format!("metadata '{TLS_CERT_KEY_KEY}' needs '{TLS_CERT_KEY}'"),
            ));
        }
    };
    match (ca, identity) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(spec_error(
            spec,
            format!("metadata '{TLS_CA_KEY}' is required with TLS (the CA of the etcd server)"),
        )),
        (Some(ca), identity) => Ok(Some(EtcdTls { ca, identity })),
    }
}

/// The items of a `;`- or `,`-separated list, or of a JSON array of strings (how Layotto's
/// configuration store `address` arrives), trimmed, blanks dropped.
pub(crate) fn split_list(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if raw.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(raw)
    {
        return list
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    raw.split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `host:port`, optionally behind `http://` or `https://`.
fn valid_endpoint(e: &str) -> bool {
    let rest = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .unwrap_or(e)
        .trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    !host.trim_matches(['[', ']']).is_empty()
        && !host.contains('/')
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Layotto's `addPathSeparator`: `p` with a leading and a trailing `/`.
pub(crate) fn key_prefix(raw: Option<&str>) -> String {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_KEY_PREFIX.to_owned(),
        Some(p) => {
            let mut p = p.to_owned();
            if !p.starts_with('/') {
                p.insert(0, '/');
            }
            if !p.ends_with('/') {
                p.push('/');
            }
            p
        }
    }
}

#[derive(Clone, Copy)]
enum PemKind {
    Certs,
    Key,
}

/// The PEM of metadata `key`: its text when it holds a PEM block, else the file it names;
/// checked to contain at least one certificate (or a private key).
fn pem(raw: Option<&str>, key: &str, kind: PemKind) -> Result<Option<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(raw) = raw.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let bytes = if raw.contains("-----BEGIN") {
        raw.as_bytes().to_vec()
    } else {
        std::fs::read(raw.trim()).map_err(|e| {
            Error::invalid(format!(
                "metadata '{key}': neither PEM text nor a readable file '{}': {e}",
                raw.trim()
            ))
        })?
    };
    let ok = match kind {
        PemKind::Certs => {
            let certs: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(&bytes).collect();
            matches!(certs, Ok(c) if !c.is_empty() && c.iter().all(|d| d.first() == Some(&0x30)))
        }
        PemKind::Key => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
    };
    if !ok {
        let what = match kind {
            PemKind::Certs => "a PEM certificate",
            PemKind::Key => "a PEM private key",
        };
        return Err(Error::invalid(format!(
            "metadata '{key}' does not hold {what}"
        )));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use layotto_core::metadata::decode;

    use super::*;

    fn spec() -> ComponentSpec {
        ComponentSpec::new("e", "etcd").with(ENDPOINTS_KEY, "localhost:2379")
    }

    fn cfg(s: &ComponentSpec) -> Result<EtcdConfig> {
        let m: ConnectionMetadata = decode(s)?;
        EtcdConfig::from_meta(s, &m, None)
    }

    #[test]
    fn layotto_keys_parse() {
        let c = cfg(&spec()
            .with(ENDPOINTS_KEY, "a:1;b:2, http://c:3")
            .with(DIAL_TIMEOUT_KEY, "5")
            .with(USERNAME_KEY, "")
            .with(PASSWORD_KEY, ""))
        .expect("valid");
        assert_eq!(c.endpoints, ["a:1", "b:2", "http://c:3"]);
        assert_eq!(c.dial_timeout, Duration::from_secs(5));
        assert!(c.user.is_none() && c.tls.is_none());
        let c = cfg(&spec().with(USERNAME_KEY, "u").with(PASSWORD_KEY, "secret")).expect("user");
        assert_eq!(c.user, Some(("u".into(), "secret".into())));
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(
            cfg(&spec().with(DIAL_TIMEOUT_KEY, "250ms"))
                .expect("ms")
                .dial_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(key_prefix(None), "/layotto/");
        assert_eq!(key_prefix(Some("/lock")), "/lock/");
        assert_eq!(key_prefix(Some("lock/")), "/lock/");
        assert_eq!(
            split_list(r#"["127.0.0.1:2379", " x:1 "]"#),
            ["127.0.0.1:2379", "x:1"]
        );
    }

    #[test]
    fn bad_keys_are_named() {
        for (s, key) in [
            (ComponentSpec::new("e", "etcd"), ENDPOINTS_KEY),
            (spec().with(ENDPOINTS_KEY, "nohost"), ENDPOINTS_KEY),
            (spec().with(ENDPOINTS_KEY, "h:0"), ENDPOINTS_KEY),
            (spec().with(DIAL_TIMEOUT_KEY, "soon"), DIAL_TIMEOUT_KEY),
            (spec().with(DIAL_TIMEOUT_KEY, "0"), DIAL_TIMEOUT_KEY),
            (spec().with(PASSWORD_KEY, "p"), PASSWORD_KEY),
            (spec().with(TLS_CA_KEY, "/nonexistent/ca.pem"), TLS_CA_KEY),
            (
                spec().with(
                    TLS_CA_KEY,
                    "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
                ),
                TLS_CA_KEY,
            ),
            (spec().with(TLS_CERT_KEY_KEY, "nonsense"), TLS_CERT_KEY_KEY),
        ] {
            let e = cfg(&s).expect_err(key);
            assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument, "{e}");
            assert!(e.message.contains(key), "{key}: {e}");
            assert!(e.message.contains("'e'"), "names the component: {e}");
        }
    }
}
