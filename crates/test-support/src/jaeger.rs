//! [`JaegerServer`]: Jaeger's all-in-one (built once by [`crate::peers`]) with every listener on
//! a free 127.0.0.1 port, in-memory storage.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{free_port, peers};

/// A Jaeger all-in-one v1.76.0 child process: collector (Jaeger gRPC/HTTP, OTLP gRPC and HTTP,
/// Zipkin) and query API, each bound to 127.0.0.1 (its defaults bind every interface). Killed
/// on drop.
#[derive(Debug)]
pub struct JaegerServer {
    process: Process,
    binary: PathBuf,
    /// admin, collector gRPC, collector HTTP, OTLP gRPC, OTLP HTTP, Zipkin, query HTTP, query
    /// gRPC.
    ports: [u16; 8],
    /// Certificate and key files of the OTLP gRPC receiver's TLS, when it has TLS.
    otlp_tls: Option<(PathBuf, PathBuf)>,
}

impl JaegerServer {
    /// Starts the server (building it first when the peer cache lacks it) and waits until its
    /// query API answers.
    ///
    /// # Panics
    /// When the build fails, or the server is not ready within 20 s.
    pub fn start() -> Self {
        let binary = peers::binary(&peers::JAEGER);
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            ports: [0; 8],
            otlp_tls: None,
        })
    }

    /// [`JaegerServer::start`] with TLS on the OTLP gRPC receiver, serving the PEM
    /// certificate `cert` with its key `key` (files).
    ///
    /// # Panics
    /// As [`JaegerServer::start`].
    pub fn start_with_otlp_tls(cert: PathBuf, key: PathBuf) -> Self {
        let binary = peers::binary(&peers::JAEGER);
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            ports: [0; 8],
            otlp_tls: Some((cert, key)),
        })
    }

    /// `127.0.0.1:port` of the OTLP gRPC receiver.
    pub fn otlp_grpc(&self) -> String {
        format!("127.0.0.1:{}", self.ports[3])
    }

    /// `127.0.0.1:port` of the OTLP HTTP receiver.
    pub fn otlp_http(&self) -> String {
        format!("127.0.0.1:{}", self.ports[4])
    }

    /// The Zipkin v2 collector URL.
    pub fn zipkin_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v2/spans", self.ports[5])
    }

    /// The JSON of `GET path` on the query API (`/api/traces?service=...`), `None` unless 200.
    pub fn query(&self, path: &str) -> Option<String> {
        process::http_get(self.ports[6], path)
    }
}

impl Server for JaegerServer {
    const NAME: &'static str = "jaeger-all-in-one";
    const NOT_READY: &'static str = "never answered its query API";
    const POLL: Duration = Duration::from_millis(100);

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.ports[6]
    }

    fn take_free_ports(&mut self) {
        for p in &mut self.ports {
            *p = free_port();
        }
    }

    fn command(&self) -> Result<Command, String> {
        let flags = [
            "admin.http.host-port",
            "collector.grpc-server.host-port",
            "collector.http-server.host-port",
            "collector.otlp.grpc.host-port",
            "collector.otlp.http.host-port",
            "collector.zipkin.host-port",
            "query.http-server.host-port",
            "query.grpc-server.host-port",
        ];
        let mut cmd = Command::new(&self.binary);
        for (flag, port) in flags.iter().zip(self.ports) {
            cmd.arg(format!("--{flag}=127.0.0.1:{port}"));
        }
        if let Some((cert, key)) = &self.otlp_tls {
            cmd.arg("--collector.otlp.grpc.tls.enabled=true")
                .arg(format!("--collector.otlp.grpc.tls.cert={}", cert.display()))
                .arg(format!("--collector.otlp.grpc.tls.key={}", key.display()));
        }
        cmd.args(["--log-level=error", "--metrics-backend=none"])
            .env("SPAN_STORAGE_TYPE", "memory")
            .stderr(Stdio::null());
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        self.query("/api/services").is_some()
    }
}
