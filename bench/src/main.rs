//! `layotto-bench`: measures the sidecar from the outside, as a user would, and writes
//! `bench/REPORT.md`.
//!
//! ```text
//! layotto-bench [--bin PATH] [--concurrency N] [--conns N] [--value-size BYTES]
//!               [--seconds S] [--rate R] [--report FILE] [--smoke]
//!               [--fixed-only [--compare PATH] [--hot-cpus]] [--fixed-seconds S]
//! ```
//! - Scenarios through the sidecar's gRPC API: SayHello, GetState/SaveState on in-memory and
//!   Redis, PublishEvent on Redis, TryLock+Unlock on Redis, GetNextId WEAK and STRONG on Redis.
//! - Baselines in the same run: GET/SET/XADD straight to Redis with the same client crate, and
//!   a minimal tonic echo server in its own process (the gRPC floor of this machine).
//! - Each scenario closed-loop at saturation; GetState on Redis and direct GET open-loop at a
//!   fixed rate; sidecar CPU and RSS from `/proc`; start-up time and binary size.
//! - `--smoke`: a few hundred requests per scenario, exits non-zero on any error; no figures are
//!   judged (timing belongs in this report, not in tests).
//! - `--fixed-only`: only the fixed-rate runs and the servers' CPU during them, for profiling
//!   (no report is written); `--compare PATH` adds a second sidecar build to them (A/B), and
//!   `--hot-cpus` runs them beside idle-priority spinners (see `HotCpus`).
//! - `--invocation [--daprd PATH]`: only service invocation, hop by hop, beside daprd (see
//!   `invocation.rs`); its section of `--report` is replaced.
//! - `--brokers [--broker-messages N]`: only publish-and-deliver per broker, through the
//!   sidecar and in process (see `brokers.rs`); its section of `--report` is replaced.
//! - `--versus --daprd PATH`: only layotto-rs beside daprd through Dapr's gRPC API, with the
//!   floor (a tonic server doing one Redis GET per GetState) beside them (see `versus.rs`);
//!   its section of `--report` is replaced.
//! - `--broker-faults [--fault-messages N]`: only each broker killed and restarted under N
//!   messages (default 10,000; see `faults.rs`); its section of `--report` is replaced.

mod brokers;
mod faults;
mod invocation;
mod load;
mod scenarios;
mod startup;
mod versus;
mod versus_report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Command-line settings.
pub struct Args {
    /// `--invocation`: only the service invocation scenarios.
    invocation: bool,
    /// `--brokers`: only publish-and-deliver per broker (see `brokers.rs`).
    brokers: bool,
    /// `--broker-messages N`: messages per broker row (default 5,000).
    broker_messages: usize,
    /// `--broker-faults`: only the broker restarts under load (see `faults.rs`).
    broker_faults: bool,
    /// `--fault-messages N`: messages per broker restart run (default 10,000).
    fault_messages: usize,
    /// `--daprd PATH`: the daprd measured beside the sidecar in `--invocation`.
    daprd: Option<PathBuf>,
    /// `--versus`: only layotto-rs beside daprd through Dapr's gRPC API (see `versus.rs`;
    /// needs `--daprd`).
    versus: bool,
    /// `--floor-server PORT`: serve the floor (a child of `--versus`), on Redis at `--redis`.
    floor_server: Option<u16>,
    /// `--redis ADDR`: the floor server's Redis (`host:port`).
    redis: Option<String>,
    /// `--http-echo PORT`: serve the HTTP echo app (a child of `--invocation`).
    http_echo: Option<u16>,
    bin: PathBuf,
    concurrency: usize,
    conns: usize,
    value_size: usize,
    seconds: u64,
    rate: u64,
    report: Option<PathBuf>,
    smoke: bool,
    /// `--fixed-only`: only the fixed-rate GetState comparison (for profiling); no report.
    fixed_only: bool,
    /// `--hot-cpus`: with `--fixed-only`, keep every CPU busy with idle-priority spinners.
    hot_cpus: bool,
    /// `--compare PATH`: a second sidecar build measured beside the first in the fixed-rate phase.
    compare: Option<PathBuf>,
    /// `--compare-args "..."`: extra arguments of the `--compare` sidecar (whitespace
    /// separated; `{port}` is replaced by a fresh free port), e.g. to measure the cost of
    /// metrics or tracing with the same build.
    compare_args: Vec<String>,
    /// Seconds of each fixed-rate scenario (in 1 s blocks, interleaved).
    fixed_seconds: u64,
    echo_server: Option<u16>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bin: startup::repo_root().join("target/release/layotto"),
        concurrency: 32,
        conns: 4,
        value_size: 100,
        seconds: 5,
        rate: 1000,
        report: None,
        smoke: false,
        fixed_only: false,
        compare: None,
        invocation: false,
        brokers: false,
        broker_messages: 5_000,
        broker_faults: false,
        fault_messages: 10_000,
        daprd: None,
        http_echo: None,
        versus: false,
        floor_server: None,
        redis: None,
        compare_args: Vec::new(),
        hot_cpus: false,
        fixed_seconds: 10,
        echo_server: None,
    };
    let mut explicit_bin = false;
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, name: &str| -> Result<u64, String> {
        v.ok_or(format!("{name} needs a number"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bin" => {
                a.bin = it.next().ok_or("--bin needs a path")?.into();
                explicit_bin = true;
            }
            "--concurrency" => a.concurrency = num(it.next(), "--concurrency")? as usize,
            "--conns" => a.conns = num(it.next(), "--conns")?.max(1) as usize,
            "--value-size" => a.value_size = num(it.next(), "--value-size")? as usize,
            "--seconds" => a.seconds = num(it.next(), "--seconds")?.max(1),
            "--rate" => a.rate = num(it.next(), "--rate")?.max(1),
            "--report" => a.report = Some(it.next().ok_or("--report needs a path")?.into()),
            "--smoke" => a.smoke = true,
            "--fixed-only" => a.fixed_only = true,
            "--hot-cpus" => a.hot_cpus = true,
            "--compare" => a.compare = Some(it.next().ok_or("--compare needs a path")?.into()),
            "--compare-args" => {
                a.compare_args = it
                    .next()
                    .ok_or("--compare-args needs a value")?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            "--fixed-seconds" => a.fixed_seconds = num(it.next(), "--fixed-seconds")?.max(1),
            "--invocation" => a.invocation = true,
            "--brokers" => a.brokers = true,
            "--versus" => a.versus = true,
            "--floor-server" => {
                a.floor_server = Some(
                    u16::try_from(num(it.next(), "--floor-server")?).map_err(|e| e.to_string())?,
                );
            }
            "--redis" => a.redis = Some(it.next().ok_or("--redis needs host:port")?),
            "--broker-faults" => a.broker_faults = true,
            "--fault-messages" => {
                a.fault_messages = num(it.next(), "--fault-messages")?.max(2) as usize;
            }
            "--broker-messages" => {
                a.broker_messages = num(it.next(), "--broker-messages")?.max(1) as usize;
            }
            "--daprd" => a.daprd = Some(it.next().ok_or("--daprd needs a path")?.into()),
            "--http-echo" => {
                a.http_echo =
                    Some(u16::try_from(num(it.next(), "--http-echo")?).map_err(|e| e.to_string())?);
            }
            "--echo-server" => {
                a.echo_server = Some(
                    u16::try_from(num(it.next(), "--echo-server")?).map_err(|e| e.to_string())?,
                );
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    // The smoke run checks the build under test, which is the debug one.
    if a.smoke && !explicit_bin {
        a.bin = startup::repo_root().join("target/debug/layotto");
    }
    if a.versus && a.daprd.is_none() {
        return Err("--versus needs --daprd PATH".into());
    }
    if a.floor_server.is_some() && a.redis.is_none() {
        return Err("--floor-server needs --redis host:port".into());
    }
    let child = a.echo_server.is_some() || a.http_echo.is_some() || a.floor_server.is_some();
    if !child && !a.bin.exists() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --release -p layotto)",
            a.bin.display()
        ));
    }
    Ok(a)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--spin") {
        scenarios::spin();
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("layotto-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("layotto-bench: tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(port) = args.echo_server {
        return match rt.block_on(scenarios::serve_echo(port)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("layotto-bench echo server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(port) = args.http_echo {
        return match rt.block_on(invocation::serve_http_echo(port)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("layotto-bench HTTP echo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let (Some(port), Some(redis)) = (args.floor_server, &args.redis) {
        return match rt.block_on(versus::serve_floor(port, redis)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("layotto-bench floor server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = if let (true, Some(daprd)) = (args.versus, &args.daprd) {
        rt.block_on(versus::run(&args, daprd))
    } else if args.broker_faults {
        rt.block_on(faults::run(&args))
    } else if args.brokers {
        rt.block_on(brokers::run(&args))
    } else if args.invocation {
        rt.block_on(invocation::run(&args, args.daprd.as_deref()))
    } else if args.smoke {
        rt.block_on(scenarios::smoke(&args))
    } else {
        rt.block_on(scenarios::full(&args))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layotto-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Shorthand for seconds.
fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
