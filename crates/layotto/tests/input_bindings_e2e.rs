//! Input bindings end to end, with Dapr's `bindings.cron` and an HTTP app: the sidecar asks
//! the app (`OPTIONS /<route>`) whether it takes a binding's events and posts each tick to the
//! binding's `route` (else its name) with daprd's metadata headers; a binding the app does not
//! serve, or whose `direction` leaves out input, is not read; the metadata API shows
//! `INPUT_BINDING`; ticks count in `dapr_component_input_binding_count`.
#![allow(missing_docs)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::daprd::{Daprd, request};

const BINDINGS: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: tick
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: '@every 1s'
  - name: route
    value: /cron-route
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: unserved
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: '@every 1s'
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: outonly
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: '@every 1s'
  - name: direction
    value: output
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: flaky
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: '*/1 * * * * *'
";

type Seen = Arc<Mutex<Vec<(String, axum::http::HeaderMap)>>>;

/// An app serving POST at `/cron-route`, `/outonly` and `/flaky` (which fails), recording what
/// it is posted; `/unserved` is not served.
async fn app() -> (u16, Seen) {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let record = |seen: Seen, status: u16| {
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .expect("seen")
                    .push((uri.path().to_owned(), headers));
                axum::http::StatusCode::from_u16(status).expect("status")
            }
        }
    };
    let app = axum::Router::new()
        .route("/cron-route", post(record(seen.clone(), 200)))
        .route("/outonly", post(record(seen.clone(), 200)))
        .route("/flaky", post(record(seen.clone(), 500)));
    let port = support::serve_app(app).await;
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cron_ticks_reach_the_app_at_the_binding_route() {
    let (app_port, seen) = app().await;
    let sidecar = Daprd::start(
        &[("res/bindings.yaml", BINDINGS)],
        &[
            "--app-id",
            "ticker",
            "--app-port",
            &app_port.to_string(),
            "--resources-path",
            "{dir}/res",
        ],
        &[],
        None,
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    loop {
        let n = seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|(p, _)| p == "/cron-route")
            .count();
        if n >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} ticks in 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = seen.lock().expect("seen").clone();
    let paths: std::collections::BTreeSet<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/cron-route", "/flaky"].into(),
        "unserved and output-only bindings are not read"
    );
    let (_, headers) = got
        .iter()
        .find(|(p, _)| p == "/cron-route")
        .expect("a tick");
    assert_eq!(headers["timezone"], "Local");
    let read = headers["readtimeutc"].to_str().expect("text");
    assert!(read.ends_with(" +0000 UTC"), "{read}");
    assert_eq!(headers["content-type"], "application/json");

    let meta = request(sidecar.http, "GET", "/v1.0/metadata", &[], "").expect("metadata");
    let v: serde_json::Value = serde_json::from_str(&meta.body).expect("json");
    let caps = |name: &str| {
        v["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["capabilities"].clone())
            .unwrap_or_else(|| panic!("no {name}: {v}"))
    };
    assert_eq!(caps("tick"), serde_json::json!(["INPUT_BINDING"]));
    assert_eq!(caps("outonly"), serde_json::Value::Null, "{v}");

    // A cron binding has no output operation, and an input-only one cannot be invoked.
    let r = request(
        sidecar.http,
        "POST",
        "/v1.0/bindings/tick",
        &[],
        r#"{"operation": "create", "data": {}}"#,
    )
    .expect("invoke");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body
            .contains("binding 'tick' is an input binding: it has no output operations"),
        "{}",
        r.body
    );

    let metrics = request(sidecar.metrics, "GET", "/metrics", &[], "")
        .expect("metrics")
        .body;
    let count = |component: &str, success: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("dapr_component_input_binding_count{"))
            .filter(|l| l.contains(&format!("component=\"{component}\"")))
            .filter(|l| l.contains(&format!("success=\"{success}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(count("tick", "true") >= 3.0, "{metrics}");
    assert!(count("flaky", "false") >= 1.0, "{metrics}");
    assert_eq!(count("flaky", "true"), 0.0);
}
