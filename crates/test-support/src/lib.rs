//! Test support for layotto-rs: real backend servers started on free ports in fresh temp dirs.
//!
//! Each server is a child process owned by its handle and killed when the handle drops, so tests
//! share no state and need no fixed ports. A missing server binary panics with a message naming
//! the binary and the Debian package that provides it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use process::{Process, Server};

mod etcd;
mod ferretdb;
mod jaeger;
mod kafka;
mod kube_apiserver;
mod mosquitto;
mod mysql;
mod nats;
pub mod peers;
mod postgres;
mod process;
mod prometheus;
mod rabbitmq;
mod redis_cluster;
mod zookeeper;

pub use etcd::EtcdServer;
pub use ferretdb::FerretDbServer;
pub use jaeger::JaegerServer;
pub use kafka::KafkaServer;
pub use kube_apiserver::KubeApiServer;
pub use mosquitto::MosquittoServer;
pub use mysql::MySqlServer;
pub use nats::NatsServer;
pub use postgres::PostgresServer;
pub use prometheus::PrometheusServer;
pub use rabbitmq::RabbitMqServer;
pub use redis_cluster::RedisCluster;
pub use zookeeper::ZooKeeperServer;

/// How long a server gets to answer its first PING (or health check).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Finds `binary` on `PATH` or in the usual system directories; panics naming `package` if it
/// is missing.
fn find_binary(binary: &str, package: &str) -> PathBuf {
    search_path(binary).unwrap_or_else(|| {
        panic!(
            "`{binary}` was not found on PATH: install the Debian package `{package}` \
             (apt-get install -y {package}) to run these tests"
        )
    })
}

/// `binary` on `PATH` or in `/usr/bin`, `/usr/local/bin`, `/usr/sbin`, if it is there.
fn search_path(binary: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (`mariadbd` then needs `--user=root`; a network namespace
/// needs no user namespace).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
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
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    fixed_port: Option<u16>,
    password: Option<String>,
    tls: Option<TlsSetup>,
    /// The cluster bus port of a Redis Cluster node (`--cluster-port`); `None` otherwise.
    cluster_bus_port: Option<u16>,
    dir: tempfile::TempDir,
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

/// The TLS side of a server harness: its port, certificates and client-certificate rule.
#[derive(Debug)]
struct TlsSetup {
    port: u16,
    certs: TestCerts,
    require_client_cert: bool,
}

impl TlsSetup {
    /// Fresh [`TestCerts`]; the port is picked at start.
    fn new(require_client_cert: bool) -> Self {
        Self {
            port: 0,
            certs: TestCerts::generate(),
            require_client_cert,
        }
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` into `dir`.
    fn write_files(&self, dir: &Path) {
        for (name, pem) in [
            ("ca.pem", &self.certs.ca_cert),
            ("server.pem", &self.certs.server_cert),
            ("server.key", &self.certs.server_key),
        ] {
            std::fs::write(dir.join(name), pem).expect("write TLS files");
        }
    }

    /// `127.0.0.1:port` of the TLS port of `tls`.
    ///
    /// # Panics
    /// When `tls` is `None` (a server started without TLS).
    fn addr(tls: Option<&Self>) -> String {
        format!("127.0.0.1:{}", Self::of(tls).port)
    }

    /// The setup of a TLS server.
    ///
    /// # Panics
    /// When `tls` is `None` (a server started without TLS).
    fn of(tls: Option<&Self>) -> &Self {
        tls.expect("server was started without TLS")
    }
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    ///
    /// # Panics
    /// When `redis-server` is not installed (names the Debian package `redis-server`), or the
    /// server does not answer within 20 s.
    pub fn start() -> Self {
        Self::start_with(None, None, None)
    }

    /// As [`RedisServer::start`], on `port`, requiring `password` (`requirepass`) when given:
    /// the port and password a config file names, in a private network namespace.
    ///
    /// # Panics
    /// As [`RedisServer::start`], also when `port` is taken.
    pub fn start_on(port: u16, password: Option<&str>) -> Self {
        let mut s = Self::start_with(Some(port), None, password);
        s.password = password.map(str::to_owned);
        s
    }

    /// Starts a server that also accepts TLS on [`RedisServer::tls_addr`], with certificates
    /// from a fresh [`TestCerts`] (see [`RedisServer::certs`]); the plain port stays open for
    /// set-up and checks. With `require_client_cert` the TLS port refuses clients without a
    /// certificate issued by the test CA.
    ///
    /// # Panics
    /// As [`RedisServer::start`]; also when the installed `redis-server` lacks TLS support.
    pub fn start_tls(require_client_cert: bool) -> Self {
        Self::start_with(None, Some(TlsSetup::new(require_client_cert)), None)
    }

    /// Starts a Redis Cluster node (`--cluster-enabled yes`, node timeout 1 s, the cluster
    /// bus on a second free port), not yet part of any cluster; see [`RedisCluster`].
    pub(crate) fn start_cluster_node() -> Self {
        Self::start_full(None, None, None, true)
    }

    fn start_with(fixed_port: Option<u16>, tls: Option<TlsSetup>, password: Option<&str>) -> Self {
        Self::start_full(fixed_port, tls, password, false)
    }

    fn start_full(
        fixed_port: Option<u16>,
        tls: Option<TlsSetup>,
        password: Option<&str>,
        cluster: bool,
    ) -> Self {
        let binary = find_binary("redis-server", "redis-server");
        let dir = tempfile::Builder::new()
            .prefix("layotto-redis-")
            .tempdir()
            .expect("create a temp dir for redis-server");
        if let Some(t) = &tls {
            t.write_files(dir.path());
        }
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            fixed_port,
            password: password.map(str::to_owned),
            tls,
            cluster_bus_port: cluster.then_some(0),
            dir,
        })
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
        TlsSetup::addr(self.tls.as_ref())
    }

    /// The certificates of a TLS server.
    ///
    /// # Panics
    /// On a server started without TLS.
    pub fn certs(&self) -> &TestCerts {
        &TlsSetup::of(self.tls.as_ref()).certs
    }

    /// The data directory (append-only file lives here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server process (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Freezes the server (SIGSTOP): it keeps its sockets but answers nothing, like a host
    /// behind a network partition. [`RedisServer::resume`] thaws it.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.process.signal("STOP");
    }

    /// Thaws a server frozen by [`RedisServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.process.signal("CONT");
    }

    /// Kills the server if running and starts it again on the same port and data dir; waits
    /// until it answers PING.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }
}

impl Server for RedisServer {
    const NAME: &'static str = "redis-server";
    const NOT_READY: &'static str = "never answered PING";

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = self.fixed_port.unwrap_or_else(free_port);
        if let Some(t) = &mut self.tls {
            t.port = free_port();
        }
        if let Some(p) = &mut self.cluster_bus_port {
            *p = free_port();
        }
    }

    fn command(&self) -> Result<Command, String> {
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
        ])
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
        cmd.args([
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
        ]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some(bus) = self.cluster_bus_port {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &bus.to_string(),
            ]);
        }
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        ping(self.port, self.password.as_deref())
    }
}

/// Whether a Redis server on `port` answers `PING` with `+PONG` (after `AUTH password`).
fn ping(port: u16, password: Option<&str>) -> bool {
    let Some(mut s) = process::connect(port, Duration::from_millis(500)) else {
        return false;
    };
    if let Some(p) = password {
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len());
        let mut ok = [0u8; 5];
        if s.write_all(auth.as_bytes()).is_err()
            || s.read_exact(&mut ok).is_err()
            || &ok != b"+OK\r\n"
        {
            return false;
        }
    }
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
