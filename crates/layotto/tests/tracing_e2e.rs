//! Traces reach a real backend with their parent/child links intact: Jaeger's all-in-one (built
//! from the Go module proxy by the test harness) receives OTLP/gRPC from a sidecar whose Dapr
//! Configuration sets `tracing.otel` and `samplingRate: "1"`; the test reads the traces back
//! through Jaeger's query API.
//!
//! - client -> sidecar -> component: a `POST /v1.0/state/...` carrying the client's
//!   `traceparent` is a server span child of the client's span, with the component call
//!   (`state/set`) its child.
//! - publish -> delivery -> app: a publish carrying a `traceparent` puts the trace in the
//!   CloudEvent; the delivery is a consumer span in the same trace, child of the publishing API
//!   span, and the app receives a `traceparent` naming the delivery span.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use layotto_test_support::{JaegerServer, TestCerts};
use serde_json::{Value, json};
use support::free_port;

const RESOURCES: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
";

/// The client's span of the state call and of the publish: `traceparent`s with known ids.
const STATE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const STATE_PARENT: &str = "00f067aa0ba902b7";
const PUBLISH_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PUBLISH_PARENT: &str = "b7ad6b7169203331";

type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// An HTTP app subscribing to `orders` that records the headers of each delivery.
async fn app(seen: Seen) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    let router = Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async {
                Json(json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]))
            }),
        )
        .route(
            "/orders",
            post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let h = headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                v.to_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect();
                    seen.lock().expect("lock").push(h);
                    Json(json!({"status": "SUCCESS"}))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

fn post_with_trace(port: u16, path: &str, body: &str, traceparent: &str) -> u16 {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\ntraceparent: {traceparent}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut got = String::new();
    s.read_to_string(&mut got)
        .unwrap_or_else(|e| panic!("no answer to POST {path}: {e}"));
    got.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The spans of trace `id`, once Jaeger has at least `min` of them: operation name -> (span id,
/// parent span id).
async fn spans(jaeger: &JaegerServer, id: &str, min: usize) -> HashMap<String, (String, String)> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut out = HashMap::new();
        if let Some(body) = jaeger.query(&format!("/api/traces/{id}"))
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            for s in v["data"][0]["spans"].as_array().into_iter().flatten() {
                let parent = s["references"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
                    .and_then(|r| r["spanID"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                out.insert(
                    s["operationName"].as_str().unwrap_or_default().to_owned(),
                    (s["spanID"].as_str().unwrap_or_default().to_owned(), parent),
                );
            }
        }
        if out.len() >= min {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "trace {id} has {} span(s) in Jaeger: {out:?}",
            out.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sidecar_component_and_publish_delivery_app_reach_jaeger() {
    let jaeger = JaegerServer::start();
    let seen: Seen = Arc::default();
    let app_port = app(seen.clone()).await;
    let config = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: tracing\n\
         spec:\n  tracing:\n    samplingRate: \"1\"\n    otel:\n      endpointAddress: \
         \"{}\"\n      isSecure: false\n      protocol: grpc\n",
        jaeger.otlp_grpc()
    );
    let (_child, http, _dir) = sidecar(
        &config,
        &["--app-id", "traced", "--app-port", &app_port.to_string()],
        &[],
    )
    .await;
    // Ready once the app's subscription is in place too: a publish then reaches it.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = post_with_trace(
        http,
        "/v1.0/state/statestore",
        r#"[{"key":"k","value":"v"}]"#,
        &format!("00-{STATE_TRACE}-{STATE_PARENT}-01"),
    );
    assert_eq!(status, 204);
    let status = post_with_trace(
        http,
        "/v1.0/publish/pubsub/orders",
        r#"{"order":1}"#,
        &format!("00-{PUBLISH_TRACE}-{PUBLISH_PARENT}-01"),
    );
    assert_eq!(status, 204);

    let state = spans(&jaeger, STATE_TRACE, 2).await;
    let (server_id, server_parent) = state
        .get("POST /v1.0/state/statestore")
        .unwrap_or_else(|| panic!("no API span: {state:?}"))
        .clone();
    assert_eq!(
        server_parent, STATE_PARENT,
        "the API span is the client's child"
    );
    let (_, component_parent) = state
        .get("state/set")
        .unwrap_or_else(|| panic!("no component span: {state:?}"));
    assert_eq!(
        component_parent, &server_id,
        "the component span is the API span's child"
    );

    let publish = spans(&jaeger, PUBLISH_TRACE, 3).await;
    let (api_id, api_parent) = publish
        .get("POST /v1.0/publish/pubsub/orders")
        .unwrap_or_else(|| panic!("no API span: {publish:?}"))
        .clone();
    assert_eq!(api_parent, PUBLISH_PARENT);
    let (_, publish_parent) = publish
        .get("pubsub/publish")
        .unwrap_or_else(|| panic!("no publish span: {publish:?}"));
    assert_eq!(publish_parent, &api_id);
    let (delivery_id, delivery_parent) = publish
        .get("pubsub/orders")
        .unwrap_or_else(|| panic!("no delivery span: {publish:?}"))
        .clone();
    assert_eq!(
        delivery_parent, api_id,
        "the delivery continues the publisher's trace"
    );
    let deliveries = seen.lock().expect("lock").clone();
    let tp = deliveries
        .first()
        .and_then(|h| h.get("traceparent"))
        .unwrap_or_else(|| panic!("the app got no traceparent: {deliveries:?}"));
    assert_eq!(
        tp,
        &format!("00-{PUBLISH_TRACE}-{delivery_id}-01"),
        "the app's parent is the delivery span"
    );
}

/// Starts the binary with `config` (a Configuration resource), the in-memory components and
/// `args`, `env`; waits until its HTTP API accepts. The process (killed on drop), its HTTP
/// port, and the temp dir holding its files.
async fn sidecar(
    config: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (KillOnDrop, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let res = dir.path().join("resources");
    std::fs::create_dir(&res).expect("resources");
    std::fs::write(res.join("components.yaml"), RESOURCES).expect("components");
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).expect("config");
    let (http, grpc) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_layotto"));
    cmd.args(args)
        .arg("--config")
        .arg(&config_path)
        .arg("--resources-path")
        .arg(&res)
        .args(["--dapr-http-port", &http.to_string()])
        .args(["--dapr-grpc-port", &grpc.to_string()])
        .args(["--enable-metrics=false"])
        .env("RUST_LOG", "warn")
        .env_remove("SSL_CERT_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Killed on every exit, a failed assertion too (else it keeps the test's output open).
    let mut child = KillOnDrop(cmd.spawn().expect("spawn layotto"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "sidecar not ready");
        assert!(
            child.0.try_wait().ok().flatten().is_none(),
            "sidecar exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, http, dir)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `otel.isSecure` defaults to true, as in daprd: spans reach a collector that only speaks TLS,
/// its certificate checked against the roots `SSL_CERT_FILE` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_tls_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::generate();
    let file = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).expect("write pem");
        p
    };
    let ca = file("ca.pem", &certs.ca_cert);
    let jaeger = JaegerServer::start_with_otlp_tls(
        file("server.pem", &certs.server_cert),
        file("server.key", &certs.server_key),
    );
    let config = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: tls\n\
         spec:\n  tracing:\n    samplingRate: \"1\"\n    otel:\n      endpointAddress: \
         \"localhost:{}\"\n      protocol: grpc\n",
        jaeger.otlp_grpc().rsplit(':').next().expect("port")
    );
    let (_child, http, _dir) = sidecar(
        &config,
        &["--app-id", "tls-traced"],
        &[("SSL_CERT_FILE", ca.as_os_str())],
    )
    .await;
    const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
    let status = post_with_trace(
        http,
        "/v1.0/state/statestore",
        r#"[{"key": "k", "value": "v"}]"#,
        &format!("00-{TRACE}-{STATE_PARENT}-01"),
    );
    assert_eq!(status, 204);
    let got = spans(&jaeger, TRACE, 2).await;
    assert!(got.contains_key("state/set"), "{got:?}");
}
