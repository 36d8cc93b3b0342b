//! `layotto-bench --brokers`: publish-and-deliver through the sidecar for each broker
//! (NATS JetStream, Kafka, RabbitMQ, Mosquitto), beside the same broker driven in process by
//! the component layotto-rs uses (the broker's client without the sidecar's hops).
//!
//! For each broker (started by the test harness, one at a time): `--broker-messages`
//! messages, closed loop with `--concurrency` publishers, each carrying its send time.
//! - **in process**: the component's `publish`, delivered to a subscription's handler;
//! - **sidecar**: Dapr's HTTP `POST /v1.0/publish/broker/bench` to a layotto-rs sidecar
//!   (daprd's command line, the broker as a Dapr Component YAML), delivered as a CloudEvent to
//!   an app's `POST /bench`.
//!
//! Figures: publishes per second and publish latency (until the broker acknowledged), delivery
//! latency (send to handler), deliveries per second (first send to last delivery). The
//! section "Brokers: publish and deliver" of `--report` is replaced.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use hdrhistogram::Histogram;
use layotto_core::pubsub::{Handler, Message, PubSub, SubscribeRequest};
use layotto_core::{ComponentSpec, Metadata};
use layotto_test_support::{KafkaServer, MosquittoServer, NatsServer, RabbitMqServer};

use crate::Args;
use crate::load::{Limit, Op, Stats, closed_loop};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Microseconds since the Unix epoch (send and receive are in this process).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Delivery latencies (µs) and the distinct messages seen.
#[derive(Default)]
struct Deliveries {
    seen: HashSet<u64>,
    latency: Vec<u64>,
    last: Option<Instant>,
}

type Seen = Arc<Mutex<Deliveries>>;

fn record(seen: &Seen, id: u64, sent_us: u64) {
    let mut d = seen.lock().expect("lock");
    if d.seen.insert(id) {
        d.latency.push(now_us().saturating_sub(sent_us));
        d.last = Some(Instant::now());
    }
}

/// A row of the report.
struct Row {
    broker: &'static str,
    path: &'static str,
    publish: Stats,
    delivered: usize,
    deliver: Histogram<u64>,
    deliver_secs: f64,
}

/// `(id, sent)` from a payload `{"id":N,"t":MICROS}`.
fn parse(body: &[u8]) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let v = v.get("data").unwrap_or(&v);
    Some((v.get("id")?.as_u64()?, v.get("t")?.as_u64()?))
}

/// Waits until `n` distinct deliveries (60 s at most); the histogram of their latency and the
/// seconds from `start` to the last.
async fn await_deliveries(seen: &Seen, n: usize, start: Instant) -> (usize, Histogram<u64>, f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().expect("lock").seen.len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = seen.lock().expect("lock");
    let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for l in &d.latency {
        let _ = h.record((*l).max(1));
    }
    let secs = d
        .last
        .map_or(0.0, |t| t.duration_since(start).as_secs_f64());
    (d.seen.len(), h, secs)
}

/// The broker as a component spec (in-process path) and as Component YAML (sidecar path).
struct Broker {
    name: &'static str,
    spec: ComponentSpec,
    yaml: String,
}

fn yaml(kind: &str, pairs: &[(&str, String)]) -> String {
    let mut s = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broker\nspec:\n  \
         type: pubsub.{kind}\n  version: v1\n  metadata:\n"
    );
    for (k, v) in pairs {
        s.push_str(&format!("  - name: {k}\n    value: \"{v}\"\n"));
    }
    s
}

fn broker(name: &'static str, kind: &str, pairs: &[(&str, String)]) -> Broker {
    let mut spec = ComponentSpec::new("broker", kind);
    for (k, v) in pairs {
        spec = spec.with(*k, v.clone());
    }
    Broker {
        name,
        spec,
        yaml: yaml(kind, pairs),
    }
}

async fn in_process(b: &Broker, args: &Args, n: usize) -> Result<Row, String> {
    // Two components; an MQTT client id must differ between them.
    let make = |suffix: &'static str| async move {
        let mut spec = b.spec.clone();
        if let Some(id) = spec.metadata.get("consumerID").cloned() {
            spec.metadata
                .insert("consumerID".into(), format!("{id}{suffix}"));
        }
        let c = component_of(&spec)?;
        c.init().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(c)
    };
    let (subscriber, publisher) = (make("").await?, make("-pub").await?);
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let handler: Handler = Arc::new(move |m: Message| {
        if let Some((id, t)) = parse(&m.data) {
            record(&s, id, t);
        }
        Box::pin(async { Ok(()) })
    });
    let req = SubscribeRequest {
        topic: "bench-direct".into(),
        metadata: Metadata::from([("consumerID".to_owned(), "bench".to_owned())]),
    };
    let _sub = subscriber
        .subscribe(req, handler)
        .await
        .map_err(|e| e.to_string())?;
    let p = Arc::clone(&publisher);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let op: Op = Arc::new(move |_worker| {
        let p = Arc::clone(&p);
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let msg = Message {
                topic: "bench-direct".into(),
                data: format!(r#"{{"id":{i},"t":{}}}"#, now_us()).into(),
                metadata: Metadata::new(),
            };
            p.publish(msg).await.map_err(|e| e.to_string())
        }
        .boxed()
    });
    let start = Instant::now();
    let publish = closed_loop(op, args.concurrency, Limit::Count(n as u64)).await;
    let (delivered, deliver, deliver_secs) = await_deliveries(&seen, n, start).await;
    Ok(Row {
        broker: b.name,
        path: "in process (component)",
        publish,
        delivered,
        deliver,
        deliver_secs,
    })
}

/// The components `--brokers` measures, by type (the registry of the binary is not linked
/// here: the bench names the four crates).
pub(crate) fn component_of(spec: &ComponentSpec) -> Result<Arc<dyn PubSub>, String> {
    let e = |e: layotto_core::Error| e.to_string();
    Ok(match spec.type_.as_str() {
        "jetstream" => {
            Arc::new(layotto_components_nats::JetStreamPubSub::from_spec(spec).map_err(e)?)
        }
        "kafka" => Arc::new(layotto_components_kafka::KafkaPubSub::from_spec(spec).map_err(e)?),
        "rabbitmq" => {
            Arc::new(layotto_components_rabbitmq::RabbitMqPubSub::from_spec(spec).map_err(e)?)
        }
        "mqtt3" => Arc::new(layotto_components_mqtt::MqttPubSub::from_spec(spec).map_err(e)?),
        other => return Err(format!("no broker component '{other}'")),
    })
}

/// Serves `/dapr/subscribe` (topic `bench` on `broker`) and `POST /bench`.
async fn app(seen: Seen) -> Result<u16, String> {
    use axum::routing::{get, post};
    let router = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async {
                axum::Json(serde_json::json!([
                    {"pubsubname": "broker", "topic": "bench", "route": "/bench"}
                ]))
            }),
        )
        .route(
            "/bench",
            post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    if let Some((id, t)) = parse(&body) {
                        record(&seen, id, t);
                    }
                    axum::Json(serde_json::json!({"status": "SUCCESS"}))
                }
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    Ok(port)
}

async fn through_sidecar(b: &Broker, args: &Args, n: usize) -> Result<Row, String> {
    let seen: Seen = Arc::default();
    let app_port = app(seen.clone()).await?;
    let dir = tempfile_dir()?;
    std::fs::create_dir_all(dir.join("res")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("res/broker.yaml"), &b.yaml).map_err(|e| e.to_string())?;
    let http = crate::startup::free_port()?;
    let child = Command::new(&args.bin)
        .args(["--app-id", "bench", "--app-port", &app_port.to_string()])
        .arg("--resources-path")
        .arg(dir.join("res"))
        .args(["--dapr-http-port", &http.to_string()])
        .args([
            "--dapr-grpc-port",
            &crate::startup::free_port()?.to_string(),
        ])
        .args(["--metrics-port", &crate::startup::free_port()?.to_string()])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", args.bin.display()))?;
    let _sidecar = Proc(child);
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..300 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{http}/v1.0/healthz"))
            .send()
            .await
            && r.status().as_u16() == 204
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !healthy {
        return Err(format!("{}: the sidecar did not become healthy", b.name));
    }
    // The subscription's consumer group starts where the broker says: wait until a warm-up
    // message gets through.
    let url = format!("http://127.0.0.1:{http}/v1.0/publish/broker/bench");
    let deadline = Instant::now() + Duration::from_secs(60);
    let warm = u64::MAX;
    while !seen.lock().expect("lock").seen.contains(&warm) {
        if Instant::now() > deadline {
            return Err(format!("{}: no warm-up delivery within 60 s", b.name));
        }
        let _ = client
            .post(&url)
            .header("content-type", "application/json")
            .body(format!(r#"{{"id":{warm},"t":{}}}"#, now_us()))
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    seen.lock().expect("lock").seen.clear();
    seen.lock().expect("lock").latency.clear();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let op: Op = Arc::new(move |_worker| {
        let (client, url) = (client.clone(), url.clone());
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"id":{i},"t":{}}}"#, now_us()))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().as_u16() == 204 {
                Ok(())
            } else {
                Err(format!("publish answered {}", r.status()))
            }
        }
        .boxed()
    });
    let start = Instant::now();
    let publish = closed_loop(op, args.concurrency, Limit::Count(n as u64)).await;
    let (delivered, deliver, deliver_secs) = await_deliveries(&seen, n, start).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        broker: b.name,
        path: "through the sidecar (HTTP)",
        publish,
        delivered,
        deliver,
        deliver_secs,
    })
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let d = std::env::temp_dir().join(format!(
        "layotto-bench-brokers-{}-{}",
        std::process::id(),
        crate::startup::free_port()?
    ));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    Ok(d)
}

async fn measure(b: &Broker, args: &Args, n: usize, rows: &mut Vec<Row>) -> Result<(), String> {
    measure_with(b, b, args, n, rows).await
}

/// `direct` in process, `sidecar` through the sidecar (they differ where only the runtime
/// fills a placeholder in).
async fn measure_with(
    direct: &Broker,
    sidecar: &Broker,
    args: &Args,
    n: usize,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let row = in_process(direct, args, n).await?;
    eprintln!(
        "brokers: {} in process: {} of {n} delivered",
        direct.name, row.delivered
    );
    rows.push(row);
    let row = through_sidecar(sidecar, args, n).await?;
    eprintln!(
        "brokers: {} through the sidecar: {} of {n} delivered",
        sidecar.name, row.delivered
    );
    rows.push(row);
    Ok(())
}

/// Creates JetStream stream `name` over `subjects` on `nats` (streams are the user's, as in
/// Dapr).
pub(crate) async fn create_stream(
    nats: &NatsServer,
    name: &str,
    subjects: &[&str],
) -> Result<(), String> {
    let client = async_nats::connect(nats.url())
        .await
        .map_err(|e| e.to_string())?;
    async_nats::jetstream::new(client)
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.to_owned(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs every broker in turn and replaces the report's section.
pub async fn run(args: &Args) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = args.broker_messages;
    let mut rows = Vec::new();
    {
        let nats = NatsServer::start();
        create_stream(&nats, "BENCH", &["bench", "bench-direct"]).await?;
        let b = broker(
            "NATS JetStream",
            "jetstream",
            &[("natsURL", nats.url()), ("concurrency", "parallel".into())],
        );
        measure(&b, args, n, &mut rows).await?;
    }
    {
        let kafka = KafkaServer::start();
        let b = broker(
            "Kafka",
            "kafka",
            &[("brokers", kafka.addr()), ("authType", "none".into())],
        );
        measure(&b, args, n, &mut rows).await?;
    }
    {
        let rabbit = RabbitMqServer::start();
        let b = broker(
            "RabbitMQ",
            "rabbitmq",
            &[
                ("connectionString", rabbit.url()),
                ("prefetchCount", "100".into()),
            ],
        );
        measure(&b, args, n, &mut rows).await?;
    }
    {
        let mosquitto = MosquittoServer::start();
        let b = broker(
            "Mosquitto (MQTT)",
            "mqtt3",
            &[("url", mosquitto.url()), ("consumerID", "{uuid}".into())],
        );
        // The in-process path has no runtime to fill in `{uuid}`.
        let mut direct = broker("Mosquitto (MQTT)", "mqtt3", &[("url", mosquitto.url())]);
        direct.spec = direct
            .spec
            .with("consumerID", format!("bench-{}", std::process::id()));
        measure_with(&direct, &b, args, n, &mut rows).await?;
    }
    let section = render(&rows, args, n);
    print!("{section}");
    if let Some(path) = &args.report {
        crate::invocation::replace_section(path, "## Brokers: publish and deliver", &section)?;
    }
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn render(rows: &[Row], args: &Args, n: usize) -> String {
    let mut s = format!(
        "## Brokers: publish and deliver\n\n{n} messages per row, closed loop with {} \
         publishers (`layotto-bench --brokers`; `bench/src/brokers.rs`). \"in process\" is the \
         broker driven by the same component without the sidecar (the broker client's own \
         cost); \"through the sidecar\" publishes with Dapr's HTTP API and delivers a \
         CloudEvent to an app over HTTP. Publish latency lasts until the broker acknowledged \
         (stream ack, `acks=all`, publisher confirm, PUBACK); delivery latency is send to \
         handler; deliveries/s counts from the first send to the last delivery.\n\n\
         | broker | path | published/s | publish p50 ms | publish p99 ms | delivered | \
         deliver p50 ms | deliver p99 ms | delivered/s |\n|---|---|---|---|---|---|---|---|---|\n",
        args.concurrency
    );
    for r in rows {
        let secs = r.publish.elapsed.as_secs_f64().max(1e-9);
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {}{} | {:.3} | {:.3} | {:.0} |\n",
            r.broker,
            r.path,
            r.publish.ok as f64 / secs,
            ms(&r.publish.hist, 0.5),
            ms(&r.publish.hist, 0.99),
            r.delivered,
            if r.publish.errors > 0 {
                format!(" ({} publish errors)", r.publish.errors)
            } else {
                String::new()
            },
            ms(&r.deliver, 0.5),
            ms(&r.deliver, 0.99),
            r.delivered as f64 / r.deliver_secs.max(1e-9),
        ));
    }
    s.push('\n');
    s
}
