//! [`FerretDbServer`]: FerretDB (a MongoDB wire-protocol server) on its SQLite handler, on a
//! free port.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{TestCerts, TlsSetup, free_port, peers};

/// A FerretDB child process built by [`peers::binary`] (FerretDB v1.24.2), storing into a
/// fresh temp dir with its SQLite handler, listening on a free 127.0.0.1 port (and its debug
/// HTTP handler on another), telemetry off. Data survives [`FerretDbServer::restart`]. Killed on
/// drop.
///
/// FerretDB 1.x has no multi-document transactions and no TTL index sweeps; components built on
/// single-document operations run unchanged against it.
#[derive(Debug)]
pub struct FerretDbServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    debug_port: u16,
    fixed_port: Option<u16>,
    tls: Option<TlsSetup>,
    dir: tempfile::TempDir,
}

impl FerretDbServer {
    /// Starts a server (building FerretDB first when the peer cache lacks it) and waits until
    /// it accepts connections.
    ///
    /// # Panics
    /// When the build fails (names the step), or the server is not ready within 20 s.
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// As [`FerretDbServer::start`], on `port` (in a private network namespace, say).
    ///
    /// # Panics
    /// As [`FerretDbServer::start`], also when `port` is taken.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(Some(port), None)
    }

    /// As [`FerretDbServer::start`], also accepting TLS on [`FerretDbServer::tls_addr`] with
    /// certificates from a fresh [`TestCerts`].
    ///
    /// # Panics
    /// As [`FerretDbServer::start`].
    pub fn start_tls() -> Self {
        Self::start_with(None, Some(TlsSetup::new(false)))
    }

    fn start_with(fixed_port: Option<u16>, tls: Option<TlsSetup>) -> Self {
        let binary = peers::binary(&peers::FERRETDB);
        let dir = tempfile::Builder::new()
            .prefix("layotto-ferretdb-")
            .tempdir()
            .expect("create a temp dir for FerretDB");
        std::fs::create_dir_all(dir.path().join("data")).expect("create FerretDB's data dir");
        if let Some(t) = &tls {
            t.write_files(dir.path());
        }
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            debug_port: 0,
            fixed_port,
            tls,
            dir,
        })
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The wire-protocol port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port` of the TLS listener (servers from [`FerretDbServer::start_tls`] only).
    ///
    /// # Panics
    /// On a server started without TLS.
    pub fn tls_addr(&self) -> String {
        TlsSetup::addr(self.tls.as_ref())
    }

    /// The certificates of a TLS server.
    ///
    /// # Panics
    /// On a server started without TLS.
    pub fn certs(&self) -> &TestCerts {
        &TlsSetup::of(self.tls.as_ref()).certs
    }

    /// The temp dir (SQLite files in `data/`, the CA of a TLS server in `ca.pem`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Freezes the server (SIGSTOP): sockets stay open, nothing answers.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.process.signal("STOP");
    }

    /// Thaws a server frozen by [`FerretDbServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.process.signal("CONT");
    }

    /// Kills the server if running and starts it again on the same ports and data; waits until
    /// it accepts connections.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }
}

impl Server for FerretDbServer {
    const NAME: &'static str = "FerretDB";
    const NOT_READY: &'static str = "never accepted a connection";

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = self.fixed_port.unwrap_or_else(free_port);
        self.debug_port = free_port();
        if let Some(t) = &mut self.tls {
            t.port = free_port();
        }
    }

    fn command(&self) -> Result<Command, String> {
        let d = self.dir.path();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--handler=sqlite")
            .arg(format!("--sqlite-url=file:{}/", d.join("data").display()))
            .arg(format!("--listen-addr=127.0.0.1:{}", self.port))
            .arg(format!("--debug-addr=127.0.0.1:{}", self.debug_port))
            .arg(format!("--state-dir={}", d.display()))
            .args(["--telemetry=disable", "--log-level=error"])
            // Its log goes to stderr; the tests read none of it.
            .stderr(Stdio::null());
        if let Some(t) = &self.tls {
            cmd.arg(format!("--listen-tls=127.0.0.1:{}", t.port))
                .arg(format!(
                    "--listen-tls-cert-file={}",
                    d.join("server.pem").display()
                ))
                .arg(format!(
                    "--listen-tls-key-file={}",
                    d.join("server.key").display()
                ));
        }
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        process::connect(self.port, Duration::from_millis(500)).is_some()
            && self
                .tls
                .as_ref()
                .is_none_or(|t| process::connect(t.port, Duration::from_millis(500)).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut s = FerretDbServer::start();
        let port = s.port();
        assert!(process::connect(port, Duration::from_millis(500)).is_some());
        s.kill();
        assert!(process::connect(port, Duration::from_millis(500)).is_none());
        s.restart();
        assert_eq!(s.port(), port);
        assert!(process::connect(port, Duration::from_millis(500)).is_some());
    }
}
