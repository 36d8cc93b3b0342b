//! The client's `grpc-timeout` bounds the component calls of an rpc: a Layotto `GetState`
//! (answered by the handler it shares with Dapr) on a store slower than the client's deadline
//! fails `DEADLINE_EXCEEDED` naming the store, when the deadline passes, not when the store answers.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use layotto_config::{AppConfig, ComponentEntry, Config, Kind, ListenAddr, Origin};
use layotto_core::state::{DeleteRequest, SetRequest, StateItem, StateStore, TransactionOp};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, Metadata, MetadataKeys, Registries, Result,
};
use layotto_grpc::{Deadlines, RuntimeService};
use layotto_proto::runtime as pb;
use layotto_proto::runtime::runtime_server::RuntimeServer;
use layotto_runtime::Runtime;
use prost::Message as _;
use tonic::codegen::http;
use tower::ServiceExt as _;

/// A state store whose reads take two seconds.
struct Slow;

#[async_trait]
impl Component for Slow {}

#[async_trait]
impl StateStore for Slow {
    async fn get(&self, _: &str, _: &Metadata) -> Result<Option<StateItem>> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(None)
    }
    async fn set(&self, _: SetRequest) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _: DeleteRequest) -> Result<()> {
        Ok(())
    }
    async fn transact(&self, _: Vec<TransactionOp>, _: &Metadata) -> Result<()> {
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct NoMetadata {}
impl ComponentMetadata for NoMetadata {}

fn runtime() -> Arc<Runtime> {
    let mut r = Registries::new();
    r.register::<dyn StateStore>(&["slow"], MetadataKeys::of::<NoMetadata>(), |_| {
        Ok(Arc::new(Slow) as Arc<dyn StateStore>)
    })
    .expect("register");
    let config = Config {
        source: "test".to_owned(),
        grpc: ListenAddr::Tcp("127.0.0.1:0".parse().expect("addr")),
        actuator: None,
        app: AppConfig {
            app_id: "app1".to_owned(),
            ..AppConfig::default()
        },
        components: vec![ComponentEntry {
            kind: Kind::State,
            spec: ComponentSpec::new("slow_store", "slow"),
            path: "$.slow_store".to_owned(),
            file: "test.json".to_owned(),
            origin: Origin::Layotto,
            secret_refs: Vec::new(),
            secret_store: None,
            component_refs: Vec::new(),
        }],
        ..Config::default()
    };
    Arc::new(Runtime::build(&config, &r).expect("runtime builds"))
}

/// A gRPC request of `GetState`, framed as on the wire, with `grpc-timeout: timeout`.
fn get_state(timeout: &str) -> http::Request<Full<Bytes>> {
    let msg = pb::GetStateRequest {
        store_name: "slow_store".into(),
        key: "k".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut body = BytesMut::with_capacity(5 + msg.len());
    body.put_u8(0);
    body.put_u32(u32::try_from(msg.len()).expect("small"));
    body.put_slice(&msg);
    http::Request::builder()
        .method("POST")
        .uri("/spec.proto.runtime.v1.Runtime/GetState")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .body(Full::new(body.freeze()))
        .expect("request")
}

#[tokio::test]
async fn component_calls_end_at_the_clients_deadline() {
    let rt = runtime();
    rt.init().await.expect("init");
    let svc = Deadlines::new(RuntimeServer::new(RuntimeService::new(rt)));
    let started = Instant::now();
    let resp = svc.oneshot(get_state("200m")).await.expect("answer");
    let elapsed = started.elapsed();
    // An error before any message is a trailers-only answer: the status is in the headers.
    let status = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().expect("ascii"));
    assert_eq!(status, Some("4"), "DEADLINE_EXCEEDED: {:?}", resp.headers());
    let message = resp
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    assert!(message.contains("slow_store"), "names the store: {message}");
    assert!(
        elapsed < Duration::from_secs(1),
        "ended at the deadline, not when the store answered: {elapsed:?}"
    );
}
