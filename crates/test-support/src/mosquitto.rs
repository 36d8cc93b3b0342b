//! [`MosquittoServer`]: an MQTT broker (Debian package `mosquitto`) on a free port.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{self, Process, Server};
use crate::{TestCerts, TlsSetup, find_binary, free_port};

/// A `mosquitto` child process listening on a free 127.0.0.1 port (keeping the user it was
/// started as, so it can write its temp dir), anonymous access allowed,
/// persistence in a fresh temp dir (saved on a graceful stop and every second), so sessions,
/// subscriptions and queued QoS 1 messages survive [`MosquittoServer::restart`]. Up to
/// 100,000 messages are queued per offline session. Killed on drop.
#[derive(Debug)]
pub struct MosquittoServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    binary: PathBuf,
    port: u16,
    tls: Option<TlsSetup>,
    dir: tempfile::TempDir,
}

impl MosquittoServer {
    /// Starts the broker and waits until it accepts connections.
    ///
    /// # Panics
    /// When `mosquitto` is not installed (names the Debian package `mosquitto`), or it does
    /// not listen within 20 s.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// As [`MosquittoServer::start`], also listening for MQTT over TLS on
    /// [`MosquittoServer::tls_url`] with certificates from a fresh [`TestCerts`] (see
    /// [`MosquittoServer::certs`]). With `require_client_cert` that listener refuses clients
    /// without a certificate issued by the test CA.
    ///
    /// # Panics
    /// As [`MosquittoServer::start`].
    pub fn start_tls(require_client_cert: bool) -> Self {
        Self::start_with(Some(TlsSetup::new(require_client_cert)))
    }

    fn start_with(tls: Option<TlsSetup>) -> Self {
        let binary = find_binary("mosquitto", "mosquitto");
        let dir = tempfile::Builder::new()
            .prefix("layotto-mosquitto-")
            .tempdir()
            .expect("create a temp dir for mosquitto");
        if let Some(t) = &tls {
            t.write_files(dir.path());
        }
        process::start(Self {
            process: Process::new(Self::NAME),
            binary,
            port: 0,
            tls,
            dir,
        })
    }

    /// `ssl://127.0.0.1:port` of the TLS listener (servers from
    /// [`MosquittoServer::start_tls`] only).
    ///
    /// # Panics
    /// On a server started without TLS.
    pub fn tls_url(&self) -> String {
        format!("ssl://{}", TlsSetup::addr(self.tls.as_ref()))
    }

    /// The certificates of a TLS server.
    ///
    /// # Panics
    /// On a server started without TLS.
    pub fn certs(&self) -> &TestCerts {
        &TlsSetup::of(self.tls.as_ref()).certs
    }

    /// `tcp://127.0.0.1:port`, what Dapr's `url` takes.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The MQTT port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding the configuration, the persistence file and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the broker (SIGKILL): what it had not saved yet (up to a second) is lost.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops the broker gracefully (SIGTERM: it saves its state) and starts it again on the
    /// same port and persistence file; waits until it accepts connections.
    ///
    /// # Panics
    /// When the broker does not come back within 20 s.
    pub fn restart(&mut self) {
        self.process.terminate();
        process::restart(self);
    }
}

impl Server for MosquittoServer {
    const NAME: &'static str = "mosquitto";
    const NOT_READY: &'static str = "never accepted a connection";

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = free_port();
        if let Some(t) = &mut self.tls {
            t.port = free_port();
        }
    }

    fn command(&self) -> Result<Command, String> {
        let d = self.dir.path();
        let conf = d.join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\n\
             user root\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_interval 1\n\
             max_queued_messages 100000\n\
             max_inflight_messages 100\n\
             log_dest file {dir}/mosquitto.log\n",
            port = self.port,
            dir = d.display()
        );
        if let Some(t) = &self.tls {
            text.push_str(&format!(
                "listener {port} 127.0.0.1\n\
                 cafile {dir}/ca.pem\n\
                 certfile {dir}/server.pem\n\
                 keyfile {dir}/server.key\n\
                 require_certificate {require}\n",
                port = t.port,
                dir = d.display(),
                require = t.require_client_cert,
            ));
        }
        std::fs::write(&conf, text).map_err(|e| format!("write {conf:?}: {e}"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c").arg(conf);
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        process::connect(self.port, std::time::Duration::from_secs(1)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_restarts_on_the_same_port() {
        let mut s = MosquittoServer::start();
        let port = s.port();
        assert!(s.ready());
        s.restart();
        assert_eq!(s.port(), port);
        assert!(s.ready());
        s.kill();
        assert!(!s.ready());
    }
}
