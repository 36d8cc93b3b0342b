//! [`MySqlServer`]: a private MariaDB instance (Debian package `mariadb-server`) on a free port.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{find_binary, free_port, is_root};

/// The Debian package that ships `mariadbd` and `mariadb-install-db`.
const PACKAGE: &str = "mariadb-server";

/// A `mariadbd` child process of its own: a data dir made by `mariadb-install-db` in a fresh
/// temp dir, listening on a free 127.0.0.1 port with its own socket and pid files, and a
/// database ([`MySqlServer::database`]) plus a user ([`MySqlServer::user`] /
/// [`MySqlServer::password`], all privileges, from any host) made for the tests by an init
/// file run at every start. InnoDB commits are flushed to disk (the server default), so
/// acknowledged writes survive [`MySqlServer::kill`] and [`MySqlServer::restart`]. Killed on
/// drop.
#[derive(Debug)]
pub struct MySqlServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    fixed_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl MySqlServer {
    /// The test database.
    pub const DATABASE: &'static str = "layotto";
    /// The test user (all privileges on every database, from any host).
    pub const USER: &'static str = "layotto";
    /// Password of [`MySqlServer::USER`].
    pub const PASSWORD: &'static str = "layotto-secret";

    /// Makes a data dir, starts the server and waits until it greets clients.
    ///
    /// # Panics
    /// When `mariadbd` or `mariadb-install-db` is not installed (names the Debian package
    /// `mariadb-server`), when the data dir cannot be made, or when the server does not answer
    /// within 20 s.
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// As [`MySqlServer::start`], on `port`, with `root_password` (when given) as the password
    /// of `root` from any host: the user and port a config file names, in a private network
    /// namespace.
    ///
    /// # Panics
    /// As [`MySqlServer::start`], also when `port` is taken.
    pub fn start_on(port: u16, root_password: Option<&str>) -> Self {
        Self::start_with(Some(port), root_password)
    }

    fn start_with(fixed_port: Option<u16>, root_password: Option<&str>) -> Self {
        let binary = find_binary("mariadbd", PACKAGE);
        let install = find_binary("mariadb-install-db", PACKAGE);
        let dir = tempfile::Builder::new()
            .prefix("layotto-mariadb-")
            .tempdir()
            .expect("create a temp dir for mariadbd");
        let mut cmd = Command::new(&install);
        // Each instance gets its own tmpdir: concurrent bootstraps sharing /tmp collide on
        // their temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("mariadb tmpdir");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=8M",
            ]);
        if is_root() {
            cmd.arg("--user=root");
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", install.display()));
        assert!(
            out.status.success(),
            "mariadb-install-db failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            dir.path().join("init.sql"),
            format!(
                "CREATE DATABASE IF NOT EXISTS `{db}`;\n\
                 CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{pw}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION;\n{root}",
                db = Self::DATABASE,
                user = Self::USER,
                pw = Self::PASSWORD,
                root = root_password.map_or_else(String::new, |p| {
                    // The bootstrap may have made host-specific root accounts, which take
                    // precedence over '%': give each the password.
                    ["%", "127.0.0.1", "::1", "localhost"]
                        .iter()
                        .map(|h| {
                            format!(
                                "CREATE USER IF NOT EXISTS 'root'@'{h}' IDENTIFIED BY '{p}';\n\
                                 ALTER USER 'root'@'{h}' IDENTIFIED BY '{p}';\n\
                                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'{h}' WITH GRANT OPTION;\n"
                            )
                        })
                        .collect::<String>()
                }),
            ),
        )
        .expect("write the init file");
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            fixed_port,
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

    /// The test database ([`MySqlServer::DATABASE`]).
    pub fn database(&self) -> &'static str {
        Self::DATABASE
    }

    /// The test user ([`MySqlServer::USER`]).
    pub fn user(&self) -> &'static str {
        Self::USER
    }

    /// The test user's password ([`MySqlServer::PASSWORD`]).
    pub fn password(&self) -> &'static str {
        Self::PASSWORD
    }

    /// `mysql://user:password@127.0.0.1:port/database`.
    pub fn url(&self) -> String {
        format!(
            "mysql://{}:{}@{}/{}",
            Self::USER,
            Self::PASSWORD,
            self.addr(),
            Self::DATABASE
        )
    }

    /// The Unix socket of the server.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// The temp dir: `data/` (the data dir), the socket, pid, init and error-log files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL, no clean shutdown) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Freezes the server (SIGSTOP): it keeps its sockets but answers nothing, like a host
    /// behind a network partition. [`MySqlServer::resume`] thaws it.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.process.signal("STOP");
    }

    /// Thaws a server frozen by [`MySqlServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.process.signal("CONT");
    }

    /// Kills the server if running and starts it again on the same port and data dir (InnoDB
    /// recovers what was committed); waits until it greets clients.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }
}

impl Server for MySqlServer {
    const NAME: &'static str = "mariadbd";
    const NOT_READY: &'static str = "never greeted a client";

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = self.fixed_port.unwrap_or_else(free_port);
    }

    fn command(&self) -> Result<Command, String> {
        let d = self.dir.path();
        let log = self.log();
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--init-file={}", d.join("init.sql").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=32M",
                "--innodb-use-native-aio=0",
                "--innodb-flush-log-at-trx-commit=1",
            ]);
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.stderr(Stdio::null());
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        greets(self.port)
    }

    fn context(&self) -> String {
        format!(": {}", process::last_lines(&self.log(), 8))
    }
}

/// Whether a server on `port` sends the MySQL protocol-10 greeting (the init file has run by
/// then: `mariadbd` listens only after it).
fn greets(port: u16) -> bool {
    let Some(mut s) = process::connect(port, Duration::from_secs(2)) else {
        return false;
    };
    let mut head = [0u8; 5];
    // 3-byte length, sequence id 0, then protocol version 10.
    s.read_exact(&mut head).is_ok() && head[3] == 0 && head[4] == 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_package() {
        let r = std::panic::catch_unwind(|| find_binary("layotto-no-such-mariadbd", PACKAGE));
        let payload = r.expect_err("the binary does not exist");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            msg.contains("apt-get install -y mariadb-server")
                && msg.contains("layotto-no-such-mariadbd"),
            "{msg}"
        );
    }

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut s = MySqlServer::start();
        let port = s.port();
        assert!(greets(port));
        assert!(s.socket().exists());
        s.kill();
        assert!(!greets(port));
        s.restart();
        assert_eq!(s.port(), port);
        assert!(greets(port));
        assert!(s.dir().join("data").join(MySqlServer::DATABASE).is_dir());
        assert_eq!(
            s.url(),
            format!("mysql://layotto:layotto-secret@127.0.0.1:{port}/layotto")
        );
    }
}
