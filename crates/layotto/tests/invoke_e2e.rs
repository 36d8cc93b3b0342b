//! End-to-end: Layotto's `InvokeService` over a real gRPC connection to a running `layotto`
//! process, reaching a real HTTP app through the same invocation path as Dapr's
//! (`Runtime::invoke_service`), as `mosn/layotto` delegates it to its Dapr API.
#![allow(missing_docs)]

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use layotto_sdk::{pb, prost_types};
use serde_json::json;
use support::Sidecar;
use tonic::Code;

/// What the app saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// An app on a free port that records each request and answers `pong:<body>`.
async fn app() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let router = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let mut reply = b"pong:".to_vec();
                reply.extend_from_slice(&body);
                log.lock().expect("lock").push(Seen {
                    method,
                    uri,
                    headers,
                    body,
                });
                ([("content-type", "application/x-pong")], reply)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (port, seen)
}

fn invoke(id: &str, method: &str, data: &[u8]) -> pb::InvokeServiceRequest {
    pb::InvokeServiceRequest {
        id: id.into(),
        message: Some(pb::CommonInvokeRequest {
            method: method.into(),
            data: Some(prost_types_any(data)),
            content_type: "text/plain".into(),
            http_extension: Some(pb::HttpExtension {
                verb: pb::http_extension::Verb::Put.into(),
                querystring: "a=1&b=two".into(),
            }),
        }),
    }
}

fn prost_types_any(data: &[u8]) -> prost_types::Any {
    prost_types::Any {
        type_url: String::new(),
        value: data.to_vec(),
    }
}

#[tokio::test]
async fn layotto_invoke_service_reaches_the_app_and_answers() {
    let (app_port, seen) = app().await;
    let port = app_port.to_string();
    let s = Sidecar::start_with(
        json!({"app": {"app_id": "app1"}}),
        &[],
        &["--app-port", &port, "--app-protocol", "http"],
    );
    let mut client = s.client().await.raw();

    let mut req = tonic::Request::new(invoke("app1", "orders/1", b"ping"));
    req.metadata_mut()
        .insert("x-trace", "abc".parse().expect("ascii"));
    let resp = client
        .invoke_service(req)
        .await
        .expect("InvokeService")
        .into_inner();
    assert_eq!(
        resp.data.map(|a| a.value).as_deref(),
        Some(&b"pong:ping"[..])
    );
    assert_eq!(resp.content_type, "application/x-pong");

    let got = seen.lock().expect("lock").clone();
    let call = got
        .iter()
        .find(|c| c.uri.path() == "/orders/1")
        .unwrap_or_else(|| panic!("the app got no call to /orders/1: {got:?}"));
    assert_eq!(call.method, Method::PUT);
    assert_eq!(call.uri.query(), Some("a=1&b=two"));
    assert_eq!(&call.body[..], b"ping");
    assert_eq!(
        call.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/plain"[..])
    );
    assert_eq!(
        call.headers.get("x-trace").map(|v| v.as_bytes()),
        Some(&b"abc"[..]),
        "the caller's metadata reaches the app"
    );
    assert!(
        call.headers.get("grpc-timeout").is_none() && call.headers.get("te").is_none(),
        "gRPC transport metadata stays behind"
    );

    // Failures answer as Layotto does: code and message, through the same path.
    let e = client
        .invoke_service(invoke("other-app", "orders/1", b"x"))
        .await
        .expect_err("unknown app");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = client
        .invoke_service(pb::InvokeServiceRequest {
            id: "app1".into(),
            message: None,
        })
        .await
        .expect_err("no message");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}
