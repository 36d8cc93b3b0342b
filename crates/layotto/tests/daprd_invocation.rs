//! Interop with Dapr's sidecar for service invocation: `daprd` v1.14.0 (built by the test
//! harness, `layotto_test_support::peers::DAPRD`) in front of app `dapp` and layotto-rs in
//! front of app `lapp`, both started with daprd's launch line and Dapr's default name
//! resolution, mDNS, invoke each other's apps in both directions over HTTP and gRPC, with
//! 20 MiB bodies; and each proxies a gRPC call (`dapr-app-id` metadata) to a gRPC app behind
//! the other.
//!
//! mDNS multicasts, so the test runs in a private network namespace it makes itself (the
//! binary re-executes itself under `unshare --net`), whose only interface is a loopback marked
//! multicast; daprd gets `DAPR_HOST_IP=127.0.0.1` there. When the namespace cannot be made
//! the test fails saying so; it never skips.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as dapr;
use layotto_test_support::peers;
use support::daprd::{Daprd, RealDaprd, start_real_daprd};
use support::invoke_app::app;
use support::invoke_app::invoke_request;

const INSIDE: &str = "LAYOTTO_DAPRD_INVOCATION_NETNS";
const NAME: &str = "daprd_and_layotto_invoke_each_other_over_mdns";

const CONFIG: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: invocation
spec:
  metrics:
    enabled: false
";

fn start_daprd(dir: &std::path::Path, app_id: &str, app_port: u16, protocol: &str) -> RealDaprd {
    let config = dir.join("config.yaml");
    std::fs::write(&config, CONFIG).expect("config");
    start_real_daprd(&[
        "--app-id",
        app_id,
        "--app-port",
        &app_port.to_string(),
        "--app-protocol",
        protocol,
        "--config",
        config.to_str().expect("utf-8"),
        "--max-body-size",
        "32Mi",
    ])
}

#[test]
fn daprd_and_layotto_invoke_each_other_over_mdns() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    // Built before entering the namespace (the Go module proxy is outside it).
    let _ = peers::binary(&peers::DAPRD);
    let probe = Command::new("unshare").args(["--net", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{NAME} needs a private network namespace (root) and could not make one: \
             `unshare --net true` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("{NAME} needs `unshare` (Debian package util-linux): {e}"),
    }
    let status = Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().expect("this test binary"))
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env(INSIDE, "1")
        .status()
        .expect("run the test inside the namespace");
    assert!(
        status.success(),
        "{NAME} failed inside its namespace ({status})"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn inside() {
    ip(&["link", "set", "lo", "up"]);
    ip(&["link", "set", "lo", "multicast", "on"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let (dapp, lapp) = (app("dapp").await, app("lapp").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let daprd = start_daprd(dir.path(), "dapp", dapp.port, "http");
    dapp.sidecar.set(daprd.http).expect("once");
    let layotto = Daprd::start(
        &[("config.yaml", CONFIG)],
        &[
            "--app-id",
            "lapp",
            "--app-port",
            &lapp.port.to_string(),
            "--config",
            "{dir}/config.yaml",
            "--dapr-internal-grpc-port",
            "{internal}",
            "--max-body-size",
            "32Mi",
        ],
        &[("DAPR_HOST_IP", "127.0.0.1")],
        None,
    );
    lapp.sidecar.set(layotto.http).expect("once");
    let http = support::http();

    // Each way over HTTP: verb, path, query, headers, status and body kept.
    for (from, to, to_app) in [(layotto.http, "dapp", &dapp), (daprd.http, "lapp", &lapp)] {
        let r = http
            .patch(format!(
                "http://127.0.0.1:{from}/v1.0/invoke/{to}/method/orders/7?x=1&y=2"
            ))
            .header("x-custom", "kept")
            .body("hello")
            .send()
            .await
            .expect("invoke");
        assert_eq!(r.status(), 201, "to {to}");
        assert_eq!(r.headers()["x-app"], to);
        assert_eq!(
            r.text().await.expect("body"),
            format!("{to}:PATCH /orders/7?x=1&y=2:hello")
        );
        let seen = to_app
            .seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("called");
        assert_eq!(seen.headers["x-custom"], "kept");
        let caller = if to == "dapp" { "lapp" } else { "dapp" };
        assert_eq!(seen.headers["dapr-caller-app-id"], caller, "to {to}");
        assert_eq!(seen.headers["dapr-callee-app-id"], to);

        let r = http
            .post(format!(
                "http://127.0.0.1:{from}/v1.0/invoke/{to}/method/status/404"
            ))
            .send()
            .await
            .expect("invoke");
        assert_eq!(r.status(), 404, "to {to}");

        // 20 MiB each way.
        let r = http
            .post(format!(
                "http://127.0.0.1:{from}/v1.0/invoke/{to}/method/size"
            ))
            .body(vec![b'x'; 20 << 20])
            .send()
            .await
            .expect("big request");
        assert_eq!(r.status(), 200, "to {to}");
        assert_eq!(r.text().await.expect("body"), (20 << 20).to_string());
        let r = http
            .get(format!(
                "http://127.0.0.1:{from}/v1.0/invoke/{to}/method/big"
            ))
            .send()
            .await
            .expect("big answer");
        assert_eq!(r.status(), 200, "to {to}");
        assert_eq!(r.bytes().await.expect("body").len(), 20 << 20);
    }

    // A round trip: daprd -> lapp -> layotto -> dapp.
    let r = http
        .put(format!(
            "http://127.0.0.1:{}/v1.0/invoke/lapp/method/relay/dapp/deep?k=v",
            daprd.http
        ))
        .body("round")
        .send()
        .await
        .expect("relay");
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.text().await.expect("body"),
        "lapp>dapp:PUT /deep?k=v:round"
    );

    // Each way over gRPC InvokeService.
    for (from, to) in [(layotto.grpc, "dapp"), (daprd.grpc, "lapp")] {
        let mut grpc = dapr::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{from}"))
            .await
            .expect("connect");
        let answer = grpc
            .invoke_service(invoke_request(
                to,
                "grpc/path",
                common::http_extension::Verb::Post,
                "q=1",
                b"over grpc",
            ))
            .await
            .unwrap_or_else(|s| panic!("InvokeService to {to}: {s:?}"))
            .into_inner();
        assert_eq!(
            answer.data.expect("data").value,
            format!("{to}:POST /grpc/path?q=1:over grpc").into_bytes(),
            "to {to}"
        );
    }

    // An HTTP app's error over InvokeService, as daprd words it: the status's code with the
    // status text, an ErrorInfo carrying the HTTP code and the body's start, and
    // `dapr-http-status`.
    for (from, to) in [(layotto.grpc, "dapp"), (daprd.grpc, "lapp")] {
        let mut grpc = dapr::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{from}"))
            .await
            .expect("connect");
        let s = grpc
            .invoke_service(invoke_request(
                to,
                "status/404",
                common::http_extension::Verb::Get,
                "",
                b"",
            ))
            .await
            .expect_err("a 404 is an error over gRPC");
        assert_eq!(s.code(), tonic::Code::NotFound, "to {to}: {s:?}");
        assert_eq!(s.message(), "Not Found", "to {to}");
        assert_eq!(
            s.metadata()
                .get("dapr-http-status")
                .and_then(|v| v.to_str().ok()),
            Some("404"),
            "to {to}"
        );
        let info = tonic_types::StatusExt::get_details_error_info(&s).expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("Not Found", "dapr.io")
        );
        assert_eq!(
            info.metadata.get("http.code").map(String::as_str),
            Some("404")
        );
        assert_eq!(
            info.metadata.get("http.error_message").cloned(),
            Some(format!("{to} says 404 Not Found")),
            "to {to}"
        );
    }

    // An id nobody registered: daprd's answer, within its lookup time.
    let started = Instant::now();
    let r = http
        .post(format!(
            "http://127.0.0.1:{}/v1.0/invoke/nobody/method/x",
            layotto.http
        ))
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 500);
    let body: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    assert_eq!(
        body["message"],
        "failed to invoke, id: nobody, err: couldn't find service: nobody"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // gRPC proxying: each sidecar forwards a call for an app's own gRPC service (here
    // `AppCallbackHealthCheck`, which neither sidecar serves itself) to the other's app.
    let (dgrpc_port, dgrpc_seen) = grpc_app().await;
    let (lgrpc_port, lgrpc_seen) = grpc_app().await;
    let dir2 = tempfile::tempdir().expect("tempdir");
    let _dgrpc = start_daprd(dir2.path(), "dgrpc", dgrpc_port, "grpc");
    let _lgrpc = Daprd::start(
        &[("config.yaml", CONFIG)],
        &[
            "--app-id",
            "lgrpc",
            "--app-port",
            &lgrpc_port.to_string(),
            "--app-protocol",
            "grpc",
            "--config",
            "{dir}/config.yaml",
            "--dapr-internal-grpc-port",
            "{internal}",
        ],
        &[("DAPR_HOST_IP", "127.0.0.1")],
        None,
    );
    for (from, to, seen, caller) in [
        (layotto.grpc, "dgrpc", &dgrpc_seen, "lapp"),
        (daprd.grpc, "lgrpc", &lgrpc_seen, "dapp"),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{from}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client =
            dapr::app_callback_health_check_client::AppCallbackHealthCheckClient::new(channel);
        let mut call = tonic::Request::new(());
        call.metadata_mut()
            .insert("dapr-app-id", to.parse().expect("id"));
        call.metadata_mut()
            .insert("x-custom", "kept".parse().expect("v"));
        client
            .health_check(call)
            .await
            .unwrap_or_else(|s| panic!("proxied call to {to}: {s:?}"));
        let md = seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the app was called");
        assert_eq!(
            md.get("x-custom").map(String::as_str),
            Some("kept"),
            "to {to}"
        );
        assert_eq!(
            md.get("dapr-caller-app-id").map(String::as_str),
            Some(caller),
            "to {to}"
        );
        assert_eq!(md.get("dapr-callee-app-id").map(String::as_str), Some(to));
    }
    // InvokeService to a gRPC app behind the other sidecar: its answer and headers come back,
    // and its error keeps its code and message (daprd sends gRPC codes between sidecars).
    for (from, to) in [(layotto.grpc, "dgrpc"), (daprd.grpc, "lgrpc")] {
        let mut grpc = dapr::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{from}"))
            .await
            .expect("connect");
        let ok = grpc
            .invoke_service(invoke_request(
                to,
                "echo",
                common::http_extension::Verb::Post,
                "",
                b"hello",
            ))
            .await
            .unwrap_or_else(|s| panic!("InvokeService to {to}: {s:?}"));
        assert_eq!(
            ok.metadata()
                .get("x-app-header")
                .and_then(|v| v.to_str().ok()),
            Some("yes"),
            "to {to}"
        );
        assert_eq!(
            ok.into_inner().data.expect("data").value,
            b"echo:hello".to_vec(),
            "to {to}"
        );
        let s = grpc
            .invoke_service(invoke_request(
                to,
                "fail",
                common::http_extension::Verb::Post,
                "",
                b"",
            ))
            .await
            .expect_err("the app failed");
        assert_eq!(
            (s.code(), s.message()),
            (tonic::Code::NotFound, "no such order"),
            "to {to}"
        );
    }
    drop(daprd);
}

/// A gRPC app serving `AppCallbackHealthCheck` (recording each call's metadata) and
/// `AppCallback`'s `OnInvoke`: method `fail` answers NOT_FOUND "no such order", any other
/// `echo:<data>` with header `x-app-header: yes`.
async fn grpc_app() -> (u16, Arc<Mutex<Vec<HashMap<String, String>>>>) {
    struct App(Arc<Mutex<Vec<HashMap<String, String>>>>);
    #[tonic::async_trait]
    impl dapr::app_callback_health_check_server::AppCallbackHealthCheck for App {
        async fn health_check(
            &self,
            req: tonic::Request<()>,
        ) -> Result<tonic::Response<dapr::HealthCheckResponse>, tonic::Status> {
            let md = req
                .metadata()
                .iter()
                .filter_map(|kv| match kv {
                    tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                        Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                    }
                    tonic::metadata::KeyAndValueRef::Binary(..) => None,
                })
                .collect();
            self.0.lock().expect("lock").push(md);
            Ok(tonic::Response::new(dapr::HealthCheckResponse {}))
        }
    }
    #[tonic::async_trait]
    impl dapr::app_callback_server::AppCallback for App {
        async fn on_invoke(
            &self,
            req: tonic::Request<common::InvokeRequest>,
        ) -> Result<tonic::Response<common::InvokeResponse>, tonic::Status> {
            let m = req.into_inner();
            if m.method == "fail" {
                return Err(tonic::Status::not_found("no such order"));
            }
            let mut data = b"echo:".to_vec();
            data.extend(m.data.map(|a| a.value).unwrap_or_default());
            let mut r = tonic::Response::new(common::InvokeResponse {
                data: Some(layotto_proto::prost_types::Any {
                    type_url: String::new(),
                    value: data,
                }),
                content_type: "text/plain".into(),
            });
            r.metadata_mut()
                .insert("x-app-header", "yes".parse().expect("value"));
            Ok(r)
        }
        async fn list_topic_subscriptions(
            &self,
            _: tonic::Request<()>,
        ) -> Result<tonic::Response<dapr::ListTopicSubscriptionsResponse>, tonic::Status> {
            Ok(tonic::Response::new(Default::default()))
        }
        async fn on_topic_event(
            &self,
            _: tonic::Request<dapr::TopicEventRequest>,
        ) -> Result<tonic::Response<dapr::TopicEventResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("no topics"))
        }
        async fn list_input_bindings(
            &self,
            _: tonic::Request<()>,
        ) -> Result<tonic::Response<dapr::ListInputBindingsResponse>, tonic::Status> {
            Ok(tonic::Response::new(Default::default()))
        }
        async fn on_binding_event(
            &self,
            _: tonic::Request<dapr::BindingEventRequest>,
        ) -> Result<tonic::Response<dapr::BindingEventResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("no bindings"))
        }
        async fn on_bulk_topic_event(
            &self,
            _: tonic::Request<dapr::TopicEventBulkRequest>,
        ) -> Result<tonic::Response<dapr::TopicEventBulkResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("no topics"))
        }
    }
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let svc = dapr::app_callback_health_check_server::AppCallbackHealthCheckServer::new(App(
        seen.clone()
    ));
    let callback = dapr::app_callback_server::AppCallbackServer::new(App(seen.clone()));
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .add_service(callback)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (port, seen)
}
