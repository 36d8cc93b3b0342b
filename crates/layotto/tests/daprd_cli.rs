//! The binary launched the way daprd is.
//!
//! - The argv Dapr's CLI builds for `dapr run --app-id myapp --app-port 3000 --dapr-http-port
//!   P --dapr-grpc-port G --config ~/.dapr/config.yaml --resources-path ~/.dapr/components`
//!   (`dapr/cli:pkg/standalone/run.go`, v1.14: `--config`, `--app-protocol`, `--log-level`,
//!   `--app-max-concurrency -1`, `--placement-host-address`, `--resources-path`, the two
//!   deprecated size flags at `-1`, `--scheduler-host-address`, `--app-id`, `--app-port`,
//!   `--dapr-http-port`, `--dapr-grpc-port`, `--profile-port -1`, `--metrics-port`,
//!   `--dapr-internal-grpc-port`), with `dapr init`'s default Configuration file, starts this
//!   binary unchanged with no subcommand.
//! - Its metrics, scraped by a real Prometheus (Debian `prometheus`, 1 s scrape interval),
//!   answer a PromQL query for the calls the test made, under Dapr's names and labels.
//! - `--log-as-json` lines parse one by one with daprd's fields; `--enable-api-logging` logs one
//!   line per call.
//! - `--version`, `--build-info`, `--wait` act as daprd's; flags that cannot be honoured fail.
#![allow(missing_docs)]

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use layotto_test_support::PrometheusServer;
use support::free_port;

const CONFIG_YAML: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprConfig
spec:
  tracing:
    samplingRate: \"1\"
    zipkin:
      endpointAddress: http://localhost:9411/api/v2/spans
";

const COMPONENTS: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
  version: v1
";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layotto"))
}

struct Daprd {
    child: Child,
    http: u16,
    grpc: u16,
    metrics: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Daprd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with the argv `dapr run` builds, plus `extra`.
fn dapr_run(extra: &[&str]) -> Daprd {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG_YAML).expect("config");
    let res = dir.path().join("components");
    std::fs::create_dir(&res).expect("components dir");
    std::fs::write(res.join("statestore.yaml"), COMPONENTS).expect("component");
    let (http, grpc, metrics, internal) = (free_port(), free_port(), free_port(), free_port());
    let args: Vec<String> = [
        "--config",
        config.to_str().expect("utf-8"),
        "--app-protocol",
        "http",
        "--log-level",
        "info",
        "--app-max-concurrency",
        "-1",
        "--placement-host-address",
        "localhost:50005",
        "--resources-path",
        res.to_str().expect("utf-8"),
        "--dapr-http-max-request-size",
        "-1",
        "--dapr-http-read-buffer-size",
        "-1",
        "--scheduler-host-address",
        "localhost:50006",
        "--app-id",
        "myapp",
        "--app-port",
        "0",
        "--dapr-http-port",
        &http.to_string(),
        "--dapr-grpc-port",
        &grpc.to_string(),
        "--profile-port",
        "-1",
        "--metrics-port",
        &metrics.to_string(),
        "--dapr-internal-grpc-port",
        &internal.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(extra.iter().map(|s| (*s).to_owned()))
    .collect();
    let child = bin()
        .args(&args)
        // `dapr run` passes an internal gRPC port, so the sidecar registers in mDNS (Dapr's
        // default name resolution); publishing the loopback keeps its packets there.
        .env("DAPR_HOST_IP", "127.0.0.1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn layotto");
    let mut d = Daprd {
        child,
        http,
        grpc,
        metrics,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthz(http) {
        if let Ok(Some(status)) = d.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = d.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("layotto exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "no /v1.0/healthz within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn healthz(port: u16) -> bool {
    http_status(port, "GET", "/v1.0/healthz", "") == Some(204)
}

/// Status of a plain HTTP/1.1 request to 127.0.0.1 (no client library needed for this).
fn http_status(port: u16, method: &str, path: &str, body: &str) -> Option<u16> {
    http(port, method, path, body).map(|(s, _)| s)
}

fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut got = String::new();
    s.read_to_string(&mut got).ok()?;
    let status = got.get(9..12)?.parse().ok()?;
    let body = got.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dapr_run_argv_starts_unchanged_with_metrics_and_json_logs() {
    let mut d = dapr_run(&["--log-as-json", "--enable-api-logging"]);
    assert_eq!(
        http_status(
            d.http,
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"k","value":"v"}]"#
        ),
        Some(204)
    );
    let (status, body) = http(d.http, "GET", "/v1.0/state/statestore/k", "").expect("get");
    assert_eq!((status, body.trim()), (200, r#""v""#));
    // The Layotto API on Dapr's gRPC port, counted under its method path.
    let c = layotto_sdk::Client::connect(format!("http://127.0.0.1:{}", d.grpc))
        .await
        .expect("connect gRPC");
    let got = c.get_state("statestore", "k").await.expect("GetState");
    assert_eq!(got.map(|s| s.data), Some(b"\"v\"".to_vec()));

    let (status, text) = http(d.metrics, "GET", "/", "").expect("metrics endpoint");
    assert_eq!(status, 200, "{text}");
    for want in [
        r#"dapr_http_server_request_count{app_id="myapp",method="POST",path="/v1.0/state/statestore",status="204"} 1"#,
        r#"dapr_http_server_request_count{app_id="myapp",method="GET",path="/v1.0/state/statestore",status="200"} 1"#,
        r#"dapr_grpc_io_server_completed_rpcs{app_id="myapp",grpc_server_method="/spec.proto.runtime.v1.Runtime/GetState",grpc_server_status="OK"} 1"#,
        r#"dapr_component_state_count{app_id="myapp",component="statestore",namespace="",operation="get",success="true"} 2"#,
        r#"dapr_runtime_component_init_total{app_id="myapp",component="state.in-memory"} 1"#,
        "# TYPE dapr_http_server_latency histogram",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }

    // A real Prometheus scrapes it; PromQL finds the calls.
    let prom = PrometheusServer::start(&[format!("127.0.0.1:{}", d.metrics)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = prom.query(
            r#"sum(dapr_http_server_request_count{app_id="myapp",path="/v1.0/state/statestore"})"#,
        );
        if answer.contains(r#""status":"success""#) && answer.contains(r#","2"]"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the 2 requests: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let _ = d.child.kill();
    let _ = d.child.wait();
    let mut log = String::new();
    d.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read log");
    let mut api_lines = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for field in [
            "time", "level", "msg", "scope", "app_id", "instance", "type", "ver",
        ] {
            assert!(v.get(field).is_some(), "no '{field}' in {line}");
        }
        assert_eq!(v["app_id"], "myapp", "{line}");
        if (v["msg"] == "HTTP API Called" || v["msg"] == "gRPC API Called")
            && v["method"] != "GET /v1.0/healthz"
        {
            api_lines.push(v["method"].as_str().unwrap_or_default().to_owned());
        }
    }
    // One line per call (the health polls of the start-up are logged too, as daprd does
    // without `omitHealthChecks`).
    assert_eq!(
        api_lines,
        [
            "POST /v1.0/state/statestore",
            "GET /v1.0/state/statestore/k",
            "/spec.proto.runtime.v1.Runtime/GetState"
        ],
        "{log}"
    );
    assert!(
        log.contains("--placement-host-address has no effect"),
        "flags without effect are named:\n{log}"
    );
}

#[test]
fn version_build_info_wait_and_refusals() {
    let out = bin().arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let out = bin().arg("-build-info").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("Version: ") && text.contains("\nGit Commit: "),
        "{text}"
    );

    for (args, words) in [
        (
            &["--mode", "swarm"][..],
            "--mode: 'swarm' is neither standalone nor kubernetes",
        ),
        (
            &["--log-level", "verbose"][..],
            "invalid value for --log-level: verbose",
        ),
        (
            &["--app-port", "http"][..],
            "--app-port: 'http' is no port number",
        ),
    ] {
        let out = bin()
            .args(["validate", "--resources-path", "/nonexistent-dir"])
            .args(args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    // Go's single-dash long flags and `--flag=false` booleans.
    let out = bin()
        .args([
            "validate",
            "-app-id",
            "x",
            "-enable-metrics=false",
            "-dapr-http-port",
            "1",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `--wait` returns once the running sidecar's outbound health answers 204.
    let d = dapr_run(&[]);
    let started = Instant::now();
    let out = bin()
        .args(["--wait", "--dapr-http-port", &d.http.to_string()])
        .output()
        .expect("run --wait");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Dapr is outbound ready!"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
