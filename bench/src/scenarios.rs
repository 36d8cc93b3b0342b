//! The benchmark scenarios, their environment (redis-server, echo server, sidecar) and the
//! report.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use layotto_proto::runtime as pb;
use layotto_test_support::RedisServer;
use pb::app_callback_client::AppCallbackClient;
use pb::app_callback_server::{AppCallback, AppCallbackServer};
use pb::runtime_client::RuntimeClient;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use crate::load::{self, Limit, Op, Stats};
use crate::startup::{free_port, rss_kib};
use crate::{Args, secs};

/// The minimal gRPC service used as the floor: answers `OnTopicEvent` at once.
struct Echo;

#[tonic::async_trait]
impl AppCallback for Echo {
    async fn list_topic_subscriptions(
        &self,
        _r: tonic::Request<()>,
    ) -> Result<tonic::Response<pb::ListTopicSubscriptionsResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            pb::ListTopicSubscriptionsResponse::default(),
        ))
    }
    async fn on_topic_event(
        &self,
        _r: tonic::Request<pb::TopicEventRequest>,
    ) -> Result<tonic::Response<pb::TopicEventResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::TopicEventResponse { status: 0 }))
    }
}

/// Serves [`Echo`] on `127.0.0.1:port` until killed.
pub async fn serve_echo(port: u16) -> Result<(), String> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(AppCallbackServer::new(Echo))
        .serve(([127, 0, 0, 1], port).into())
        .await
        .map_err(|e| e.to_string())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    _redis: RedisServer,
    redis_addr: String,
    sidecar: Proc,
    _echo: Proc,
    grpc_port: u16,
    echo_port: u16,
    _dir: PathGuard,
}

struct PathGuard(std::path::PathBuf);

impl Drop for PathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sidecar_config(grpc_port: u16, redis: &str, files: &str) -> serde_json::Value {
    let md = json!({"redisHost": redis});
    let grpc_config = json!({
        "app": {"app_id": "bench"},
        "hellos": {"hello": {"type": "helloworld", "hello": "greeting"}},
        "state": {"mem": {"type": "in-memory"}, "redis": {"type": "redis", "metadata": md}},
        "pub_subs": {"redis_pubsub": {"type": "redis", "metadata": {"redisHost": redis, "maxLenApprox": "10000"}}},
        "lock": {"redis_lock": {"type": "redis", "metadata": md}},
        "sequencer": {"redis_seq": {"type": "redis", "metadata": md}},
        "file": {"files": {"type": "local", "metadata": {"root": files}}},
    });
    json!({"servers": [{"listeners": [{
        "name": "grpc",
        "address": format!("127.0.0.1:{grpc_port}"),
        "filter_chains": [{"filters": [{"type": "grpc", "config": {"grpc_config": grpc_config}}]}]
    }]}]})
}

async fn wait_port(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(s)) = child.try_wait() {
            return Err(format!("{what} exited with {s}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("{what} did not listen on {port}"))
}

async fn start_env(args: &Args) -> Result<Env, String> {
    let redis = RedisServer::start();
    let redis_addr = redis.addr();
    let dir =
        PathGuard(std::env::temp_dir().join(format!("layotto-bench-env-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let (grpc_port, echo_port) = (free_port()?, free_port()?);
    let cfg = dir.0.join("bench.json");
    let files = dir.0.join("files");
    std::fs::write(
        &cfg,
        sidecar_config(grpc_port, &redis_addr, &files.to_string_lossy()).to_string(),
    )
    .map_err(|e| e.to_string())?;
    let mut sidecar = Command::new(&args.bin)
        .args(["start", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", args.bin.display()))?;
    wait_port(grpc_port, &mut sidecar, "sidecar").await?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut echo = Command::new(exe)
        .args(["--echo-server", &echo_port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning echo server: {e}"))?;
    wait_port(echo_port, &mut echo, "echo server").await?;
    Ok(Env {
        _redis: redis,
        redis_addr,
        sidecar: Proc(sidecar),
        _echo: Proc(echo),
        grpc_port,
        echo_port,
        _dir: dir,
    })
}

async fn channels(port: u16, n: usize) -> Result<Vec<Channel>, String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ch = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
        out.push(ch);
    }
    Ok(out)
}

fn st(e: tonic::Status) -> String {
    format!("{:?}: {}", e.code(), e.message())
}

/// A named scenario: `sidecar` tells whether it goes through the sidecar.
struct Scenario {
    name: &'static str,
    sidecar: bool,
    op: Op,
}

macro_rules! op {
    (|$w:ident| $body:expr) => {{
        let f: Op = Arc::new(move |$w: usize| Box::pin($body));
        f
    }};
}

async fn scenarios(env: &Env, args: &Args) -> Result<Vec<Scenario>, String> {
    let chans = Arc::new(channels(env.grpc_port, args.conns).await?);
    let echo_chans = Arc::new(channels(env.echo_port, args.conns).await?);
    let value = vec![b'x'; args.value_size];
    let redis =
        redis::Client::open(format!("redis://{}/", env.redis_addr)).map_err(|e| e.to_string())?;
    let conn = redis::aio::ConnectionManager::new(redis)
        .await
        .map_err(|e| format!("redis: {e}"))?;
    // Keys the reads find.
    let mut c = RuntimeClient::new(chans[0].clone());
    for store in ["mem", "redis"] {
        c.save_state(pb::SaveStateRequest {
            store_name: store.into(),
            states: vec![pb::StateItem {
                key: "bench-key".into(),
                value: value.clone(),
                ..Default::default()
            }],
        })
        .await
        .map_err(st)?;
    }
    let _: () = redis::cmd("SET")
        .arg("bench-direct")
        .arg(&value)
        .query_async(&mut conn.clone())
        .await
        .map_err(|e| e.to_string())?;

    let client = {
        let chans = chans.clone();
        move |w: usize| RuntimeClient::new(chans[w % chans.len()].clone())
    };
    let mut out = Vec::new();
    {
        let client = client.clone();
        out.push(Scenario {
            name: "SayHello",
            sidecar: true,
            op: op!(|w| {
                let mut c = client(w);
                async move {
                    c.say_hello(pb::SayHelloRequest {
                        service_name: "hello".into(),
                        name: "b".into(),
                        data: None,
                    })
                    .await
                    .map(drop)
                    .map_err(st)
                }
            }),
        });
    }
    for (name, store) in [("GetState in-memory", "mem"), ("GetState redis", "redis")] {
        let client = client.clone();
        out.push(Scenario {
            name,
            sidecar: true,
            op: op!(|w| {
                let mut c = client(w);
                async move {
                    let r = c
                        .get_state(pb::GetStateRequest {
                            store_name: store.into(),
                            key: "bench-key".into(),
                            ..Default::default()
                        })
                        .await
                        .map_err(st)?;
                    if r.into_inner().data.is_empty() {
                        Err("empty state".to_owned())
                    } else {
                        Ok(())
                    }
                }
            }),
        });
    }
    for (name, store) in [("SaveState in-memory", "mem"), ("SaveState redis", "redis")] {
        let (client, value) = (client.clone(), value.clone());
        out.push(Scenario {
            name,
            sidecar: true,
            op: op!(|w| {
                let mut c = client(w);
                let value = value.clone();
                async move {
                    c.save_state(pb::SaveStateRequest {
                        store_name: store.into(),
                        states: vec![pb::StateItem {
                            key: format!("k{w}"),
                            value,
                            ..Default::default()
                        }],
                    })
                    .await
                    .map(drop)
                    .map_err(st)
                }
            }),
        });
    }
    {
        let (client, value) = (client.clone(), value.clone());
        out.push(Scenario {
            name: "PublishEvent redis",
            sidecar: true,
            op: op!(|w| {
                let mut c = client(w);
                let data = value.clone();
                async move {
                    c.publish_event(pb::PublishEventRequest {
                        pubsub_name: "redis_pubsub".into(),
                        topic: "bench".into(),
                        data,
                        data_content_type: "text/plain".into(),
                        metadata: HashMap::new(),
                    })
                    .await
                    .map(drop)
                    .map_err(st)
                }
            }),
        });
    }
    {
        let client = client.clone();
        out.push(Scenario {
            name: "TryLock+Unlock redis",
            sidecar: true,
            op: op!(|w| {
                let mut c = client(w);
                async move {
                    let (res, owner) = (format!("res-{w}"), format!("owner-{w}"));
                    let got = c
                        .try_lock(pb::TryLockRequest {
                            store_name: "redis_lock".into(),
                            resource_id: res.clone(),
                            lock_owner: owner.clone(),
                            expire: 10,
                        })
                        .await
                        .map_err(st)?
                        .into_inner()
                        .success;
                    if !got {
                        return Err(format!("{res} was not free"));
                    }
                    c.unlock(pb::UnlockRequest {
                        store_name: "redis_lock".into(),
                        resource_id: res,
                        lock_owner: owner,
                    })
                    .await
                    .map(drop)
                    .map_err(st)
                }
            }),
        });
    }
    for (name, inc) in [("GetNextId WEAK redis", 0), ("GetNextId STRONG redis", 1)] {
        let client = client.clone();
        out.push(Scenario {
            name,
            sidecar: true,
            op: op!(|w| {
                let mut c = client(w);
                async move {
                    c.get_next_id(pb::GetNextIdRequest {
                        store_name: "redis_seq".into(),
                        key: "bench".into(),
                        options: Some(pb::SequencerOptions { increment: inc }),
                        metadata: HashMap::new(),
                    })
                    .await
                    .map(drop)
                    .map_err(st)
                }
            }),
        });
    }
    {
        let conn = conn.clone();
        out.push(Scenario {
            name: "direct redis GET",
            sidecar: false,
            op: op!(|_w| {
                let mut c = conn.clone();
                async move {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg("bench-direct")
                        .query_async(&mut c)
                        .await
                        .map_err(|e| e.to_string())?;
                    v.map(drop).ok_or_else(|| "missing".to_owned())
                }
            }),
        });
    }
    {
        let (conn, value) = (conn.clone(), value.clone());
        out.push(Scenario {
            name: "direct redis SET",
            sidecar: false,
            op: op!(|w| {
                let mut c = conn.clone();
                let value = value.clone();
                async move {
                    redis::cmd("SET")
                        .arg(format!("direct-{w}"))
                        .arg(value)
                        .query_async::<()>(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                }
            }),
        });
    }
    {
        let (conn, value) = (conn.clone(), value.clone());
        out.push(Scenario {
            name: "direct redis XADD",
            sidecar: false,
            op: op!(|_w| {
                let mut c = conn.clone();
                let value = value.clone();
                async move {
                    redis::cmd("XADD")
                        .arg("direct-stream")
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(10_000)
                        .arg("*")
                        .arg("data")
                        .arg(value)
                        .query_async::<String>(&mut c)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            }),
        });
    }
    {
        let (echo_chans, value) = (echo_chans.clone(), value.clone());
        out.push(Scenario {
            name: "tonic echo (gRPC floor)",
            sidecar: false,
            op: op!(|w| {
                let mut c = AppCallbackClient::new(echo_chans[w % echo_chans.len()].clone());
                let data = value.clone();
                async move {
                    c.on_topic_event(pb::TopicEventRequest {
                        data,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                    .map_err(st)
                }
            }),
        });
    }
    Ok(out)
}

/// A few hundred requests per scenario; any error fails.
pub async fn smoke(args: &Args) -> Result<(), String> {
    let table = crate::startup::measure(&args.bin, 1)?;
    println!("{table}");
    let env = start_env(args).await?;
    for s in scenarios(&env, args).await? {
        let stats = load::closed_loop(s.op.clone(), 4, Limit::Count(300)).await;
        println!(
            "smoke {:<28} ok={} errors={}",
            s.name, stats.ok, stats.errors
        );
        if stats.errors > 0 || stats.ok == 0 {
            return Err(format!(
                "scenario '{}' had {} errors: {}",
                s.name,
                stats.errors,
                stats.first_error.unwrap_or_default()
            ));
        }
    }
    drop(env);
    println!("smoke: every scenario ran without errors");
    Ok(())
}

fn row(name: &str, s: &Stats) -> String {
    format!(
        "| {name} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} |\n",
        s.rate(),
        s.ms(0.5),
        s.ms(0.9),
        s.ms(0.99),
        s.ms(0.999),
        s.errors
    )
}

const HEADER: &str = "| scenario | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|\n";

/// The whole suite; prints the report and writes it when `--report` is given.
pub async fn full(args: &Args) -> Result<(), String> {
    let startup_table = crate::startup::measure(&args.bin, 30)?;
    let env = start_env(args).await?;
    let pid = env.sidecar.0.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(pid)? as f64 / 1024.0;
    let all = scenarios(&env, args).await?;
    let by_name = |n: &str| all.iter().find(|s| s.name == n).map(|s| s.op.clone());

    // Saturation.
    let mut sat = String::from(HEADER);
    let mut sat_stats: HashMap<&str, Stats> = HashMap::new();
    let mut sat_cpu = (0.0, 0.0, 0.0);
    for s in &all {
        let cpu0 = crate::load::cpu_seconds(pid)?;
        let stats = load::closed_loop(
            s.op.clone(),
            args.concurrency,
            Limit::For(secs(args.seconds)),
        )
        .await;
        let cpu1 = crate::load::cpu_seconds(pid)?;
        if s.name == "GetState redis" {
            sat_cpu = (
                cpu1 - cpu0,
                stats.elapsed.as_secs_f64(),
                rss_kib(pid)? as f64 / 1024.0,
            );
        }
        let marker = if s.sidecar { "" } else { " (baseline)" };
        sat.push_str(&row(&format!("{}{marker}", s.name), &stats));
        eprintln!(
            "{:<28} {:>9.0} req/s p50 {:.3} ms",
            s.name,
            stats.rate(),
            stats.ms(0.5)
        );
        sat_stats.insert(s.name, stats);
    }

    // Fixed rate: GetState through the sidecar vs GET straight to Redis.
    let run_secs = 10;
    let get_state = by_name("GetState redis").ok_or("no GetState scenario")?;
    let direct_get = by_name("direct redis GET").ok_or("no GET scenario")?;
    let cpu0 = crate::load::cpu_seconds(pid)?;
    let via = load::open_loop(get_state, args.rate, secs(run_secs)).await;
    let cpu1 = crate::load::cpu_seconds(pid)?;
    let rss_at_rate = rss_kib(pid)? as f64 / 1024.0;
    let direct = load::open_loop(direct_get, args.rate, secs(run_secs)).await;
    let mcpu_at_rate = (cpu1 - cpu0) / via.elapsed.as_secs_f64() * 1000.0;
    let cpu_per_10k_at_rate = (cpu1 - cpu0) / (via.ok.max(1) as f64) * 10_000.0;
    let (sat_cpu_s, sat_secs, sat_rss) = sat_cpu;
    let sat_get = sat_stats.get("GetState redis").ok_or("missing")?;
    let cpu_per_10k_sat = sat_cpu_s / (sat_get.ok.max(1) as f64) * 10_000.0;
    let mcpu_sat = sat_cpu_s / sat_secs.max(1e-9) * 1000.0;

    let ratio = |a: &str, b: &str| -> f64 {
        match (sat_stats.get(a), sat_stats.get(b)) {
            (Some(x), Some(y)) => x.rate() / y.rate().max(1e-9),
            _ => f64::NAN,
        }
    };
    let mut fixed = String::from(HEADER);
    fixed.push_str(&row("GetState redis via sidecar", &via));
    fixed.push_str(&row("direct redis GET (baseline)", &direct));
    let added_p50 = via.service_ms(0.5) - direct.service_ms(0.5);
    let added_p99 = via.service_ms(0.99) - direct.service_ms(0.99);
    let service_rows = format!(
        "| service time (from actual send) | p50 ms | p90 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|\n\
         | GetState redis via sidecar | {:.3} | {:.3} | {:.3} | {:.3} |\n\
         | direct redis GET (baseline) | {:.3} | {:.3} | {:.3} | {:.3} |\n",
        via.service_ms(0.5),
        via.service_ms(0.9),
        via.service_ms(0.99),
        via.service_ms(0.999),
        direct.service_ms(0.5),
        direct.service_ms(0.9),
        direct.service_ms(0.99),
        direct.service_ms(0.999),
    );
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let text = format!(
        "# layotto-rs benchmark report\n\n\
Machine: {machine}, {cores} cores; the load generator, the sidecar, redis-server and the echo \
server share these cores, so absolute rates are a floor. Regenerate with `bench/run.sh`.\n\
Settings: {conc} concurrent callers over {conns} HTTP/2 connections, {vs}-byte values, \
{secs} s per saturation scenario, {rate} req/s for {run_secs} s in the fixed-rate runs.\n\n\
## Ratios\n\n\
| ratio | value | target |\n|---|---|---|\n\
| added service time of GetState over direct Redis GET at {rate} req/s, p50 | {added_p50:.3} ms | <= 0.10 ms |\n\
| added service time of GetState over direct Redis GET at {rate} req/s, p99 | {added_p99:.3} ms | <= 0.5 ms |\n\
| GetState saturation / direct Redis GET saturation | {r1:.2} | |\n\
| SayHello saturation / tonic echo saturation | {r2:.2} | |\n\n\
## Sidecar cost\n\n\
| figure | value | target |\n|---|---|---|\n\
| CPU at {rate} req/s GetState (mCPU) | {mcpu_at_rate:.0} | <= 50 |\n\
| CPU seconds per 10,000 GetState at {rate} req/s | {cpu_per_10k_at_rate:.3} | |\n\
| CPU at saturation GetState (mCPU) | {mcpu_sat:.0} | |\n\
| CPU seconds per 10,000 GetState at saturation | {cpu_per_10k_sat:.3} | |\n\
| GetState saturation throughput | {sat_rate:.0} req/s | >= 20,000 on one sidecar core |\n\
| RSS idle (MiB) | {idle_rss:.1} | |\n\
| RSS at {rate} req/s (MiB) | {rss_at_rate:.1} | <= 30 |\n\
| RSS at saturation (MiB) | {sat_rss:.1} | |\n\n\
## Fixed rate ({rate} req/s, open loop)\n\n\
Latency from each request's intended start (includes up to ~1 ms of timer lateness: tokio's \
timer has 1 ms granularity):\n\n{fixed}\nService time, from the actual send (used for the ratios):\n\n{service_rows}\n\
## Saturation (closed loop)\n\n{sat}\n\
## Start-up and idle memory (standalone config)\n\n{startup_table}",
        conc = args.concurrency,
        conns = args.conns,
        vs = args.value_size,
        secs = args.seconds,
        rate = args.rate,
        r1 = ratio("GetState redis", "direct redis GET"),
        r2 = ratio("SayHello", "tonic echo (gRPC floor)"),
        sat_rate = sat_get.rate(),
    );
    println!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
