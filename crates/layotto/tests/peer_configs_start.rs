//! Every config file Layotto ships whose backends run here starts unchanged, against real servers
//! on the ports the file names, and answers readiness UP.
//!
//! The files name fixed ports (Redis on 6380, etcd on 2379, ZooKeeper on 2181, MongoDB on
//! 27017, MySQL on 3306, the sidecar itself on 34904 and 34999). So that no file needs an edit
//! and no fixed port is taken on the machine, this test runs in a private network namespace:
//! the binary re-executes itself under `unshare --net` (as root, or through a user namespace
//! otherwise) and brings the namespace's loopback up. When the namespace cannot be made the test
//! fails saying so; it never skips. (`config_uds.json`'s socket, `/tmp/client-proxy.sock`, is a
//! file, not a port: it is created where the file says and removed at the sidecar's stop; the
//! file system is shared, since the project itself may live under `/tmp`.)
//!
//! Per file: its servers start on its ports, `layotto start -c FILE` runs from the directory its
//! relative paths expect (Layotto's own files assume the repository root, or `cmd/layotto`
//! for `../../configs/...`), and the sidecar must answer `GET /actuator/health/readiness` with
//! UP (files without an actuator listener: a `SayHello` over their gRPC listener, TCP or Unix
//! socket). The list of files started here must be exactly the files `validate` accepts.
#![allow(missing_docs)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use layotto_test_support::{
    EtcdServer, FerretDbServer, MySqlServer, RedisServer, ZooKeeperServer, is_root,
};

/// Set in the environment of the re-executed binary, inside the namespace.
const INSIDE: &str = "LAYOTTO_PEER_CONFIGS_NETNS";
/// This test's name, for cargo's test filters.
const NAME: &str = "peer_configs_start_unchanged_in_a_private_network_namespace";

/// A server a file needs, on the port the file names.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// Port and `requirepass` password.
    Redis(u16, Option<&'static str>),
    Etcd(u16),
    ZooKeeper(u16),
    Mongo(u16),
    /// Port and root password.
    MySql(u16, &'static str),
}

/// How the sidecar of a file shows it is ready.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// `GET /actuator/health/readiness` on this port answers UP.
    Actuator(u16),
    /// `SayHello` to the `helloworld` component over gRPC on this port.
    Hello(u16),
    /// `SayHello` over gRPC on this Unix socket.
    HelloUnix(&'static str),
}

/// Where Layotto's own docs start the binary: the repository root, or `cmd/layotto`.
#[derive(Debug, Clone, Copy)]
enum Cwd {
    Root,
    CmdLayotto,
}

/// Every file `validate` accepts, with what it needs.
const CASES: &[(&str, &[Backend], Probe, Cwd)] = &[
    ("config.json", &[], Probe::Actuator(34999), Cwd::Root),
    (
        "config_standalone.json",
        &[],
        Probe::Actuator(34999),
        Cwd::CmdLayotto,
    ),
    (
        "config_redis.json",
        &[Backend::Redis(6380, None)],
        Probe::Actuator(34999),
        Cwd::Root,
    ),
    (
        "config_uds.json",
        &[],
        Probe::HelloUnix("/tmp/client-proxy.sock"),
        Cwd::Root,
    ),
    (
        "runtime_config.json",
        &[Backend::Etcd(2379)],
        Probe::Hello(34904),
        Cwd::Root,
    ),
    (
        "config_ref_example.json",
        // The sequencer's `redisPassword` comes from the secret store: `redis123` in
        // `configs/secret/config_secret_local_file.json`.
        &[Backend::Redis(6380, Some("redis123")), Backend::Etcd(2379)],
        Probe::Actuator(34999),
        Cwd::CmdLayotto,
    ),
    (
        "config_snowflake.json",
        &[Backend::MySql(3306, "123456")],
        Probe::Actuator(34999),
        Cwd::Root,
    ),
    (
        "config_zookeeper.json",
        &[Backend::ZooKeeper(2181)],
        Probe::Actuator(34999),
        Cwd::Root,
    ),
    (
        "config_integrate_test.json",
        &[
            Backend::Redis(6380, None),
            Backend::Etcd(2379),
            Backend::ZooKeeper(2181),
        ],
        Probe::Actuator(34999),
        Cwd::Root,
    ),
    (
        "config_mongo.json",
        &[Backend::Mongo(27017)],
        Probe::Actuator(34999),
        Cwd::Root,
    ),
    (
        "config_trace_jaeger.json",
        &[Backend::Etcd(2379)],
        Probe::Hello(34904),
        Cwd::Root,
    ),
    (
        "config_trace_skywalking.json",
        &[Backend::Etcd(2379)],
        Probe::Hello(34904),
        Cwd::Root,
    ),
    (
        "config_trace_zipkin.json",
        &[Backend::Etcd(2379)],
        Probe::Hello(34904),
        Cwd::Root,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    // A cargo test filter that does not select this test: nothing runs, and it says so.
    if let Some(f) = args.iter().find(|a| !a.starts_with('-'))
        && !NAME.contains(f.as_str())
    {
        println!("running 0 tests ({NAME} filtered out)");
        return;
    }
    if std::env::var_os(INSIDE).is_some() {
        inside();
        println!("test {NAME} ... ok");
    } else {
        outside();
    }
}

fn unshare() -> Command {
    let mut c = Command::new("unshare");
    if !is_root() {
        c.arg("--map-root-user");
    }
    c.arg("--net");
    c
}

/// Re-executes this binary inside a fresh network namespace; fails when it cannot.
fn outside() {
    let probe = unshare().arg("true").output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{NAME} needs a private network namespace (root, or unprivileged user namespaces) \
             and could not make one: `unshare --net true` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "{NAME} needs `unshare` (Debian package util-linux) to make a private network \
             namespace: {e}"
        ),
    }
    let exe = std::env::current_exe().expect("path of this test binary");
    let status = unshare()
        .arg("--")
        .arg(exe)
        .args(std::env::args().skip(1))
        .env(INSIDE, "1")
        .status()
        .expect("run the test inside the namespace");
    assert!(
        status.success(),
        "{NAME} failed inside its namespace ({status})"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn peer_configs() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/layotto/configs");
    assert!(
        dir.is_dir(),
        "Layotto's config files are expected at {} (the shared peers folder beside the project)",
        dir.display()
    );
    dir.canonicalize().expect("canonical configs path")
}

fn inside() {
    run(Command::new("ip").args(["link", "set", "lo", "up"]));
    let configs = peer_configs();
    check_cases_cover_what_validates(&configs);

    // A root whose `configs` is Layotto's folder, and its `cmd/layotto`.
    let root = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&configs, root.path().join("configs")).expect("symlink configs");
    let cmd_dir = root.path().join("cmd/layotto");
    std::fs::create_dir_all(&cmd_dir).expect("cmd/layotto");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (file, backends, probe, cwd) in CASES {
        let started = Instant::now();
        let servers: Vec<Box<dyn std::any::Any>> = backends.iter().map(|b| start(*b)).collect();
        let dir = match cwd {
            Cwd::Root => root.path(),
            Cwd::CmdLayotto => &cmd_dir,
        };
        let mut sidecar = Sidecar::start(&configs.join(file), dir);
        let ready = rt.block_on(wait_ready(*probe, &mut sidecar));
        if let Err(e) = ready {
            let log = sidecar.stop();
            panic!("{file}: {e}\nsidecar log:\n{log}");
        }
        sidecar.stop();
        drop(servers);
        // The killed sidecar could not remove its socket file.
        if let Probe::HelloUnix(path) = probe {
            let _ = std::fs::remove_file(path);
        }
        println!(
            "{file}: ready ({} server(s)) in {:.1} s",
            backends.len(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// Every file `validate` accepts is in [`CASES`], and every case validates.
fn check_cases_cover_what_validates(configs: &Path) {
    let mut validating = Vec::new();
    for entry in std::fs::read_dir(configs).expect("read configs") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let (code, _, _) = support::run_cli(&["validate", "-c", path.to_str().expect("utf-8")]);
        if code == 0 {
            validating.push(
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    validating.sort();
    let mut cases: Vec<String> = CASES.iter().map(|c| c.0.to_owned()).collect();
    cases.sort();
    assert_eq!(
        validating, cases,
        "the files started here must be exactly the files `validate` accepts"
    );
}

fn start(b: Backend) -> Box<dyn std::any::Any> {
    match b {
        Backend::Redis(p, pw) => Box::new(RedisServer::start_on(p, pw)),
        Backend::Etcd(p) => Box::new(EtcdServer::start_on(p)),
        Backend::ZooKeeper(p) => Box::new(ZooKeeperServer::start_on(p)),
        Backend::Mongo(p) => Box::new(FerretDbServer::start_on(p)),
        Backend::MySql(p, pw) => Box::new(MySqlServer::start_on(p, Some(pw))),
    }
}

/// `layotto start -c FILE` from `dir`, its log in a file.
struct Sidecar {
    child: Child,
    log: PathBuf,
}

impl Sidecar {
    fn start(file: &Path, dir: &Path) -> Self {
        let log = dir.join("layotto.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_layotto"))
            .arg("start")
            .arg("-c")
            .arg(file)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn layotto");
        Self { child, log }
    }

    /// Stops the sidecar; its log.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `probe` until it succeeds (30 s at most); fails early when the sidecar exits.
async fn wait_ready(probe: Probe, sidecar: &mut Sidecar) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = support::http();
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = sidecar.child.try_wait() {
            return Err(format!("the sidecar exited with {status}"));
        }
        match once(probe, &http).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("not ready within 30 s: {last}"))
}

async fn once(probe: Probe, http: &reqwest::Client) -> Result<(), String> {
    match probe {
        Probe::Actuator(port) => {
            let r = http
                .get(format!("http://127.0.0.1:{port}/actuator/health/readiness"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let body = r.text().await.map_err(|e| e.to_string())?;
            if status.is_success() && body.contains("\"UP\"") {
                Ok(())
            } else {
                Err(format!("readiness {status}: {body}"))
            }
        }
        Probe::Hello(port) => {
            let c = layotto_sdk::Client::connect(format!("http://127.0.0.1:{port}"))
                .await
                .map_err(|e| e.to_string())?;
            hello(&c).await
        }
        Probe::HelloUnix(path) => {
            let channel = tonic::transport::Endpoint::from_static("http://uds")
                .connect_with_connector(tower::service_fn(
                    move |_: tonic::transport::Uri| async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    },
                ))
                .await
                .map_err(|e| e.to_string())?;
            hello(&layotto_sdk::Client::from_channel(channel)).await
        }
    }
}

async fn hello(c: &layotto_sdk::Client) -> Result<(), String> {
    let answer = c
        .say_hello("helloworld", "layotto-rs")
        .await
        .map_err(|e| e.to_string())?;
    if answer.contains("layotto-rs") {
        Ok(())
    } else {
        Err(format!("SayHello answered {answer:?}"))
    }
}
