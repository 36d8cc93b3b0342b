//! `layotto-bench`: measures the sidecar from the outside, as a user would.
//!
//! - Start-up: wall time from `exec` of `layotto start` to its gRPC port accepting a TCP
//!   connection (polled every 0.2 ms), over N runs of the standalone config.
//! - Idle RSS: `VmRSS` of the process 1 s after the port accepted, with no traffic.
//!
//! `layotto-bench [--bin PATH] [--runs N] [--report FILE]` prints the figures and, with
//! `--report`, writes them as Markdown. `--smoke` does 3 runs and only checks that every run
//! started and was measured (no thresholds: timing belongs in reports, not in tests).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Args {
    bin: PathBuf,
    runs: usize,
    report: Option<PathBuf>,
    smoke: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bin: repo_root().join("target/release/layotto"),
        runs: 30,
        report: None,
        smoke: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bin" => args.bin = it.next().ok_or("--bin needs a path")?.into(),
            "--runs" => {
                args.runs = it
                    .next()
                    .ok_or("--runs needs a number")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?;
            }
            "--report" => args.report = Some(it.next().ok_or("--report needs a path")?.into()),
            "--smoke" => {
                args.smoke = true;
                args.runs = 3;
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if args.smoke && !args.bin.exists() {
        args.bin = repo_root().join("target/debug/layotto");
    }
    if !args.bin.exists() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --release -p layotto)",
            args.bin.display()
        ));
    }
    Ok(args)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The shipped standalone config with its two ports replaced by free ones.
fn standalone_config(dir: &Path) -> Result<(PathBuf, u16), String> {
    let text = std::fs::read_to_string(repo_root().join("configs/config_standalone.json"))
        .map_err(|e| format!("reading configs/config_standalone.json: {e}"))?;
    let (grpc, actuator) = (free_port()?, free_port()?);
    let text = text
        .replace("127.0.0.1:34904", &format!("127.0.0.1:{grpc}"))
        .replace("127.0.0.1:34999", &format!("127.0.0.1:{actuator}"))
        .replace(
            "/tmp/layotto-rs/files",
            &dir.join("files").to_string_lossy(),
        );
    let path = dir.join(format!("config-{grpc}.json"));
    std::fs::write(&path, text).map_err(|e| format!("writing config: {e}"))?;
    Ok((path, grpc))
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS line".to_owned())
}

struct Run {
    startup: Duration,
    rss_kib: u64,
}

fn one_run(bin: &Path, dir: &Path) -> Result<Run, String> {
    let (config, port) = standalone_config(dir)?;
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["start", "-c"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
    let result = (|| {
        let deadline = t0 + Duration::from_secs(10);
        let startup = loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break t0.elapsed();
            }
            if Instant::now() > deadline {
                return Err("gRPC port did not accept within 10 s".to_owned());
            }
            if let Ok(Some(s)) = child.try_wait() {
                return Err(format!("sidecar exited with {s}"));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        std::thread::sleep(Duration::from_secs(1));
        Ok(Run {
            startup,
            rss_kib: rss_kib(child.id())?,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("layotto-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("layotto-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("layotto-bench: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let mut runs = Vec::new();
    for i in 0..args.runs {
        match one_run(&args.bin, &dir) {
            Ok(r) => runs.push(r),
            Err(e) => {
                eprintln!("layotto-bench: run {i}: {e}");
                let _ = std::fs::remove_dir_all(&dir);
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut ms: Vec<f64> = runs.iter().map(|r| r.startup.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mut rss: Vec<f64> = runs.iter().map(|r| r.rss_kib as f64 / 1024.0).collect();
    rss.sort_by(f64::total_cmp);
    let size = std::fs::metadata(&args.bin).map(|m| m.len()).unwrap_or(0);
    let table = format!(
        "| figure | p50 | p90 | max | target |\n|---|---|---|---|---|\n\
         | start-up, exec -> gRPC accepting (ms) | {:.1} | {:.1} | {:.1} | <= 100 |\n\
         | idle RSS after 1 s (MiB) | {:.1} | {:.1} | {:.1} | <= 20 |\n\n\
         Binary: `{}`, {:.1} MiB; {} runs of `configs/config_standalone.json` (ports replaced).\n",
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 1.0),
        percentile(&rss, 0.5),
        percentile(&rss, 0.9),
        percentile(&rss, 1.0),
        args.bin.display(),
        size as f64 / (1024.0 * 1024.0),
        runs.len(),
    );
    println!("{table}");
    if args.smoke {
        println!("smoke: {} runs started and were measured", runs.len());
    }
    if let Some(report) = &args.report {
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
            "# layotto-rs benchmark report\n\nMachine: {machine}, {cores} cores. \
             Regenerate with `bench/run.sh`.\n\n## Start-up and idle memory (standalone config)\n\n{table}"
        );
        if let Err(e) = std::fs::write(report, text) {
            eprintln!("layotto-bench: writing {}: {e}", report.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
