//! MOSN's `flowControlFilter` on the gRPC listener (Layotto's `runtime_config.json`) limits the
//! named method and nothing else, over a real connection to the real binary.
#![allow(missing_docs)]

mod support;

use serde_json::json;
use support::Sidecar;
use tonic::Code;

#[tokio::test]
async fn a_limited_method_is_refused_past_its_threshold_and_others_are_not() {
    let grpc_config = json!({
        "hellos": {"quick_start_demo": {"type": "helloworld", "hello": "greeting"}},
        "state": {"state_demo": {"type": "in-memory"}}
    });
    // Three calls per minute: the test's calls all fall in one window, however slow the machine.
    let s = Sidecar::start_edited(
        grpc_config,
        |doc| {
            doc["servers"][0]["listeners"][0]["stream_filters"] = json!([{
                "type": "flowControlFilter",
                "config": {"global_switch": true, "limit_key_type": "PATH", "rules": [{
                    "resource": "/spec.proto.runtime.v1.Runtime/SayHello",
                    "grade": 60, "threshold": 3
                }]}
            }]);
        },
        &[],
        &[],
    );
    let c = s.client().await;
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(match c.say_hello("quick_start_demo", "x").await {
            Ok(_) => Code::Ok,
            Err(layotto_sdk::Error::Status(st)) => {
                assert!(
                    st.message().contains("current request is limited"),
                    "{st:?}"
                );
                st.code()
            }
            Err(other) => panic!("unexpected error {other}"),
        });
    }
    assert_eq!(
        outcomes,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    for i in 0..10 {
        c.save_state("state_demo", &format!("k{i}"), b"v".to_vec())
            .await
            .expect("other methods are not limited");
    }
}
