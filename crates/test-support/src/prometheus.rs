//! [`PrometheusServer`]: a Prometheus server (Debian package `prometheus`) scraping given
//! targets every second, on a free 127.0.0.1 port.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{find_binary, free_port};

/// A `prometheus` child process with a 1 s scrape interval over static `targets`
/// (`127.0.0.1:PORT` each), its TSDB in a fresh temp dir, listening on 127.0.0.1 only. Killed
/// on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    targets: Vec<String>,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts a server scraping `targets` every second and waits until it is ready.
    ///
    /// # Panics
    /// When `prometheus` is not installed (names the Debian package), or it is not ready
    /// within 20 s.
    pub fn start(targets: &[String]) -> Self {
        let binary = find_binary("prometheus", "prometheus");
        let dir = tempfile::Builder::new()
            .prefix("layotto-prometheus-")
            .tempdir()
            .expect("create a temp dir for prometheus");
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            targets: targets.to_vec(),
            dir,
        })
    }

    /// `127.0.0.1:port` of the web and API server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs the instant PromQL `query` through the HTTP API (`/api/v1/query`); the JSON answer.
    ///
    /// # Panics
    /// When the server does not answer.
    pub fn query(&self, query: &str) -> String {
        let mut encoded = String::new();
        for b in query.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        process::http_get(self.port, &format!("/api/v1/query?query={encoded}"))
            .unwrap_or_else(|| panic!("prometheus on {} did not answer {query}", self.port))
    }
}

impl Server for PrometheusServer {
    const NAME: &'static str = "prometheus";
    const NOT_READY: &'static str = "never answered /-/ready";
    const POLL: Duration = Duration::from_millis(100);

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = free_port();
    }

    fn command(&self) -> Result<Command, String> {
        let cfg = self.dir.path().join("prometheus.yml");
        let targets = self
            .targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sidecar\n    static_configs:\n      - targets: [{targets}]\n"
        );
        std::fs::write(&cfg, text).map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--log.level=warn")
            .stderr(Stdio::null());
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        process::http_get(self.port, "/-/ready").is_some_and(|b| b.contains("Ready"))
    }
}
