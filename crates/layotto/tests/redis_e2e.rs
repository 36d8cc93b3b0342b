//! The sidecar on Redis, end to end: a backend killed and restarted mid-run gives UNAVAILABLE
//! (not a hang, not a crash), readiness goes DOWN then UP without restarting the sidecar, and
//! every acknowledged write is readable afterwards. Bad input names the field.
#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};

use layotto_sdk::{Increment, pb};
use layotto_test_support::RedisServer;
use serde_json::json;
use support::Sidecar;
use tonic::Code;

fn redis_config(addr: &str) -> serde_json::Value {
    let md = json!({"redisHost": addr, "dialTimeout": "1s", "readTimeout": "1s"});
    json!({
        "app": {"app_id": "app1"},
        "state": {"state_demo": {"type": "redis", "metadata": md}},
        "lock": {"lock_demo": {"type": "redis", "metadata": md}},
        "sequencer": {"sequencer_demo": {"type": "redis", "metadata": md, "biggerThan": {"key666": 1000}}},
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

#[tokio::test]
async fn redis_outage_is_unavailable_and_recovers_without_restart() {
    let mut redis = RedisServer::start();
    let s = Sidecar::start(redis_config(&redis.addr()));
    let c = s.client().await;
    let (status, body) = readiness(&s).await;
    assert_eq!(status, 200, "{body}");

    // Acknowledged writes before the outage.
    for i in 0..50 {
        c.save_state("state_demo", &format!("k{i}"), format!("v{i}").into_bytes())
            .await
            .expect("save before outage");
    }
    let id_before = c
        .get_next_id("sequencer_demo", "key666", Increment::Strong)
        .await
        .expect("id");
    assert!(id_before > 1000);

    redis.kill();
    let t0 = Instant::now();
    let (code_, msg) = code(c.get_state("state_demo", "k1").await.expect_err("outage"));
    assert_eq!(code_, Code::Unavailable, "{msg}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        t0.elapsed()
    );
    let (code_, _) = code(
        c.try_lock("lock_demo", "r", "o", 5)
            .await
            .expect_err("lock in outage"),
    );
    assert_eq!(code_, Code::Unavailable);
    let (status, body) = readiness(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["components"]["state/state_demo"]["status"], "DOWN");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
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
    for i in 0..50 {
        let got = c
            .get_state("state_demo", &format!("k{i}"))
            .await
            .expect("get after restart")
            .expect("acknowledged write survived");
        assert_eq!(got.data, format!("v{i}").into_bytes());
    }
    let id_after = c
        .get_next_id("sequencer_demo", "key666", Increment::Strong)
        .await
        .expect("id after restart");
    assert!(id_after > id_before, "{id_after} > {id_before}");
}

#[tokio::test]
async fn bad_input_to_redis_components_names_the_field() {
    let redis = RedisServer::start();
    let s = Sidecar::start(redis_config(&redis.addr()));
    let c = s.client().await;
    let mut item = pb::StateItem {
        key: "k".into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    item.metadata.insert("ttlInSeconds".into(), "abc".into());
    let (code_, msg) = code(
        c.save_states("state_demo", vec![item])
            .await
            .expect_err("ttl"),
    );
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("ttlInSeconds"), "{msg}");
    let (code_, msg) = code(c.get_state("state_demo", "").await.expect_err("empty key"));
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("key"), "{msg}");
    let (code_, msg) = code(
        c.try_lock("lock_demo", "", "o", 5)
            .await
            .expect_err("empty resource"),
    );
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("resource_id"), "{msg}");
    let (code_, _) = code(
        c.get_next_id("sequencer_demo", "", Increment::Weak)
            .await
            .expect_err("empty key"),
    );
    assert_eq!(code_, Code::InvalidArgument);
}

#[test]
fn malformed_redis_metadata_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = support::layotto_config(
        support::free_port(),
        support::free_port(),
        json!({"state": {"s": {"type": "redis", "metadata": {"redisHost": "127.0.0.1:1", "db": "abc", "poolSizee": "3"}}}}),
    );
    let f = dir.path().join("c.json");
    std::fs::write(&f, cfg.to_string()).expect("write");
    let (code_, _, err) = support::run_cli(&["validate", "-c", &f.to_string_lossy()]);
    assert_eq!(code_, 64, "{err}");
    assert!(err.contains("db"), "{err}");
}

/// Issue 10, point 7, on Redis: a stale ETag fails under last-write too (save and delete);
/// without an ETag, last-write overwrites.
#[tokio::test]
async fn redis_checks_an_etag_under_last_write() {
    let redis = RedisServer::start();
    let s = Sidecar::start(redis_config(&redis.addr()));
    let c = s.client().await;
    c.save_state("state_demo", "k", b"v1".to_vec())
        .await
        .expect("save");
    let last_write = Some(pb::StateOptions {
        concurrency: pb::state_options::StateConcurrency::ConcurrencyLastWrite.into(),
        consistency: 0,
    });
    let stale = pb::StateItem {
        key: "k".into(),
        value: b"v2".to_vec(),
        etag: Some(pb::Etag {
            value: "999".into(),
        }),
        options: last_write,
        ..Default::default()
    };
    let (code_, msg) = code(
        c.save_states("state_demo", vec![stale.clone()])
            .await
            .expect_err("stale etag"),
    );
    assert_eq!(code_, Code::Aborted, "{msg}");
    let (code_, _) = code(
        c.delete_bulk_state("state_demo", vec![stale.clone()])
            .await
            .expect_err("stale etag on delete"),
    );
    assert_eq!(code_, Code::Aborted);
    let got = c.get_state("state_demo", "k").await.expect("get");
    assert_eq!(got.map(|s| s.data), Some(b"v1".to_vec()), "nothing changed");
    let fresh = pb::StateItem {
        etag: None,
        ..stale
    };
    c.save_states("state_demo", vec![fresh])
        .await
        .expect("last-write without etag overwrites");
    let got = c.get_state("state_demo", "k").await.expect("get");
    assert_eq!(got.map(|s| s.data), Some(b"v2".to_vec()));
}
