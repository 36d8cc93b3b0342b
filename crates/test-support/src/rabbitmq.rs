//! [`RabbitMqServer`]: a RabbitMQ node (Debian package `rabbitmq-server`) on free ports.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{TestCerts, TlsSetup, find_binary, free_port};

/// `guest`/`guest` in RabbitMQ's `rabbit_password_hashing_sha256` form (base64 of a 4-byte
/// salt, then SHA-256 of salt and password), for the definitions a TLS node loads.
const GUEST_HASH: &str = "kI3GCrswBLNZQzHJJ95QLoyfAVooYhnvf7jbqiW9BjOYUloe";

/// The node's server script: run directly (the Debian wrapper in `/usr/sbin` switches to the
/// `rabbitmq` user).
const SERVER_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ node kept on loopback: AMQP on a free 127.0.0.1 port, its Erlang distribution
/// port and its own `epmd` (also on loopback) on others, its database
/// and logs in a fresh temp dir, so durable queues and persistent messages survive
/// [`RabbitMqServer::restart`]. `guest`/`guest` may log in over loopback. Killed on drop.
#[derive(Debug)]
pub struct RabbitMqServer {
    // First, so the processes die before the temp dir goes.
    process: Process,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    epmd: PathBuf,
    tls: Option<TlsSetup>,
    dir: tempfile::TempDir,
}

impl RabbitMqServer {
    /// Starts `epmd` and the node; waits until the node answers the AMQP protocol header.
    ///
    /// # Panics
    /// When RabbitMQ is not installed (names the Debian package `rabbitmq-server`), or the
    /// node does not answer within 60 s.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// As [`RabbitMqServer::start`], also serving AMQP over TLS on
    /// [`RabbitMqServer::tls_url`] with a fresh [`TestCerts`] (see [`RabbitMqServer::certs`]).
    /// That listener requires a client certificate issued by the test CA, and offers SASL
    /// `EXTERNAL` (plugin `rabbitmq_auth_mechanism_ssl`) as well as `PLAIN`: the user named by
    /// the client certificate's common name (`layotto-client`) exists without a password,
    /// with all rights on vhost `/`, beside `guest`/`guest`.
    ///
    /// # Panics
    /// As [`RabbitMqServer::start`].
    pub fn start_tls() -> Self {
        Self::start_with(Some(TlsSetup::new(true)))
    }

    fn start_with(tls: Option<TlsSetup>) -> Self {
        assert!(
            Path::new(SERVER_SCRIPT).is_file(),
            "`{SERVER_SCRIPT}` was not found: install the Debian package `rabbitmq-server` \
             (apt-get install -y rabbitmq-server) to run these tests"
        );
        let epmd = find_binary("epmd", "erlang-base");
        let dir = tempfile::Builder::new()
            .prefix("layotto-rabbitmq-")
            .tempdir()
            .expect("create a temp dir for rabbitmq");
        let d = dir.path();
        let mut plugins = "[].\n";
        if let Some(t) = &tls {
            t.write_files(d);
            plugins = "[rabbitmq_auth_mechanism_ssl].\n";
            let user = |name: &str, hash: &str| {
                format!(
                    r#"{{"name":"{name}","password_hash":"{hash}","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"]}}"#
                )
            };
            let perm = |name: &str| {
                format!(
                    r#"{{"user":"{name}","vhost":"/","configure":".*","write":".*","read":".*"}}"#
                )
            };
            std::fs::write(
                d.join("definitions.json"),
                format!(
                    r#"{{"users":[{},{}],"vhosts":[{{"name":"/"}}],"permissions":[{},{}]}}"#,
                    user("guest", GUEST_HASH),
                    user("layotto-client", ""),
                    perm("guest"),
                    perm("layotto-client")
                ),
            )
            .expect("write definitions.json");
        }
        std::fs::write(d.join("enabled_plugins"), plugins).expect("write plugins");
        process::start(Self {
            process: Process::new(Self::NAME),
            port: 0,
            dist_port: 0,
            epmd_port: 0,
            epmd,
            tls,
            dir,
        })
    }

    /// `amqps://guest:guest@127.0.0.1:port`: the TLS listener of a node from
    /// [`RabbitMqServer::start_tls`].
    ///
    /// # Panics
    /// On a node started without TLS.
    pub fn tls_url(&self) -> String {
        format!(
            "amqps://guest:guest@127.0.0.1:{}",
            TlsSetup::of(self.tls.as_ref()).port
        )
    }

    /// The certificates of a TLS node.
    ///
    /// # Panics
    /// On a node started without TLS.
    pub fn certs(&self) -> &TestCerts {
        &TlsSetup::of(self.tls.as_ref()).certs
    }

    /// `amqp://guest:guest@127.0.0.1:port`, what Dapr's `connectionString` takes.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}", self.port)
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding the node's database and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the node (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the node if running and starts it again on the same ports and database; waits
    /// until it answers.
    ///
    /// # Panics
    /// When the node does not come back within 60 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }
}

impl Server for RabbitMqServer {
    const NAME: &'static str = "rabbitmq";
    const NOT_READY: &'static str = "never answered the AMQP protocol header";
    const POLL: Duration = Duration::from_millis(200);
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn take_free_ports(&mut self) {
        self.port = free_port();
        self.dist_port = free_port();
        self.epmd_port = free_port();
        if let Some(t) = &mut self.tls {
            t.port = free_port();
        }
        let _ = std::fs::remove_dir_all(self.dir.path().join("mnesia"));
    }

    fn command(&self) -> Result<Command, String> {
        // The node's own epmd in the foreground, in the node's process group (so a kill takes
        // both), started before the node so the node does not daemonize one of its own.
        let d = self.dir.path();
        let mut conf =
            "loopback_users = none\nlog.console = false\nlog.file.level = warning\n".to_owned();
        if let Some(t) = &self.tls {
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {d}/ca.pem\n\
                 ssl_options.certfile = {d}/server.pem\n\
                 ssl_options.keyfile = {d}/server.key\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = true\n\
                 auth_mechanisms.1 = PLAIN\n\
                 auth_mechanisms.2 = AMQPLAIN\n\
                 auth_mechanisms.3 = EXTERNAL\n\
                 ssl_cert_login_from = common_name\n\
                 load_definitions = {d}/definitions.json\n",
                port = t.port,
                d = d.display()
            ));
        }
        std::fs::write(d.join("rabbitmq.conf"), conf)
            .map_err(|e| format!("write rabbitmq.conf: {e}"))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "{epmd} -port {port} -address 127.0.0.1 & sleep 0.3; exec {SERVER_SCRIPT}",
                epmd = self.epmd.display(),
                port = self.epmd_port
            ))
            .env("HOME", d)
            .env(
                "RABBITMQ_NODENAME",
                format!("layotto-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .stderr(std::process::Stdio::null());
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        answers_amqp(self.port)
    }

    fn context(&self) -> String {
        let log = std::fs::read_dir(self.dir.path().join("log"))
            .ok()
            .and_then(|mut it| it.find_map(|e| e.ok().map(|e| e.path())))
            .unwrap_or_default();
        format!(
            "\nlast lines of the node's log:\n{}",
            process::last_lines(&log, 20)
        )
    }
}

/// Whether the node on `port` answers the AMQP 0-9-1 protocol header with a method frame
/// (`Connection.Start`).
fn answers_amqp(port: u16) -> bool {
    let Some(mut s) = process::connect(port, Duration::from_secs(2)) else {
        return false;
    };
    if s.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    s.read_exact(&mut first).is_ok() && first[0] == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut s = RabbitMqServer::start();
        let port = s.port();
        assert!(answers_amqp(port));
        s.kill();
        assert!(!answers_amqp(port));
        s.restart();
        assert_eq!(s.port(), port);
        assert!(answers_amqp(port));
    }
}
