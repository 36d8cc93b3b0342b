//! Name resolvers of layotto-rs, Dapr's `nameresolution.*` components: [`mdns`] (Dapr's
//! self-hosted default), [`sqlite`] (sidecars of one host sharing a file) and [`kubernetes`]
//! (cluster DNS). [`build`] makes one from the Configuration resource's `nameResolution`.

pub mod kubernetes;
pub mod mdns;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use layotto_core::{Error, NameResolver, Result};
use serde_json::Value;

/// The resolver `component` (`mdns`, `sqlite`, `kubernetes`; empty: `mdns`, daprd's
/// self-hosted default) at `version` (`v1`) with its `configuration`.
///
/// # Errors
/// An unknown component or version, or a configuration it refuses (`InvalidArgument`).
pub fn build(
    component: &str,
    version: &str,
    configuration: &Value,
) -> Result<Arc<dyn NameResolver>> {
    if !version.is_empty() && version != "v1" {
        return Err(Error::invalid(format!(
            "nameResolution: version '{version}' of '{component}' is not supported (v1)"
        )));
    }
    Ok(match component {
        "" | "mdns" => Arc::new(mdns::MdnsResolver::new()),
        "sqlite" => Arc::new(sqlite::SqliteResolver::new(
            sqlite::SqliteSettings::from_configuration(configuration)?,
        )),
        "kubernetes" => Arc::new(kubernetes::KubernetesResolver::from_configuration(
            configuration,
        )?),
        other => {
            return Err(Error::invalid(format!(
                "nameResolution: component '{other}' is not supported (mdns, sqlite, kubernetes)"
            )));
        }
    })
}

/// The address other sidecars reach this one at, as daprd's `GetHostAddress`: `DAPR_HOST_IP`
/// when set, the internal listen address when it is a specific one, else the first
/// non-loopback IPv4 address of this host, else `127.0.0.1`.
pub fn host_address(listen: std::net::IpAddr, dapr_host_ip: Option<String>) -> String {
    if let Some(ip) = dapr_host_ip.filter(|s| !s.trim().is_empty()) {
        return ip.trim().to_owned();
    }
    if !listen.is_unspecified() {
        return listen.to_string();
    }
    if_addrs::get_if_addrs()
        .ok()
        .and_then(|list| {
            list.into_iter()
                .map(|a| a.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string())
}

/// A Go duration (`1s`, `1m30s`, `800ms`) or a number of seconds.
pub(crate) fn duration(text: &str, what: &str) -> Result<Duration> {
    layotto_core::metadata::parse_duration(text, Duration::from_secs).ok_or_else(|| {
        Error::invalid(format!(
            "{what}: '{text}' is not a duration (e.g. 5s, 1m30s, 800ms)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_does() {
        let d = |t| duration(t, "x").unwrap();
        assert_eq!(d("5"), Duration::from_secs(5));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("800ms"), Duration::from_millis(800));
        assert!(duration("5 parsecs", "x").is_err());
        assert!(duration("", "x").is_err());
    }

    #[test]
    fn unknown_resolvers_are_refused_by_name() {
        let e = build("consul", "v1", &Value::Null).err().unwrap();
        assert!(
            e.message.contains("'consul' is not supported"),
            "{}",
            e.message
        );
        assert!(build("mdns", "v2", &Value::Null).is_err());
        assert_eq!(build("", "", &Value::Null).unwrap().kind(), "mdns");
    }
}
