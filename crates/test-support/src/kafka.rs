//! [`KafkaServer`]: Apache Kafka's own broker (jars from Maven Central, see
//! [`crate::peers::kafka_jars`]) in KRaft mode on the installed Java, on free ports.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Process, Server};
use crate::{find_binary, free_port, peers};

/// The cluster id the storage is formatted with (any 16 bytes, base64url without padding).
const CLUSTER_ID: &str = "bGF5b3R0by1ycy10ZXN0cw";

/// A single-node Kafka (`process.roles=broker,controller`) listening for clients on a free
/// 127.0.0.1 port, its controller on another, with its log dirs in a fresh temp dir, so
/// topics, committed offsets and acknowledged records survive [`KafkaServer::restart`].
/// Topics are created on first use with [`KafkaServer::PARTITIONS`] partitions; the JVM gets
/// `-Xmx256m`. Killed on drop.
#[derive(Debug)]
pub struct KafkaServer {
    // First, so the process dies before the temp dir goes.
    process: Process,
    java: PathBuf,
    jars: PathBuf,
    port: u16,
    controller_port: u16,
    dir: tempfile::TempDir,
}

impl KafkaServer {
    /// Partitions of an automatically created topic (two, so two members of a consumer group
    /// each get one).
    pub const PARTITIONS: u32 = 2;

    /// Fetches the broker jars if the cache lacks them, formats the storage and starts the
    /// broker; waits until it answers an `ApiVersions` request.
    ///
    /// # Panics
    /// When `java` is missing (names the Debian package `default-jre-headless`), the jars
    /// cannot be fetched, or the broker does not answer within 60 s.
    pub fn start() -> Self {
        let java = find_binary("java", "default-jre-headless");
        let jars = peers::kafka_jars();
        let dir = tempfile::Builder::new()
            .prefix("layotto-kafka-")
            .tempdir()
            .expect("create a temp dir for kafka");
        process::start(Self {
            process: Process::new(Self::NAME),
            java,
            jars,
            port: 0,
            controller_port: 0,
            dir,
        })
    }

    /// `127.0.0.1:port`, what Dapr's `brokers` takes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding `server.properties`, the log dirs and `kafka.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the broker (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the broker if running and starts it again on the same ports and log dirs; waits
    /// until it answers.
    ///
    /// # Panics
    /// When the broker does not come back within 60 s.
    pub fn restart(&mut self) {
        process::restart(self);
    }

    fn java(&self, main: &str) -> Command {
        let mut cmd = Command::new(&self.java);
        cmd.args([
            "-Xmx256m",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            self.dir.path().join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/*", self.jars.display()))
        .arg(main);
        cmd
    }

    fn properties(&self) -> String {
        let d = self.dir.path();
        format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{c}\n\
             listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{p}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={logs}\n\
             metadata.log.dir={meta}\n\
             num.partitions={parts}\n\
             auto.create.topics.enable=true\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=4\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             log.flush.interval.messages=1\n",
            p = self.port,
            c = self.controller_port,
            logs = d.join("logs").display(),
            meta = d.join("metadata").display(),
            parts = Self::PARTITIONS,
        )
    }
}

impl Server for KafkaServer {
    const NAME: &'static str = "kafka";
    const NOT_READY: &'static str = "never answered ApiVersions";
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
        self.controller_port = free_port();
        let d = self.dir.path();
        let _ = std::fs::remove_dir_all(d.join("logs"));
        let _ = std::fs::remove_dir_all(d.join("metadata"));
    }

    fn command(&self) -> Result<Command, String> {
        let d = self.dir.path();
        let props = d.join("server.properties");
        std::fs::write(&props, self.properties()).map_err(|e| format!("write {props:?}: {e}"))?;
        let log4j = format!(
            "rootLogger.level=WARN\nrootLogger.appenderRef.f.ref=F\nappender.f.type=File\n\
             appender.f.name=F\nappender.f.fileName={}\nappender.f.layout.type=PatternLayout\n\
             appender.f.layout.pattern=[%d] %p %m (%c)%n\n",
            d.join("kafka.log").display()
        );
        std::fs::write(d.join("log4j2.properties"), log4j)
            .map_err(|e| format!("write log4j2.properties: {e}"))?;
        // Format once; a restart finds the storage formatted (meta.properties present).
        if !d.join("metadata").join("meta.properties").is_file() {
            let out = self
                .java("kafka.tools.StorageTool")
                .args(["format", "-t", CLUSTER_ID, "-c"])
                .arg(&props)
                .output()
                .map_err(|e| format!("run kafka-storage format: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "kafka-storage format failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let mut cmd = self.java("kafka.Kafka");
        cmd.arg(&props);
        Ok(cmd)
    }

    fn ready(&self) -> bool {
        answers_api_versions(self.port)
    }

    fn context(&self) -> String {
        format!(
            "\nlast lines of kafka.log:\n{}",
            process::last_lines(&self.dir.path().join("kafka.log"), 20)
        )
    }
}

/// Whether the broker on `port` answers an `ApiVersions` (v0) request with its correlation id
/// (any error code, even `UNSUPPORTED_VERSION`, shows a broker serving requests).
fn answers_api_versions(port: u16) -> bool {
    let Some(mut s) = process::connect(port, Duration::from_secs(2)) else {
        return false;
    };
    let client = b"layotto-test";
    let mut req = Vec::new();
    req.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    req.extend_from_slice(&0i16.to_be_bytes()); // v0
    req.extend_from_slice(&0x4c41_594fi32.to_be_bytes()); // correlation id
    req.extend_from_slice(&(client.len() as i16).to_be_bytes());
    req.extend_from_slice(client);
    let mut msg = (req.len() as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&req);
    if s.write_all(&msg).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head[4..8] == 0x4c41_594fi32.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut s = KafkaServer::start();
        let port = s.port();
        assert!(answers_api_versions(port));
        s.kill();
        assert!(!answers_api_versions(port));
        s.restart();
        assert_eq!(s.port(), port);
        assert!(answers_api_versions(port));
    }
}
