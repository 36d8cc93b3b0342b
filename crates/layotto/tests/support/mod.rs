//! Starts the real `layotto` binary on free ports with a generated Layotto config.
#![allow(dead_code, missing_docs)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod daprd;
pub mod hot;
pub mod invoke_app;
pub mod shared;

/// Serves `app` on a free 127.0.0.1 port in a task of the current runtime; returns the port.
pub async fn serve_app(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A Layotto JSON config: gRPC and actuator listeners on the given ports, `grpc_config` as given.
pub fn layotto_config(grpc_port: u16, actuator_port: u16, grpc_config: Value) -> Value {
    json!({
        "servers": [{
            "default_log_path": "stdout",
            "default_log_level": "INFO",
            "routers": [{"router_config_name": "actuator_dont_need_router"}],
            "listeners": [
                {
                    "name": "grpc",
                    "address": format!("127.0.0.1:{grpc_port}"),
                    "bind_port": true,
                    "filter_chains": [{"filters": [{
                        "type": "grpc",
                        "config": {"server_name": "runtime", "grpc_config": grpc_config}
                    }]}],
                    "stream_filters": [{"type": "grpc_metric"}]
                },
                {
                    "name": "actuator",
                    "address": format!("127.0.0.1:{actuator_port}"),
                    "bind_port": true,
                    "filter_chains": [{"filters": [{"type": "proxy", "config": {
                        "downstream_protocol": "Http1", "upstream_protocol": "Http1",
                        "router_config_name": "actuator_dont_need_router"}}]}],
                    "stream_filters": [{"type": "actuator_filter"}]
                }
            ]
        }]
    })
}

pub struct Sidecar {
    child: Child,
    pub grpc_port: u16,
    pub actuator_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Sidecar {
    /// Starts a sidecar whose `grpc_config` is `grpc_config`; waits until gRPC accepts.
    pub fn start(grpc_config: Value) -> Self {
        Self::start_with_env(grpc_config, &[])
    }

    pub fn start_with_env(grpc_config: Value, env: &[(&str, &str)]) -> Self {
        Self::start_with(grpc_config, env, &[])
    }

    /// Starts a sidecar with `env` and extra command-line `args` (e.g. `--app-port`).
    pub fn start_with(grpc_config: Value, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_edited(grpc_config, |_| {}, env, args)
    }

    /// Like [`Sidecar::start_with`], with `edit` applied to the whole MOSN document first
    /// (e.g. to add stream filters to the gRPC listener).
    ///
    /// A free port can be taken by another process between choosing and binding it (tests
    /// start many servers at once): when the sidecar then exits, it is started again on fresh
    /// ports, up to three times.
    pub fn start_edited(
        grpc_config: Value,
        edit: impl Fn(&mut Value),
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(grpc_config.clone(), &edit, env, args) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("layotto did not start: {last}");
    }

    fn try_start(
        grpc_config: Value,
        edit: &impl Fn(&mut Value),
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (grpc_port, actuator_port) = (free_port(), free_port());
        let mut cfg = layotto_config(grpc_port, actuator_port, grpc_config);
        edit(&mut cfg);
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&cfg).expect("json"))
            .expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_layotto"));
        cmd.arg("start")
            .arg("-c")
            .arg(&config_path)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn layotto");
        let mut s = Self {
            child,
            grpc_port,
            actuator_port,
            dir,
            config_path,
        };
        s.wait_port(grpc_port)?;
        // Something answering on the port may be another process that took it first: then
        // this sidecar fails to bind and exits within moments.
        let settle = Instant::now() + Duration::from_millis(300);
        while Instant::now() < settle {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!(
                    "layotto exited with {status} (port {grpc_port} taken?)"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }

    fn wait_port(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("layotto exited early with {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("layotto did not listen on {port} within 20 s"))
    }

    /// Sends SIGTERM (as an orchestrator stopping the sidecar does) and waits up to `limit` for
    /// the process to exit; its exit status, `None` if it is still running.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub async fn client(&self) -> layotto_sdk::Client {
        layotto_sdk::Client::connect(self.uri())
            .await
            .expect("connect to sidecar")
    }

    pub fn actuator(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.actuator_port)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_layotto"))
        .args(args)
        .output()
        .expect("run layotto");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
