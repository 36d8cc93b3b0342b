//! Dapr's `state.postgresql` (v1 and v2 layouts) against the state suite, on a real PostgreSQL
//! started by the test harness, plus the rows as daprd writes and reads them.

use std::sync::Arc;

use layotto_components_postgres::PgStateStore;
use layotto_core::state::{SetRequest, StateStore};
use layotto_core::{Component, ComponentSpec, Metadata};
use layotto_test_support::PostgresServer;
use sqlx::{PgPool, Row};

fn spec(server: &PostgresServer, version: &str, pairs: &[(&str, &str)]) -> ComponentSpec {
    let mut s =
        ComponentSpec::new("pg", "postgresql").with("connectionString", server.connection_string());
    s.version = version.to_owned();
    for (k, v) in pairs {
        s = s.with(*k, *v);
    }
    s
}

async fn store(spec: ComponentSpec) -> Arc<PgStateStore> {
    let s = PgStateStore::from_spec(&spec).expect("valid spec");
    s.init().await.expect("init postgresql state store");
    Arc::new(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_suite_v1_and_v2() {
    let server = PostgresServer::start();
    // Both layouts on one database, in tables of their own.
    layotto_conformance::state::run_all(|| async {
        store(spec(&server, "v1", &[("tableName", "state_v1")])).await as Arc<dyn StateStore>
    })
    .await;
    layotto_conformance::state::run_all(|| async {
        store(spec(&server, "v2", &[("tablePrefix", "v2_")])).await as Arc<dyn StateStore>
    })
    .await;
}

/// The tables, migration records and rows as daprd makes them: v1 stores JSON as jsonb and
/// bytes as a base64 JSON string with `isbinary`, its ETag is `xmin`; v2 stores bytes with a
/// uuid ETag; both record their migration level, expire rows by `ttlInSeconds` and never read
/// expired ones; a row written the way daprd writes it reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_match_daprd() {
    let server = PostgresServer::start();
    let v1 = store(spec(&server, "", &[])).await;
    let v2 = store(spec(&server, "v2", &[("tablePrefix", "b_")])).await;
    let pool = PgPool::connect(&server.url()).await.expect("raw pool");
    let json = Metadata::from([("contentType".to_owned(), "application/json".to_owned())]);
    let set = |key: &str, value: &[u8], md: &Metadata| SetRequest {
        key: key.to_owned(),
        value: bytes::Bytes::copy_from_slice(value),
        metadata: md.clone(),
        ..Default::default()
    };
    v1.set(set("app||j", br#"{"b":1,"a":"x"}"#, &json))
        .await
        .expect("json");
    v1.set(set("app||b", b"\x00\x01raw", &Metadata::new()))
        .await
        .expect("bytes");
    let rows: Vec<(String, String, bool, String)> =
        sqlx::query("SELECT key, value::text, isbinary, xmin::text FROM state ORDER BY key")
            .fetch_all(&pool)
            .await
            .expect("rows")
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
    assert_eq!(rows[0].0, "app||b");
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("\"AAFyYXc=\"", true));
    assert_eq!(
        (rows[1].1.as_str(), rows[1].2),
        (r#"{"a": "x", "b": 1}"#, false)
    );
    let item = v1
        .get("app||j", &Metadata::new())
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        item.etag.as_deref(),
        Some(rows[1].3.as_str()),
        "the ETag is xmin"
    );
    assert_eq!(item.data.as_ref(), br#"{"a": "x", "b": 1}"#);
    let item = v1
        .get("app||b", &Metadata::new())
        .await
        .expect("get")
        .expect("found");
    assert_eq!(item.data.as_ref(), b"\x00\x01raw");
    let levels: Vec<(String, String)> = sqlx::query(
        "SELECT key, value FROM dapr_metadata WHERE key LIKE 'migrations%' ORDER BY key",
    )
    .fetch_all(&pool)
    .await
    .expect("levels")
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(
        levels,
        [
            ("migrations".to_owned(), "2".to_owned()),
            ("migrations-state-v2-b_".to_owned(), "1".to_owned())
        ]
    );

    // A row as daprd v1 writes it, and an expired one.
    sqlx::query(
        "INSERT INTO state (key, value, isbinary, expiredate) VALUES ('app||d', '{\"n\": 2}', \
         false, CURRENT_TIMESTAMP + interval '100 seconds'), ('app||old', '1', false, \
         CURRENT_TIMESTAMP - interval '1 second')",
    )
    .execute(&pool)
    .await
    .expect("daprd rows");
    let item = v1
        .get("app||d", &Metadata::new())
        .await
        .expect("get")
        .expect("found");
    assert_eq!(item.data.as_ref(), br#"{"n": 2}"#);
    assert!(
        item.metadata.contains_key("ttlExpireTime"),
        "{:?}",
        item.metadata
    );
    assert!(
        v1.get("app||old", &Metadata::new())
            .await
            .expect("get")
            .is_none()
    );

    // v2: bytes as given, a uuid ETag, expires_at from the TTL.
    let ttl = Metadata::from([("ttlInSeconds".to_owned(), "60".to_owned())]);
    v2.set(set("app||k", b"v2 bytes", &ttl))
        .await
        .expect("v2 set");
    let r = sqlx::query(
        "SELECT value, etag::text, expires_at > now() + interval '50 seconds' FROM b_state \
         WHERE key = 'app||k'",
    )
    .fetch_one(&pool)
    .await
    .expect("v2 row");
    let (value, etag, expires): (Vec<u8>, String, bool) = (r.get(0), r.get(1), r.get(2));
    assert_eq!(value, b"v2 bytes");
    assert!(uuid::Uuid::parse_str(&etag).is_ok(), "{etag}");
    assert!(expires);
    let item = v2
        .get("app||k", &Metadata::new())
        .await
        .expect("get")
        .expect("found");
    assert_eq!(item.etag.as_deref(), Some(etag.as_str()));
    // An ETag of the wrong shape is a mismatch in both layouts (daprd's v1 says invalid).
    let mut bad = set("app||k", b"x", &Metadata::new());
    bad.etag = Some("not-a-uuid".into());
    let e = v2.set(bad.clone()).await.expect_err("mismatch");
    assert_eq!(
        e.kind,
        layotto_core::ErrorKind::EtagMismatch,
        "{}",
        e.message
    );
    bad.key = "app||j".into();
    let e = v1.set(bad).await.expect_err("mismatch too");
    assert_eq!(
        e.kind,
        layotto_core::ErrorKind::EtagMismatch,
        "{}",
        e.message
    );
}

/// `configuration.postgresql` on the table and trigger of Dapr's documentation: a get picks the
/// highest numeric version of each key with the row's metadata; a subscription with
/// `pgNotifyChannel` gets inserts, updates and deletes of its keys only; writes through the
/// store are refused (read-only, as Dapr's); a missing table fails `init`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration_store_reads_and_listens() {
    use layotto_components_postgres::PgConfigStore;
    use layotto_core::configuration::{ConfigQuery, ConfigStore};
    let server = PostgresServer::start();
    let pool = PgPool::connect(&server.url()).await.expect("raw pool");
    sqlx::raw_sql(
        "CREATE TABLE configtable (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR \
         NOT NULL, METADATA JSON);
         CREATE OR REPLACE FUNCTION notify_event() RETURNS TRIGGER AS $$
           DECLARE data json; notification json;
           BEGIN
             IF (TG_OP = 'DELETE') THEN data = row_to_json(OLD); ELSE data = row_to_json(NEW); END IF;
             notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
             PERFORM pg_notify('config', notification::text);
             RETURN NULL;
           END;
         $$ LANGUAGE plpgsql;
         CREATE TRIGGER config AFTER INSERT OR UPDATE OR DELETE ON configtable
           FOR EACH ROW EXECUTE PROCEDURE notify_event();
         INSERT INTO configtable VALUES ('color', 'red', '1', NULL), ('color', 'blue', '2', \
         '{\"team\": \"ui\"}'), ('size', 'L', 'x', NULL);",
    )
    .execute(&pool)
    .await
    .expect("the table and trigger of Dapr's docs");
    let spec = |table: &str| {
        ComponentSpec::new("cfg", "postgresql")
            .with("connectionString", server.connection_string())
            .with("table", table)
    };
    let missing = PgConfigStore::from_spec(&spec("nope")).expect("valid");
    let e = missing.init().await.expect_err("no table");
    assert!(e.message.contains("'nope'"), "{}", e.message);
    let store = PgConfigStore::from_spec(&spec("configtable")).expect("valid");
    store.init().await.expect("init");

    let got = store.get(&ConfigQuery::default()).await.expect("get all");
    let view: Vec<(String, String, Option<String>, Option<String>)> = got
        .iter()
        .map(|i| {
            (
                i.key.clone(),
                i.content.clone(),
                i.metadata.get("version").cloned(),
                i.metadata.get("team").cloned(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            (
                "color".into(),
                "blue".into(),
                Some("2".into()),
                Some("ui".into())
            ),
            ("size".into(), "L".into(), Some("x".into()), None)
        ]
    );
    let bad = ConfigQuery {
        keys: vec!["a b".into()],
        ..Default::default()
    };
    assert!(store.get(&bad).await.is_err(), "a key daprd refuses");
    let e = store
        .set("app", vec![], &Metadata::new())
        .await
        .expect_err("read-only");
    assert_eq!(e.kind, layotto_core::ErrorKind::Unsupported);

    let no_channel = ConfigQuery {
        keys: vec!["color".into()],
        ..Default::default()
    };
    let e = store
        .subscribe(&no_channel)
        .await
        .expect_err("needs pgNotifyChannel");
    assert!(e.message.contains("pgNotifyChannel"), "{}", e.message);
    let q = ConfigQuery {
        keys: vec!["color".into()],
        metadata: Metadata::from([("pgNotifyChannel".to_owned(), "config".to_owned())]),
        ..Default::default()
    };
    // Subscriptions hold connections of their own: more of them than the pool holds leave
    // reads working.
    let mut many = Vec::new();
    for _ in 0..10 {
        many.push(store.subscribe(&q).await.expect("subscribe"));
    }
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.get(&ConfigQuery::default()),
    )
    .await
    .expect("a get beside ten subscriptions")
    .expect("get");
    drop(many);
    let mut changes = store.subscribe(&q).await.expect("subscribe");
    sqlx::raw_sql(
        "INSERT INTO configtable VALUES ('size', 'XL', '2', NULL); \
         UPDATE configtable SET value = 'green', version = '3' WHERE key = 'color' AND version = '2'; \
         DELETE FROM configtable WHERE key = 'color' AND version = '1';",
    )
    .execute(&pool)
    .await
    .expect("changes");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), changes.recv())
            .await
            .expect("a change in time")
            .expect("open");
        seen.extend(
            batch
                .into_iter()
                .map(|i| (i.key, i.content, i.metadata["version"].clone())),
        );
    }
    assert_eq!(
        seen,
        [
            ("color".to_owned(), "green".to_owned(), "3".to_owned()),
            ("color".to_owned(), String::new(), "1".to_owned())
        ],
        "the update, then the delete; 'size' is not subscribed"
    );
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), changes.recv()).await;
    assert!(quiet.is_err(), "nothing else: {quiet:?}");
}
