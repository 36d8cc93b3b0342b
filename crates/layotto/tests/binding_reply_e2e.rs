//! A gRPC app's answer to an input binding event (Dapr's `BindingEventResponse`) is carried
//! out: its data goes to each `to` output binding (operation `create`, as daprd sends it) and
//! its `states` are saved in `store_name` (daprd reads them but never saves them).
#![allow(missing_docs)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as dapr;
use support::daprd::{Daprd, request};

fn resources(out_url: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: tick
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: '@every 1s'
  - name: direction
    value: input
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: out
spec:
  type: bindings.http
  version: v1
  metadata:
  - name: url
    value: {out_url}
  - name: direction
    value: output
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: store
spec:
  type: state.in-memory
  version: v1
"
    )
}

/// A gRPC app taking binding `tick` and answering each event with data `{"n":1}`, `to: [out]`
/// and one state item `fromapp` for `store`.
async fn grpc_app() -> u16 {
    struct App;
    #[tonic::async_trait]
    impl dapr::app_callback_server::AppCallback for App {
        async fn on_invoke(
            &self,
            _: tonic::Request<common::InvokeRequest>,
        ) -> Result<tonic::Response<common::InvokeResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("no methods"))
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
            Ok(tonic::Response::new(dapr::ListInputBindingsResponse {
                bindings: vec!["tick".into()],
            }))
        }
        async fn on_binding_event(
            &self,
            _: tonic::Request<dapr::BindingEventRequest>,
        ) -> Result<tonic::Response<dapr::BindingEventResponse>, tonic::Status> {
            Ok(tonic::Response::new(dapr::BindingEventResponse {
                store_name: "store".into(),
                states: vec![common::StateItem {
                    key: "fromapp".into(),
                    value: b"\"saved\"".to_vec(),
                    ..Default::default()
                }],
                to: vec!["out".into()],
                data: br#"{"n": 1}"#.to_vec(),
                concurrency: 0,
            }))
        }
        async fn on_bulk_topic_event(
            &self,
            _: tonic::Request<dapr::TopicEventBulkRequest>,
        ) -> Result<tonic::Response<dapr::TopicEventBulkResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("no topics"))
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(dapr::app_callback_server::AppCallbackServer::new(App))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    port
}

/// What the sink was POSTed: path and body.
type Posted = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Records the bodies POSTed to it.
async fn http_sink() -> (String, Posted) {
    use axum::routing::post;
    let seen: Posted = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(post(
        move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock()
                    .expect("seen")
                    .push((uri.path().to_owned(), body.to_vec()));
                ""
            }
        },
    ));
    let port = support::serve_app(app).await;
    (format!("http://127.0.0.1:{port}/sink"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_app_answer_goes_to_output_bindings_and_state() {
    let (url, seen) = http_sink().await;
    let app_port = grpc_app().await;
    let sidecar = Daprd::start(
        &[("res/resources.yaml", &resources(&url))],
        &[
            "--app-id",
            "reactor",
            "--app-port",
            &app_port.to_string(),
            "--app-protocol",
            "grpc",
            "--resources-path",
            "{dir}/res",
        ],
        &[],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().expect("seen").is_empty() {
        assert!(Instant::now() < deadline, "no output binding call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (path, body) = seen.lock().expect("seen")[0].clone();
    assert_eq!(path, "/sink");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).expect("JSON"),
        serde_json::json!({"n": 1})
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = request(sidecar.http, "GET", "/v1.0/state/store/fromapp", &[], "").expect("get");
        if r.status == 200 {
            assert_eq!(r.body, "\"saved\"");
            break;
        }
        assert!(Instant::now() < deadline, "state not saved: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
