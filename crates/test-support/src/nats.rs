//! [`NatsServer`]: a `nats-server` (Debian package `nats-server`) with JetStream on free ports.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{self, Process, Server};
use crate::{find_binary, free_port};

/// A `nats-server` child process with JetStream enabled (`-js`), listening for clients on a
/// free 127.0.0.1 port, its monitoring endpoint on another, and its JetStream store in a fresh
/// temp dir, so streams and acknowledged messages survive [`NatsServer::restart`]. Killed on
/// drop.
#[derive(Debug)]
pub struct NatsServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    monitor_port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and waits until its `/healthz` (which covers JetStream) answers 200.
    ///
    /// # Panics
    /// When `nats-server` is not installed (names the Debian package `nats-server`), or the
    /// server does not become healthy within 20 s.
    pub fn start() -> Self {
        let binary = find_binary("nats-server", "nats-server");
        let dir = tempfile::Builder::new()
            .prefix("layotto-nats-")
            .tempdir()
            .expect("create a temp dir for nats-server");
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            monitor_port: 0,
            dir,
        })
    }

    /// `nats://127.0.0.1:port`, the URL Dapr's `natsURL` takes.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding the JetStream store.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server if running and starts it again on the same ports and store; waits
    /// until it is healthy.
    ///
    /// # Panics
    /// When the server does not come back within 20 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }
}

impl Server for NatsServer {
    const NAME: &'static str = "nats-server";
    const NOT_READY: &'static str = "never answered /healthz";

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = free_port();
        self.monitor_port = free_port();
    }

    fn command(&self) -> Result<Command, String> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .args(["-js", "-sd"])
            .arg(self.dir.path().join("jetstream"))
            .args(["--server_name", "layotto-test", "-l"])
            .arg(self.dir.path().join("nats.log"));
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        process::http_get(self.monitor_port, "/healthz").is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut s = NatsServer::start();
        let port = s.port();
        assert!(s.ready());
        s.kill();
        assert!(!s.ready());
        s.restart();
        assert_eq!(s.port(), port);
        assert!(s.ready());
        assert!(s.dir().join("jetstream").is_dir());
    }
}
