//! What daprd's launch line and Configuration change in how the sidecar serves, through the
//! real binary started as daprd is:
//!
//! - `spec.api` allow and deny lists (gRPC `UNIMPLEMENTED` "Not Implemented", HTTP as an
//!   unregistered route) and `spec.secrets.scopes` (403 `ERR_PERMISSION_DENIED`, bulk reads
//!   filtered);
//! - `--dapr-public-port` (health and metadata without the API token), `--allowed-origins`;
//! - `--unix-domain-socket` (the APIs on `DIR/dapr-<id>-{http,grpc}.socket`, no TCP);
//! - `--app-max-concurrency` (calls to the app never overlap beyond the limit);
//! - `--dapr-block-shutdown-duration` (after SIGTERM the APIs keep serving for the duration).
#![allow(missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layotto_proto::dapr::proto::runtime::v1 as dapr;
use support::daprd::{Daprd, request, request_unix};

const STATESTORE: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
  version: v1
";

const SECRETSTORE: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: secretstore
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: {dir}/secrets.json
";

const ACCESS_CONFIG: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: access
spec:
  api:
    denied:
      - name: state
        version: v1
        protocol: grpc
  secrets:
    scopes:
      - storeName: secretstore
        defaultAccess: allow
        deniedSecrets: [hidden]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_secret_scopes_public_port_and_cors() {
    let public = support::free_port();
    let d = Daprd::start(
        &[
            ("config.yaml", ACCESS_CONFIG),
            ("res/state.yaml", STATESTORE),
            ("res/secrets.yaml", SECRETSTORE),
            ("secrets.json", r#"{"hidden": "h", "shown": "s"}"#),
        ],
        &[
            "--app-id",
            "myapp",
            "--config",
            "{dir}/config.yaml",
            "--resources-path",
            "{dir}/res",
            "--dapr-public-port",
            &public.to_string(),
            "--dapr-public-listen-address",
            "127.0.0.1",
            "--allowed-origins",
            "http://ok.test",
        ],
        &[("DAPR_API_TOKEN", "tok")],
        Some(&|d: &Daprd| {
            request(d.http, "GET", "/v1.0/healthz", &[], "").is_some_and(|r| r.status == 204)
        }),
    );
    let token = [("dapr-api-token", "tok")];

    // gRPC: the denied API answers as daprd's, before the token is even checked.
    let mut c = dapr::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{}", d.grpc))
        .await
        .expect("connect");
    let e = c
        .get_state(dapr::GetStateRequest {
            store_name: "statestore".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .expect_err("denied");
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    assert_eq!(e.message(), "Not Implemented");
    // Other APIs, and the same API over HTTP (the rule is gRPC's), stay open.
    let mut req = tonic::Request::new(dapr::GetSecretRequest {
        store_name: "secretstore".into(),
        key: "hidden".into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("dapr-api-token", "tok".parse().expect("ascii"));
    let e = c.get_secret(req).await.expect_err("scoped");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        r#"access denied by policy to get "hidden" from "secretstore""#
    );
    let r = request(d.http, "GET", "/v1.0/state/statestore/k", &token, "").expect("http");
    assert_eq!(r.status, 204, "{r:?}");

    // Secret scopes over HTTP.
    let r = request(
        d.http,
        "GET",
        "/v1.0/secrets/secretstore/hidden",
        &token,
        "",
    )
    .expect("get");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("ERR_PERMISSION_DENIED"), "{r:?}");
    let r = request(d.http, "GET", "/v1.0/secrets/secretstore/bulk", &token, "").expect("bulk");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("shown") && !r.body.contains("hidden"),
        "{r:?}"
    );

    // The public port: health and metadata without the token; the API port wants it.
    let r = request(public, "GET", "/v1.0/healthz", &[], "").expect("public healthz");
    assert_eq!(r.status, 204, "{r:?}");
    let r = request(public, "GET", "/v1.0/metadata", &[], "").expect("public metadata");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"id\":\"myapp\""), "{r:?}");
    assert_eq!(
        request(public, "GET", "/v1.0/state/statestore/k", &[], "").map(|r| r.status),
        Some(404)
    );
    assert_eq!(
        request(d.http, "GET", "/v1.0/metadata", &[], "").map(|r| r.status),
        Some(401)
    );

    // CORS for the listed origin only.
    let preflight = |origin: &'static str| {
        request(
            d.http,
            "OPTIONS",
            "/v1.0/state/statestore",
            &[
                ("dapr-api-token", "tok"),
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ],
            "",
        )
        .expect("preflight")
    };
    let r = preflight("http://ok.test");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://ok.test")
    );
    assert_eq!(
        preflight("http://other.test").header("access-control-allow-origin"),
        None
    );
}

#[test]
fn unix_domain_sockets_replace_tcp() {
    let socket = |d: &Daprd, what: &str| d.dir.path().join(format!("dapr-myapp-{what}.socket"));
    let mut d = Daprd::start(
        &[("res/state.yaml", STATESTORE)],
        &[
            "--app-id",
            "myapp",
            "--resources-path",
            "{dir}/res",
            "--unix-domain-socket",
            "{dir}",
        ],
        &[],
        Some(&|d: &Daprd| {
            request_unix(&socket(d, "http"), "GET", "/v1.0/healthz", "")
                .is_some_and(|r| r.status == 204)
        }),
    );
    let r = request_unix(
        &socket(&d, "http"),
        "POST",
        "/v1.0/state/statestore",
        r#"[{"key": "k", "value": "v"}]"#,
    )
    .expect("save over the socket");
    assert_eq!(r.status, 204, "{r:?}");
    assert!(socket(&d, "grpc").exists());
    assert!(
        std::os::unix::net::UnixStream::connect(socket(&d, "grpc")).is_ok(),
        "gRPC socket accepts"
    );
    // No TCP listener for either API.
    assert!(std::net::TcpStream::connect(("127.0.0.1", d.http)).is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", d.grpc)).is_err());
    d.sigterm();
    let status = d.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!socket(&d, "http").exists() && !socket(&d, "grpc").exists());
}

/// An HTTP app answering every request after `delay`, counting the calls it has at once.
async fn slow_app(delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let max2 = max.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (now, max) = (now.clone(), max2.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_max_concurrency_limits_calls_to_the_app() {
    let (app_port, max) = slow_app(Duration::from_millis(200)).await;
    let d = Daprd::start(
        &[("res/state.yaml", STATESTORE)],
        &[
            "--app-id",
            "myapp",
            "--resources-path",
            "{dir}/res",
            "--app-port",
            &app_port.to_string(),
            "--app-max-concurrency",
            "1",
        ],
        &[],
        None,
    );
    let http = d.http;
    let started = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                request(http, "GET", "/v1.0/invoke/myapp/method/slow", &[], "")
                    .map(|r| (r.status, r.body))
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.expect("join"), Some((200, "ok".to_owned())));
    }
    assert_eq!(max.load(Ordering::SeqCst), 1, "calls overlapped at the app");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "one after the other"
    );
    // Each call to the app is in daprd's client metrics.
    let text = request(d.metrics, "GET", "/metrics", &[], "")
        .expect("metrics")
        .body;
    assert!(
        text.contains(
            r#"dapr_http_client_completed_count{app_id="myapp",method="GET",path="slow",status="200"} 4"#
        ),
        "{text}"
    );
}

#[test]
fn block_shutdown_keeps_serving_then_exits() {
    let mut d = Daprd::start(
        &[("res/state.yaml", STATESTORE)],
        &[
            "--app-id",
            "myapp",
            "--resources-path",
            "{dir}/res",
            "--dapr-block-shutdown-duration",
            "2s",
        ],
        &[],
        None,
    );
    let signalled = Instant::now();
    d.sigterm();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        d.child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    let r = request(
        d.http,
        "POST",
        "/v1.0/state/statestore",
        &[],
        r#"[{"key": "k", "value": "v"}]"#,
    )
    .expect("save while blocked");
    assert_eq!(r.status, 204, "{r:?}");
    let status = d.child.wait().expect("wait");
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let err = d.stderr();
    assert!(err.contains("Blocking graceful shutdown for 2s"), "{err}");
    assert!(err.contains("Block shutdown period expired"), "{err}");
}

/// Layotto's default tracing section (SOFATracer, `stdout` exporter, as its
/// `config_standalone.json`): one log line per span.
#[test]
fn sofatracer_stdout_logs_each_span() {
    let mut cfg = support::layotto_config(
        support::free_port(),
        support::free_port(),
        serde_json::json!({"state": {"state_demo": {"type": "in-memory"}}}),
    );
    cfg["tracing"] = serde_json::json!({
        "enable": true,
        "driver": "SOFATracer",
        "config": {"generator": "mosntracing", "exporter": ["stdout"]}
    });
    let text = cfg.to_string();
    let mut d = Daprd::start(
        &[("layotto.json", &text)],
        &["-c", "{dir}/layotto.json", "--app-id", "traced"],
        &[],
        None,
    );
    let r = request(d.http, "GET", "/v1.0/state/state_demo/k", &[], "").expect("get");
    assert_eq!(r.status, 204, "{r:?}");
    d.sigterm();
    assert!(d.child.wait().expect("wait").success());
    let err = d.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("layotto.trace.stdout") && l.contains("/v1.0/state/state_demo"))
        .unwrap_or_else(|| panic!("no span line for the call:\n{err}"));
    for field in [
        "trace_id=",
        "span_id=",
        "parent_span_id=",
        "process_time_ms=",
        "result=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}
