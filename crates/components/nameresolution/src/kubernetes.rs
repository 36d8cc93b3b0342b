//! `nameresolution.kubernetes`: the callee's sidecar through its Kubernetes Service
//! (`dapr/components-contrib:nameresolution/kubernetes`): `{id}-dapr.{namespace}.svc.
//! {clusterDomain}:{port}`, with the caller's own internal gRPC port (every pod listens on the
//! same one). Nothing is registered: the operator creates the Services.
//!
//! Configuration keys: `clusterDomain` (default `cluster.local`) and `template`, a Go template
//! over the request (`{{.ID}}`, `{{.Namespace}}`, `{{.Port}}`, `{{.Data.<key>}}`); only those
//! field substitutions are supported, anything else in `{{ }}` is refused at start.

use async_trait::async_trait;
use layotto_core::{Error, NameResolver, Registration, ResolveRequest, Result};
use serde_json::Value;

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Id,
    Namespace,
    Port,
    /// `.Data.<key>`: daprd's resolve requests carry no data, so it is empty.
    Data,
}

/// The Kubernetes DNS resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesResolver {
    cluster_domain: String,
    template: Option<Vec<Piece>>,
}

fn parse_template(t: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push(Piece::Text(rest[..start].to_owned()));
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            Error::invalid(format!(
                "nameresolution.kubernetes: template '{t}': unclosed {{{{"
            ))
        })?;
        out.push(match after[..end].trim() {
            ".ID" => Piece::Id,
            ".Namespace" => Piece::Namespace,
            ".Port" => Piece::Port,
            d if d.starts_with(".Data.") => Piece::Data,
            other => {
                return Err(Error::invalid(format!(
                    "nameresolution.kubernetes: template '{t}': '{{{{{other}}}}}' is not \
                     supported (only .ID, .Namespace, .Port and .Data.<key>)"
                )));
            }
        });
        rest = &after[end + 2..];
    }
    out.push(Piece::Text(rest.to_owned()));
    Ok(out)
}

impl KubernetesResolver {
    /// Reads the Configuration's `nameResolution.configuration`.
    ///
    /// # Errors
    /// A template this resolver cannot evaluate, a value that is not a string
    /// (`InvalidArgument`).
    pub fn from_configuration(c: &Value) -> Result<Self> {
        let get = |k: &str| -> Result<Option<String>> {
            match c.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(Error::invalid(format!(
                    "nameresolution.kubernetes: {k} must be a string, found {other}"
                ))),
            }
        };
        Ok(Self {
            cluster_domain: get("clusterDomain")?.unwrap_or_else(|| "cluster.local".to_owned()),
            template: get("template")?.map(|t| parse_template(&t)).transpose()?,
        })
    }

    fn address(&self, req: &ResolveRequest) -> String {
        let namespace = if req.namespace.is_empty() {
            "default"
        } else {
            &req.namespace
        };
        match &self.template {
            Some(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Id => req.id.clone(),
                    Piece::Namespace => namespace.to_owned(),
                    Piece::Port => req.port.to_string(),
                    Piece::Data => String::new(),
                })
                .collect(),
            None => format!(
                "{}-dapr.{namespace}.svc.{}:{}",
                req.id, self.cluster_domain, req.port
            ),
        }
    }
}

#[async_trait]
impl NameResolver for KubernetesResolver {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn register(&self, _me: &Registration) -> Result<()> {
        Ok(())
    }

    async fn resolve(&self, req: &ResolveRequest) -> Result<String> {
        Ok(self.address(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ResolveRequest {
        ResolveRequest {
            id: "orders".into(),
            namespace: "shop".into(),
            port: 50002,
        }
    }

    #[test]
    fn addresses_follow_the_service_name_or_the_template() {
        let r = KubernetesResolver::from_configuration(&Value::Null).unwrap();
        assert_eq!(
            r.address(&req()),
            "orders-dapr.shop.svc.cluster.local:50002"
        );
        let r = KubernetesResolver::from_configuration(
            &serde_json::json!({"clusterDomain": "corp.internal"}),
        )
        .unwrap();
        assert_eq!(
            r.address(&req()),
            "orders-dapr.shop.svc.corp.internal:50002"
        );
        let r = KubernetesResolver::from_configuration(
            &serde_json::json!({"template": "{{.ID}}.{{ .Namespace }}.mesh:{{.Port}}"}),
        )
        .unwrap();
        assert_eq!(r.address(&req()), "orders.shop.mesh:50002");
        let e = KubernetesResolver::from_configuration(
            &serde_json::json!({"template": "{{if .ID}}x{{end}}"}),
        )
        .unwrap_err();
        assert!(e.message.contains("not supported"), "{}", e.message);
    }
}
