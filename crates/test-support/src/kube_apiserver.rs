//! [`KubeApiServer`]: a real Kubernetes API server (`kube-apiserver` v1.34.4, built once by
//! [`crate::peers`] from the Go module `k8s.io/kubernetes`) on Debian's `etcd-server`, both on
//! loopback, with RBAC authorization, static bearer tokens and service-account tokens. There
//! is no kubelet or controller manager: objects are admitted and stored, Pods never run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{EtcdServer, TestCerts, free_port, peers};

/// The token of `admin` (group `system:masters`: every right, RBAC bypassed).
const ADMIN_TOKEN: &str = "layotto-admin-token";

/// A `kube-apiserver` child process (killed on drop, with its etcd):
/// - HTTPS on a free 127.0.0.1 port with a certificate from a fresh [`TestCerts`] (names
///   `localhost` and `127.0.0.1`);
/// - `--authorization-mode=RBAC`;
/// - the static token [`KubeApiServer::admin_token`] for user `admin` in `system:masters`;
/// - service-account tokens signed with a fresh ECDSA key, issuer
///   `https://kubernetes.default.svc.cluster.local` (request them with the TokenRequest API).
#[derive(Debug)]
pub struct KubeApiServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    etcd: EtcdServer,
    certs: TestCerts,
    dir: tempfile::TempDir,
}

impl KubeApiServer {
    /// Builds `kube-apiserver` when the peer cache lacks it, starts etcd and the API server,
    /// and waits until `/readyz` answers `ok`.
    ///
    /// # Panics
    /// When the build fails, `etcd` is not installed (names the Debian package
    /// `etcd-server`), or the server is not ready within 90 s.
    pub fn start() -> Self {
        let binary = peers::binary(&peers::KUBE_APISERVER);
        let etcd = EtcdServer::start();
        let dir = tempfile::Builder::new()
            .prefix("layotto-kube-apiserver-")
            .tempdir()
            .expect("create a temp dir for kube-apiserver");
        let certs = TestCerts::generate();
        let d = dir.path();
        let sa = rcgen::KeyPair::generate().expect("service-account key");
        for (name, text) in [
            ("tls.crt", certs.server_cert.clone()),
            ("tls.key", certs.server_key.clone()),
            ("sa.key", sa.serialize_pem()),
            ("sa.pub", sa.public_key_pem()),
            (
                "tokens.csv",
                format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n"),
            ),
        ] {
            std::fs::write(d.join(name), text).expect("write kube-apiserver files");
        }
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            etcd,
            certs,
            dir,
        })
    }

    /// `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) that issued the server's certificate.
    pub fn ca_cert(&self) -> &str {
        &self.certs.ca_cert
    }

    /// The test certificates; their server certificate (for `localhost` and `127.0.0.1`)
    /// also suits a webhook the API server calls, as the API server trusts
    /// [`KubeApiServer::ca_cert`] when it is the webhook's `caBundle`.
    pub fn certs(&self) -> &TestCerts {
        &self.certs
    }

    /// The bearer token of the cluster administrator.
    pub fn admin_token(&self) -> &str {
        ADMIN_TOKEN
    }

    /// A rustls client configuration trusting this server's CA (and nothing else).
    pub fn client_tls(&self) -> rustls::ClientConfig {
        tls_trusting(&self.certs.ca_cert).expect("the test CA parses")
    }

    /// A kubeconfig (YAML) for this server authenticating with `token`.
    pub fn kubeconfig(&self, token: &str, namespace: &str) -> String {
        let ca = base64(self.certs.ca_cert.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: test\n  user:\n    token: {token}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    \
             namespace: {namespace}\ncurrent-context: test\n",
            self.url()
        )
    }
}

impl Server for KubeApiServer {
    const NAME: &'static str = "kube-apiserver";
    const NOT_READY: &'static str = "never answered /readyz with ok";
    const POLL: Duration = Duration::from_millis(200);
    const TIMEOUT: Duration = Duration::from_secs(90);

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
        let d = self.dir.path();
        let f = |n: &str| d.join(n).display().to_string();
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            format!("--etcd-servers=http://{}", self.etcd.addr()),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", self.port),
            format!("--cert-dir={}", f("certs")),
            format!("--tls-cert-file={}", f("tls.crt")),
            format!("--tls-private-key-file={}", f("tls.key")),
            format!("--token-auth-file={}", f("tokens.csv")),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!("--service-account-key-file={}", f("sa.pub")),
            format!("--service-account-signing-key-file={}", f("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/24".to_owned(),
            "--enable-priority-and-fairness=false".to_owned(),
            "--profiling=false".to_owned(),
            "--v=0".to_owned(),
        ])
        .stderr(
            std::fs::File::create(d.join("kube-apiserver.log"))
                .map_err(|e| format!("create the log: {e}"))?,
        );
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        https_get(self.port, "/readyz", ADMIN_TOKEN, &self.certs.ca_cert)
            .is_some_and(|(status, body)| status == 200 && body.trim() == "ok")
    }

    fn context(&self) -> String {
        format!(
            "\nlast lines of its log:\n{}",
            process::last_lines(&self.dir.path().join("kube-apiserver.log"), 15)
        )
    }
}

/// Standard base64 of `bytes`.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A rustls client configuration (ring) trusting only the certificates of `ca_pem`.
fn tls_trusting(ca_pem: &str) -> Option<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.ok()?).ok()?;
    }
    Some(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// `GET path` over HTTPS (HTTP/1.0, so the body ends with the connection) with a bearer
/// token, trusting `ca_pem`: the status and body, `None` when the server does not answer.
fn https_get(port: u16, path: &str, token: &str, ca_pem: &str) -> Option<(u16, String)> {
    let config = tls_trusting(ca_pem)?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().ok()?).ok()?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    // The server may close without close_notify; what arrived counts.
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
