//! The process management every server harness shares: start on free ports with retries, wait
//! until the server is ready, kill, freeze and thaw (SIGSTOP/SIGCONT), restart on the same
//! ports, kill on drop.
//!
//! A harness implements [`Server`] (how to pick ports, the command line, the readiness probe)
//! and keeps a [`Process`]; [`start`] and [`restart`] do the rest.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::START_TIMEOUT;

/// How many times [`start`] tries fresh free ports before giving up.
const START_ATTEMPTS: usize = 5;

/// What a harness tells the shared lifecycle about its server.
pub(crate) trait Server {
    /// The server's name in messages (`etcd`, `mariadbd`...).
    const NAME: &'static str;
    /// What the server never did when it is not ready in time (`never answered PING`).
    const NOT_READY: &'static str;
    /// How often the readiness probe runs while the server starts.
    const POLL: Duration = Duration::from_millis(50);
    /// How long one start may take before it counts as failed.
    const TIMEOUT: Duration = START_TIMEOUT;

    /// The child process slot.
    fn process_mut(&mut self) -> &mut Process;
    /// The port named in messages (the main client port).
    fn port(&self) -> u16;
    /// Before each start attempt: takes fresh free ports and clears what a failed attempt left.
    fn take_free_ports(&mut self);
    /// The command line of one run of the server (stdin and stdout are nulled by the caller;
    /// stderr is inherited unless the command sets it). May write files the run reads.
    fn command(&self) -> Result<Command, String>;
    /// Whether the running server is ready for clients.
    fn ready(&self) -> bool;
    /// Appended to failure messages (a log tail, say); empty by default.
    fn context(&self) -> String {
        String::new()
    }
}

/// The child process of a server, if running. Killed (and thawed first) on drop.
#[derive(Debug)]
pub(crate) struct Process {
    name: &'static str,
    child: Option<Child>,
}

impl Process {
    /// No process yet; `name` names the server in panics.
    pub(crate) fn new(name: &'static str) -> Self {
        Self { name, child: None }
    }

    /// Kills the process (SIGKILL) and waits for it to exit. Idempotent.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A frozen process dies of SIGKILL too; thaw it anyway so nothing lingers stopped.
            let _ = Command::new("kill")
                .args(["-CONT".to_owned(), c.id().to_string()])
                .status();
            // The whole process group (wrapper scripts exec or fork the server).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process gracefully: SIGTERM, then up to 10 s for it to exit (SIGKILL after
    /// that). Idempotent.
    pub(crate) fn terminate(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM".to_owned(), c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Sends `SIG<sig>` (`STOP`, `CONT`) to the running process.
    ///
    /// # Panics
    /// When the process is not running or the signal cannot be sent.
    pub(crate) fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
            .id();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid} failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `server` on fresh free ports, retrying when a port was taken between probing and
/// binding; returns it running and ready.
///
/// # Panics
/// When no attempt succeeds, with the last attempt's error.
pub(crate) fn start<S: Server>(mut server: S) -> S {
    let mut last_err = String::new();
    for _ in 0..START_ATTEMPTS {
        server.take_free_ports();
        match spawn(&mut server) {
            Ok(()) => return server,
            Err(e) => last_err = e,
        }
    }
    panic!("{} did not start: {last_err}", S::NAME);
}

/// Kills `server` if running and starts it again on the same ports; waits until it is ready.
///
/// # Panics
/// When the server does not come back within [`Server::TIMEOUT`].
pub(crate) fn restart<S: Server>(server: &mut S) {
    server.process_mut().kill();
    let deadline = Instant::now() + S::TIMEOUT;
    loop {
        match spawn(server) {
            Ok(()) => return,
            // The ports may linger briefly after the kill.
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{} did not restart on port {}: {e}", S::NAME, server.port()),
        }
    }
}

/// One run: spawns the server's command and waits until it is ready, exits, or
/// [`Server::TIMEOUT`] passes (then kills it).
fn spawn<S: Server>(server: &mut S) -> Result<(), String> {
    let mut cmd = server.command()?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    // A group of its own, so a kill reaches what a wrapper script started.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawn {program}: {e}"))?;
    let deadline = Instant::now() + S::TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{} on port {} exited with {status}{}",
                S::NAME,
                server.port(),
                server.context()
            ));
        }
        if server.ready() {
            server.process_mut().child = Some(child);
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} on port {} {}{}",
                S::NAME,
                server.port(),
                S::NOT_READY,
                server.context()
            ));
        }
        std::thread::sleep(S::POLL);
    }
}

/// The last `n` lines of the log file `path` (empty when it cannot be read), for failure
/// messages.
pub(crate) fn last_lines(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A connection to `127.0.0.1:port` (500 ms to connect) reading with `read_timeout`; `None`
/// when nothing accepts it.
pub(crate) fn connect(port: u16, read_timeout: Duration) -> Option<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    let _ = s.set_read_timeout(Some(read_timeout));
    Some(s)
}

/// The body of `GET path` on `127.0.0.1:port` (HTTP/1.1, chunked bodies decoded) when it
/// answers 200; `None` otherwise or when nothing answers.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = connect(port, Duration::from_secs(5))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).ok()?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some(unchunk(body));
    }
    Some(body.to_owned())
}

/// The payload of an HTTP/1.1 chunked body.
fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
