//! Start-up and idle memory: wall time from `exec` of `layotto start` to its gRPC port
//! accepting a TCP connection (polled every 0.2 ms), and `VmRSS` 1 s later with no traffic.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (parent of `bench/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
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

/// Resident memory (`VmRSS`) of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    status_kib(pid, "VmRSS")
}

/// A KiB figure of `/proc/<pid>/status` by its name (`VmRSS`, `RssAnon`, `RssFile`...).
pub fn status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} line in /proc/{pid}/status"))
}

/// One start-up measurement.
pub struct Run {
    /// exec -> gRPC port accepting.
    pub startup: Duration,
    /// VmRSS after 1 s idle, KiB.
    pub rss_kib: u64,
}

/// Starts `bin` once on a copy of the standalone config and measures it.
pub fn one_run(bin: &Path, dir: &Path) -> Result<Run, String> {
    let (config, port) = standalone_config(dir)?;
    let err_path = dir.join(format!("stderr-{port}"));
    let stderr =
        std::fs::File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["start", "-c"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
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
                let said = std::fs::read_to_string(&err_path).unwrap_or_default();
                return Err(format!("sidecar exited with {s}: {}", said.trim()));
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

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs `runs` start-ups and renders a Markdown table.
pub fn measure(bin: &Path, runs: usize) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("layotto-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut all = Vec::new();
    for i in 0..runs {
        match one_run(bin, &dir) {
            Ok(r) => all.push(r),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("start-up run {i}: {e}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut ms: Vec<f64> = all.iter().map(|r| r.startup.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mut rss: Vec<f64> = all.iter().map(|r| r.rss_kib as f64 / 1024.0).collect();
    rss.sort_by(f64::total_cmp);
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "| figure | p50 | p90 | max | target |\n|---|---|---|---|---|\n\
         | start-up, exec -> gRPC accepting (ms) | {:.1} | {:.1} | {:.1} | <= 100 |\n\
         | idle RSS after 1 s (MiB) | {:.1} | {:.1} | {:.1} | <= 20 |\n\
         | binary size (MiB) | {:.1} | | | <= 30 |\n\n\
         Binary: `{}`; {} runs of `configs/config_standalone.json` (ports replaced).\n",
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 1.0),
        percentile(&rss, 0.5),
        percentile(&rss, 0.9),
        percentile(&rss, 1.0),
        size as f64 / (1024.0 * 1024.0),
        bin.display(),
        all.len(),
    ))
}
