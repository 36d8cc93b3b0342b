//! An HTTP app for invocation tests: echoes what it got, relays through its own sidecar, or
//! answers a chosen status; it records every request.

use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;

/// What an app saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub len: usize,
}

/// An app: echoes, relays through its sidecar, or answers a chosen status.
pub struct App {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// The HTTP port of its sidecar, set once that runs.
    pub sidecar: Arc<OnceLock<u16>>,
}

/// `name`'s app on a free port: `/relay/<app>/<method...>` calls <app> through its sidecar and
/// answers `<name>>` + that answer; `/status/<code>` answers that status; `/flaky/<n>/<key>`
/// answers 503 to its first n calls, then 200; `/slow/<ms>` answers after that long; `/size` answers the
/// body's length; `/big` 20 MiB; `/drain` reads the body as it arrives and answers
/// `<length> ok` when byte `i` is [`pattern`]`(i)` throughout (else `corrupt at <i>`);
/// `/stream/<mib>` answers that many MiB of [`pattern`], produced as they are sent; anything
/// else `<name>:<VERB> <path>?<query>:<body>` with 201.
pub async fn app(name: &'static str) -> App {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sidecar: Arc<OnceLock<u16>> = Arc::default();
    let (log, own) = (seen.clone(), sidecar.clone());
    let client = super::http();
    let router = Router::new()
        .route("/drain", axum::routing::any(drain))
        .route("/stream/{mib}", axum::routing::get(stream))
        .fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (log, own, client) = (log.clone(), own.clone(), client.clone());
            async move {
                log.lock().expect("lock").push(Seen {
                    method: method.clone(),
                    uri: uri.clone(),
                    headers: headers.clone(),
                    len: body.len(),
                });
                let path = uri.path();
                if let Some(rest) = path.strip_prefix("/relay/") {
                    // `/relay/<app>/<method...>`: the same call to <app> through our sidecar.
                    let (target, method_path) = rest.split_once('/').unwrap_or((rest, ""));
                    let port = *own.get().expect("sidecar port known");
                    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                    let r = client
                        .request(
                            method,
                            format!(
                                "http://127.0.0.1:{port}/v1.0/invoke/{target}/method/{method_path}{query}"
                            ),
                        )
                        .body(body)
                        .send()
                        .await
                        .expect("relay");
                    let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
                    let mut out = format!("{name}>").into_bytes();
                    out.extend_from_slice(&r.bytes().await.expect("relay body"));
                    return (status, out).into_response();
                }
                if let Some(code) = path.strip_prefix("/status/") {
                    let code = StatusCode::from_u16(code.parse().expect("code")).expect("status");
                    return (code, [("x-app", name)], format!("{name} says {code}")).into_response();
                }
                if let Some(rest) = path.strip_prefix("/flaky/") {
                    // `/flaky/<n>/<key>`: 503 for the first n calls of that path, then 200.
                    let n: usize = rest.split('/').next().unwrap_or("0").parse().unwrap_or(0);
                    let calls = log.lock().expect("lock").iter().filter(|s| s.uri.path() == path).count();
                    if calls <= n {
                        return (StatusCode::SERVICE_UNAVAILABLE, format!("failure {calls}")).into_response();
                    }
                    return (StatusCode::OK, format!("ok after {} calls", calls)).into_response();
                }
                if let Some(ms) = path.strip_prefix("/slow/") {
                    let ms: u64 = ms.parse().expect("milliseconds");
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    return (StatusCode::OK, "slept").into_response();
                }
                if path == "/size" {
                    return (StatusCode::OK, body.len().to_string()).into_response();
                }
                if path == "/big" {
                    return (StatusCode::OK, vec![b'z'; 20 << 20]).into_response();
                }
                let mut out = format!("{name}:{method} {path}?{}:", uri.query().unwrap_or(""))
                    .into_bytes();
                out.extend_from_slice(&body);
                (
                    StatusCode::CREATED,
                    [("x-app", name), ("content-type", "text/x-echo")],
                    out,
                )
                    .into_response()
            }
        },
    );
    // Bodies of any size (axum's default limit is 2 MiB).
    let router = router.layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    App {
        port,
        seen,
        sidecar,
    }
}

/// Byte `i` of the bodies `/drain` checks and `/stream` sends.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Checks `body` against [`pattern`] chunk by chunk: `(length, first wrong offset)`.
pub async fn check_pattern(
    mut body: impl futures::Stream<Item = Result<Bytes, String>> + Unpin,
) -> (usize, Option<usize>) {
    use futures::StreamExt as _;
    let (mut at, mut wrong) = (0usize, None);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return (at, Some(at));
        };
        if wrong.is_none() {
            wrong = chunk
                .iter()
                .enumerate()
                .find(|(k, b)| **b != pattern(at + k))
                .map(|(k, _)| at + k);
        }
        at += chunk.len();
    }
    (at, wrong)
}

async fn drain(body: axum::body::Body) -> String {
    use futures::StreamExt as _;
    let stream = body
        .into_data_stream()
        .map(|c| c.map_err(|e| e.to_string()));
    match check_pattern(stream).await {
        (n, None) => format!("{n} ok"),
        (_, Some(i)) => format!("corrupt at {i}"),
    }
}

async fn stream(axum::extract::Path(mib): axum::extract::Path<usize>) -> axum::body::Body {
    const CHUNK: usize = 256 * 1024;
    let chunks = (0..(mib << 20) / CHUNK).map(|c| {
        Ok::<_, std::convert::Infallible>(Bytes::from(
            (c * CHUNK..(c + 1) * CHUNK)
                .map(pattern)
                .collect::<Vec<u8>>(),
        ))
    });
    axum::body::Body::from_stream(futures::stream::iter(chunks))
}

/// A body of `mib` MiB of [`pattern`] produced as it is sent.
pub fn pattern_body(mib: usize) -> reqwest::Body {
    const CHUNK: usize = 256 * 1024;
    let chunks = (0..(mib << 20) / CHUNK).map(|c| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(
            (c * CHUNK..(c + 1) * CHUNK)
                .map(pattern)
                .collect::<Vec<u8>>(),
        )))
    });
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(
        chunks,
    )))
}

/// The peak resident memory of process `pid` in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

/// Dapr's gRPC `InvokeServiceRequest` of `method` on app `id`: `verb`, query `query`, a
/// `text/plain` body `data`.
pub fn invoke_request(
    id: &str,
    method: &str,
    verb: layotto_proto::dapr::proto::common::v1::http_extension::Verb,
    query: &str,
    data: &[u8],
) -> layotto_proto::dapr::proto::runtime::v1::InvokeServiceRequest {
    use layotto_proto::dapr::proto::common::v1 as common;
    layotto_proto::dapr::proto::runtime::v1::InvokeServiceRequest {
        id: id.to_owned(),
        message: Some(common::InvokeRequest {
            method: method.to_owned(),
            data: Some(layotto_proto::prost_types::Any {
                type_url: String::new(),
                value: data.to_vec(),
            }),
            content_type: "text/plain".to_owned(),
            http_extension: Some(common::HttpExtension {
                verb: verb.into(),
                querystring: query.to_owned(),
            }),
        }),
    }
}

/// A Dapr Configuration naming SQLite name resolution over the file `db`.
pub fn sqlite_resolution(db: &std::path::Path) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: invocation
spec:
  nameResolution:
    component: sqlite
    configuration:
      connectionString: \"{}\"
",
        db.display()
    )
}
