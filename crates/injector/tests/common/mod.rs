//! A small REST client for the test API server: bearer token, the server's CA trusted.

#![allow(dead_code)]

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
            http: client(server),
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

/// A client trusting `server`'s CA.
pub fn client(server: &KubeApiServer) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(server.client_tls())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Multi-document YAML as JSON values (empty documents left out).
pub fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect()
}

/// The chart's directory.
pub fn chart() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/layotto-rs")
}

/// `helm template layotto <chart> <args>`, as documents.
pub fn helm_template(args: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["template".as_ref(), "layotto".as_ref(), chart.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    documents(&layotto_test_support::peers::helm(&all))
}
