//! The sidecar on etcd, end to end, with Layotto's section shapes (`endpoints` metadata for lock
//! and sequencer, `address` / `timeout` for the configuration store):
//! - etcd killed and restarted mid-run: UNAVAILABLE (not a hang), readiness DOWN then UP without
//!   restarting the sidecar, nothing acknowledged lost (ids never repeat, configuration kept).
//! - Two sidecars on one etcd: never two lock holders, STRONG and WEAK ids all distinct.
#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};

use layotto_sdk::{Increment, pb};
use layotto_test_support::EtcdServer;
use serde_json::json;
use support::Sidecar;
use tonic::Code;

fn config(addr: &str) -> serde_json::Value {
    let md = json!({"endpoints": addr, "username": "", "password": "", "dialTimeout": "1"});
    json!({
        "app": {"app_id": "app1"},
        "lock": {"lock_demo": {"type": "etcd", "metadata": md}},
        "sequencer": {"sequencer_demo": {"type": "etcd", "metadata": md, "biggerThan": {"key666": 1000}}},
        "config_store": {"config_demo": {"type": "etcd", "address": [addr], "timeout": "1"}},
    })
}

fn code(e: layotto_sdk::Error) -> (Code, String) {
    match e {
        layotto_sdk::Error::Status(s) => (s.code(), s.message().to_owned()),
        other => panic!("expected a status, got {other}"),
    }
}

async fn readiness(s: &Sidecar) -> (u16, serde_json::Value) {
    let r = support::http()
        .get(s.actuator("/actuator/health/readiness"))
        .send()
        .await
        .expect("actuator answers");
    let status = r.status().as_u16();
    let body = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    (status, body)
}

fn get_config(key: &str) -> pb::GetConfigurationRequest {
    pb::GetConfigurationRequest {
        store_name: "config_demo".into(),
        app_id: "app1".into(),
        keys: vec![key.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn etcd_outage_is_unavailable_and_recovers_without_restart() {
    let mut etcd = EtcdServer::start();
    let s = Sidecar::start(config(&etcd.addr()));
    let c = s.client().await;
    let (status, body) = readiness(&s).await;
    assert_eq!(status, 200, "{body}");

    let id_before = c
        .get_next_id("sequencer_demo", "key666", Increment::Strong)
        .await
        .expect("id");
    assert!(id_before > 1000, "biggerThan floor: {id_before}");
    assert!(
        c.try_lock("lock_demo", "r", "owner", 60)
            .await
            .expect("lock")
    );
    c.save_configuration(pb::SaveConfigurationRequest {
        store_name: "config_demo".into(),
        app_id: "app1".into(),
        items: vec![pb::ConfigurationItem {
            key: "color".into(),
            content: "blue".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .expect("save configuration");

    etcd.kill();
    let t0 = Instant::now();
    let (code_, msg) = code(
        c.get_next_id("sequencer_demo", "key666", Increment::Strong)
            .await
            .expect_err("outage"),
    );
    assert_eq!(code_, Code::Unavailable, "{msg}");
    let (code_, msg) = code(
        c.try_lock("lock_demo", "r2", "o", 5)
            .await
            .expect_err("outage"),
    );
    assert_eq!(code_, Code::Unavailable, "{msg}");
    let (code_, msg) = code(
        c.get_configuration(get_config("color"))
            .await
            .expect_err("outage"),
    );
    assert_eq!(code_, Code::Unavailable, "{msg}");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "no hang: {:?}",
        t0.elapsed()
    );
    let (status, body) = readiness(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "DOWN");

    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readiness(&s).await;
        if status == 200 {
            assert_eq!(body["status"], "UP");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id_after = c
        .get_next_id("sequencer_demo", "key666", Increment::Strong)
        .await
        .expect("id after restart");
    assert!(id_after > id_before, "{id_after} > {id_before}");
    let items = c.get_configuration(get_config("color")).await.expect("get");
    assert_eq!(items.first().map(|i| i.content.as_str()), Some("blue"));
    // The lock acknowledged before the outage is still held: its owner renews it.
    assert_eq!(
        c.lock_keep_alive("lock_demo", "r", "owner", 60)
            .await
            .expect("keep alive"),
        pb::lock_keep_alive_response::Status::Success
    );
    assert!(
        !c.try_lock("lock_demo", "r", "thief", 5)
            .await
            .expect("try_lock")
    );
}

fn two_sidecars(etcd: &EtcdServer) -> Vec<Sidecar> {
    (0..2)
        .map(|_| Sidecar::start(config(&etcd.addr())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lock_holder_and_distinct_ids_across_two_sidecars() {
    let etcd = EtcdServer::start();
    let sidecars = two_sidecars(&etcd);
    let mut clients = Vec::new();
    for s in &sidecars {
        clients.push(s.client().await);
    }
    support::shared::one_lock_holder(&clients, "lock_demo", 20).await;
    support::shared::distinct_ids(&clients, "sequencer_demo", 300).await;
}
