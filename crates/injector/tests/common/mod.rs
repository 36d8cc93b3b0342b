//! A small REST client for the test API server: bearer token, the server's CA trusted.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use layotto_test_support::KubeApiServer;
use serde_json::Value;

/// Calls to one API server as one user.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// As the cluster administrator.
    pub fn admin(server: &KubeApiServer) -> Self {
        Self {
            base: server.url(),
            token: server.admin_token().to_owned(),
            http: client(server.ca_cert()),
        }
    }

    /// The same server, as the holder of `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            base: self.base.clone(),
            token: token.to_owned(),
            http: self.http.clone(),
        }
    }

    /// The status and JSON body of one request.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("API server answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn create(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates; panics unless the server answers 201.
    pub async fn created(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.create(path, body).await;
        assert_eq!(status, 201, "create {path}: {v}");
        v
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
