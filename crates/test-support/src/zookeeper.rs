//! [`ZooKeeperServer`]: a standalone ZooKeeper (Debian package `zookeeperd`) on a free port.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{free_port, search_path};

/// The jar Debian's `zookeeper` package installs; its manifest's `Class-Path` names the
/// dependencies (netty, jute, metrics...), all in `/usr/share/java`.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An SLF4J binding that discards the server's log lines (the tests read no server log).
const SLF4J_NOP_JAR: &str = "/usr/share/java/slf4j-nop.jar";
/// The standalone server's main class (what `zkServer.sh` runs for a single-server config).
const MAIN_CLASS: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";
/// The server tick: sessions may negotiate timeouts from 2 to 20 ticks (1 s to 10 s).
const TICK_MS: u32 = 500;
/// `jute.maxbuffer` of the test server: 4 MiB, so 1 MiB state values (the state suite's
/// large value) fit in one request; ZooKeeper's default is just under 1 MiB.
const JUTE_MAX_BUFFER: u32 = 4 << 20;

/// A ZooKeeper child process (`java ... ZooKeeperServerMain zoo.cfg`) listening on a free
/// 127.0.0.1 client port only (`clientPortAddress=127.0.0.1`, `admin.enableServer=false`:
/// otherwise the admin server binds every interface), with its data in a fresh temp dir, so
/// acknowledged writes (and sessions) survive [`ZooKeeperServer::restart`]. Killed on drop.
#[derive(Debug)]
pub struct ZooKeeperServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    java: PathBuf,
    port: u16,
    fixed_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl ZooKeeperServer {
    /// Starts a server and waits until it answers `ruok` with `imok` and serves sessions.
    ///
    /// # Panics
    /// When ZooKeeper or java is not installed (names the Debian package `zookeeperd`), or the
    /// server does not answer within 20 s.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// As [`ZooKeeperServer::start`], on `port` (the port a config file names, in a private network
    /// namespace).
    ///
    /// # Panics
    /// As [`ZooKeeperServer::start`], also when `port` is taken.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(Some(port))
    }

    fn start_with(fixed_port: Option<u16>) -> Self {
        let java = installed(Path::new(ZOOKEEPER_JAR));
        let dir = tempfile::Builder::new()
            .prefix("layotto-zookeeper-")
            .tempdir()
            .expect("create a temp dir for ZooKeeper");
        process::start(Self {
            process: Process::new(Self::NAME),
            java,
            port: 0,
            fixed_port,
            dir,
        })
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding `zoo.cfg` and the data dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Freezes the server (SIGSTOP): sockets stay open, nothing answers.
    /// [`ZooKeeperServer::resume`] thaws it.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.process.signal("STOP");
    }

    /// Thaws a server frozen by [`ZooKeeperServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.process.signal("CONT");
    }

    /// Kills the server if running and starts it again on the same port and data dir; waits
    /// until it answers `ruok`.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }
}

impl Server for ZooKeeperServer {
    const NAME: &'static str = "ZooKeeper";
    const NOT_READY: &'static str = "never answered ruok";
    const POLL: Duration = Duration::from_millis(100);

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = self.fixed_port.unwrap_or_else(free_port);
        let _ = std::fs::remove_dir_all(self.data_dir());
    }

    fn command(&self) -> Result<Command, String> {
        let cfg = self.dir.path().join("zoo.cfg");
        let data = self.data_dir();
        std::fs::create_dir_all(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let text = format!(
            "tickTime={TICK_MS}\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr\n\
             maxClientCnxns=60\n\
             minSessionTimeout={}\n\
             maxSessionTimeout={}\n",
            data.display(),
            self.port,
            2 * TICK_MS,
            20 * TICK_MS,
        );
        std::fs::write(&cfg, text).map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let mut cmd = Command::new(&self.java);
        cmd.arg(format!("-Djute.maxbuffer={JUTE_MAX_BUFFER}"))
            .args([
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                &format!("{ZOOKEEPER_JAR}:{SLF4J_NOP_JAR}"),
                MAIN_CLASS,
            ])
            .arg(&cfg);
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        ruok(self.port)
    }
}

/// `java`, after checking that it and the ZooKeeper server `jar` are installed.
///
/// # Panics
/// Naming the missing file and the Debian package `zookeeperd` when either is missing.
fn installed(jar: &Path) -> PathBuf {
    let java = search_path("java");
    assert!(
        java.is_some() && jar.is_file(),
        "ZooKeeper was not found ({} and `java` on PATH): install the Debian package \
         `zookeeperd` (apt-get install -y zookeeperd; its dependency `zookeeper` alone also \
         works and starts no system service) to run these tests",
        jar.display()
    );
    java.unwrap_or_default()
}

/// Whether the server on `port` answers the four-letter word `ruok` with `imok` and `srvr`
/// with its mode (`ruok` answers as soon as the port is open, `srvr` only once the server
/// serves sessions).
fn ruok(port: u16) -> bool {
    four_letter(port, b"ruok").starts_with("imok")
        && four_letter(port, b"srvr").contains("Mode: standalone")
}

/// The answer of the server on `port` to a four-letter word (empty when it does not answer).
fn four_letter(port: u16, word: &[u8]) -> String {
    let Some(mut s) = process::connect(port, Duration::from_secs(2)) else {
        return String::new();
    };
    if s.write_all(word).is_err() {
        return String::new();
    }
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_server_names_the_package() {
        let r = std::panic::catch_unwind(|| installed(Path::new("/nonexistent/zookeeper.jar")));
        let payload = r.expect_err("the jar does not exist");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            msg.contains("apt-get install -y zookeeperd")
                && msg.contains("/nonexistent/zookeeper.jar"),
            "{msg}"
        );
    }

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut s = ZooKeeperServer::start();
        let port = s.port();
        assert!(ruok(port));
        s.kill();
        assert!(!ruok(port));
        s.restart();
        assert_eq!(s.port(), port);
        assert!(ruok(port));
        assert!(s.dir().join("data").is_dir());
        let cfg = std::fs::read_to_string(s.dir().join("zoo.cfg")).expect("zoo.cfg");
        assert!(cfg.contains("clientPortAddress=127.0.0.1"), "{cfg}");
        assert!(cfg.contains("admin.enableServer=false"), "{cfg}");
    }
}
