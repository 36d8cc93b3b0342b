//! Resiliency policies on service invocation: a caller sidecar with a `Resiliency` resource
//! (timeout 500 ms, 2 constant retries 100 ms apart, a circuit breaker tripping at 3
//! consecutive failures and half-opening after 2 s) targeting app `c`, found through SQLite
//! name resolution.
//!
//! - A callee that fails twice then succeeds is retried: the caller sees success.
//! - A callee that hangs is cut at the timeout on each attempt; the caller gets an error
//!   within the policy's bound, never a hang.
//! - A dead callee (its sidecar stopped) trips the breaker: later calls fail at once and are
//!   counted (`dapr_resiliency_count{policy="circuitbreaker",status="open"}`); once the callee is
//!   back and the breaker's timeout passed, calls succeed again.
#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};

use support::daprd::{Daprd, request};
use support::invoke_app::app;
use support::invoke_app::sqlite_resolution;

const RESILIENCY: &str = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: invocation-policies
spec:
  policies:
    timeouts:
      short: 500ms
    retries:
      twice:
        policy: constant
        duration: 100ms
        maxRetries: 2
    circuitBreakers:
      cb:
        maxRequests: 1
        timeout: 2s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      c:
        timeout: short
        retry: twice
        circuitBreaker: cb
";

fn sidecar(id: &str, app_port: Option<u16>, db: &std::path::Path) -> Daprd {
    let port = app_port.map(|p| p.to_string());
    let mut args = vec![
        "--app-id",
        id,
        "--config",
        "{dir}/config.yaml",
        "--resources-path",
        "{dir}/res",
        "--dapr-internal-grpc-port",
        "{internal}",
        "--dapr-internal-grpc-listen-address",
        "127.0.0.1",
    ];
    if let Some(p) = &port {
        args.extend(["--app-port", p]);
    }
    let cfg = sqlite_resolution(db);
    Daprd::start(
        &[("config.yaml", &cfg), ("res/resiliency.yaml", RESILIENCY)],
        &args,
        &[],
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_timeouts_and_circuit_breakers_apply_to_app_calls() {
    let shared = tempfile::tempdir().expect("tempdir");
    let db = shared.path().join("nr.db");
    let c_app = app("c").await;
    let a = sidecar("a", None, &db);
    let mut c = sidecar("c", Some(c_app.port), &db);
    let http = support::http();
    let call = |method: &str| {
        let (http, url) = (
            http.clone(),
            format!("http://127.0.0.1:{}/v1.0/invoke/c/method/{method}", a.http),
        );
        async move {
            let started = Instant::now();
            let r = http.post(url).send().await.expect("invoke");
            let status = r.status().as_u16();
            (status, r.text().await.expect("body"), started.elapsed())
        }
    };

    // Fails twice, then succeeds: retried, the caller sees the success.
    let (status, body, _) = call("flaky/2/x").await;
    assert_eq!((status, body.as_str()), (200, "ok after 3 calls"));

    // Fails three times: retries run out; the caller gets the app's own last answer.
    let (status, body, _) = call("flaky/5/y").await;
    assert_eq!((status, body.as_str()), (503, "failure 3"));

    // Hangs: each of the 3 attempts is cut at 500 ms; an error well before the 5 s sleep.
    let (status, body, took) = call("slow/5000").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("timeout waiting for c:slow/5000"), "{body}");
    assert!(took < Duration::from_millis(2500), "{took:?}");

    // Dead: c's sidecar stops (and leaves name resolution). Three failures trip the breaker of
    // c:echo; the next call fails at once.
    c.sigterm();
    let _ = c.child.wait();
    let (status, _, _) = call("echo").await;
    assert_eq!(status, 500);
    let open_count = || {
        let metrics = request(a.metrics, "GET", "/metrics", &[], "")
            .expect("metrics")
            .body;
        metrics
            .lines()
            .find(|l| {
                l.starts_with("dapr_resiliency_count{")
                    && l.contains("policy=\"circuitbreaker\"")
                    && l.contains("status=\"open\"")
                    && l.contains("target=\"app_c\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no open-breaker count in:\n{metrics}"))
    };
    let before = open_count();
    let (status, body, took) = call("echo").await;
    assert_eq!(status, 500);
    assert!(body.contains("circuit breaker is open"), "{body}");
    assert!(
        took < Duration::from_millis(100),
        "failing fast took {took:?}"
    );
    assert_eq!(open_count(), before + 1, "the refused call is counted");

    // Back: a new sidecar for c; after the breaker's 2 s the half-open probe succeeds.
    let _c2 = sidecar("c", Some(c_app.port), &db);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, _) = call("echo").await;
        if status == 201 {
            assert_eq!(body, "c:POST /echo?:");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
