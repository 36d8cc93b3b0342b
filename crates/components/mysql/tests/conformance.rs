//! The sequencer suite against the `mysql` and `snowflake` sequencers, each on a fresh MariaDB
//! (Debian package `mariadb-server`), plus the documented table layouts checked with raw SQL,
//! worker id leases shared by several sidecars, kill / restart, and bad metadata.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use layotto_components_mysql::idgen::Layout;
use layotto_components_mysql::{MySqlSequencer, MySqlStateStore, SnowflakeSequencer};
use layotto_conformance::{unique, within};
use layotto_core::sequencer::Sequencer;
use layotto_core::state::StateStore;
use layotto_core::{Component, ComponentSpec, ErrorKind, HealthStatus, Kind, Registries};
use layotto_test_support::MySqlServer;
use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

fn registries() -> Registries {
    let mut r = Registries::new();
    layotto_components_mysql::register(&mut r).expect("mysql types register once");
    r
}

/// A spec on `server` with Layotto's keys and a 1 s timeout (the bound of every call).
fn spec(server: &MySqlServer, type_: &str) -> ComponentSpec {
    let host_key = if type_ == "mysql" {
        "mysqlUrl"
    } else {
        "mysqlHost"
    };
    ComponentSpec::new("mysql-test", type_)
        .with(host_key, server.addr())
        .with("userName", server.user())
        .with("password", server.password())
        .with("databaseName", server.database())
        .with("timeoutInSeconds", "1")
}

async fn mysql(server: &MySqlServer) -> Arc<MySqlSequencer> {
    let s = MySqlSequencer::from_spec(&spec(server, "mysql")).expect("valid spec");
    s.init().await.expect("init mysql sequencer");
    Arc::new(s)
}

fn snowflake_spec(server: &MySqlServer) -> ComponentSpec {
    // Enough time bits to last (no warning), a short lease for the lease tests.
    spec(server, "snowflake")
        .with("timeBits", "31")
        .with("workerBits", "20")
        .with("seqBits", "12")
        .with("workerLeaseTtl", "2s")
}

async fn snowflake_with(s: ComponentSpec) -> Arc<SnowflakeSequencer> {
    let s = SnowflakeSequencer::from_spec(&s).expect("valid spec");
    s.init().await.expect("init snowflake sequencer");
    Arc::new(s)
}

async fn snowflake(server: &MySqlServer) -> Arc<SnowflakeSequencer> {
    snowflake_with(snowflake_spec(server)).await
}

/// A raw pool, for checking the tables by hand.
async fn raw(server: &MySqlServer) -> MySqlPool {
    MySqlPool::connect(&server.url()).await.expect("raw pool")
}

/// `(column, type, nullable, key)` of `table`, by ordinal position.
async fn columns(pool: &MySqlPool, table: &str) -> Vec<(String, String, String, String)> {
    sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), \
         CAST(COLUMN_KEY AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("columns")
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_sequencer_suite() {
    let server = MySqlServer::start();
    layotto_conformance::sequencer::run_all(|| async {
        mysql(&server).await as Arc<dyn Sequencer>
    })
    .await;
    layotto_conformance::sequencer::bigger_than(|key, floor| {
        let spec = spec(&server, "mysql").with("biggerThan", format!("{{\"{key}\": {floor}}}"));
        async move {
            let s = MySqlSequencer::from_spec(&spec).expect("valid spec");
            s.init().await.expect("init raises the value to the floor");
            Arc::new(s) as Arc<dyn Sequencer>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snowflake_sequencer_suite() {
    let server = MySqlServer::start();
    layotto_conformance::sequencer::run_all(|| async {
        snowflake(&server).await as Arc<dyn Sequencer>
    })
    .await;
    layotto_conformance::sequencer::bigger_than(|key, floor| {
        let spec = snowflake_spec(&server).with("biggerThan", format!("{{\"{key}\": {floor}}}"));
        async move { snowflake_with(spec).await as Arc<dyn Sequencer> }
    })
    .await;
    // A floor above today's snowflake ids cannot be guaranteed: refused, naming the key.
    let s = SnowflakeSequencer::from_spec(
        &snowflake_spec(&server).with("biggerThan", r#"{"far": 9000000000000000000}"#),
    )
    .expect("valid spec");
    let e = s.init().await.expect_err("floor above the ids");
    assert!(
        e.message.contains("biggerThan") && e.message.contains("'far'"),
        "{e}"
    );
}

/// The `mysql` sequencer's table, as documented: `sequencer_key` (primary key),
/// `sequencer_value` (the last id handed out), `version`; rows written by hand continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_table_layout() {
    let server = MySqlServer::start();
    let pool = raw(&server).await;
    let s = mysql(&server).await;
    assert_eq!(s.table(), "layotto_sequencer");
    let cols = columns(&pool, "layotto_sequencer").await;
    let want = [
        ("sequencer_key", "varchar(255)", "NO", "PRI"),
        ("sequencer_value", "bigint(20)", "NO", ""),
        ("version", "bigint(20)", "NO", ""),
    ];
    assert_eq!(cols.len(), 3, "{cols:?}");
    for (got, want) in cols.iter().zip(want) {
        assert_eq!(
            (
                got.0.as_str(),
                got.1.as_str(),
                got.2.as_str(),
                got.3.as_str()
            ),
            want
        );
    }
    let k = format!("sequencer|||app||{}", unique("k"));
    assert_eq!(s.get_next_id(&k).await.expect("first"), 1);
    assert_eq!(s.get_next_id(&k).await.expect("second"), 2);
    let seg = s
        .get_segment(&k, 10)
        .await
        .expect("segment")
        .expect("supported");
    assert_eq!((seg.from, seg.to), (3, 12));
    let row = sqlx::query(
        "SELECT sequencer_value, version FROM layotto_sequencer WHERE sequencer_key = ?",
    )
    .bind(&k)
    .fetch_one(&pool)
    .await
    .expect("row");
    assert_eq!((row.get::<i64, _>(0), row.get::<i64, _>(1)), (12, 3));
    // A row written by hand (another tool, another sidecar) is continued, not restarted.
    let k2 = unique("fixture");
    sqlx::query(
        "INSERT INTO layotto_sequencer (sequencer_key, sequencer_value, version) VALUES (?, 41, 7)",
    )
    .bind(&k2)
    .execute(&pool)
    .await
    .expect("fixture");
    assert_eq!(s.get_next_id(&k2).await.expect("next"), 42);
    // Keys are case-sensitive; a key wider than the column is refused, naming it.
    assert_eq!(s.get_next_id(&k.to_uppercase()).await.expect("upper"), 1);
    let e = s.get_next_id(&"x".repeat(256)).await.expect_err("too long");
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    // `tableName` picks the table; a table with another layout is refused, naming it.
    let t = MySqlSequencer::from_spec(&spec(&server, "mysql").with("tableName", "ids_2"))
        .expect("spec");
    t.init().await.expect("init");
    assert_eq!(t.get_next_id("a").await.expect("id"), 1);
    assert_eq!(columns(&pool, "ids_2").await.len(), 3);
    sqlx::query("CREATE TABLE not_ours (sequencer_key VARCHAR(255), sequencer_value INT)")
        .execute(&pool)
        .await
        .expect("upstream-shaped table");
    let bad = MySqlSequencer::from_spec(&spec(&server, "mysql").with("tableName", "not_ours"))
        .expect("spec");
    let e = bad.init().await.expect_err("no version column");
    assert!(
        e.message.contains("not_ours") && e.message.contains("version"),
        "{e}"
    );
}

/// Several `mysql` sidecars on one table: STRONG ids and WEAK segments never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_sidecars_share_ids() {
    let server = MySqlServer::start();
    let (a, b, c) = (
        mysql(&server).await,
        mysql(&server).await,
        mysql(&server).await,
    );
    let k = unique("shared");
    let take = |s: Arc<MySqlSequencer>, k: String, segments: bool| async move {
        let mut ids = Vec::new();
        for _ in 0..60 {
            if segments {
                let seg = s.get_segment(&k, 5).await.expect("segment").expect("some");
                ids.extend(seg.from..=seg.to);
            } else {
                ids.push(s.get_next_id(&k).await.expect("id"));
            }
        }
        ids
    };
    let (x, y, z) = tokio::join!(
        take(a, k.clone(), false),
        take(b, k.clone(), false),
        take(c, k.clone(), true)
    );
    let all: Vec<i64> = x.iter().chain(&y).chain(&z).copied().collect();
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "ids repeat across sidecars");
    assert_eq!(all.len(), 60 + 60 + 300);
}

/// The worker table, as documented: Layotto's columns plus `EXPIRES_AT` and `LAST_TIMESTAMP`;
/// the row of a sidecar names its lease token, expires in the future, and its horizon covers
/// every id handed out. A table Layotto made gets the lease columns, and its rows (no expiry)
/// are never taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snowflake_table_layout() {
    let server = MySqlServer::start();
    let pool = raw(&server).await;
    // Layotto's own table and one of its rows, as `NewMysqlClient` / `NewWorkId` write them.
    sqlx::query(
        "CREATE TABLE layotto_sequencer_snowflake (
            ID BIGINT NOT NULL AUTO_INCREMENT COMMENT 'auto increment id',
            HOST_NAME VARCHAR(64) NOT NULL COMMENT 'host name',
            PORT VARCHAR(64) NOT NULL COMMENT 'port',
            CREATED TIMESTAMP NOT NULL COMMENT 'created time',
            PRIMARY KEY(ID))",
    )
    .execute(&pool)
    .await
    .expect("Layotto's table");
    sqlx::query(
        "INSERT INTO layotto_sequencer_snowflake (HOST_NAME, PORT, CREATED) \
         VALUES ('10.0.0.9', '1700000000-4242', NOW())",
    )
    .execute(&pool)
    .await
    .expect("Layotto's row");
    let s = snowflake(&server).await;
    let cols: Vec<String> = columns(&pool, "layotto_sequencer_snowflake")
        .await
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        cols,
        [
            "ID",
            "HOST_NAME",
            "PORT",
            "CREATED",
            "EXPIRES_AT",
            "LAST_TIMESTAMP"
        ]
    );
    let worker = s.worker_id().await.expect("leased");
    assert_eq!(
        worker, 2,
        "Layotto's worker id 1 has no expiry and stays its own"
    );
    let mut last = 0;
    for _ in 0..50 {
        let id = s.get_next_id("k").await.expect("id");
        assert!(id > last);
        last = id;
    }
    let layout: Layout = s.layout();
    let (t, w, _) = layout.decompose(last);
    assert_eq!(w, worker);
    let row = sqlx::query(
        "SELECT PORT, EXPIRES_AT, LAST_TIMESTAMP, \
         CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) FROM layotto_sequencer_snowflake WHERE ID = ?",
    )
    .bind(worker)
    .fetch_one(&pool)
    .await
    .expect("row");
    let (port, expires, horizon, now): (String, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(port, s.lease_token());
    assert!(
        expires > now && expires <= now + 2000,
        "expires {expires}, now {now}"
    );
    assert!(horizon >= t, "horizon {horizon} below the id time {t}");
    let upstream = sqlx::query(
        "SELECT PORT, CAST(EXPIRES_AT IS NULL AS SIGNED) FROM layotto_sequencer_snowflake \
         WHERE ID = 1",
    )
    .fetch_one(&pool)
    .await
    .expect("Layotto's row");
    assert_eq!(upstream.get::<String, _>(0), "1700000000-4242");
    assert_eq!(upstream.get::<i64, _>(1), 1, "no expiry");
    // close ends the lease at once.
    s.close().await.expect("close");
    let expires: i64 =
        sqlx::query_scalar("SELECT EXPIRES_AT FROM layotto_sequencer_snowflake WHERE ID = ?")
            .bind(worker)
            .fetch_one(&pool)
            .await
            .expect("released row");
    assert_eq!(expires, 0);
}

/// Sidecars sharing the worker table never share a worker id and never repeat an id; a worker
/// id whose holder vanished is taken over after its lease, above every time its holder used;
/// a holder whose worker id was taken moves to a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snowflake_sidecars_never_share_a_worker_id() {
    let server = MySqlServer::start();
    let pool = raw(&server).await;
    let sidecars: Vec<Arc<SnowflakeSequencer>> =
        futures::future::join_all((0..4).map(|_| snowflake(&server))).await;
    let mut workers = HashSet::new();
    for s in &sidecars {
        assert!(
            workers.insert(s.worker_id().await.expect("leased")),
            "shared worker id"
        );
    }
    let take = |s: Arc<SnowflakeSequencer>, n: usize| async move {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(s.get_next_id("shared").await.expect("id"));
        }
        ids
    };
    let batches = futures::future::join_all(sidecars.iter().map(|s| take(s.clone(), 500))).await;
    let mut all: Vec<i64> = batches.into_iter().flatten().collect();

    // Sidecars that vanish without closing: their worker ids are free only after the lease,
    // then the lowest is taken over.
    let heir_worker = *workers.iter().min().expect("workers");
    all.extend(take(sidecars[0].clone(), 200).await);
    drop(sidecars);
    let early = snowflake(&server).await;
    let early_worker = early.worker_id().await.expect("leased");
    assert!(
        !workers.contains(&early_worker),
        "taken before its lease ran out"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let heir = snowflake(&server).await;
    assert_eq!(
        heir.worker_id().await,
        Some(heir_worker),
        "the expired worker id is reused"
    );
    all.extend(take(heir.clone(), 200).await);
    let early_ids = take(early.clone(), 200).await;
    let before = *early_ids.iter().max().expect("ids");
    all.extend(early_ids);

    // Another sidecar takes `early`'s worker id behind its back: `early` moves to a new one.
    sqlx::query("UPDATE layotto_sequencer_snowflake SET PORT = 'thief' WHERE ID = ?")
        .bind(early_worker)
        .execute(&pool)
        .await
        .expect("steal");
    let moved = within(
        Duration::from_secs(10),
        "early leases a new worker id",
        async {
            loop {
                all.push(early.get_next_id("shared").await.expect("id"));
                match early.worker_id().await {
                    Some(w) if w != early_worker => return w,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        },
    )
    .await;
    assert_ne!(moved, early_worker);
    let after = early.get_next_id("shared").await.expect("id");
    assert!(after > before, "ids keep increasing across worker ids");
    all.push(after);
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an id repeats");
}

/// Awaits `fut`, which must fail with Unavailable within the 1 s timeout (plus slack).
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = layotto_core::Result<T>>,
) {
    layotto_conformance::unavailable_within(Duration::from_secs(1), what, fut).await;
}

async fn eventually_up(what: &str, c: &dyn Component) {
    within(Duration::from_secs(20), what, async {
        loop {
            if c.health().await.status == HealthStatus::Up {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// Kill: calls fail with Unavailable within the timeout and health is DOWN (for snowflake
/// once its lease has run out). Restart: health is UP and ids continue above every id handed
/// out before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart() {
    let mut server = MySqlServer::start();
    let m = mysql(&server).await;
    let f = snowflake(&server).await;
    let key = unique("ids");
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(m.get_next_id(&key).await.expect("id"));
    }
    let mut flakes = Vec::new();
    for _ in 0..20 {
        flakes.push(f.get_next_id(&key).await.expect("id"));
    }

    server.kill();
    unavailable("mysql next id while down", m.get_next_id(&key)).await;
    unavailable("mysql segment while down", m.get_segment(&key, 5)).await;
    assert_eq!(m.health().await.status, HealthStatus::Down);
    // The snowflake lease (2 s) runs out: ids stop rather than risk a shared worker id.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    unavailable("snowflake next id while down", f.get_next_id(&key)).await;
    let h = f.health().await;
    assert_eq!(h.status, HealthStatus::Down, "{h:?}");
    assert!(h.details.contains_key("reason"), "{h:?}");

    server.restart();
    eventually_up("mysql health after restart", &*m).await;
    eventually_up("snowflake health after restart", &*f).await;
    let first = m.get_next_id(&key).await.expect("mysql id after restart");
    let max_before = *before.iter().max().expect("ids");
    assert!(
        first > max_before,
        "id {first} after restart repeats or precedes {max_before}"
    );
    let flake = f
        .get_next_id(&key)
        .await
        .expect("snowflake id after restart");
    assert!(flake > *flakes.iter().max().expect("ids"));
}

/// MariaDB frozen: calls fail with Unavailable within the timeout instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_server_times_out() {
    let server = MySqlServer::start();
    let m = mysql(&server).await;
    let key = unique("frozen");
    m.get_next_id(&key).await.expect("id");
    server.pause();
    unavailable("next id while frozen", m.get_next_id(&key)).await;
    assert_eq!(m.health().await.status, HealthStatus::Down);
    server.resume();
    eventually_up("health after thaw", &*m).await;
    m.get_next_id(&key).await.expect("id after thaw");
}

/// Unreachable host, wrong credentials, a missing database (created), every worker id leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_errors_name_the_cause() {
    let mut server = MySqlServer::start();
    let wrong =
        MySqlSequencer::from_spec(&spec(&server, "mysql").with("password", "wrong")).expect("spec");
    let e = wrong.init().await.expect_err("wrong password");
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message.contains("userName") && e.message.contains("mysql-test"),
        "{e}"
    );
    let fresh = MySqlSequencer::from_spec(&spec(&server, "mysql").with("databaseName", "seq_db"))
        .expect("spec");
    fresh.init().await.expect("init creates the database");
    assert_eq!(fresh.get_next_id("k").await.expect("id"), 1);
    // Two worker ids (workerBits 1 leaves only id 1): the second sidecar is refused.
    let tiny = || {
        snowflake_spec(&server)
            .with("timeBits", "31")
            .with("workerBits", "1")
            .with("seqBits", "31")
            .with("tableName", "tiny_workers")
    };
    let one = snowflake_with(tiny()).await;
    let two = SnowflakeSequencer::from_spec(&tiny()).expect("spec");
    let e = two.init().await.expect_err("no worker id left");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("workerBits"), "{e}");
    one.close().await.expect("close frees it");
    two.init().await.expect("the released worker id");
    server.kill();
    for t in ["mysql", "snowflake"] {
        let s = registries()
            .create::<dyn Sequencer>(&spec(&server, t))
            .expect("spec");
        unavailable("init without a server", s.init()).await;
    }
}

/// Every way Layotto's files and docs name the server reaches it: `mysqlUrl` / `mysqlHost`
/// (`host:port` or a URL), a Go DSN in `connectionString` (over TCP or the Unix socket), and
/// `connectionString` next to `mysqlUrl` as Layotto's docs show.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_forms() {
    let server = MySqlServer::start();
    let (u, p) = (server.user(), server.password());
    let dsn = |net: String, db: &str| format!("{u}:{p}@{net}/{db}?charset=utf8&parseTime=true");
    let forms = [
        ComponentSpec::new("f1", "mysql").with(
            "connectionString",
            dsn(format!("tcp({})", server.addr()), "forms_1"),
        ),
        ComponentSpec::new("f2", "mysql").with(
            "connectionString",
            dsn(format!("unix({})", server.socket().display()), "forms_2"),
        ),
        ComponentSpec::new("f3", "mysql")
            .with("mysqlUrl", server.addr())
            .with(
                "connectionString",
                dsn(format!("tcp({})", server.addr()), "forms_3"),
            ),
        ComponentSpec::new("f4", "snowflake")
            .with(
                "mysqlHost",
                format!("mysql://{u}:{p}@{}/forms_4", server.addr()),
            )
            .with("timeBits", "31")
            .with("workerBits", "20")
            .with("seqBits", "12"),
    ];
    for spec in forms {
        let s = registries()
            .create::<dyn Sequencer>(&spec)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        s.init()
            .await
            .unwrap_or_else(|e| panic!("{}: init: {e}", spec.name));
        s.get_next_id("k")
            .await
            .unwrap_or_else(|e| panic!("{}: id: {e}", spec.name));
        s.close().await.expect("close");
    }
}

#[test]
fn bad_metadata_names_the_component_and_key() {
    let r = registries();
    let base = |t: &str| {
        ComponentSpec::new("bad-mysql", t)
            .with("mysqlHost", "127.0.0.1:3306")
            .with("userName", "u")
            .with("databaseName", "d")
    };
    for t in ["mysql", "snowflake"] {
        for (s, key) in [
            (ComponentSpec::new("bad-mysql", t), "mysqlHost"),
            (base(t).with("mysqlHost", "h:99999"), "mysqlHost"),
            (base(t).with("mysqlUrl", "other:1"), "mysqlUrl"),
            (
                base(t).with("connectionString", "no-db"),
                "connectionString",
            ),
            (base(t).with("tableName", "a-b"), "tableName"),
            (base(t).with("databaseName", "x;y"), "databaseName"),
            (
                base(t).with("timeoutInSeconds", "never"),
                "timeoutInSeconds",
            ),
            (base(t).with("biggerThan", "nope"), "biggerThan"),
        ] {
            let e = r
                .create_any(Kind::Sequencer, &s)
                .err()
                .unwrap_or_else(|| panic!("{t} {key}: accepted"));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
            assert!(
                e.message.contains(key) && e.message.contains("bad-mysql"),
                "{t} {key}: {e}"
            );
        }
    }
    for (s, key) in [
        (base("snowflake").with("timeBits", "20"), "timeBits"),
        (base("snowflake").with("workerBits", "-1"), "workerBits"),
        (
            base("snowflake").with("startTime", "yesterday"),
            "startTime",
        ),
        (base("snowflake").with("reqTimeout", "0"), "reqTimeout"),
    ] {
        let e = r.create_any(Kind::Sequencer, &s).err().expect(key);
        assert!(
            e.message.contains(key) && e.message.contains("bad-mysql"),
            "{key}: {e}"
        );
    }
    // Layotto's config_snowflake.json builds; validate warns that its ids run out in 2030.
    let layotto = ComponentSpec::new("sequencer_demo", "snowflake")
        .with("mysqlHost", "localhost:3306")
        .with("userName", "root")
        .with("password", "123456")
        .with("databaseName", "layotto_sequencer")
        .with("tableName", "layotto_sequencer_snowflake")
        .with("timeBits", "28")
        .with("workerBits", "22")
        .with("seqBits", "13")
        .with("startTime", "2022-01-01");
    let built = r
        .create_any(Kind::Sequencer, &layotto)
        .expect("config_snowflake.json");
    assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
    assert!(
        built.warnings[0].contains("run out on 2030-07-04")
            && built.warnings[0].contains("timeBits"),
        "{:?}",
        built.warnings
    );
    let lasting = layotto
        .with("timeBits", "31")
        .with("workerBits", "19")
        .with("seqBits", "13");
    let built = r
        .create_any(Kind::Sequencer, &lasting)
        .expect("31 time bits");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
}

/// Raw statements used by the tests compile against the server too (guards the documented
/// layout against typos in the docs' SQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documented_ddl_runs() {
    let server = MySqlServer::start();
    let pool = raw(&server).await;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS `doc_seq` (
           `sequencer_key`   VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
           `sequencer_value` BIGINT NOT NULL,
           `version`         BIGINT NOT NULL,
           PRIMARY KEY (`sequencer_key`)
         ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS `doc_workers` (
           ID             BIGINT NOT NULL AUTO_INCREMENT,
           HOST_NAME      VARCHAR(64) NOT NULL,
           PORT           VARCHAR(64) NOT NULL,
           CREATED        DATETIME NOT NULL,
           EXPIRES_AT     BIGINT NULL,
           LAST_TIMESTAMP BIGINT NOT NULL DEFAULT 0,
           PRIMARY KEY (ID)
         ) ENGINE=InnoDB",
    ] {
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&pool)
            .await
            .expect(ddl);
    }
    let s = MySqlSequencer::from_spec(&spec(&server, "mysql").with("tableName", "doc_seq"))
        .expect("spec");
    s.init().await.expect("the documented table is accepted");
    let f = snowflake_with(snowflake_spec(&server).with("tableName", "doc_workers")).await;
    assert_eq!(f.worker_id().await, Some(1));
}

/// A `state.mysql` spec on `server` as Dapr's docs write it: a Go DSN without a database, the
/// database in `schemaName`.
fn state_spec(server: &MySqlServer) -> ComponentSpec {
    ComponentSpec::new("statestore", "state.mysql")
        .with(
            "connectionString",
            format!(
                "{}:{}@tcp({})/?allowNativePasswords=true",
                server.user(),
                server.password(),
                server.addr()
            ),
        )
        .with("schemaName", server.database())
        .with("timeoutInSeconds", "2")
}

async fn state_store(server: &MySqlServer) -> Arc<MySqlStateStore> {
    let s = MySqlStateStore::from_spec(&state_spec(server)).expect("valid spec");
    s.init().await.expect("init state.mysql");
    Arc::new(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_suite() {
    let server = MySqlServer::start();
    layotto_conformance::state::run_all(|| async {
        state_store(&server).await as Arc<dyn StateStore>
    })
    .await;
}

/// Rows as daprd writes and reads them: the table's columns in daprd's order; JSON values
/// (`contentType: application/json`) stored as JSON with `isbinary` 0, bytes as a JSON string
/// of base64 with `isbinary` 1, a UUID ETag, `expiredate` from `ttlInSeconds`; rows written the
/// way daprd writes them read back, expired ones never.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_table_layout_matches_dapr() {
    use layotto_core::state::SetRequest;
    let server = MySqlServer::start();
    let s = state_store(&server).await;
    let db = raw(&server).await;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT COLUMN_NAME FROM information_schema.columns WHERE TABLE_SCHEMA = DATABASE() AND \
         TABLE_NAME = 'state' ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(&db)
    .await
    .expect("columns");
    assert_eq!(
        columns,
        [
            "id",
            "value",
            "isbinary",
            "insertDate",
            "updateDate",
            "eTag",
            "expiredate"
        ]
    );
    let json = layotto_core::Metadata::from([
        ("contentType".to_owned(), "application/json".to_owned()),
        ("ttlInSeconds".to_owned(), "100".to_owned()),
    ]);
    s.set(SetRequest {
        key: "app||j".into(),
        value: br#"{"a":1}"#.to_vec().into(),
        metadata: json,
        ..SetRequest::default()
    })
    .await
    .expect("set json");
    s.set(SetRequest {
        key: "app||b".into(),
        value: vec![0u8, 1, 255].into(),
        ..SetRequest::default()
    })
    .await
    .expect("set bytes");
    let row = |key: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query(
                "SELECT CAST(value AS CHAR), isbinary, eTag, expiredate IS NOT NULL FROM state \
                 WHERE id = ?",
            )
            .bind(key)
            .fetch_one(&db)
            .await
            .expect("row")
        }
    };
    let j = row("app||j").await;
    let value: String = j.get(0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&value).expect("json"),
        serde_json::json!({"a": 1})
    );
    assert!(!j.get::<bool, _>(1));
    assert!(uuid::Uuid::parse_str(&j.get::<String, _>(2)).is_ok());
    assert!(j.get::<bool, _>(3), "ttlInSeconds sets expiredate");
    let b = row("app||b").await;
    assert_eq!(b.get::<String, _>(0), r#""AAH/""#);
    assert!(b.get::<bool, _>(1));
    let got = s
        .get("app||j", &Default::default())
        .await
        .expect("get")
        .expect("item");
    assert!(got.metadata.contains_key("ttlExpireTime"), "{got:?}");

    // What daprd writes, read back here.
    for (id, value, binary, expire) in [
        ("dapr||json", r#"{"from": "daprd"}"#, false, "NULL"),
        ("dapr||bytes", r#""aGVsbG8=""#, true, "NULL"),
        (
            "dapr||gone",
            r#""x""#,
            false,
            "CURRENT_TIMESTAMP - INTERVAL 1 SECOND",
        ),
    ] {
        sqlx::query(AssertSqlSafe(format!(
            "REPLACE INTO state (id, value, eTag, isbinary, expiredate) VALUES (?, ?, ?, ?, {expire})"
        )))
        .bind(id)
        .bind(value)
        .bind("00000000-0000-4000-8000-000000000000")
        .bind(binary)
        .execute(&db)
        .await
        .expect("daprd's row");
    }
    let json = s
        .get("dapr||json", &Default::default())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json.data).expect("json"),
        serde_json::json!({"from": "daprd"})
    );
    assert_eq!(
        json.etag.as_deref(),
        Some("00000000-0000-4000-8000-000000000000")
    );
    let bytes = s
        .get("dapr||bytes", &Default::default())
        .await
        .expect("get")
        .expect("item");
    assert_eq!(bytes.data.as_ref(), b"hello");
    assert_eq!(
        s.get("dapr||gone", &Default::default()).await.expect("get"),
        None
    );
    // First-write over an expired row takes it; over a live one is a mismatch.
    let first = |key: &str| SetRequest {
        key: key.into(),
        value: b"1".to_vec().into(),
        options: layotto_core::state::StateOptions {
            concurrency: layotto_core::state::Concurrency::FirstWrite,
            ..Default::default()
        },
        ..SetRequest::default()
    };
    s.set(first("dapr||gone"))
        .await
        .expect("expired row replaced");
    let e = s.set(first("dapr||json")).await.expect_err("live row");
    assert_eq!(e.kind, ErrorKind::EtagMismatch, "{e}");
    // Keys are exact: a trailing space makes another key.
    s.set(first("app||sp "))
        .await
        .expect("a key with a trailing space");
    assert_eq!(
        s.get("app||sp", &Default::default()).await.expect("get"),
        None
    );
    // A TTL past the end of TIMESTAMP is refused, not stored as a zero date.
    let mut far = first("app||far");
    far.metadata
        .insert("ttlInSeconds".into(), "2147483647".into());
    let e = s.set(far).await.expect_err("past 2038");
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
}

/// daprd's cleanup claim: the sidecar that wins the `last-cleanup` row deletes expired rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_cleanup_removes_expired_rows() {
    let server = MySqlServer::start();
    let s = MySqlStateStore::from_spec(&state_spec(&server).with("cleanupInterval", "1s"))
        .expect("valid spec");
    s.init().await.expect("init");
    let db = raw(&server).await;
    sqlx::query(
        "REPLACE INTO state (id, value, eTag, isbinary, expiredate) VALUES ('old', '1', 'e', 0, \
         CURRENT_TIMESTAMP - INTERVAL 1 SECOND)",
    )
    .execute(&db)
    .await
    .expect("expired row");
    within(Duration::from_secs(10), "the expired row removed", async {
        loop {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM state WHERE id = 'old'")
                .fetch_one(&db)
                .await
                .expect("count");
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let claimed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM dapr_metadata WHERE id = 'last-cleanup'")
            .fetch_one(&db)
            .await
            .expect("claim row");
    assert_eq!(claimed, 1);
    s.close().await.expect("close");
}
