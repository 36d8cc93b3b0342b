//! [`EtcdServer`]: a single-member `etcd` (Debian package `etcd-server`) on free ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{START_TIMEOUT, TestCerts, find_binary, free_port};

/// An `etcd` child process: one member listening on free 127.0.0.1 client and peer ports, with
/// its data in a fresh temp dir, so acknowledged writes survive [`EtcdServer::restart`]. Killed
/// on drop.
#[derive(Debug)]
pub struct EtcdServer {
    binary: PathBuf,
    client_port: u16,
    peer_port: u16,
    tls: Option<EtcdTls>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

#[derive(Debug)]
struct EtcdTls {
    port: u16,
    certs: TestCerts,
    require_client_cert: bool,
}

impl EtcdServer {
    /// Starts a member and waits until it answers `/health`.
    ///
    /// # Panics
    /// When `etcd` is not installed (names the Debian package `etcd-server`), or the member
    /// does not become healthy within 20 s.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a member that also serves TLS on [`EtcdServer::tls_port`] with certificates from
    /// a fresh [`TestCerts`] (see [`EtcdServer::certs`]); the plain port stays open for set-up
    /// and checks. With `require_client_cert` the TLS port refuses clients without a
    /// certificate issued by the test CA.
    ///
    /// # Panics
    /// As [`EtcdServer::start`].
    pub fn start_tls(require_client_cert: bool) -> Self {
        Self::start_with(Some(EtcdTls {
            port: 0,
            certs: TestCerts::generate(),
            require_client_cert,
        }))
    }

    fn start_with(tls: Option<EtcdTls>) -> Self {
        let binary = find_binary("etcd", "etcd-server");
        let dir = tempfile::Builder::new()
            .prefix("layotto-etcd-")
            .tempdir()
            .expect("create a temp dir for etcd");
        if let Some(t) = &tls {
            for (name, pem) in [
                ("ca.pem", &t.certs.ca_cert),
                ("server.pem", &t.certs.server_cert),
                ("server.key", &t.certs.server_key),
            ] {
                std::fs::write(dir.path().join(name), pem).expect("write TLS files");
            }
        }
        let mut server = Self {
            binary,
            client_port: 0,
            peer_port: 0,
            tls,
            dir,
            child: None,
        };
        let mut last_err = String::new();
        // A free port can be taken by someone else between probing and binding: retry.
        for _ in 0..5 {
            server.client_port = free_port();
            server.peer_port = free_port();
            if let Some(t) = &mut server.tls {
                t.port = free_port();
            }
            let _ = std::fs::remove_dir_all(server.data_dir());
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("etcd did not start: {last_err}");
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
        let t = self.tls.as_ref().expect("server was started without TLS");
        format!("127.0.0.1:{}", t.port)
    }

    /// The certificates of a TLS server.
    ///
    /// # Panics
    /// On a server started without TLS.
    pub fn certs(&self) -> &TestCerts {
        &self
            .tls
            .as_ref()
            .expect("server was started without TLS")
            .certs
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
        if let Some(mut c) = self.child.take() {
            // A frozen member dies of SIGKILL too; thaw it anyway so nothing lingers stopped.
            let _ = Command::new("kill")
                .args(["-CONT".to_owned(), c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the member (SIGSTOP): it keeps its sockets but answers nothing, like a host
    /// behind a network partition. [`EtcdServer::resume`] thaws it.
    ///
    /// # Panics
    /// When the member is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a member frozen by [`EtcdServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// When the member is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("etcd is not running").id();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid} failed");
    }

    /// Kills the member if running and starts it again on the same ports and data dir; waits
    /// until it answers `/health`.
    ///
    /// # Panics
    /// When the member does not come back within 20 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The ports may linger briefly after the kill.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("etcd did not restart on port {}: {e}", self.client_port),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
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
        let mut child = cmd
            .args(["--name", "layotto-test", "--data-dir"])
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
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "etcd on port {} exited with {status}",
                    self.client_port
                ));
            }
            if healthy(self.client_port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "etcd on port {} never reported healthy",
                    self.client_port
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the etcd member on `port` answers `GET /health` with `"health":"true"`.
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
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
