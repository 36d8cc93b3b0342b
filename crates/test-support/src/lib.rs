//! Test support for layotto-rs: real backend servers started on free ports in fresh temp dirs.
//!
//! Each server is a child process owned by its handle and killed when the handle drops, so tests
//! share no state and need no fixed ports. A missing server binary panics with a message naming
//! the binary and the Debian package that provides it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod etcd;
mod mysql;
mod zookeeper;

pub use etcd::EtcdServer;
pub use mysql::MySqlServer;
pub use zookeeper::ZooKeeperServer;

/// How long a server gets to answer its first PING (or health check).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Finds `binary` on `PATH` or in the usual system directories; panics naming `package` if it
/// is missing.
fn find_binary(binary: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{binary}` was not found on PATH: install the Debian package `{package}` \
                 (apt-get install -y {package}) to run these tests"
            )
        })
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    l.local_addr()
        .expect("local address of the listener")
        .port()
}

/// A `redis-server` child process on a free 127.0.0.1 port, persisting into a fresh temp dir
/// with an append-only file fsynced on every write, so acknowledged writes survive
/// [`RedisServer::restart`]. Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    tls: Option<TlsSetup>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// PEM material of a test certificate authority and what it issued, all valid for
/// `localhost` / `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate (give it to clients as their only trust root).
    pub ca_cert: String,
    /// Server certificate issued by the CA.
    pub server_cert: String,
    /// Private key of `server_cert`.
    pub server_key: String,
    /// Client certificate issued by the CA (for mutual TLS).
    pub client_cert: String,
    /// Private key of `client_cert`.
    pub client_key: String,
}

impl TestCerts {
    /// Generates a fresh CA and a server and a client certificate signed by it.
    ///
    /// # Panics
    /// When key generation fails (it does not with the ring backend).
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "layotto-rs test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |cn: &str| {
            let key = KeyPair::generate().expect("generate leaf key");
            let mut params =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &issuer).expect("sign leaf");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("redis-server");
        let (client_cert, client_key) = leaf("layotto-client");
        Self {
            ca_cert: ca_cert.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

#[derive(Debug)]
struct TlsSetup {
    port: u16,
    certs: TestCerts,
    require_client_cert: bool,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    ///
    /// # Panics
    /// When `redis-server` is not installed (names the Debian package `redis-server`), or the
    /// server does not answer within 20 s.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that also accepts TLS on [`RedisServer::tls_port`], with certificates
    /// from a fresh [`TestCerts`] (see [`RedisServer::certs`]); the plain port stays open for
    /// set-up and checks. With `require_client_cert` the TLS port refuses clients without a
    /// certificate issued by the test CA.
    ///
    /// # Panics
    /// As [`RedisServer::start`]; also when the installed `redis-server` lacks TLS support.
    pub fn start_tls(require_client_cert: bool) -> Self {
        Self::start_with(Some(TlsSetup {
            port: 0,
            certs: TestCerts::generate(),
            require_client_cert,
        }))
    }

    fn start_with(tls: Option<TlsSetup>) -> Self {
        let binary = find_binary("redis-server", "redis-server");
        let dir = tempfile::Builder::new()
            .prefix("layotto-redis-")
            .tempdir()
            .expect("create a temp dir for redis-server");
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
            port: 0,
            tls,
            dir,
            child: None,
        };
        let mut last_err = String::new();
        // A free port can be taken by someone else between probing and binding: retry.
        for _ in 0..5 {
            server.port = free_port();
            if let Some(t) = &mut server.tls {
                t.port = free_port();
            }
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("redis-server did not start: {last_err}");
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port` of the TLS port (servers from [`RedisServer::start_tls`] only).
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

    /// The data directory (append-only file lives here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server process (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if running and starts it again on the same port and data dir; waits
    /// until it answers PING.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger briefly after the kill.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("redis-server did not restart on port {}: {e}", self.port),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--dir"])
            .arg(self.dir.path());
        if let Some(t) = &self.tls {
            let d = self.dir.path();
            cmd.args(["--tls-port", &t.port.to_string(), "--tls-cert-file"])
                .arg(d.join("server.pem"))
                .arg("--tls-key-file")
                .arg(d.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(d.join("ca.pem"))
                .args([
                    "--tls-auth-clients",
                    if t.require_client_cert { "yes" } else { "no" },
                ]);
        }
        let mut child = cmd
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server on port {port} exited with {status}"));
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on port {port} never answered PING"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    while got.len() < 5 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"+PONG")
}
