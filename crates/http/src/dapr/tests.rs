//! In-process tests of the Dapr HTTP API: the standalone configuration (in-memory state,
//! pub/sub, lock and configuration; a local-file secret store and the http binding pointed at
//! test servers), requests sent with `tower::ServiceExt::oneshot`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use layotto_config::Kind;
use layotto_core::ComponentSpec;
use layotto_core::Registries;
use layotto_core::configuration::ConfigItem;
use layotto_core::state::SetRequest;
use layotto_runtime::{
    AppChannel, ChannelError, EventOutcome, InvokeRequest, InvokeResponse, Runtime, TopicEvent,
    TopicSubscription,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use super::{AppConnection, DaprHttpOptions, dapr_router};

const STATE: &str = "state_demo";
const PUBSUB: &str = "pub_subs_demo";
const LOCK: &str = "lock_demo";
const CONFIG: &str = "config_demo";
const SECRETS: &str = "secret_demo";
const BINDING: &str = "http_demo";
const APP_ID: &str = "app1";

/// An app channel that records invocations and answers with a canned response.
struct FakeApp {
    calls: mpsc::UnboundedSender<InvokeRequest>,
    answer: InvokeResponse,
}

#[async_trait]
impl AppChannel for FakeApp {
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError> {
        Ok(Vec::new())
    }
    async fn deliver(
        &self,
        _sub: &TopicSubscription,
        _event: &TopicEvent,
    ) -> Result<EventOutcome, ChannelError> {
        Ok(EventOutcome::Success)
    }
    async fn invoke(&self, req: &InvokeRequest) -> Result<InvokeResponse, ChannelError> {
        let _ = self.calls.send(req.clone());
        Ok(self.answer.clone())
    }
}

struct Sidecar {
    rt: Arc<Runtime>,
    router: Router,
    _dir: tempfile::TempDir,
}

/// An HTTP server for the binding to call: `POST /echo` answers the body it got with header
/// `x-echo: yes`.
async fn echo_server() -> String {
    use axum::routing::post;
    let app = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { ([("x-echo", "yes")], body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn sidecar_with(opts: DaprHttpOptions, started: bool, binding_url: &str) -> Sidecar {
    sidecar_scoped(opts, started, binding_url, Vec::new()).await
}

async fn sidecar_scoped(
    opts: DaprHttpOptions,
    started: bool,
    binding_url: &str,
    secret_scopes: Vec<layotto_config::SecretScope>,
) -> Sidecar {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("secrets.json");
    std::fs::write(
        &secrets,
        r#"{"db-password": "s3cret", "nested": {"a": "b"}}"#,
    )
    .expect("write secrets");
    let files = dir.path().join("files");
    let mut config = layotto_config::standalone().expect("standalone config");
    config.secret_scopes = secret_scopes;
    for entry in &mut config.components {
        match entry.kind {
            Kind::Secret => {
                entry.spec = ComponentSpec::new(SECRETS, "local.file")
                    .with("secretsFile", secrets.to_string_lossy());
            }
            Kind::File => {
                entry
                    .spec
                    .metadata
                    .insert("root".into(), files.to_string_lossy().into_owned());
            }
            Kind::Binding => {
                entry.spec.metadata.insert("url".into(), binding_url.into());
            }
            _ => {}
        }
    }
    let mut registries = Registries::new();
    layotto_components_memory::register(&mut registries).expect("memory components");
    layotto_components_local::register(&mut registries).expect("local components");
    layotto_components_http::register(&mut registries).expect("http binding");
    let rt = Arc::new(Runtime::build(&config, &registries).expect("runtime builds"));
    rt.init().await.expect("init");
    if started {
        rt.mark_started();
    }
    let router = dapr_router(rt.clone(), opts);
    Sidecar {
        rt,
        router,
        _dir: dir,
    }
}

async fn sidecar() -> Sidecar {
    sidecar_with(DaprHttpOptions::default(), true, "http://127.0.0.1:9").await
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn code(&self) -> String {
        self.json()["errorCode"].as_str().unwrap_or("").to_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

async fn call(router: &Router, method: &str, uri: &str, body: impl Into<Body>) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    send(router, req).await
}

async fn get(router: &Router, uri: &str) -> Reply {
    call(router, "GET", uri, Body::empty()).await
}

async fn post(router: &Router, uri: &str, body: Value) -> Reply {
    call(router, "POST", uri, body.to_string()).await
}

// ----- health, shutdown, token -----

#[tokio::test]
async fn healthz_follows_readiness() {
    let s = sidecar_with(DaprHttpOptions::default(), false, "http://127.0.0.1:9").await;
    let r = get(&s.router, "/v1.0/healthz").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_HEALTH_NOT_READY");
    let r = get(&s.router, "/v1.0/healthz/outbound").await;
    assert_eq!(r.code(), "ERR_OUTBOUND_HEALTH_NOT_READY");
    s.rt.mark_started();
    assert_eq!(
        get(&s.router, "/v1.0/healthz").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&s.router, "/v1.0/healthz/outbound").await.status,
        StatusCode::NO_CONTENT
    );
    let r = get(&s.router, "/v1.0/healthz?appid=other").await;
    assert_eq!(r.code(), "ERR_HEALTH_APPID_NOT_MATCH");
    assert_eq!(
        get(&s.router, "/v1.0/healthz?appid=app1").await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn shutdown_answers_then_notifies() {
    let opts = DaprHttpOptions::default();
    let notify = opts.shutdown.clone();
    let s = sidecar_with(opts, true, "http://127.0.0.1:9").await;
    let r = call(&s.router, "POST", "/v1.0/shutdown", Body::empty()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("shutdown notified");
}

#[tokio::test]
async fn api_token_is_required_except_for_health() {
    let opts = DaprHttpOptions {
        api_token: Some("t0ken".into()),
        ..Default::default()
    };
    let s = sidecar_with(opts, true, "http://127.0.0.1:9").await;
    let r = get(&s.router, "/v1.0/metadata").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, "invalid api token\n");
    let with = |token: &str| {
        Request::builder()
            .uri("/v1.0/metadata")
            .header("dapr-api-token", token)
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(
        send(&s.router, with("wrong")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&s.router, with("t0ke")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&s.router, with("t0ken")).await.status, StatusCode::OK);
    assert_eq!(
        get(&s.router, "/v1.0/healthz").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&s.router, "/v1.0/healthz/outbound").await.status,
        StatusCode::NO_CONTENT
    );
    // Health is exempt for GET only, as in Dapr.
    let r = call(&s.router, "POST", "/v1.0/healthz", Body::empty()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ----- state -----

#[tokio::test]
async fn state_save_get_delete() {
    let s = sidecar().await;
    let r = post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "k1", "value": {"a": 1}}, {"key": "k2", "value": "hello"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    let r = get(&s.router, "/v1.0/state/state_demo/k1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"a":1}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let etag = r.header("etag").expect("etag header").to_owned();

    // A string value is stored as its JSON text, quotes included.
    let r = get(&s.router, "/v1.0/state/state_demo/k2").await;
    assert_eq!(r.body, "\"hello\"");

    // Missing key: 204.
    let r = get(&s.router, "/v1.0/state/state_demo/missing").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());

    // ETag mismatch on save: 409.
    let r = post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "k1", "value": 2, "etag": "not-it"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "ERR_STATE_SAVE");
    // First-write without an etag on an existing key: 409 too.
    let r = post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "k1", "value": 2, "options": {"concurrency": "first-write"}}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Matching ETag: saved.
    let r = post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "k1", "value": 2, "etag": etag}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = get(&s.router, "/v1.0/state/state_demo/k1").await;
    assert_eq!(r.body, "2");
    let etag = r.header("etag").expect("etag").to_owned();

    // Delete with a wrong If-Match: 409; with the right one: 204, then gone.
    let del = |etag: &str| {
        Request::builder()
            .method("DELETE")
            .uri("/v1.0/state/state_demo/k1")
            .header("if-match", etag)
            .body(Body::empty())
            .expect("request")
    };
    let r = send(&s.router, del("nope")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "ERR_STATE_DELETE");
    assert_eq!(
        send(&s.router, del(&etag)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&s.router, "/v1.0/state/state_demo/k1").await.status,
        StatusCode::NO_CONTENT
    );
    // Delete without ETag (last-write via query): 204.
    let r = call(
        &s.router,
        "DELETE",
        "/v1.0/state/state_demo/k2?concurrency=last-write",
        Body::empty(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// Issue 10, point 7: an ETag is checked whatever the concurrency option; last-write means
/// "no check" only without an ETag (the Dapr Go SDK's `SaveStateWithETag` sends last-write).
#[tokio::test]
async fn a_wrong_etag_fails_under_last_write_too() {
    let s = sidecar().await;
    let save = |body: serde_json::Value| post(&s.router, "/v1.0/state/state_demo", body);
    assert_eq!(
        save(json!([{"key": "k", "value": 1}])).await.status,
        StatusCode::NO_CONTENT
    );
    let last_write = json!({"concurrency": "last-write"});
    let r = save(json!([{"key": "k", "value": 2, "etag": "stale", "options": last_write}])).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/transaction",
        json!({"operations": [
            {"operation": "upsert", "request": {"key": "k", "value": 3, "etag": "stale",
             "options": last_write}}
        ]}),
    )
    .await;
    assert!(
        !r.status.is_success(),
        "transaction with a stale ETag: {:?}",
        r.body
    );
    let r = send(
        &s.router,
        Request::builder()
            .method("DELETE")
            .uri("/v1.0/state/state_demo/k?concurrency=last-write")
            .header("if-match", "stale")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(get(&s.router, "/v1.0/state/state_demo/k").await.body, "1");
    // Without an ETag, last-write overwrites.
    let r = save(json!([{"key": "k", "value": 4, "options": last_write}])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&s.router, "/v1.0/state/state_demo/k").await.body, "4");
}

#[tokio::test]
async fn state_metadata_from_query_reaches_the_store() {
    let s = sidecar().await;
    let r = post(
        &s.router,
        "/v1.0/state/state_demo?metadata.ttlInSeconds=abc",
        json!([{"key": "k", "value": 1}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_STATE_SAVE");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("ttlInSeconds")
    );
    let r = post(
        &s.router,
        "/v1.0/state/state_demo?metadata.ttlInSeconds=100",
        json!([{"key": "k", "value": 1}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn state_errors() {
    let s = sidecar().await;
    for r in [
        post(
            &s.router,
            "/v1.0/state/nope",
            json!([{"key": "k", "value": 1}]),
        )
        .await,
        get(&s.router, "/v1.0/state/nope/k").await,
        call(&s.router, "DELETE", "/v1.0/state/nope/k", Body::empty()).await,
        post(&s.router, "/v1.0/state/nope/bulk", json!({"keys": ["k"]})).await,
        post(
            &s.router,
            "/v1.0/state/nope/transaction",
            json!({"operations": []}),
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "ERR_STATE_STORE_NOT_FOUND");
        assert_eq!(r.json()["message"], "state store nope is not found");
    }
    let r = call(&s.router, "POST", "/v1.0/state/state_demo", "[{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
    // Wrong JSON types.
    let r = post(&s.router, "/v1.0/state/state_demo", json!([{"key": 1}])).await;
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
    let r = post(&s.router, "/v1.0/state/state_demo", json!({"key": "k"})).await;
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
    // Missing key.
    let r = post(&s.router, "/v1.0/state/state_demo", json!([{"value": 1}])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["message"], "\"key\" is a required field");
    // Empty list: nothing to do.
    let r = post(&s.router, "/v1.0/state/state_demo", json!([])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Unknown concurrency.
    let r = post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "k", "options": {"concurrency": "sometimes"}}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The in-memory store answers queries (an extension: Dapr's has no query API).
    let r = post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "q1", "value": {"city": "Oslo", "n": 3}},
               {"key": "q2", "value": {"city": "Rome", "n": 12}}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = post(
        &s.router,
        "/v1.0-alpha1/state/state_demo/query",
        json!({"filter": {"GT": {"n": 5}}, "page": {"limit": 10}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["results"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["results"][0]["key"], "q2");
    assert_eq!(v["results"][0]["data"], json!({"city": "Rome", "n": 12}));
    assert!(v["results"][0]["etag"].is_string());
    assert_eq!(v["token"], "1");
    let r = post(
        &s.router,
        "/v1.0-alpha1/state/state_demo/query",
        json!({"filter": {"LIKE": {"city": "O%"}}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_STATE_QUERY");
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("unsupported filter \"LIKE\""))
    );
    let r = post(&s.router, "/v1.0-alpha1/state/nope/query", json!({})).await;
    assert_eq!(r.code(), "ERR_STATE_STORE_NOT_FOUND");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let opts = DaprHttpOptions {
        max_body_bytes: 64,
        ..Default::default()
    };
    let s = sidecar_with(opts, true, "http://127.0.0.1:9").await;
    let big = json!([{"key": "k", "value": "x".repeat(100)}]);
    let r = post(&s.router, "/v1.0/state/state_demo", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "ERR_BODY_READ");
    // Also without a Content-Length (streamed body).
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![b'['; 40])),
        Ok(Bytes::from(vec![b' '; 40])),
    ];
    let stream = Body::from_stream(futures::stream::iter(chunks));
    let r = call(&s.router, "POST", "/v1.0/state/state_demo", stream).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Small bodies pass.
    let r = post(&s.router, "/v1.0/state/state_demo", json!([{"key": "k"}])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn state_bulk_get() {
    let s = sidecar().await;
    post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "a", "value": {"x": [1, 2]}}]),
    )
    .await;
    // Bytes written by another API that are not JSON.
    s.rt.save_state(
        STATE,
        vec![
            SetRequest {
                key: "text".into(),
                value: Bytes::from_static(b"plain text"),
                ..Default::default()
            },
            SetRequest {
                key: "bin".into(),
                value: Bytes::from_static(&[0xff, 0xfe]),
                ..Default::default()
            },
        ],
    )
    .await
    .expect("save raw");
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/bulk",
        json!({"keys": ["a", "missing", "text", "bin"], "parallelism": 2}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.json();
    let items = items.as_array().expect("array");
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["key"], "a");
    assert_eq!(items[0]["data"], json!({"x": [1, 2]}));
    assert!(items[0]["etag"].is_string());
    assert_eq!(items[1], json!({"key": "missing"}));
    assert_eq!(items[2]["data"], "plain text");
    assert_eq!(items[3]["data"], "//4=");
    // No keys: an empty array.
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/bulk",
        json!({"keys": []}),
    )
    .await;
    assert_eq!(r.json(), json!([]));
    let r = call(&s.router, "POST", "/v1.0/state/state_demo/bulk", "nope").await;
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
}

#[tokio::test]
async fn state_transaction() {
    let s = sidecar().await;
    post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "old", "value": 1}]),
    )
    .await;
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/transaction",
        json!({
            "operations": [
                {"operation": "upsert", "request": {"key": "new", "value": "v"}},
                {"operation": "delete", "request": {"key": "old"}}
            ],
            "metadata": {"partitionKey": "p"}
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        get(&s.router, "/v1.0/state/state_demo/new").await.body,
        "\"v\""
    );
    assert_eq!(
        get(&s.router, "/v1.0/state/state_demo/old").await.status,
        StatusCode::NO_CONTENT
    );
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/transaction",
        json!({"operations": [{"operation": "merge", "request": {"key": "x"}}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_NOT_SUPPORTED_STATE_OPERATION");
    assert_eq!(r.json()["message"], "operation type merge not supported");
    // An ETag mismatch fails the whole transaction (Dapr: 500 ERR_STATE_TRANSACTION).
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/transaction",
        json!({"operations": [
            {"operation": "upsert", "request": {"key": "t1", "value": 1}},
            {"operation": "upsert", "request": {"key": "new", "value": 2, "etag": "bad"}}
        ]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_STATE_TRANSACTION");
    assert_eq!(
        get(&s.router, "/v1.0/state/state_demo/t1").await.status,
        StatusCode::NO_CONTENT
    );
    let r = post(
        &s.router,
        "/v1.0/state/state_demo/transaction",
        json!({"operations": [{"operation": "upsert", "request": "nope"}]}),
    )
    .await;
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
}

// ----- pub/sub -----

type Received = mpsc::UnboundedReceiver<TopicEvent>;

async fn subscribe(rt: &Runtime, topic: &str) -> (layotto_core::pubsub::Subscription, Received) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |ev: TopicEvent| {
        let _ = tx.send(ev);
        let fut: Pin<Box<dyn Future<Output = layotto_core::Result<()>> + Send>> =
            Box::pin(async { Ok(()) });
        fut
    };
    let sub = rt
        .subscribe(PUBSUB, topic, Default::default(), handler)
        .await
        .expect("subscribe");
    (sub, rx)
}

async fn next(rx: &mut Received) -> TopicEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("channel open")
}

#[tokio::test]
async fn publish_wraps_in_cloudevent_or_sends_raw() {
    let s = sidecar().await;
    let (_sub, mut rx) = subscribe(&s.rt, "orders").await;
    let r = post(
        &s.router,
        "/v1.0/publish/pub_subs_demo/orders",
        json!({"id": 7}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let ev = next(&mut rx).await;
    assert_eq!(ev.data, r#"{"id":7}"#);
    assert_eq!(ev.data_content_type, "application/json");
    assert_eq!(ev.source, APP_ID);
    assert_eq!(ev.topic, "orders");

    let req = Request::builder()
        .method("POST")
        .uri("/v1.0/publish/pub_subs_demo/orders?metadata.rawPayload=true")
        .header("content-type", "text/plain")
        .body(Body::from("raw bytes"))
        .expect("request");
    assert_eq!(send(&s.router, req).await.status, StatusCode::NO_CONTENT);
    let ev = next(&mut rx).await;
    assert_eq!(ev.data, "raw bytes");

    let r = post(&s.router, "/v1.0/publish/nope/orders", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "ERR_PUBSUB_NOT_FOUND");
    let r = post(
        &s.router,
        "/v1.0/publish/pub_subs_demo/orders?metadata.rawPayload=maybe",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_PUBSUB_REQUEST_METADATA");
    // A CloudEvent content type with a body that is no JSON object.
    let req = Request::builder()
        .method("POST")
        .uri("/v1.0/publish/pub_subs_demo/orders")
        .header("content-type", "application/cloudevents+json")
        .body(Body::from("[1]"))
        .expect("request");
    let r = send(&s.router, req).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_PUBSUB_CLOUD_EVENTS_SER");
}

#[tokio::test]
async fn topics_may_contain_slashes() {
    let s = sidecar().await;
    let (_sub, mut rx) = subscribe(&s.rt, "a/b").await;
    let r = post(&s.router, "/v1.0/publish/pub_subs_demo/a/b", json!(1)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(next(&mut rx).await.topic, "a/b");
}

#[tokio::test]
async fn bulk_publish() {
    let s = sidecar().await;
    let (_sub, mut rx) = subscribe(&s.rt, "bulk").await;
    for uri in [
        "/v1.0-alpha1/publish/bulk/pub_subs_demo/bulk",
        "/v1.0/publish/bulk/pub_subs_demo/bulk",
    ] {
        let r = post(
            &s.router,
            uri,
            json!([
                {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
                {"entryId": "2", "event": "two", "contentType": "text/plain",
                 "metadata": {"k": "v"}}
            ]),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let a = next(&mut rx).await;
        let b = next(&mut rx).await;
        assert_eq!(a.data, r#"{"n":1}"#);
        assert_eq!(b.data, "two");
        assert_eq!(b.data_content_type, "text/plain");
    }
    let r = post(
        &s.router,
        "/v1.0-alpha1/publish/bulk/pub_subs_demo/bulk",
        json!([
            {"entryId": "1", "event": 1, "contentType": "application/json"},
            {"entryId": "1", "event": 2, "contentType": "application/json"}
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_PUBSUB_EVENTS_SER");
    let r = post(
        &s.router,
        "/v1.0-alpha1/publish/bulk/pub_subs_demo/bulk",
        json!([{"entryId": "1", "event": {"n": 1}, "contentType": "text/plain"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_PUBSUB_CLOUD_EVENTS_SER");
    let r = call(
        &s.router,
        "POST",
        "/v1.0-alpha1/publish/bulk/pub_subs_demo/bulk",
        "{}",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_PUBSUB_EVENTS_SER");
    let r = post(&s.router, "/v1.0-alpha1/publish/bulk/nope/bulk", json!([])).await;
    assert_eq!(r.code(), "ERR_PUBSUB_NOT_FOUND");
}

// ----- bindings -----

#[tokio::test]
async fn output_binding() {
    let url = echo_server().await;
    let s = sidecar_with(DaprHttpOptions::default(), true, &url).await;
    let r = post(
        &s.router,
        "/v1.0/bindings/http_demo",
        json!({"operation": "post", "data": {"x": 1}, "metadata": {"path": "/echo"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, r#"{"x":1}"#);
    assert_eq!(r.header("metadata.statusCode"), Some("200"));
    assert_eq!(r.header("metadata.X-Echo"), Some("yes"));
    // String data travels as JSON text, quotes included (Dapr's json.Marshal of `data`).
    let r = post(
        &s.router,
        "/v1.0/bindings/http_demo",
        json!({"operation": "post", "data": "hi", "metadata": {"path": "/echo"}}),
    )
    .await;
    assert_eq!(r.body, "\"hi\"");

    let r = post(
        &s.router,
        "/v1.0/bindings/nope",
        json!({"operation": "post"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_INVOKE_OUTPUT_BINDING");
    let r = post(
        &s.router,
        "/v1.0/bindings/http_demo",
        json!({"operation": "explode"}),
    )
    .await;
    assert_eq!(r.code(), "ERR_INVOKE_OUTPUT_BINDING");
    let r = call(&s.router, "POST", "/v1.0/bindings/http_demo", "{").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
}

// ----- secrets -----

#[tokio::test]
async fn secrets() {
    let s = sidecar().await;
    let r = get(&s.router, "/v1.0/secrets/secret_demo/db-password").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"db-password": "s3cret"}));
    let r = get(&s.router, "/v1.0/secrets/secret_demo/bulk?metadata.x=y").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"db-password": {"db-password": "s3cret"}, "nested:a": {"nested:a": "b"}})
    );
    let r = get(&s.router, "/v1.0/secrets/nope/db-password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "ERR_SECRET_STORE_NOT_FOUND");
    let r = get(&s.router, "/v1.0/secrets/nope/bulk").await;
    assert_eq!(r.code(), "ERR_SECRET_STORE_NOT_FOUND");
    let r = get(&s.router, "/v1.0/secrets/secret_demo/missing").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_SECRET_GET");
}

// ----- configuration -----

async fn set_config(rt: &Runtime, key: &str, value: &str) {
    rt.save_configuration(
        CONFIG,
        "",
        vec![ConfigItem {
            key: key.into(),
            content: value.into(),
            ..Default::default()
        }],
        &Default::default(),
    )
    .await
    .expect("save configuration");
}

#[tokio::test]
async fn configuration_get() {
    let s = sidecar().await;
    set_config(&s.rt, "a", "1").await;
    set_config(&s.rt, "b", "2").await;
    for prefix in ["/v1.0", "/v1.0-alpha1"] {
        let r = get(
            &s.router,
            &format!("{prefix}/configuration/config_demo?key=a&key=b"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json(), json!({"a": {"value": "1"}, "b": {"value": "2"}}));
    }
    let r = get(&s.router, "/v1.0/configuration/config_demo?key=a").await;
    assert_eq!(r.json(), json!({"a": {"value": "1"}}));
    let r = get(&s.router, "/v1.0/configuration/config_demo?key=zzz").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = get(&s.router, "/v1.0/configuration/nope?key=a").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_CONFIGURATION_STORE_NOT_FOUND");
}

fn app_opts() -> DaprHttpOptions {
    DaprHttpOptions {
        app: Some(AppConnection {
            port: 3000,
            protocol: "http".into(),
            channel_address: "127.0.0.1".into(),
        }),
        ..Default::default()
    }
}

fn fake_app(rt: &Runtime, answer: InvokeResponse) -> mpsc::UnboundedReceiver<InvokeRequest> {
    let (tx, rx) = mpsc::unbounded_channel();
    rt.set_app_channel(Arc::new(FakeApp { calls: tx, answer }));
    rx
}

#[tokio::test]
async fn configuration_subscribe_delivers_to_the_app() {
    let s = sidecar_with(app_opts(), true, "http://127.0.0.1:9").await;
    let mut calls = fake_app(
        &s.rt,
        InvokeResponse {
            status: 200,
            ..Default::default()
        },
    );
    let r = get(&s.router, "/v1.0/configuration/config_demo/subscribe?key=a").await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    set_config(&s.rt, "a", "42").await;
    let call = tokio::time::timeout(Duration::from_secs(5), calls.recv())
        .await
        .expect("delivered in time")
        .expect("open");
    assert_eq!(call.method, "configuration/config_demo/a");
    assert_eq!(call.http_verb, "POST");
    assert_eq!(call.content_type, "application/json");
    let body: Value = serde_json::from_slice(call.data.as_bytes().expect("whole")).expect("json");
    assert_eq!(body, json!({"id": id, "items": {"a": {"value": "42"}}}));

    let uri = format!("/v1.0/configuration/config_demo/{id}/unsubscribe");
    let r = get(&s.router, &uri).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"ok": true}));
    // No more deliveries.
    set_config(&s.rt, "a", "43").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), calls.recv())
            .await
            .is_err()
    );
    let r = get(&s.router, &uri).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed to unsubscribe to configuration request")
    );
    let r = get(&s.router, "/v1.0-alpha1/configuration/nope/subscribe").await;
    assert_eq!(r.code(), "ERR_CONFIGURATION_STORE_NOT_FOUND");
}

#[tokio::test]
async fn configuration_subscribe_needs_an_app() {
    let s = sidecar().await;
    let r = get(&s.router, "/v1.0/configuration/config_demo/subscribe").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_APP_CHANNEL_NIL");
}

// ----- lock -----

#[tokio::test]
async fn lock_and_unlock() {
    let s = sidecar().await;
    let lock = |owner: &str| json!({"resourceId": "r1", "lockOwner": owner, "expiryInSeconds": 60});
    let r = post(&s.router, "/v1.0-alpha1/lock/lock_demo", lock("a")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"success": true}));
    let r = post(&s.router, "/v1.0-alpha1/lock/lock_demo", lock("b")).await;
    assert_eq!(r.json(), json!({"success": false}));
    let unlock = |owner: &str| json!({"resourceId": "r1", "lockOwner": owner});
    let r = post(&s.router, "/v1.0-alpha1/unlock/lock_demo", unlock("b")).await;
    assert_eq!(r.json(), json!({"status": 2}));
    let r = post(&s.router, "/v1.0-alpha1/unlock/lock_demo", unlock("a")).await;
    assert_eq!(r.json(), json!({"status": 0}));
    let r = post(&s.router, "/v1.0-alpha1/unlock/lock_demo", unlock("a")).await;
    assert_eq!(r.json(), json!({"status": 1}));

    let r = post(
        &s.router,
        "/v1.0-alpha1/lock/lock_demo",
        json!({"resourceId": "r1", "lockOwner": "a", "expiryInSeconds": 0}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
    assert_eq!(
        r.json()["message"],
        "ExpiryInSeconds is not positive in lock store lock_demo"
    );
    let r = post(
        &s.router,
        "/v1.0-alpha1/lock/lock_demo",
        json!({"lockOwner": "a", "expiryInSeconds": 5}),
    )
    .await;
    assert_eq!(
        r.json()["message"],
        "ResourceId is empty in lock store lock_demo"
    );
    let r = post(&s.router, "/v1.0-alpha1/lock/nope", lock("a")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_LOCK_STORE_NOT_FOUND");
    let r = call(&s.router, "POST", "/v1.0-alpha1/unlock/lock_demo", "[").await;
    assert_eq!(r.code(), "ERR_MALFORMED_REQUEST");
}

// ----- service invocation -----

#[tokio::test]
async fn invoke_passes_request_and_answer_through() {
    let opts = DaprHttpOptions {
        api_token: Some("tok".into()),
        ..app_opts()
    };
    let s = sidecar_with(opts, true, "http://127.0.0.1:9").await;
    let mut calls = fake_app(
        &s.rt,
        InvokeResponse {
            status: 201,
            content_type: "text/plain".into(),
            data: Bytes::from_static(b"pong").into(),
            headers: vec![
                ("x-app".into(), "1".into()),
                ("transfer-encoding".into(), "chunked".into()),
            ],
            grpc_status: None,
        },
    );
    let req = Request::builder()
        .method("PUT")
        .uri("/v1.0/invoke/app1/method/orders/a%2Fb?x=1&y=2")
        .header("dapr-api-token", "tok")
        .header("content-type", "application/json")
        .header("x-custom", "c")
        .header("connection", "keep-alive")
        .body(Body::from("ping"))
        .expect("request");
    let r = send(&s.router, req).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body, "pong");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-app"), Some("1"));
    assert_eq!(r.header("transfer-encoding"), None);
    let got = calls.recv().await.expect("invoked");
    assert_eq!(got.method, "orders/a%2Fb");
    assert_eq!(got.http_verb, "PUT");
    assert_eq!(got.query, "x=1&y=2");
    assert_eq!(got.content_type, "application/json");
    assert_eq!(got.data, layotto_runtime::Body::from("ping"));
    assert!(got.headers.contains(&("x-custom".into(), "c".into())));
    assert!(
        got.headers
            .iter()
            .all(|(n, _)| n != "dapr-api-token" && n != "connection" && n != "content-type")
    );

    let req = Request::builder()
        .uri("/v1.0/invoke/other-app/method/x")
        .header("dapr-api-token", "tok")
        .body(Body::empty())
        .expect("request");
    let r = send(&s.router, req).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_DIRECT_INVOKE");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed to invoke, id: other-app, err: ")
    );
}

#[tokio::test]
async fn invoke_without_app_channel_fails() {
    let s = sidecar().await;
    let r = get(&s.router, "/v1.0/invoke/app1/method/x").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "ERR_DIRECT_INVOKE");
}

// ----- metadata -----

#[tokio::test]
async fn metadata_get_and_put() {
    let opts = DaprHttpOptions {
        runtime_version: "9.9.9".into(),
        ..app_opts()
    };
    let s = sidecar_with(opts, true, "http://127.0.0.1:9").await;
    let r = call(&s.router, "PUT", "/v1.0/metadata/team", "blue").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = get(&s.router, "/v1.0/metadata").await;
    assert_eq!(r.status, StatusCode::OK);
    let m = r.json();
    assert_eq!(m["id"], APP_ID);
    assert_eq!(m["runtimeVersion"], "9.9.9");
    assert_eq!(
        m["extended"],
        json!({"team": "blue", "daprRuntimeVersion": "9.9.9"})
    );
    assert_eq!(
        m["appConnectionProperties"],
        json!({"port": 3000, "protocol": "http", "channelAddress": "127.0.0.1"})
    );
    assert_eq!(m["actorRuntime"]["runtimeStatus"], "DISABLED");
    let components = m["components"].as_array().expect("components");
    assert!(components.contains(&json!({
        "name": STATE, "type": "state.in-memory", "version": "v1",
        "capabilities": ["ETAG", "QUERY_API", "TRANSACTIONAL", "TTL"]
    })));
    assert!(components.contains(&json!({
        "name": BINDING, "type": "bindings.http", "version": "v1",
        "capabilities": ["OUTPUT_BINDING"]
    })));
    assert!(components.contains(&json!({
        "name": LOCK, "type": "lock.in-memory", "version": "v1"
    })));
    assert!(m.get("subscriptions").is_none());
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let s = sidecar().await;
    assert_eq!(
        get(&s.router, "/v1.0/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&s.router, "PATCH", "/v1.0/state/state_demo", Body::empty())
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // A key literally named like a sub-route still reads as a key.
    post(
        &s.router,
        "/v1.0/state/state_demo",
        json!([{"key": "bulk", "value": 5}]),
    )
    .await;
    assert_eq!(
        get(&s.router, "/v1.0/state/state_demo/bulk").await.body,
        "5"
    );
}

// ----- Configuration access rules, secret scopes, CORS -----

#[tokio::test]
async fn denied_apis_answer_as_unregistered_routes() {
    let access = |allowed: &[(&str, &str, &str)], denied: &[(&str, &str, &str)]| DaprHttpOptions {
        access: layotto_dapr_wire::access::ApiAccess::new(
            allowed.iter().copied(),
            denied.iter().copied(),
        ),
        ..DaprHttpOptions::default()
    };
    // Invocation open: a closed route falls back to it and fails finding an app id.
    let s = sidecar_with(
        access(&[], &[("state", "v1", "http")]),
        true,
        "http://127.0.0.1:9",
    )
    .await;
    let r = get(&s.router, &format!("/v1.0/state/{STATE}/k")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "ERR_DIRECT_INVOKE");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("dapr-app-id")
    );
    assert_eq!(
        get(&s.router, &format!("/v1.0/secrets/{SECRETS}/db-password"))
            .await
            .status,
        StatusCode::OK
    );
    // Other spellings of a closed route stay closed (empty segments match routes too).
    for path in ["/v1.0/state//k", "//v1.0/state/x/k"] {
        let r = get(&s.router, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains(STATE),
            "{path}: {:?}",
            r.body
        );
    }
    let s = sidecar_with(
        access(&[], &[("publish", "v1", "http")]),
        true,
        "http://127.0.0.1:9",
    )
    .await;
    let r = post(
        &s.router,
        &format!("/v1.0/publish/{PUBSUB}//"),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    // An allow list: everything else is closed, health checks never are.
    let s = sidecar_with(
        access(&[("secrets", "v1", "http")], &[]),
        true,
        "http://127.0.0.1:9",
    )
    .await;
    let r = post(
        &s.router,
        &format!("/v1.0/state/{STATE}"),
        json!([{"key": "a", "value": 1}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body.as_ref(), b"404 page not found\n");
    assert_eq!(
        get(&s.router, "/v1.0/healthz").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&s.router, &format!("/v1.0/secrets/{SECRETS}/db-password"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&s.router, "/v1.0/metadata").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn secret_scopes_deny_and_filter() {
    let scope = layotto_config::SecretScope {
        store_name: SECRETS.into(),
        default_deny: true,
        allowed: Vec::new(),
        denied: Vec::new(),
    };
    let s = sidecar_scoped(
        DaprHttpOptions::default(),
        true,
        "http://127.0.0.1:9",
        vec![scope],
    )
    .await;
    let r = get(&s.router, &format!("/v1.0/secrets/{SECRETS}/db-password")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_PERMISSION_DENIED");
    assert_eq!(
        r.json()["message"],
        format!("access denied by policy to get \"db-password\" from \"{SECRETS}\"")
    );
    let r = get(&s.router, &format!("/v1.0/secrets/{SECRETS}/bulk")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({}));

    let scope = layotto_config::SecretScope {
        store_name: SECRETS.into(),
        default_deny: false,
        allowed: Vec::new(),
        denied: vec!["db-password".into()],
    };
    let s = sidecar_scoped(
        DaprHttpOptions::default(),
        true,
        "http://127.0.0.1:9",
        vec![scope],
    )
    .await;
    let bulk = get(&s.router, &format!("/v1.0/secrets/{SECRETS}/bulk"))
        .await
        .json();
    assert!(bulk.get("db-password").is_none(), "{bulk}");
    assert!(bulk.get("nested:a").is_some(), "{bulk}");
}

#[tokio::test]
async fn cors_only_when_origins_are_given() {
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1.0/healthz")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .expect("request")
    };
    let s = sidecar().await;
    let r = send(&s.router, preflight("http://a.example.com")).await;
    assert!(r.header("access-control-allow-origin").is_none());

    let opts = DaprHttpOptions {
        allowed_origins: "http://*.example.com,http://localhost:8080".into(),
        ..DaprHttpOptions::default()
    };
    let s = sidecar_with(opts, true, "http://127.0.0.1:9").await;
    let r = send(&s.router, preflight("http://a.example.com")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://a.example.com")
    );
    let r = send(&s.router, preflight("http://evil.test")).await;
    assert!(r.header("access-control-allow-origin").is_none());
    let req = Request::builder()
        .uri("/v1.0/healthz")
        .header("origin", "http://localhost:8080")
        .body(Body::empty())
        .expect("request");
    let r = send(&s.router, req).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:8080")
    );
}
