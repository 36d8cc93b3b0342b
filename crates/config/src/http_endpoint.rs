//! Dapr's `HTTPEndpoint` resources (`apiVersion: dapr.io/v1alpha1`): non-Dapr HTTP services an
//! app invokes by name through its sidecar (docs.dapr.io "HTTPEndpoint spec";
//! `dapr/dapr:pkg/apis/httpEndpoint/v1alpha1/types.go`).
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: HTTPEndpoint
//! metadata: {name: payments}
//! spec:
//!   baseUrl: https://payments.example.com
//!   headers:
//!   - {name: x-api-key, secretKeyRef: {name: payments, key: apiKey}}
//!   - {name: x-team, value: checkout}
//!   - {name: x-region, envRef: REGION}
//!   clientTLS:
//!     rootCA: {value: "-----BEGIN CERTIFICATE-----..."}
//!     certificate: {secretKeyRef: {name: tls, key: cert}}
//!     privateKey: {secretKeyRef: {name: tls, key: key}}
//! auth: {secretStore: vault}
//! scopes: [checkout]
//! ```
//!
//! Loaded from the resources path as daprd does (every `.yaml`/`.yml` file, any number of
//! documents each, other kinds skipped, `scopes` honoured). `envRef` is read when the resource
//! is loaded; `secretKeyRef` values are read from `auth.secretStore` at start
//! (`layotto_runtime::resolve_secret_refs`).

use std::path::Path;

use serde_json::Value;

use crate::Problem;

/// One header value or TLS document of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointValue {
    /// The value itself (given, or read from the environment by `envRef`).
    Value(String),
    /// Key `key` of secret `name` in the endpoint's `auth.secretStore`.
    Secret {
        /// The secret's name.
        name: String,
        /// The key within the secret (the secret's name when not given).
        key: String,
    },
}

/// An `HTTPEndpoint` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// `metadata.name`: the id apps invoke it by.
    pub name: String,
    /// `spec.baseUrl` (`http://` or `https://`), used as given: the method is appended after a
    /// `/`.
    pub base_url: String,
    /// `spec.headers` in order: set on every request, over the caller's headers of the same
    /// name.
    pub headers: Vec<(String, EndpointValue)>,
    /// `spec.clientTLS.rootCA`: PEM certificates trusted for this endpoint (in addition to
    /// none: only these are trusted when given).
    pub root_ca: Option<EndpointValue>,
    /// `spec.clientTLS.certificate`: the PEM client certificate.
    pub certificate: Option<EndpointValue>,
    /// `spec.clientTLS.privateKey`: the PEM key of `certificate`.
    pub private_key: Option<EndpointValue>,
    /// `auth.secretStore`: where `secretKeyRef` values are read.
    pub secret_store: Option<String>,
    /// The file it was read from.
    pub file: String,
}

impl HttpEndpoint {
    /// Every value of the endpoint with where it sits (`headers[i]`, `clientTLS.rootCA`, ...).
    pub fn values_mut(&mut self) -> Vec<(String, &mut EndpointValue)> {
        let mut out: Vec<(String, &mut EndpointValue)> = self
            .headers
            .iter_mut()
            .map(|(n, v)| (format!("header '{n}'"), v))
            .collect();
        for (at, v) in [
            ("clientTLS.rootCA", &mut self.root_ca),
            ("clientTLS.certificate", &mut self.certificate),
            ("clientTLS.privateKey", &mut self.private_key),
        ] {
            if let Some(v) = v.as_mut() {
                out.push((at.to_owned(), v));
            }
        }
        out
    }
}

/// Reads every `HTTPEndpoint` resource under `dirs` that applies to `app_id`.
///
/// # Errors
/// Every problem at once: no or a malformed `baseUrl`, a header without a name or a value, a
/// `secretKeyRef` without `auth.secretStore`, an `envRef` naming an unset variable, a client
/// certificate without its key, a `renegotiation` other than `Never` (rustls never
/// renegotiates), two endpoints of one name.
pub fn load_http_endpoints(
    dirs: &[impl AsRef<Path>],
    app_id: &str,
) -> Result<Vec<HttpEndpoint>, Vec<Problem>> {
    crate::resiliency::gather(
        crate::resiliency::resource_files(dirs),
        |text, file, out, problems| {
            parse_into(text, file, app_id, out, problems);
        },
    )
}

/// [`load_http_endpoints`] over one YAML text.
///
/// # Errors
/// As [`load_http_endpoints`].
pub fn parse_http_endpoints(
    text: &str,
    file: &str,
    app_id: &str,
) -> Result<Vec<HttpEndpoint>, Vec<Problem>> {
    crate::resiliency::gather(
        [(file.to_owned(), text.to_owned())],
        |text, file, out, problems| {
            parse_into(text, file, app_id, out, problems);
        },
    )
}

fn parse_into(
    text: &str,
    file: &str,
    app_id: &str,
    out: &mut Vec<HttpEndpoint>,
    problems: &mut Vec<Problem>,
) {
    use serde::Deserialize as _;
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        // Syntax errors are the component loader's to report.
        let Ok(v) = Value::deserialize(doc) else {
            return;
        };
        let mut r = Reader {
            file,
            base: format!("doc[{i}]"),
            problems,
        };
        if let Some(e) = r.document(&v, app_id) {
            if let Some(first) = out.iter().find(|o| o.name == e.name) {
                let message = format!(
                    "HTTPEndpoint '{}' is defined twice (first in {})",
                    e.name, first.file
                );
                r.problem("metadata.name", message);
            } else {
                out.push(e);
            }
        }
    }
}

struct Reader<'a> {
    file: &'a str,
    base: String,
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            path: format!("{}.{path}", self.base),
            message: message.into(),
        });
    }

    fn document(&mut self, doc: &Value, app_id: &str) -> Option<HttpEndpoint> {
        if doc.get("kind").and_then(Value::as_str) != Some("HTTPEndpoint") {
            return None;
        }
        if let Some(scopes) = doc.get("scopes").and_then(Value::as_array)
            && !scopes.is_empty()
            && !scopes.iter().any(|s| s.as_str() == Some(app_id))
        {
            return None;
        }
        if doc.get("apiVersion").and_then(Value::as_str) != Some("dapr.io/v1alpha1") {
            self.problem(
                "apiVersion",
                "apiVersion must be 'dapr.io/v1alpha1' for an HTTPEndpoint",
            );
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty() {
            self.problem("metadata.name", "an HTTPEndpoint needs a name");
        }
        let base_url = doc
            .pointer("/spec/baseUrl")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
            || base_url.split("://").nth(1).is_none_or(str::is_empty)
        {
            self.problem(
                "spec.baseUrl",
                format!("baseUrl '{base_url}' must be an http:// or https:// URL with a host"),
            );
        }
        let secret_store = doc
            .pointer("/auth/secretStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let mut headers = Vec::new();
        if let Some(list) = doc.pointer("/spec/headers") {
            let Some(list) = list.as_array() else {
                self.problem("spec.headers", "expected a list of {name, value}");
                return None;
            };
            for (i, h) in list.iter().enumerate() {
                let at = format!("spec.headers[{i}]");
                let Some(n) = h
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                else {
                    self.problem(&format!("{at}.name"), "a header needs a name");
                    continue;
                };
                if let Some(v) = self.value(h, &at, secret_store.is_some()) {
                    headers.push((n.to_owned(), v));
                }
            }
        }
        let tls = doc.pointer("/spec/clientTLS");
        let mut doc_of = |key: &str| {
            let v = tls.and_then(|t| t.get(key))?;
            self.value(v, &format!("spec.clientTLS.{key}"), secret_store.is_some())
        };
        let (root_ca, certificate, private_key) = (
            doc_of("rootCA"),
            doc_of("certificate"),
            doc_of("privateKey"),
        );
        if certificate.is_some() != private_key.is_some() {
            self.problem(
                "spec.clientTLS",
                "a client certificate needs both certificate and privateKey",
            );
        }
        if let Some(r) = tls
            .and_then(|t| t.get("renegotiation"))
            .and_then(Value::as_str)
            .filter(|r| *r != "Never")
        {
            self.problem(
                "spec.clientTLS.renegotiation",
                format!("renegotiation '{r}' is not supported: the TLS client never renegotiates"),
            );
        }
        Some(HttpEndpoint {
            name,
            base_url,
            headers,
            root_ca,
            certificate,
            private_key,
            secret_store,
            file: self.file.to_owned(),
        })
    }

    /// `{value}`, `{secretKeyRef: {name, key}}` or `{envRef}` at `at`.
    fn value(&mut self, v: &Value, at: &str, has_store: bool) -> Option<EndpointValue> {
        if let Some(s) = v.get("value") {
            return match s {
                Value::String(s) => Some(EndpointValue::Value(s.clone())),
                Value::Number(n) => Some(EndpointValue::Value(n.to_string())),
                Value::Bool(b) => Some(EndpointValue::Value(b.to_string())),
                _ => {
                    self.problem(&format!("{at}.value"), "expected a string");
                    None
                }
            };
        }
        if let Some(r) = v.get("secretKeyRef") {
            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                self.problem(
                    &format!("{at}.secretKeyRef.name"),
                    "a secretKeyRef needs a name",
                );
                return None;
            }
            if !has_store {
                self.problem(
                    &format!("{at}.secretKeyRef"),
                    "secretKeyRef needs a secret store: set auth.secretStore",
                );
                return None;
            }
            let key = r
                .get("key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .unwrap_or(name);
            return Some(EndpointValue::Secret {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(var) = v.get("envRef").and_then(Value::as_str) {
            return match std::env::var(var) {
                Ok(s) => Some(EndpointValue::Value(s)),
                Err(_) => {
                    self.problem(
                        &format!("{at}.envRef"),
                        format!("environment variable '{var}' is not set"),
                    );
                    None
                }
            };
        }
        self.problem(at, "expected one of value, secretKeyRef or envRef");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_values_secrets_and_scopes() {
        let text = "apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: pay}
spec:
  baseUrl: https://pay.example
  headers:
  - {name: x-key, secretKeyRef: {name: pay, key: k}}
  - {name: x-team, value: checkout}
  - {name: x-whole, secretKeyRef: {name: whole}}
  clientTLS:
    rootCA: {value: PEM}
auth: {secretStore: vault}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: other}
spec: {baseUrl: 'http://x'}
scopes: [someone-else]
---
kind: Component
";
        let eps = parse_http_endpoints(text, "f.yaml", "me").unwrap();
        assert_eq!(eps.len(), 1, "the scoped one is not ours");
        let e = &eps[0];
        assert_eq!(
            (e.name.as_str(), e.base_url.as_str()),
            ("pay", "https://pay.example")
        );
        assert_eq!(
            e.headers,
            vec![
                (
                    "x-key".into(),
                    EndpointValue::Secret {
                        name: "pay".into(),
                        key: "k".into()
                    }
                ),
                ("x-team".into(), EndpointValue::Value("checkout".into())),
                (
                    "x-whole".into(),
                    EndpointValue::Secret {
                        name: "whole".into(),
                        key: "whole".into()
                    }
                ),
            ]
        );
        assert_eq!(e.root_ca, Some(EndpointValue::Value("PEM".into())));
        assert_eq!(e.secret_store.as_deref(), Some("vault"));
    }

    #[test]
    fn bad_endpoints_name_every_problem() {
        let text = "apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: bad}
spec:
  baseUrl: ftp://x
  headers:
  - {name: a, secretKeyRef: {name: s}}
  - {value: v}
  - {name: c}
  - {name: d, envRef: LAYOTTO_TEST_SURELY_UNSET_VARIABLE}
  clientTLS:
    certificate: {value: C}
    renegotiation: FreelyAsClient
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: bad}
spec: {baseUrl: 'http://y'}
";
        let problems = parse_http_endpoints(text, "f.yaml", "me").unwrap_err();
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        for want in [
            "doc[0].spec.baseUrl: baseUrl 'ftp://x' must be",
            "doc[0].spec.headers[0].secretKeyRef: secretKeyRef needs a secret store",
            "doc[0].spec.headers[1].name: a header needs a name",
            "doc[0].spec.headers[2]: expected one of value, secretKeyRef or envRef",
            "doc[0].spec.headers[3].envRef: environment variable",
            "doc[0].spec.clientTLS: a client certificate needs both",
            "doc[0].spec.clientTLS.renegotiation: renegotiation 'FreelyAsClient'",
            "doc[1].metadata.name: HTTPEndpoint 'bad' is defined twice",
        ] {
            assert!(
                text.iter().any(|t| t.starts_with(want)),
                "missing {want:?} in {text:#?}"
            );
        }
    }
}
