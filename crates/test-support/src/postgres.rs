//! [`PostgresServer`]: a private PostgreSQL cluster (Debian package `postgresql`) on a free
//! port.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{free_port, is_root, search_path};

/// The Debian package that ships `initdb` and `postgres`.
const PACKAGE: &str = "postgresql";

/// A `postgres` child process of its own: a cluster made by `initdb` in a fresh temp dir
/// (trust authentication, so any password is accepted), listening on a free 127.0.0.1 port
/// with its socket in that dir. Commits are fsynced (the server default), so acknowledged
/// writes survive [`PostgresServer::kill`] and [`PostgresServer::restart`]. Killed on drop.
///
/// `initdb` and `postgres` refuse to run as root: run as root, the harness runs them as the
/// `postgres` user the Debian package creates (the temp dir is handed to it), and fails
/// naming that user when it is missing.
#[derive(Debug)]
pub struct PostgresServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// The superuser (and the test user).
    pub const USER: &'static str = "postgres";
    /// Any password works (trust authentication); clients that insist on one send this.
    pub const PASSWORD: &'static str = "layotto-secret";
    /// The database the tests use.
    pub const DATABASE: &'static str = "postgres";

    /// Makes a cluster, starts the server and waits until it accepts a session.
    ///
    /// # Panics
    /// When `initdb` or `postgres` is not installed (names the Debian package `postgresql`),
    /// when run as root without a `postgres` user, when `initdb` fails, or when the server does
    /// not accept a session within 20 s.
    pub fn start() -> Self {
        let initdb = pg_binary("initdb");
        let binary = pg_binary("postgres");
        let owner = is_root().then(|| {
            user_ids(Self::USER).unwrap_or_else(|| {
                panic!(
                    "PostgreSQL refuses to run as root and there is no `{}` user to run it as: \
                     install the Debian package `{PACKAGE}`, which creates it",
                    Self::USER
                )
            })
        });
        let dir = tempfile::Builder::new()
            .prefix("layotto-postgres-")
            .tempdir()
            .expect("create a temp dir for postgres");
        if let Some((uid, gid)) = owner {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod the postgres temp dir");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the temp dir to the postgres user");
        }
        let mut cmd = Command::new(&initdb);
        cmd.arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                Self::USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .current_dir(dir.path());
        as_owner(&mut cmd, owner);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", initdb.display()));
        assert!(
            out.status.success(),
            "initdb failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            owner,
            port: 0,
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

    /// A key/value connection string, as Dapr's `connectionString` takes it:
    /// `host=127.0.0.1 port=<port> user=postgres password=... dbname=postgres sslmode=disable`.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={} password={} dbname={} sslmode=disable",
            self.port,
            Self::USER,
            Self::PASSWORD,
            Self::DATABASE
        )
    }

    /// `postgres://postgres:...@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}/{}",
            Self::USER,
            Self::PASSWORD,
            self.addr(),
            Self::DATABASE
        )
    }

    /// The temp dir: `data/` (the cluster), the socket and `server.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL, no clean shutdown) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server if running and starts it again on the same port and cluster (the
    /// write-ahead log recovers what was committed); waits until it accepts a session.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Server for PostgresServer {
    const NAME: &'static str = "postgres";
    const NOT_READY: &'static str = "never accepted a session";

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
        let log = std::fs::File::create(self.log()).map_err(|e| format!("server.log: {e}"))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(self.log(), Some(uid), Some(gid))
                .map_err(|e| format!("chown server.log: {e}"))?;
        }
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-D")
            .arg(d.join("data"))
            .arg("-k")
            .arg(d)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=300"])
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        as_owner(&mut cmd, self.owner);
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        accepts_session(self.port)
    }

    fn context(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(": {}", lines[lines.len().saturating_sub(8)..].join("\n"))
    }
}

/// Runs `cmd` as `owner` (uid, gid) when given (as root, for `initdb` and `postgres`).
fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid)
            .gid(gid)
            .env("HOME", "/tmp")
            .env("USER", PostgresServer::USER);
    }
}

/// A PostgreSQL server binary: on `PATH`, else in Debian's `/usr/lib/postgresql/<version>/bin`
/// (the newest version). Panics naming the package when missing.
fn pg_binary(name: &str) -> PathBuf {
    if let Some(p) = search_path(name) {
        return p;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` was not found on PATH nor in /usr/lib/postgresql/*/bin: install the \
                 Debian package `{PACKAGE}` (apt-get install -y {PACKAGE}) to run these tests"
            )
        })
}

/// The uid and gid of `user` from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

/// Whether the server on `port` starts a session for `postgres` on database `postgres`: the
/// startup message is answered with `AuthenticationOk` (trust), not with an error (the
/// cluster still starting up or recovering).
fn accepts_session(port: u16) -> bool {
    let Some(mut s) = process::connect(port, Duration::from_secs(2)) else {
        return false;
    };
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for part in [
        "user",
        PostgresServer::USER,
        "database",
        PostgresServer::DATABASE,
    ] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = u32::try_from(body.len() + 4)
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    msg.extend_from_slice(&body);
    let mut reply = [0u8; 9];
    s.write_all(&msg).is_ok()
        && s.read_exact(&mut reply).is_ok()
        // 'R', length 8, auth code 0 (AuthenticationOk).
        && reply[0] == b'R'
        && reply[5..9] == [0, 0, 0, 0]
}
