//! Dapr's `HTTPEndpoint` resources: a sidecar started as daprd is, with endpoints in its
//! resources path, lets its app invoke non-Dapr HTTP services by endpoint name (HTTP API and
//! gRPC `InvokeService`) or by URL given as the app id. The endpoint's headers (a value, an
//! environment variable, a secret from the `auth.secretStore`) are set over the caller's;
//! `clientTLS` trusts the endpoint's own CA and presents a client certificate; the app's
//! `APP_API_TOKEN` and the caller/callee ids are not sent to the service; the metadata API lists
//! the endpoints; a malformed endpoint stops the start naming it.
#![allow(missing_docs)]

mod support;

use std::sync::Arc;

use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as dapr;
use layotto_test_support::TestCerts;
use rustls_pki_types::pem::PemObject as _;
use support::daprd::Daprd;
use support::invoke_app::{app, invoke_request};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRETSTORE: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: vault
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: {dir}/secrets.json
  - name: multiValued
    value: \"true\"
";

/// An HTTPS server that requires a client certificate issued by `certs`' CA and answers every
/// request `tls ok: <client certificate count>`; its port.
async fn tls_service(certs: &TestCerts) -> u16 {
    let chain = vec![
        rustls_pki_types::CertificateDer::from_pem_slice(certs.server_cert.as_bytes())
            .expect("server cert"),
    ];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(certs.server_key.as_bytes())
        .expect("server key");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls_pki_types::CertificateDer::from_pem_slice(certs.ca_cert.as_bytes()).expect("ca"),
        )
        .expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let certs = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
                let body = format!("tls ok: {certs}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// A YAML block scalar holding `pem`, indented by `indent` spaces.
fn block(pem: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let lines: Vec<String> = pem.lines().map(|l| format!("{pad}{l}")).collect();
    format!("|\n{}", lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_endpoints_are_invoked_by_name_and_url() {
    let svc = app("svc").await;
    let certs = TestCerts::generate();
    let tls_port = tls_service(&certs).await;
    let endpoints = format!(
        "apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: svc
spec:
  baseUrl: http://127.0.0.1:{svc}
  headers:
  - name: x-team
    value: checkout
  - name: x-region
    envRef: LAYOTTO_TEST_ENDPOINT_REGION
  - name: x-key
    secretKeyRef:
      name: svc
      key: apiKey
auth:
  secretStore: vault
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: secure
spec:
  baseUrl: https://localhost:{tls_port}
  clientTLS:
    rootCA:
      value: {ca}
    certificate:
      value: {cert}
    privateKey:
      value: {key}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: untrusted
spec:
  baseUrl: https://localhost:{tls_port}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: elsewhere
spec:
  baseUrl: http://127.0.0.1:1
scopes: [another-app]
",
        svc = svc.port,
        ca = block(&certs.ca_cert, 8),
        cert = block(&certs.client_cert, 8),
        key = block(&certs.client_key, 8),
    );
    let sidecar = Daprd::start(
        &[
            ("res/endpoints.yaml", &endpoints),
            ("res/vault.yaml", SECRETSTORE),
            ("secrets.json", r#"{"svc": {"apiKey": "from-the-vault"}}"#),
        ],
        &["--app-id", "caller", "--resources-path", "{dir}/res"],
        &[
            ("LAYOTTO_TEST_ENDPOINT_REGION", "eu-west"),
            ("APP_API_TOKEN", "the-apps-own-token"),
        ],
        None,
    );
    let http = support::http();
    let base = format!("http://127.0.0.1:{}", sidecar.http);

    // By name: verb, path, query and body as sent; the endpoint's headers over the caller's.
    let r = http
        .post(format!("{base}/v1.0/invoke/svc/method/orders/1?x=1"))
        .header("x-team", "the-callers")
        .header("x-trace-me", "kept")
        .body("order")
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.text().await.expect("body"),
        "svc:POST /orders/1?x=1:order"
    );
    let seen = svc
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("called");
    let h = |n: &str| {
        seen.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("x-team").as_deref(), Some("checkout"));
    assert_eq!(seen.headers.get_all("x-team").iter().count(), 1);
    assert_eq!(h("x-region").as_deref(), Some("eu-west"));
    assert_eq!(h("x-key").as_deref(), Some("from-the-vault"));
    assert_eq!(h("x-trace-me").as_deref(), Some("kept"));
    for never in ["dapr-api-token", "dapr-caller-app-id", "dapr-callee-app-id"] {
        assert_eq!(h(never), None, "{never} reached the service");
    }

    // By URL given as the app id.
    let url = format!("http%3A%2F%2F127.0.0.1%3A{}", svc.port);
    let r = http
        .get(format!("{base}/v1.0/invoke/{url}/method/plain?q=2"))
        .send()
        .await
        .expect("invoke by URL");
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().await.expect("body"), "svc:GET /plain?q=2:");

    // Over gRPC InvokeService.
    let mut grpc =
        dapr::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{}", sidecar.grpc))
            .await
            .expect("connect");
    let answer = grpc
        .invoke_service(invoke_request(
            "svc",
            "grpc/way",
            common::http_extension::Verb::Put,
            "",
            b"over grpc",
        ))
        .await
        .expect("InvokeService")
        .into_inner();
    assert_eq!(
        answer.data.expect("data").value,
        b"svc:PUT /grpc/way?:over grpc".to_vec()
    );

    // TLS: the endpoint's CA is trusted and its client certificate presented; without them
    // the service is not reached.
    let r = http
        .get(format!("{base}/v1.0/invoke/secure/method/hello"))
        .send()
        .await
        .expect("invoke over TLS");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "tls ok: 1");
    let r = http
        .get(format!("{base}/v1.0/invoke/untrusted/method/hello"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 500);
    let body: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");

    // A scoped-out endpoint is not ours: the id is an app nobody resolves.
    let r = http
        .get(format!("{base}/v1.0/invoke/elsewhere/method/x"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 500);

    // The metadata API lists them.
    let meta = http
        .get(format!("{base}/v1.0/metadata"))
        .send()
        .await
        .expect("metadata")
        .bytes()
        .await
        .expect("body");
    let meta: serde_json::Value = serde_json::from_slice(&meta).expect("json");
    let mut names: Vec<&str> = meta["httpEndpoints"]
        .as_array()
        .expect("httpEndpoints")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["secure", "svc", "untrusted"]);
}

#[test]
fn a_malformed_endpoint_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let res = dir.path().join("res");
    std::fs::create_dir_all(&res).expect("mkdir");
    std::fs::write(
        res.join("bad.yaml"),
        "apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: bad
spec:
  baseUrl: ftp://nowhere
  headers:
  - name: x-key
    secretKeyRef: {name: s, key: k}
",
    )
    .expect("write");
    let (code, _, err) = support::run_cli(&[
        "validate",
        "--app-id",
        "a",
        "--resources-path",
        res.to_str().expect("utf-8"),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("baseUrl 'ftp://nowhere' must be an http:// or https:// URL"),
        "{err}"
    );
    assert!(
        err.contains("secretKeyRef needs a secret store: set auth.secretStore"),
        "{err}"
    );
}
