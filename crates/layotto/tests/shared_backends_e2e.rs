//! Several sidecars (the real binary) sharing ZooKeeper, MongoDB or MySQL, as `etcd_e2e.rs` and
//! `shared_redis.rs` do for etcd and Redis: never two lock holders, STRONG and WEAK ids all
//! distinct (the `mysql` and `snowflake` sequencers too: snowflake sidecars lease distinct
//! worker ids).
#![allow(missing_docs)]

mod support;

use layotto_test_support::{FerretDbServer, MySqlServer, ZooKeeperServer};
use serde_json::{Value, json};
use support::Sidecar;
use support::shared::{distinct_ids, one_lock_holder};

async fn clients(n: usize, config: &Value) -> (Vec<Sidecar>, Vec<layotto_sdk::Client>) {
    let sidecars: Vec<Sidecar> = (0..n).map(|_| Sidecar::start(config.clone())).collect();
    let mut clients = Vec::new();
    for s in &sidecars {
        clients.push(s.client().await);
    }
    (sidecars, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_share_zookeeper() {
    let zk = ZooKeeperServer::start();
    let md = json!({"zookeeperHosts": zk.addr(), "zookeeperPassword": "", "sessionTimeout": "3"});
    let config = json!({
        "app": {"app_id": "app1"},
        "lock": {"lock_demo": {"type": "zookeeper", "metadata": md}},
        "sequencer": {"sequencer_demo": {"type": "zookeeper", "metadata": md}},
    });
    let (_sidecars, clients) = clients(3, &config).await;
    one_lock_holder(&clients, "lock_demo", 20).await;
    distinct_ids(&clients, "sequencer_demo", 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_share_mongodb() {
    let mongo = FerretDbServer::start();
    let md = json!({"mongoHost": mongo.addr(), "operationTimeout": "3s"});
    let config = json!({
        "app": {"app_id": "app1"},
        "lock": {"lock_demo": {"type": "mongo", "metadata": md}},
        "sequencer": {"sequencer_demo": {"type": "mongo", "metadata": md}},
    });
    let (_sidecars, clients) = clients(3, &config).await;
    one_lock_holder(&clients, "lock_demo", 20).await;
    distinct_ids(&clients, "sequencer_demo", 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_share_mysql() {
    let db = MySqlServer::start();
    let md = |host_key: &str| {
        json!({
            host_key: db.addr(),
            "userName": db.user(),
            "password": db.password(),
            "databaseName": db.database(),
            "timeoutInSeconds": "3",
        })
    };
    let mut snowflake = md("mysqlHost");
    for (k, v) in [("timeBits", "31"), ("workerBits", "20"), ("seqBits", "12")] {
        snowflake[k] = json!(v);
    }
    let config = json!({
        "app": {"app_id": "app1"},
        "sequencer": {
            "sequencer_demo": {"type": "mysql", "metadata": md("mysqlUrl")},
            "snowflake_demo": {"type": "snowflake", "metadata": snowflake},
        },
    });
    let (_sidecars, clients) = clients(3, &config).await;
    distinct_ids(&clients, "sequencer_demo", 100).await;
    distinct_ids(&clients, "snowflake_demo", 100).await;
}

/// Two daprd-style sidecars on one `state.mysql` Component YAML share state through Dapr's HTTP
/// API: what one saves the other reads, with its ETag; a stale ETag is 409.
#[test]
fn daprd_style_sidecars_share_mysql_state() {
    use support::daprd::{Daprd, request};
    let db = MySqlServer::start();
    let component = format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.mysql
  version: v1
  metadata:
  - name: connectionString
    value: \"{}:{}@tcp({})/?allowNativePasswords=true\"
  - name: schemaName
    value: {}
",
        db.user(),
        db.password(),
        db.addr(),
        db.database()
    );
    let start = || {
        Daprd::start(
            &[("res/state.yaml", &component)],
            &["--app-id", "orders", "--resources-path", "{dir}/res"],
            &[],
            None,
        )
    };
    let (a, b) = (start(), start());
    let r = request(
        a.http,
        "POST",
        "/v1.0/state/statestore",
        &[],
        r#"[{"key": "order-1", "value": {"qty": 2}}]"#,
    )
    .expect("save");
    assert_eq!(r.status, 204, "{r:?}");
    let got = request(b.http, "GET", "/v1.0/state/statestore/order-1", &[], "").expect("get");
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&got.body).expect("json"),
        json!({"qty": 2})
    );
    let etag = got.header("etag").expect("ETag header").to_owned();
    let save = |port: u16, etag: &str, qty: u32| {
        request(
            port,
            "POST",
            "/v1.0/state/statestore",
            &[],
            &format!(r#"[{{"key": "order-1", "value": {{"qty": {qty}}}, "etag": "{etag}"}}]"#),
        )
        .expect("save with etag")
        .status
    };
    assert_eq!(save(a.http, &etag, 3), 204);
    assert_eq!(save(b.http, &etag, 4), 409, "the ETag is stale now");
}
