//! TLS to RabbitMQ (`amqps://`), as Dapr's RabbitMQ components configure it: `caCert`,
//! `clientCert` and `clientKey` hold PEM text (not file paths), and `saslExternal` (pub/sub) or
//! `externalSasl` (binding) log in with the client certificate (SASL `EXTERNAL`) instead of the
//! URI's user and password.
//!
//! The broker's certificate is checked against `caCert` and the system's trust roots (daprd
//! trusts only `caCert` when it is given; rustls through lapin always adds the system roots),
//! and its name against the URI's host.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How a connection is secured: built by [`AmqpTls::from_metadata`] for an `amqps://` URI.
#[derive(Debug, Clone)]
pub(crate) struct AmqpTls {
    /// Extra trust roots and the client identity, as lapin takes them.
    pub(crate) config: OwnedTLSConfig,
    /// Log in with SASL `EXTERNAL` (the client certificate names the user).
    pub(crate) external: bool,
}

/// The TLS keys of a component, as its metadata gives them. Empty values and Dapr's
/// placeholder `null` (its binding page fills the keys with it) count as absent.
#[derive(Debug, Default)]
pub(crate) struct TlsKeys {
    pub(crate) ca_cert: Option<String>,
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
    /// `saslExternal` or `externalSasl`, and that key's name for errors.
    pub(crate) external: (bool, &'static str),
}

impl AmqpTls {
    /// The TLS settings for a connection to `uri`: `Ok(None)` for `amqp://` (plain text), the
    /// parsed certificates for `amqps://`.
    ///
    /// Certificate keys given for an `amqp://` URI are not used (daprd ignores them too); the
    /// returned warning says so.
    ///
    /// # Errors
    /// A message naming the key: a value that holds no PEM certificate (or, for `clientKey`,
    /// no PEM private key), `clientCert` without `clientKey` or the reverse, the SASL
    /// `EXTERNAL` key without all three certificate keys (Dapr's rule), or with an `amqp://`
    /// URI.
    pub(crate) fn from_metadata(
        uri: &str,
        keys: TlsKeys,
    ) -> Result<(Option<Self>, Option<String>), String> {
        let given = |v: Option<String>| {
            v.map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("null"))
        };
        let (ca, cert, key) = (
            given(keys.ca_cert),
            given(keys.client_cert),
            given(keys.client_key),
        );
        let (external, external_key) = keys.external;
        if let Some(ca) = &ca {
            certificates("caCert", ca)?;
        }
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => {
                certificates("clientCert", &cert)?;
                PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| format!("metadata 'clientKey' holds no PEM private key ({e})"))?;
                Some(OwnedIdentity::PKCS8 {
                    pem: cert.into_bytes(),
                    key: key.into_bytes(),
                })
            }
            (Some(_), None) => return Err("metadata 'clientCert' needs 'clientKey'".to_owned()),
            (None, Some(_)) => return Err("metadata 'clientKey' needs 'clientCert'".to_owned()),
            (None, None) => None,
        };
        if external && (ca.is_none() || identity.is_none()) {
            return Err(format!(
                "{external_key} can only be set to true, when all these properties are set: \
                 caCert, clientCert, clientKey"
            ));
        }
        if !uri.starts_with("amqps://") {
            if external {
                return Err(format!(
                    "{external_key} logs in with the client certificate, which needs an amqps:// \
                     connection"
                ));
            }
            let warning = (ca.is_some() || identity.is_some()).then(|| {
                "caCert, clientCert and clientKey are used only with amqps:// connections; \
                 this one is plain amqp://"
                    .to_owned()
            });
            return Ok((None, warning));
        }
        Ok((
            Some(Self {
                config: OwnedTLSConfig {
                    identity,
                    cert_chain: ca,
                },
                external,
            }),
            None,
        ))
    }
}

/// Checks that `pem` holds at least one certificate; `key` names it in the error.
fn certificates(key: &str, pem: &str) -> Result<(), String> {
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        c.map_err(|e| format!("metadata '{key}' is not a valid PEM certificate ({e})"))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("metadata '{key}' holds no PEM certificate"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ca: &str, cert: &str, key: &str, external: bool) -> TlsKeys {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        TlsKeys {
            ca_cert: s(ca),
            client_cert: s(cert),
            client_key: s(key),
            external: (external, "saslExternal"),
        }
    }

    #[test]
    fn reads_pem_text_and_names_what_is_wrong() {
        let c = layotto_test_support::TestCerts::generate();
        let (tls, warn) = AmqpTls::from_metadata(
            "amqps://h",
            keys(&c.ca_cert, &c.client_cert, &c.client_key, true),
        )
        .unwrap();
        let tls = tls.unwrap();
        assert!(tls.external && warn.is_none());
        assert!(tls.config.identity.is_some());
        assert_eq!(tls.config.cert_chain.as_deref(), Some(c.ca_cert.trim()));
        // amqps with nothing given: system roots only.
        let (tls, _) = AmqpTls::from_metadata("amqps://h", keys("", "", "", false)).unwrap();
        let tls = tls.unwrap();
        assert!(tls.config.identity.is_none() && tls.config.cert_chain.is_none());
        // amqp: no TLS, a warning when certificates were given, placeholders ignored.
        let (tls, warn) =
            AmqpTls::from_metadata("amqp://h", keys(&c.ca_cert, "", "", false)).unwrap();
        assert!(tls.is_none() && warn.unwrap().contains("amqps://"));
        let (_, warn) =
            AmqpTls::from_metadata("amqp://h", keys("null", "null", "null", false)).unwrap();
        assert!(warn.is_none());
        let err = |k: TlsKeys| AmqpTls::from_metadata("amqps://h", k).unwrap_err();
        assert!(err(keys("not pem", "", "", false)).contains("'caCert'"));
        assert!(err(keys("", &c.client_cert, "", false)).contains("needs 'clientKey'"));
        assert!(err(keys("", "", &c.client_key, false)).contains("needs 'clientCert'"));
        assert!(err(keys("", &c.client_cert, "junk", false)).contains("'clientKey'"));
        assert!(err(keys("", &c.client_cert, &c.client_key, true)).contains("caCert"));
        let e = AmqpTls::from_metadata(
            "amqp://h",
            keys(&c.ca_cert, &c.client_cert, &c.client_key, true),
        )
        .unwrap_err();
        assert!(e.contains("amqps://"), "{e}");
    }
}
