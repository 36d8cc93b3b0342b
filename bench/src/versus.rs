//! `layotto-bench --versus --daprd PATH`: layotto-rs and daprd measured side by side through
//! Dapr's gRPC API (`dapr.proto.runtime.v1.Dapr`) on one Redis, with the floor of the machine
//! beside them.
//!
//! Both sidecars start from the same command line (daprd's flags), the same resources directory
//! (`state.redis`, `state.in-memory`, `pubsub.redis`) and the same Configuration (Kubernetes
//! name resolution, whose init does no I/O, so nothing multicasts; `DAPR_HOST_IP=127.0.0.1`, so
//! daprd probes no outside address). Metrics are off for both, except in one pair started with
//! metrics on for both. Baselines: GET straight to Redis from the load generator, and the floor:
//! a minimal tonic server answering Dapr's `GetState` with one Redis GET (this binary with
//! `--floor-server PORT --redis ADDR`, its own process, the same client crate and runtime as the
//! sidecar).
//!
//! Figures: start-up (exec -> first GetState answered) and idle RSS; service-time percentiles
//! and CPU at a fixed rate (every scenario interleaved in 1 s blocks); throughput and CPU per
//! request at saturation; RSS under load; binary size. The section "layotto-rs beside daprd"
//! of `--report` is replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as dapr;
use layotto_test_support::RedisServer;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::transport::Channel;

use crate::Args;
use crate::invocation::{daprd_command, replace_section};
use crate::load::{self, Limit, Op, Stats};
use crate::scenarios::{Proc, channels, cpu_of, on_own_thread, st};
use crate::startup::{free_port, rss_kib, status_kib};

type Client = dapr::dapr_client::DaprClient<Channel>;

/// The key the floor server reads (a plain string, as a bare GET wants).
const FLOOR_KEY: &str = "floor-key";
/// The key GetState reads through the sidecars.
const KEY: &str = "bench-key";
/// Start-up runs per sidecar.
const STARTUP_RUNS: usize = 10;

/// The floor: Dapr's `GetState`, answered with one `GET floor-key`; every other method is
/// unimplemented.
#[derive(Clone)]
struct Floor(redis::aio::ConnectionManager);

impl tonic::server::NamedService for Floor {
    const NAME: &'static str = "dapr.proto.runtime.v1.Dapr";
}

struct FloorGet(redis::aio::ConnectionManager);

impl tonic::server::UnaryService<dapr::GetStateRequest> for FloorGet {
    type Response = dapr::GetStateResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;
    fn call(&mut self, _req: tonic::Request<dapr::GetStateRequest>) -> Self::Future {
        let mut conn = self.0.clone();
        Box::pin(async move {
            let data: Option<Vec<u8>> = redis::cmd("GET")
                .arg(FLOOR_KEY)
                .query_async(&mut conn)
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            Ok(tonic::Response::new(dapr::GetStateResponse {
                data: data.unwrap_or_default(),
                ..Default::default()
            }))
        })
    }
}

impl<B> Service<http::Request<B>> for Floor
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == "/dapr.proto.runtime.v1.Dapr/GetState" {
            let svc = FloorGet(self.0.clone());
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(svc, req).await)
            });
        }
        Box::pin(
            async move { Ok(tonic::Status::unimplemented("floor: GetState only").into_http()) },
        )
    }
}

/// Serves [`Floor`] on `127.0.0.1:port`, reading from Redis at `redis` (`host:port`), until
/// killed.
///
/// # Errors
/// Redis unreachable, the port taken.
pub async fn serve_floor(port: u16, redis: &str) -> Result<(), String> {
    let client = redis::Client::open(format!("redis://{redis}/")).map_err(|e| e.to_string())?;
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .map_err(|e| format!("redis {redis}: {e}"))?;
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(Floor(conn))
        .serve(([127, 0, 0, 1], port).into())
        .await
        .map_err(|e| e.to_string())
}

/// Writes the resources directory and the Configuration both sidecars start from.
fn write_resources(dir: &Path, redis: &str) -> Result<(PathBuf, PathBuf), String> {
    let res = dir.join("resources");
    std::fs::create_dir_all(&res).map_err(|e| e.to_string())?;
    let component = |name: &str, ty: &str, md: &[(&str, &str)]| {
        let mut s = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  \
             type: {ty}\n  version: v1\n  metadata:\n"
        );
        for (k, v) in md {
            s.push_str(&format!("  - name: {k}\n    value: \"{v}\"\n"));
        }
        s
    };
    let yaml = [
        component("redis-state", "state.redis", &[("redisHost", redis)]),
        component("mem-state", "state.in-memory", &[]),
        component(
            "redis-pubsub",
            "pubsub.redis",
            &[("redisHost", redis), ("maxLenApprox", "10000")],
        ),
    ]
    .join("---\n");
    std::fs::write(res.join("components.yaml"), yaml).map_err(|e| e.to_string())?;
    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: bench\nspec:\n  \
         nameResolution:\n    component: kubernetes\n",
    )
    .map_err(|e| e.to_string())?;
    Ok((res, cfg))
}

/// A running sidecar (either build) and its Dapr gRPC port.
struct Sidecar {
    proc: Proc,
    grpc: u16,
}

/// Spawns `bin` with daprd's command line; `metrics` turns the metrics endpoint on.
fn spawn(bin: &Path, res: &Path, cfg: &Path, metrics: bool) -> Result<Sidecar, String> {
    let grpc = free_port()?;
    let ports = [free_port()?, grpc, free_port()?, free_port()?];
    let child = daprd_command(bin, "bench", cfg, ports)
        .arg("--resources-path")
        .arg(res)
        .arg(format!("--enable-metrics={metrics}"))
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
    Ok(Sidecar {
        proc: Proc(child),
        grpc,
    })
}

/// Polls every millisecond until a GetState on `redis-state` is answered; the time from `t0`.
async fn ready(s: &mut Sidecar, t0: Instant, what: &str) -> Result<Duration, String> {
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect(format!("http://127.0.0.1:{}", s.grpc)).await
            && c.get_state(get_req("redis-state")).await.is_ok()
        {
            return Ok(t0.elapsed());
        }
        if let Ok(Some(e)) = s.proc.0.try_wait() {
            return Err(format!("{what} exited with {e} before answering GetState"));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} answered no GetState within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn get_req(store: &str) -> dapr::GetStateRequest {
    dapr::GetStateRequest {
        store_name: store.into(),
        key: KEY.into(),
        ..Default::default()
    }
}

/// Both builds under comparison.
struct Builds<'a> {
    layotto: &'a Path,
    daprd: &'a Path,
}

impl Builds<'_> {
    fn each(&self) -> [(&'static str, &Path); 2] {
        [("layotto-rs", self.layotto), ("daprd", self.daprd)]
    }
}

/// Start-up (ms) and idle RSS (MiB) of each run of one build.
#[derive(Default)]
pub struct StartUps {
    /// exec -> first GetState answered, sorted.
    pub ms: Vec<f64>,
    /// VmRSS 1 s after that, sorted.
    pub rss: Vec<f64>,
}

async fn startups(b: &Builds<'_>, res: &Path, cfg: &Path) -> Result<Vec<StartUps>, String> {
    let mut out: Vec<StartUps> = b.each().iter().map(|_| StartUps::default()).collect();
    for _ in 0..STARTUP_RUNS {
        for (i, (label, bin)) in b.each().into_iter().enumerate() {
            let t0 = Instant::now();
            let mut s = spawn(bin, res, cfg, false)?;
            out[i]
                .ms
                .push(ready(&mut s, t0, label).await?.as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_secs(1)).await;
            out[i].rss.push(rss_kib(s.proc.0.id())? as f64 / 1024.0);
        }
    }
    for s in &mut out {
        s.ms.sort_by(f64::total_cmp);
        s.rss.sort_by(f64::total_cmp);
    }
    Ok(out)
}

/// One scenario against one server: its load and the process whose CPU it costs.
#[derive(Clone)]
pub struct Run {
    /// e.g. "GetState redis".
    pub scenario: &'static str,
    /// "layotto-rs", "daprd", "floor", "direct".
    pub server: &'static str,
    op: Op,
    pid: Option<u32>,
}

/// Builds every run's operation on connections of the current runtime.
async fn runs(env: &Env, args: &Args) -> Result<Vec<Run>, String> {
    let value = vec![b'x'; args.value_size];
    let mut out = Vec::new();
    let mut servers: Vec<(&'static str, &'static str, &Sidecar)> =
        vec![("", "layotto-rs", &env.layotto), ("", "daprd", &env.daprd)];
    servers.push((" (metrics on)", "layotto-rs", &env.layotto_metrics));
    servers.push((" (metrics on)", "daprd", &env.daprd_metrics));
    for (suffix, server, s) in servers {
        let chans = Arc::new(channels(s.grpc, args.conns).await?);
        let pid = Some(s.proc.0.id());
        let client = move |w: usize| Client::new(chans[w % chans.len()].clone());
        // Keys the reads find (the in-memory store is each sidecar's own).
        for store in ["redis-state", "mem-state"] {
            client(0)
                .save_state(save_req(store, KEY, &value))
                .await
                .map_err(|e| format!("{server}: seeding {store}: {}", st(e)))?;
        }
        let metrics_on = !suffix.is_empty();
        for (scenario, store) in [
            ("GetState redis", "redis-state"),
            ("GetState in-memory", "mem-state"),
        ] {
            if metrics_on && store != "redis-state" {
                continue;
            }
            let (client, len) = (client.clone(), value.len());
            out.push(Run {
                scenario: if metrics_on {
                    "GetState redis (metrics on)"
                } else {
                    scenario
                },
                server,
                op: Arc::new(move |w| {
                    let mut c = client(w);
                    Box::pin(async move {
                        let got = c.get_state(get_req(store)).await.map_err(st)?;
                        check_len(got.into_inner().data.len(), len)
                    })
                }),
                pid,
            });
        }
        if metrics_on {
            continue;
        }
        {
            let (client, value) = (client.clone(), value.clone());
            out.push(Run {
                scenario: "SaveState redis",
                server,
                op: Arc::new(move |w| {
                    let mut c = client(w);
                    let req = save_req("redis-state", &format!("k{w}"), &value);
                    Box::pin(async move { c.save_state(req).await.map(drop).map_err(st) })
                }),
                pid,
            });
        }
        let (client, value) = (client.clone(), value.clone());
        out.push(Run {
            scenario: "PublishEvent redis",
            server,
            op: Arc::new(move |w| {
                let mut c = client(w);
                let req = dapr::PublishEventRequest {
                    pubsub_name: "redis-pubsub".into(),
                    topic: "bench".into(),
                    data: value.clone(),
                    data_content_type: "text/plain".into(),
                    metadata: HashMap::new(),
                };
                Box::pin(async move { c.publish_event(req).await.map(drop).map_err(st) })
            }),
            pid,
        });
    }
    // The floor and the direct GET.
    let chans = Arc::new(channels(env.floor_port, args.conns).await?);
    let len = value.len();
    out.push(Run {
        scenario: "GetState redis",
        server: "floor",
        op: Arc::new(move |w| {
            let mut c = Client::new(chans[w % chans.len()].clone());
            Box::pin(async move {
                let got = c.get_state(get_req("floor")).await.map_err(st)?;
                check_len(got.into_inner().data.len(), len)
            })
        }),
        pid: Some(env.floor.0.id()),
    });
    let conn = env.redis_conn().await?;
    out.push(Run {
        scenario: "GetState redis",
        server: "direct",
        op: Arc::new(move |_| {
            let mut c = conn.clone();
            Box::pin(async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(FLOOR_KEY)
                    .query_async(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                check_len(v.map_or(0, |v| v.len()), len)
            })
        }),
        pid: None,
    });
    Ok(out)
}

fn check_len(got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("read {got} bytes, expected {want}"))
    }
}

fn save_req(store: &str, key: &str, value: &[u8]) -> dapr::SaveStateRequest {
    dapr::SaveStateRequest {
        store_name: store.into(),
        states: vec![common::StateItem {
            key: key.into(),
            value: value.to_vec(),
            ..Default::default()
        }],
    }
}

struct Env {
    redis: RedisServer,
    layotto: Sidecar,
    daprd: Sidecar,
    layotto_metrics: Sidecar,
    daprd_metrics: Sidecar,
    floor: Proc,
    floor_port: u16,
}

impl Env {
    /// A MiB figure of `/proc/<pid>/status` (`VmRSS`, `RssAnon`) of the two sidecars with
    /// metrics off: `[layotto-rs, daprd]`.
    fn mib(&self, field: &str) -> Result<[f64; 2], String> {
        let of = |s: &Sidecar| Ok::<_, String>(status_kib(s.proc.0.id(), field)? as f64 / 1024.0);
        Ok([of(&self.layotto)?, of(&self.daprd)?])
    }
    async fn redis_conn(&self) -> Result<redis::aio::ConnectionManager, String> {
        let client = redis::Client::open(format!("redis://{}/", self.redis.addr()))
            .map_err(|e| e.to_string())?;
        redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| format!("redis: {e}"))
    }
}

/// What one run measured: the load's stats and the CPU seconds its server spent.
pub struct Measured {
    /// The load's figures.
    pub stats: Stats,
    /// CPU seconds the server spent meanwhile (0 for the direct GET).
    pub cpu: f64,
    /// Context switches of the server's threads meanwhile.
    pub switches: u64,
}

impl Measured {
    /// Milli-CPU of the server over the run.
    pub fn mcpu(&self) -> f64 {
        self.cpu / self.stats.elapsed.as_secs_f64().max(1e-9) * 1000.0
    }
    /// Microseconds of server CPU per request.
    /// Context switches of the server per request.
    pub fn switches_per_req(&self) -> f64 {
        self.switches as f64 / (self.stats.ok.max(1) as f64)
    }
    /// Microseconds of server CPU per request.
    pub fn us_per_req(&self) -> f64 {
        self.cpu / (self.stats.ok.max(1) as f64) * 1e6
    }
}

async fn measure(
    run: &Run,
    load: impl std::future::Future<Output = Stats>,
) -> Result<Measured, String> {
    match run.pid {
        Some(pid) => {
            let before = load::context_switches(pid)?;
            let (stats, cpu) = cpu_of(pid, load).await?;
            let switches = load::context_switches(pid)?.saturating_sub(before);
            Ok(Measured {
                stats,
                cpu,
                switches,
            })
        }
        None => Ok(Measured {
            stats: load.await,
            cpu: 0.0,
            switches: 0,
        }),
    }
}

fn fail_on_errors(run: &Run, m: &Measured) -> Result<(), String> {
    if m.stats.errors > 0 {
        return Err(format!(
            "{} via {}: {} errors, first: {}",
            run.scenario,
            run.server,
            m.stats.errors,
            m.stats.first_error.clone().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Every run at `args.rate`, interleaved in 1 s blocks, from one thread (as
/// `scenarios::fixed_rate`, for the same reason).
fn fixed(env: &Env, args: &Args) -> Result<Vec<(Run, Measured)>, String> {
    on_own_thread(|rt| {
        rt.block_on(async {
            let all = runs(env, args).await?;
            let mut acc: Vec<Measured> = all
                .iter()
                .map(|_| Measured {
                    stats: Stats::new(),
                    cpu: 0.0,
                    switches: 0,
                })
                .collect();
            for _ in 0..args.fixed_seconds {
                for (run, m) in all.iter().zip(&mut acc) {
                    let got = measure(
                        run,
                        load::open_loop(run.op.clone(), args.rate, crate::secs(1)),
                    )
                    .await?;
                    m.stats.merge(&got.stats);
                    m.cpu += got.cpu;
                    m.switches += got.switches;
                }
            }
            let out: Vec<(Run, Measured)> = all.into_iter().zip(acc).collect();
            for (r, m) in &out {
                fail_on_errors(r, m)?;
            }
            Ok(out)
        })
    })
}

/// Runs the comparison and replaces its section of `args.report`.
///
/// # Errors
/// A process that does not start, an error in any request.
pub async fn run(args: &Args, daprd: &Path) -> Result<(), String> {
    let b = Builds {
        layotto: &args.bin,
        daprd,
    };
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("layotto-bench-versus-{}", std::process::id()));
    let _guard = crate::scenarios::PathGuard(dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (res, cfg) = write_resources(&dir, &redis.addr())?;
    eprintln!("versus: start-up, {STARTUP_RUNS} runs each");
    let starts = startups(&b, &res, &cfg).await?;

    let mut started = Vec::new();
    for (label, bin) in b.each().into_iter().chain(b.each()) {
        let metrics = started.len() >= 2;
        let mut s = spawn(bin, &res, &cfg, metrics)?;
        ready(&mut s, Instant::now(), label).await?;
        started.push(s);
    }
    let floor_port = free_port()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let floor = Proc(
        Command::new(exe)
            .args([
                "--floor-server",
                &floor_port.to_string(),
                "--redis",
                &redis.addr(),
            ])
            .spawn()
            .map_err(|e| format!("spawning the floor server: {e}"))?,
    );
    let mut it = started.into_iter();
    let (Some(layotto), Some(daprd_s), Some(layotto_metrics), Some(daprd_metrics)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err("fewer sidecars started than asked for".into());
    };
    let env = Env {
        redis,
        layotto,
        daprd: daprd_s,
        layotto_metrics,
        daprd_metrics,
        floor,
        floor_port,
    };
    let mut conn = env.redis_conn().await?;
    let _: () = redis::cmd("SET")
        .arg(FLOOR_KEY)
        .arg(vec![b'x'; args.value_size])
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    wait_floor(env.floor_port).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = env.mib("VmRSS")?;
    let idle_anon = env.mib("RssAnon")?;

    eprintln!("versus: fixed rate, {} s per run", args.fixed_seconds);
    let at_rate = fixed(&env, args)?;
    let rss_at_rate = env.mib("VmRSS")?;

    eprintln!("versus: saturation, {} s per run", args.seconds);
    let mut sat = Vec::new();
    for run in runs(&env, args).await? {
        if run.server == "direct" || run.scenario.contains("metrics") {
            continue;
        }
        let m = measure(
            &run,
            load::closed_loop(
                run.op.clone(),
                args.concurrency,
                Limit::For(crate::secs(args.seconds)),
            ),
        )
        .await?;
        fail_on_errors(&run, &m)?;
        eprintln!(
            "{:<22} {:<10} {:>8.0} req/s {:>6.1} us CPU/req {:>5.2} switches/req",
            run.scenario,
            run.server,
            m.stats.rate(),
            m.us_per_req(),
            m.switches_per_req()
        );
        sat.push((run, m));
    }
    let rss_sat = env.mib("VmRSS")?;
    let sizes = [file_mib(b.layotto), file_mib(b.daprd)];
    let section = crate::versus_report::render(&crate::versus_report::Figures {
        args,
        starts: &starts,
        idle_rss,
        idle_anon,
        rss_at_rate,
        rss_sat,
        sizes,
        at_rate: &at_rate,
        sat: &sat,
    });
    print!("{section}");
    if let Some(report) = &args.report {
        replace_section(report, crate::versus_report::HEADING, &section)?;
    }
    Ok(())
}

fn file_mib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(f64::NAN, |m| m.len() as f64 / (1024.0 * 1024.0))
}

async fn wait_floor(port: u16) -> Result<(), String> {
    for _ in 0..2000 {
        if let Ok(mut c) = Client::connect(format!("http://127.0.0.1:{port}")).await
            && c.get_state(get_req("floor")).await.is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!(
        "the floor server answered no GetState on {port} within 20 s"
    ))
}
