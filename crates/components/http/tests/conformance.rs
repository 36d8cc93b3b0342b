//! The `http` output binding against the binding suite, invoking a real HTTP server that this
//! test starts on a free port.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use layotto_components_http::HttpBinding;
use layotto_conformance::binding::{BindingBackend, Seen};
use layotto_core::binding::OutputBinding;
use layotto_core::{Component, ComponentSpec, Metadata};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Paths starting with this fail with status 500.
const FAILING: &str = "fail-always";

/// Starts a server that reports every request and answers `<METHOD> <path> <n> bytes` (500
/// under [`FAILING`]); returns its base URL and the reports.
async fn start_server() -> (String, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let target = uri.path().trim_start_matches('/').to_owned();
                let fail = target.starts_with(FAILING);
                let reply = if method == Method::HEAD || fail {
                    Bytes::new()
                } else {
                    Bytes::from(format!("{method} {target} {} bytes", body.len()))
                };
                let metadata: Metadata = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let _ = tx.send(Seen {
                    operation: method.to_string(),
                    target,
                    data: body,
                    metadata,
                    reply: reply.clone(),
                });
                let resp: Response = if fail {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "conformance: failing on purpose",
                    )
                        .into_response()
                } else {
                    (StatusCode::OK, reply).into_response()
                };
                resp
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_binding() {
    let (url, seen) = start_server().await;
    let operations: HashMap<String, String> = [
        ("create", "POST"),
        ("get", "GET"),
        ("head", "HEAD"),
        ("post", "POST"),
        ("put", "PUT"),
        ("patch", "PATCH"),
        ("delete", "DELETE"),
        ("options", "OPTIONS"),
        ("trace", "TRACE"),
    ]
    .into_iter()
    .map(|(op, m)| (op.to_owned(), m.to_owned()))
    .collect();
    let mut backend = BindingBackend {
        operations,
        without_data: Vec::new(),
        route: Box::new(|target| Metadata::from([("path".to_owned(), format!("/{target}"))])),
        passed_metadata: ("X-Conformance-Token".into(), "x-conformance-token".into()),
        failing_target: Some(FAILING.to_owned()),
        seen,
    };
    let spec = ComponentSpec::new("conformance", "http").with("url", url);
    layotto_conformance::binding::run_all(
        || async {
            let b = HttpBinding::from_spec(&spec).expect("valid spec");
            b.init().await.expect("init http binding");
            Arc::new(b) as Arc<dyn OutputBinding>
        },
        &mut backend,
    )
    .await;
}
