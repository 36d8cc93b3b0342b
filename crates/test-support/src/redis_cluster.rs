//! [`RedisCluster`]: a real Redis Cluster of three masters with one replica each.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{RedisServer, find_binary};

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// A Redis Cluster of three masters with one replica each: six `redis-server` nodes
/// (`--cluster-enabled yes`, node timeout 1 s, append-only files fsynced on every write) on
/// free 127.0.0.1 ports, joined with `redis-cli --cluster create --cluster-replicas 1`. A
/// killed master fails over to its replica in a few seconds. Killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    alive: Vec<bool>,
    cli: PathBuf,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` with all 16384 slots served.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` (Debian `redis-tools`, a dependency of
    /// `redis-server`) is missing, or the cluster is not ready within 30 s.
    pub fn start() -> Self {
        let cli = find_binary("redis-cli", "redis-tools");
        let nodes: Vec<RedisServer> = (0..6).map(|_| RedisServer::start_cluster_node()).collect();
        let mut create = Command::new(&cli);
        create.arg("--cluster").arg("create");
        create.args(nodes.iter().map(RedisServer::addr));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create.output().expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            alive: vec![true; nodes.len()],
            nodes,
            cli,
        };
        cluster.wait_ok(Duration::from_secs(30));
        cluster
    }

    /// `127.0.0.1:port` of every node, comma-separated: `redisHost` of a component with
    /// `redisType: cluster`.
    pub fn hosts(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `127.0.0.1:port` of node `i` (0 to 5).
    pub fn addr(&self, i: usize) -> String {
        self.nodes[i].addr()
    }

    /// Runs `redis-cli -p <port of node i> args...` and returns its standard output.
    ///
    /// # Panics
    /// When `redis-cli` cannot be run.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(&self.cli)
            .args(["-p", &self.nodes[i].port().to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The index of the node that is now the master of `key`'s hash slot, as the first live
    /// node sees the cluster.
    ///
    /// # Panics
    /// When no live node answers or none serves the slot.
    pub fn master_of(&self, key: &str) -> usize {
        let i = self.first_alive();
        let slot: usize = self
            .cli(i, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        let view = self.view(i);
        let port = view
            .iter()
            .find(|m| m.slots.contains(&slot))
            .map(|m| m.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        self.index_of(port)
    }

    /// Kills node `i` (SIGKILL). A killed master's replica takes over its slots after the
    /// node timeout (see [`RedisCluster::wait_ok`]).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
        self.alive[i] = false;
    }

    /// Starts node `i` again on its ports and data (it rejoins, as a replica if its slots
    /// moved), then waits for the cluster to be whole.
    ///
    /// # Panics
    /// As [`RedisCluster::wait_ok`].
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.alive[i] = true;
        self.wait_ok(Duration::from_secs(30));
    }

    /// Waits until every live node reports `cluster_state:ok` and sees all 16384 slots served
    /// by live masters.
    ///
    /// # Panics
    /// When that does not happen within `timeout`, with the last view.
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let live: HashSet<u16> = self.live_ports().collect();
        loop {
            let mut last = String::new();
            let ok = (0..self.nodes.len()).filter(|&i| self.alive[i]).all(|i| {
                let info = self.cli(i, &["CLUSTER", "INFO"]);
                if !info.contains("cluster_state:ok") {
                    last = format!("node {i}: {info}");
                    return false;
                }
                let served: usize = self
                    .view(i)
                    .iter()
                    .filter(|m| live.contains(&m.port))
                    .map(|m| m.slots.len())
                    .sum();
                if served != SLOTS {
                    last = format!("node {i} sees {served} slots on live masters");
                }
                served == SLOTS
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis cluster not ready after {timeout:?}: {last}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .zip(&self.alive)
            .filter(|(_, a)| **a)
            .map(|(n, _)| n.port())
    }

    fn first_alive(&self) -> usize {
        self.alive.iter().position(|a| *a).expect("a live node")
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("port {port} is no node of this cluster"))
    }

    /// The masters not flagged as failed, with their slots, as node `i` sees them
    /// (`CLUSTER NODES`).
    fn view(&self, i: usize) -> Vec<Master> {
        self.cli(i, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let flags = f.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let port = f
                    .get(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                let mut slots = HashSet::new();
                for r in f.iter().skip(8).filter(|r| !r.starts_with('[')) {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                        slots.extend(a..=b);
                    }
                }
                Some(Master { port, slots })
            })
            .collect()
    }
}

/// A master as one node sees it.
struct Master {
    port: u16,
    slots: HashSet<usize>,
}
