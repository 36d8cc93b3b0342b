//! [`EtcdServer`]: a single-member `etcd` (Debian package `etcd-server`) on free ports.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{TestCerts, TlsSetup, find_binary, free_port};

/// An `etcd` child process: one member listening on free 127.0.0.1 client and peer ports, with
/// its data in a fresh temp dir, so acknowledged writes survive [`EtcdServer::restart`]. Killed
/// on drop.
#[derive(Debug)]
pub struct EtcdServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    client_port: u16,
    fixed_port: Option<u16>,
    peer_port: u16,
    tls: Option<TlsSetup>,
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts a member and waits until it answers `/health`.
    ///
    /// # Panics
    /// When `etcd` is not installed (names the Debian package `etcd-server`), or the member
    /// does not become healthy within 20 s.
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// As [`EtcdServer::start`], on `port` (the port a config file names, in a private network
    /// namespace).
    ///
    /// # Panics
    /// As [`EtcdServer::start`], also when `port` is taken.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(Some(port), None)
    }

    /// Starts a member that also serves TLS on [`EtcdServer::tls_addr`] with certificates from
    /// a fresh [`TestCerts`] (see [`EtcdServer::certs`]); the plain port stays open for set-up
    /// and checks. With `require_client_cert` the TLS port refuses clients without a
    /// certificate issued by the test CA.
    ///
    /// # Panics
    /// As [`EtcdServer::start`].
    pub fn start_tls(require_client_cert: bool) -> Self {
        Self::start_with(None, Some(TlsSetup::new(require_client_cert)))
    }

    fn start_with(fixed_port: Option<u16>, tls: Option<TlsSetup>) -> Self {
        let binary = find_binary("etcd", "etcd-server");
        let dir = tempfile::Builder::new()
            .prefix("layotto-etcd-")
            .tempdir()
            .expect("create a temp dir for etcd");
        if let Some(t) = &tls {
            t.write_files(dir.path());
        }
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            client_port: 0,
            fixed_port,
            peer_port: 0,
            tls,
            dir,
        })
    }

    /// `127.0.0.1:port` of the plain client port.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The plain client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// `127.0.0.1:port` of the TLS client port (servers from [`EtcdServer::start_tls`] only).
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

    /// The temp dir holding the data dir (and the TLS files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the member (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Freezes the member (SIGSTOP): it keeps its sockets but answers nothing, like a host
    /// behind a network partition. [`EtcdServer::resume`] thaws it.
    ///
    /// # Panics
    /// When the member is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.process.signal("STOP");
    }

    /// Thaws a member frozen by [`EtcdServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// When the member is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.process.signal("CONT");
    }

    /// Kills the member if running and starts it again on the same ports and data dir; waits
    /// until it answers `/health`.
    ///
    /// # Panics
    /// When the member does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }
}

impl Server for EtcdServer {
    const NAME: &'static str = "etcd";
    const NOT_READY: &'static str = "never reported healthy";

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.client_port
    }

    fn take_free_ports(&mut self) {
        self.client_port = self.fixed_port.unwrap_or_else(free_port);
        self.peer_port = free_port();
        if let Some(t) = &mut self.tls {
            t.port = free_port();
        }
        let _ = std::fs::remove_dir_all(self.data_dir());
    }

    fn command(&self) -> Result<Command, String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut listen = client.clone();
        let mut cmd = Command::new(&self.binary);
        if let Some(t) = &self.tls {
            let d = self.dir.path();
            listen.push_str(&format!(",https://127.0.0.1:{}", t.port));
            cmd.arg("--cert-file")
                .arg(d.join("server.pem"))
                .arg("--key-file")
                .arg(d.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(d.join("ca.pem"));
            if t.require_client_cert {
                cmd.arg("--client-cert-auth");
            }
        }
        cmd.args(["--name", "layotto-test", "--data-dir"])
            .arg(self.data_dir())
            .args([
                "--listen-client-urls",
                &listen,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("layotto-test={peer}"),
                "--initial-cluster-state",
                "new",
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "error",
                // A 500 ms election timeout makes etcd's minimum lease 1 s (it is 1.5 election
                // timeouts, 2 s by default), so a 1 s TTL is what the state suite observes.
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "500",
            ]);
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        healthy(self.client_port)
    }
}

/// Whether the etcd member on `port` answers `GET /health` with `"health":"true"`.
fn healthy(port: u16) -> bool {
    let Some(mut s) = process::connect(port, Duration::from_secs(2)) else {
        return false;
    };
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).contains("\"health\":\"true\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_package() {
        let r = std::panic::catch_unwind(|| find_binary("layotto-no-such-etcd", "etcd-server"));
        let payload = r.expect_err("the binary does not exist");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            msg.contains("apt-get install -y etcd-server") && msg.contains("layotto-no-such-etcd"),
            "{msg}"
        );
    }

    #[test]
    fn starts_kills_and_restarts_on_the_same_ports() {
        let mut s = EtcdServer::start();
        let port = s.port();
        assert!(healthy(port));
        s.kill();
        assert!(!healthy(port));
        s.restart();
        assert_eq!(s.port(), port);
        assert!(healthy(port));
        assert!(s.dir().join("data").is_dir());
    }
}
