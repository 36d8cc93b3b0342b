//! The binary started as daprd is (no subcommand, daprd's flags), and raw HTTP/1.1 requests
//! to it over TCP or a unix socket.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A running sidecar; killed when dropped.
pub struct Daprd {
    pub child: Child,
    pub http: u16,
    pub grpc: u16,
    pub metrics: u16,
    /// The port that replaced `{internal}` in the arguments (0 when none did).
    pub internal: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Daprd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daprd {
    /// Starts the binary with `args` (`{dir}` is replaced by a fresh temp dir, which holds
    /// `files`, each `(name, content)`; `{internal}` by a free port, kept in
    /// [`Daprd::internal`]), plus `--dapr-http-port`, `--dapr-grpc-port` and `--metrics-port`
    /// on free ports, and waits until `ready` (default: `/v1.0/healthz` on the HTTP port
    /// answers 204).
    ///
    /// A free port can be taken by another connection between choosing and binding it: a
    /// sidecar that exits with "Address already in use" is started again on fresh ports (up
    /// to 5 times).
    pub fn start(
        files: &[(&str, &str)],
        args: &[&str],
        env: &[(&str, &str)],
        ready: Option<&dyn Fn(&Daprd) -> bool>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8").to_owned();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content.replace("{dir}", &root)).expect("write");
        }
        let mut dir = Some(dir);
        for attempt in 1.. {
            let (http, grpc, metrics) = (free_port(), free_port(), free_port());
            let internal = if args.iter().any(|a| a.contains("{internal}")) {
                free_port()
            } else {
                0
            };
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_layotto"));
            cmd.args(args.iter().map(|a| {
                a.replace("{dir}", &root)
                    .replace("{internal}", &internal.to_string())
            }))
            .args(["--dapr-http-port", &http.to_string()])
            .args(["--dapr-grpc-port", &grpc.to_string()])
            .args(["--metrics-port", &metrics.to_string()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut d = Daprd {
                child: cmd.spawn().expect("spawn layotto"),
                http,
                grpc,
                metrics,
                internal,
                dir: dir.take().expect("the directory of the previous attempt"),
            };
            let healthz = |d: &Daprd| {
                request(d.http, "GET", "/v1.0/healthz", &[], "").is_some_and(|r| r.status == 204)
            };
            let ready = ready.unwrap_or(&healthz);
            let deadline = Instant::now() + Duration::from_secs(20);
            let exited = loop {
                if ready(&d) {
                    return d;
                }
                if let Ok(Some(status)) = d.child.try_wait() {
                    break format!("layotto exited with {status}: {}", d.stderr());
                }
                assert!(Instant::now() < deadline, "not ready within 20 s");
                std::thread::sleep(Duration::from_millis(50));
            };
            if attempt == 5 || !exited.contains("Address already in use") {
                panic!("{exited}");
            }
            dir = Some(std::mem::replace(
                &mut d.dir,
                tempfile::tempdir().expect("tempdir"),
            ));
        }
        unreachable!("the fifth attempt returns or panics")
    }

    /// Everything the process wrote to stderr (once it has exited).
    pub fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The header lines, as sent.
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn exchange(
    mut s: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Reply> {
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        extra.push_str("Content-Type: application/json\r\n");
    }
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut got = String::new();
    s.read_to_string(&mut got).ok()?;
    let status = got.get(9..12)?.parse().ok()?;
    let (head, body) = got.split_once("\r\n\r\n")?;
    Some(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A plain HTTP/1.1 request to 127.0.0.1:`port` (no client library needed for this).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Reply> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    exchange(s, method, path, headers, body)
}

/// Waits (10 s at most) until the metadata API of the sidecar at HTTP port `http` lists
/// `count` subscriptions, and returns them: they are in place then.
pub fn wait_for_subscriptions(http: u16, count: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let meta = request(http, "GET", "/v1.0/metadata", &[], "").expect("metadata");
        let v: serde_json::Value = serde_json::from_str(&meta.body).expect("json");
        if v["subscriptions"]
            .as_array()
            .is_some_and(|s| s.len() == count)
        {
            return v["subscriptions"].clone();
        }
        assert!(Instant::now() < deadline, "subscriptions: {}", meta.body);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The same request over the unix socket `socket`.
pub fn request_unix(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: &str,
) -> Option<Reply> {
    let s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    exchange(s, method, path, &[], body)
}

/// Dapr's own sidecar, `daprd` v1.14.0 as the harness builds it (`peers::DAPRD`); killed on
/// drop.
pub struct RealDaprd {
    pub child: Child,
    pub http: u16,
    pub grpc: u16,
}

impl Drop for RealDaprd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts daprd with `args` plus its HTTP, gRPC, internal gRPC and metrics ports on free ports,
/// kept on loopback (`--dapr-listen-addresses 127.0.0.1`, `DAPR_HOST_IP=127.0.0.1`, else it
/// probes an outside address), logging warnings only; waits until `/v1.0/healthz` answers 204
/// (60 s). A daprd that exits before (a port taken between choosing and binding it) is started
/// again on fresh ports, up to 5 times.
pub fn start_real_daprd(args: &[&str]) -> RealDaprd {
    let bin = layotto_test_support::peers::binary(&layotto_test_support::peers::DAPRD);
    for attempt in 1..=5 {
        let (http, grpc, internal, metrics) = (free_port(), free_port(), free_port(), free_port());
        let child = Command::new(&bin)
            .args(args)
            .args(["--dapr-http-port", &http.to_string()])
            .args(["--dapr-grpc-port", &grpc.to_string()])
            .args(["--dapr-internal-grpc-port", &internal.to_string()])
            .args(["--metrics-port", &metrics.to_string()])
            .args([
                "--dapr-listen-addresses",
                "127.0.0.1",
                "--log-level",
                "warn",
            ])
            .env("DAPR_HOST_IP", "127.0.0.1")
            .env("NAMESPACE", "")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn daprd");
        let mut d = RealDaprd { child, http, grpc };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if request(http, "GET", "/v1.0/healthz", &[], "").is_some_and(|r| r.status == 204) {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                assert!(
                    attempt < 5,
                    "daprd exited with {status} (attempt {attempt})"
                );
                break;
            }
            assert!(Instant::now() < deadline, "daprd not healthy within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    unreachable!("the fifth attempt returns or panics")
}
