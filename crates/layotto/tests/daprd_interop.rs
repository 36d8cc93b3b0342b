//! Interop with Dapr's own sidecar: `daprd` v1.14.0 (built from the Go module proxy by the
//! test harness, `layotto_test_support::peers::DAPRD`) and layotto-rs, both with app id
//! `orders` and the same Component YAML, share state on MariaDB (`state.mysql`), Redis
//! (`state.redis`, one server and a Redis Cluster) and PostgreSQL (`state.postgresql` v1 and v2): what one saves through Dapr's HTTP API the other reads, with the ETag the
//! other's next write must carry.
//!
//! daprd is kept on loopback: `DAPR_HOST_IP=127.0.0.1` (else it probes an outside address) and
//! a Configuration with Kubernetes name resolution (whose init does no I/O; mDNS would
//! multicast).
#![allow(missing_docs)]

mod support;

use std::process::Command;

use layotto_test_support::{MySqlServer, PostgresServer, RedisCluster, RedisServer};
use serde_json::{Value, json};
use support::daprd::{Daprd, RealDaprd, Reply, request, start_real_daprd};

const CONFIG: &str = "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: interop
spec:
  nameResolution:
    component: kubernetes
  metrics:
    enabled: false
";

fn start_daprd(dir: &std::path::Path) -> RealDaprd {
    let (res, config) = (dir.join("res"), dir.join("config.yaml"));
    start_real_daprd(&[
        "--app-id",
        "orders",
        "--resources-path",
        res.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--enable-metrics=false",
    ])
}

fn save(port: u16, store: &str, key: &str, value: &Value, etag: Option<&str>) -> Reply {
    let mut item = json!({"key": key, "value": value});
    if let Some(e) = etag {
        item["etag"] = json!(e);
    }
    request(
        port,
        "POST",
        &format!("/v1.0/state/{store}"),
        &[],
        &json!([item]).to_string(),
    )
    .expect("save")
}

/// A first-write save of `key` without ETag.
fn save_first_write(port: u16, store: &str, key: &str, value: &Value) -> Reply {
    let item = json!({"key": key, "value": value, "options": {"concurrency": "first-write"}});
    request(
        port,
        "POST",
        &format!("/v1.0/state/{store}"),
        &[],
        &json!([item]).to_string(),
    )
    .expect("save")
}

fn get(port: u16, store: &str, key: &str) -> (Value, String) {
    let r = request(port, "GET", &format!("/v1.0/state/{store}/{key}"), &[], "").expect("get");
    assert_eq!(r.status, 200, "GET {store}/{key} on port {port}: {r:?}");
    let etag = r.header("etag").expect("ETag").to_owned();
    (serde_json::from_str(&r.body).expect("JSON value"), etag)
}

#[test]
fn daprd_and_layotto_share_state() {
    let db = MySqlServer::start();
    let redis = RedisServer::start();
    let cluster = RedisCluster::start();
    let pg = PostgresServer::start();
    let components = format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mysqlstore
spec:
  type: state.mysql
  version: v1
  metadata:
  - name: connectionString
    value: \"{user}:{pw}@tcp({addr})/?allowNativePasswords=true\"
  - name: schemaName
    value: {db}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redisstore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: {redis}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: rediscluster
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: \"{cluster}\"
  - name: redisType
    value: cluster
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pgv1
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: connectionString
    value: \"{pg}\"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pgv2
spec:
  type: state.postgresql
  version: v2
  metadata:
  - name: connectionString
    value: \"{pg}\"
  - name: tablePrefix
    value: v2_
",
        pg = pg.connection_string(),
        user = db.user(),
        pw = db.password(),
        addr = db.addr(),
        db = db.database(),
        redis = redis.addr(),
        cluster = cluster.hosts(),
    );
    let ours = Daprd::start(
        &[
            ("config.yaml", CONFIG),
            ("res/components.yaml", &components),
        ],
        &[
            "--app-id",
            "orders",
            "--resources-path",
            "{dir}/res",
            "--config",
            "{dir}/config.yaml",
        ],
        &[],
        None,
    );
    let dapr = start_daprd(ours.dir.path());

    for store in ["mysqlstore", "redisstore", "rediscluster", "pgv1", "pgv2"] {
        // daprd writes, layotto-rs reads and updates with daprd's ETag, daprd reads that.
        let v = json!({"from": "daprd", "n": 1});
        assert_eq!(save(dapr.http, store, "a", &v, None).status, 204, "{store}");
        let (got, etag) = get(ours.http, store, "a");
        assert_eq!(got, v, "{store}: layotto-rs reads daprd's value");
        let v2 = json!({"from": "layotto", "n": 2});
        let r = save(ours.http, store, "a", &v2, Some(&etag));
        assert_eq!(r.status, 204, "{store}: daprd's ETag accepted: {r:?}");
        let (got, etag2) = get(dapr.http, store, "a");
        assert_eq!(got, v2, "{store}: daprd reads layotto-rs's value");
        // The ETag daprd sees now is layotto-rs's; the old one is stale for both.
        let r = save(dapr.http, store, "a", &json!(3), Some(&etag));
        assert_eq!(r.status, 409, "{store}: stale ETag refused by daprd: {r:?}");
        assert_eq!(
            save(dapr.http, store, "a", &json!(4), Some(&etag2)).status,
            204
        );
        assert_eq!(get(ours.http, store, "a").0, json!(4), "{store}");

        // layotto-rs writes a plain string and a TTL, daprd reads them.
        assert_eq!(
            save(ours.http, store, "s", &json!("text"), None).status,
            204
        );
        assert_eq!(get(dapr.http, store, "s").0, json!("text"), "{store}");
        let r = request(
            ours.http,
            "POST",
            &format!("/v1.0/state/{store}"),
            &[],
            r#"[{"key": "t", "value": 1, "metadata": {"ttlInSeconds": "100"}}]"#,
        )
        .expect("save with TTL");
        assert_eq!(r.status, 204);
        let r = request(dapr.http, "GET", &format!("/v1.0/state/{store}/t"), &[], "")
            .expect("daprd get");
        assert_eq!(r.status, 200, "{store}: {r:?}");
        if !store.starts_with("redis") {
            assert!(
                r.header("metadata.ttlExpireTime").is_some(),
                "{store}: daprd sees the TTL: {r:?}"
            );
        } else {
            // daprd's Redis store reports no ttlExpireTime; the key's own expiry is the TTL.
            let out = if store == "redisstore" {
                let out = Command::new("redis-cli")
                    .args(["-p", &redis.port().to_string(), "PTTL", "orders||t"])
                    .output()
                    .expect("redis-cli (Debian package redis-tools)");
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                let node = cluster.master_of("orders||t");
                cluster.cli(node, &["PTTL", "orders||t"])
            };
            let ms: i64 = out.trim().parse().expect("PTTL");
            assert!(ms > 90_000 && ms <= 100_000, "{store}: PTTL {ms}");
        }
    }

    // The query API on PostgreSQL v1: rows one sidecar wrote, the other finds (daprd
    // compares fields as text, so only an equality on a string is asked of both).
    for (sidecar, key, n) in [(dapr.http, "qa", 10), (ours.http, "qb", 9)] {
        let r = save(sidecar, "pgv1", key, &json!({"kind": "q", "n": n}), None);
        assert_eq!(r.status, 204, "{r:?}");
    }
    let query = |port: u16| {
        let r = request(
            port,
            "POST",
            "/v1.0-alpha1/state/pgv1/query",
            &[],
            r#"{"filter": {"EQ": {"kind": "q"}}}"#,
        )
        .expect("query");
        assert_eq!(r.status, 200, "{r:?}");
        let v: Value = serde_json::from_str(&r.body).expect("JSON");
        let mut found: Vec<(String, Value)> = v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap_or_default().to_owned(),
                    i["data"].clone(),
                )
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    };
    let want = vec![
        ("qa".to_owned(), json!({"kind": "q", "n": 10})),
        ("qb".to_owned(), json!({"kind": "q", "n": 9})),
    ];
    assert_eq!(query(ours.http), want, "layotto-rs finds daprd's row");
    assert_eq!(query(dapr.http), want, "daprd finds layotto-rs's row");

    // Redis first-write as daprd keeps it: a first-write save marks the key, and a marked key
    // refuses saves without its ETag through either sidecar.
    let store = "redisstore";
    assert_eq!(
        save_first_write(dapr.http, store, "fw1", &json!(1)).status,
        204
    );
    let r = save(ours.http, store, "fw1", &json!(2), None);
    assert_eq!(
        r.status, 409,
        "daprd's mark refuses layotto-rs's save: {r:?}"
    );
    assert_eq!(get(dapr.http, store, "fw1").0, json!(1));
    assert_eq!(
        save_first_write(ours.http, store, "fw2", &json!(1)).status,
        204
    );
    let r = save(dapr.http, store, "fw2", &json!(2), None);
    assert_ne!(
        r.status, 204,
        "layotto-rs's mark refuses daprd's save: {r:?}"
    );
    assert_eq!(get(ours.http, store, "fw2").0, json!(1));
    // An unmarked key is overwritten by a first-write save without ETag, as daprd does; it is
    // marked from then on.
    assert_eq!(save(dapr.http, store, "fw3", &json!(1), None).status, 204);
    assert_eq!(
        save_first_write(ours.http, store, "fw3", &json!(2)).status,
        204
    );
    assert_ne!(save(dapr.http, store, "fw3", &json!(3), None).status, 204);
    let (got, etag) = get(dapr.http, store, "fw3");
    assert_eq!(got, json!(2));
    // With its ETag a marked key saves (layotto-rs always checks an ETag that is sent).
    assert_eq!(
        save(ours.http, store, "fw3", &json!(4), Some(&etag)).status,
        204
    );
    assert_eq!(get(dapr.http, store, "fw3").0, json!(4));
}
