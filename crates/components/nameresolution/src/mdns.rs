//! `nameresolution.mdns`: Dapr's self-hosted default (`dapr/components-contrib:
//! nameresolution/mdns/mdns.go`, which uses `github.com/grandcat/zeroconf`).
//!
//! Dapr advertises a sidecar under the bare app id as the service type in `local.`, not under
//! `_name._tcp`: instance `<hostname>:<pid>.<app-id>.local.`, SRV to `<hostname>.local.` at the
//! internal gRPC port, TXT `[<app-id>]`, one A record with the host address. mDNS libraries
//! insist on `_name._tcp`, so the protocol is spoken here on `hickory-proto`'s message codec:
//!
//! - **Responder**: a question for `<app-id>.local.` is answered by multicast with the PTR in
//!   the answer section and SRV, TXT and A in the additional section (all in one packet, as
//!   zeroconf's browser requires); a question for the instance name with SRV, TXT and A. Two
//!   announcements follow registration, a goodbye (TTL 0) its withdrawal.
//! - **Browser**: a PTR question for `<app-id>.local.`; an answer counts when one packet holds
//!   an SRV under `.<app-id>.local.`, a TXT of the same owner naming the app id and an A
//!   record for the SRV target. Addresses are kept 60 seconds and picked round robin; an id
//!   with no answer within 1 second is daprd's "couldn't find service: <id>".
//!
//! The socket listens on `0.0.0.0:5353` (shared: `SO_REUSEADDR`/`SO_REUSEPORT`, as the
//! zeroconf sockets of a daprd on the same host) and joins `224.0.0.251` on the interface that
//! holds the published address (so `DAPR_HOST_IP=127.0.0.1` keeps every packet on the
//! loopback), or on every IPv4 interface when no interface holds it. IPv4 only (Dapr's
//! resolver prefers IPv4 answers).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::domain::Label;
use hickory_proto::rr::rdata::{A, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use layotto_core::{Error, NameResolver, Registration, ResolveRequest, Result};
use tokio::net::UdpSocket;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const PORT: u16 = 5353;
/// TTL of the records this responder publishes, seconds (zeroconf's 3200).
const RECORD_TTL: u32 = 3200;
/// How long a resolved address is used without being seen again.
const ADDRESS_LIFETIME: Duration = Duration::from_secs(60);
/// How long a lookup waits for a first answer (daprd's `browseOneTimeout`).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// What this sidecar publishes.
#[derive(Debug, Clone)]
struct Published {
    service: Name,
    instance: Name,
    host: Name,
    app_id: String,
    ip: Ipv4Addr,
    port: u16,
}

#[derive(Default)]
struct Known {
    /// `ip:port` with when it was last seen.
    addresses: Vec<(String, Instant)>,
    next: usize,
}

struct Shared {
    socket: UdpSocket,
    /// The addresses of the interfaces the group was joined on (where queries go out).
    interfaces: Vec<Ipv4Addr>,
    me: Mutex<Option<Published>>,
    known: Mutex<HashMap<String, Known>>,
    found: tokio::sync::Notify,
}

/// The mDNS resolver. It needs no configuration (Dapr's has none).
pub struct MdnsResolver {
    shared: Mutex<Option<Arc<Shared>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl MdnsResolver {
    /// A resolver whose socket opens at [`NameResolver::register`].
    pub fn new() -> Self {
        Self {
            shared: Mutex::new(None),
            tasks: Mutex::default(),
        }
    }

    fn shared(&self) -> Result<Arc<Shared>> {
        lock(&self.shared)
            .clone()
            .ok_or_else(|| Error::unavailable("mDNS: the resolver is not registered yet"))
    }
}

impl Default for MdnsResolver {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn name(text: &str) -> Result<Name> {
    Name::from_ascii(text).map_err(|e| Error::invalid(format!("mDNS: bad name '{text}': {e}")))
}

/// The socket shared with other responders on this host, joined to the group on the interface
/// that holds `host` (the address published: peers that can use it are on that link), or on
/// every IPv4 interface when none holds it.
fn open_socket(host: Ipv4Addr) -> Result<(UdpSocket, Vec<Ipv4Addr>)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let fail = |what: &str, e: std::io::Error| Error::unavailable(format!("mDNS: {what}: {e}"));
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| fail("SO_REUSEADDR", e))?;
    s.set_reuse_port(true)
        .map_err(|e| fail("SO_REUSEPORT", e))?;
    s.set_nonblocking(true)
        .map_err(|e| fail("non-blocking", e))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)).into())
        .map_err(|e| fail("binding 0.0.0.0:5353", e))?;
    s.set_multicast_loop_v4(true)
        .map_err(|e| fail("multicast loop", e))?;
    s.set_multicast_ttl_v4(255)
        .map_err(|e| fail("multicast TTL", e))?;
    let mut addrs: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
        .map_err(|e| fail("listing interfaces", e))?
        .into_iter()
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    if addrs.contains(&host) {
        addrs = vec![host];
    }
    let mut joined = Vec::new();
    for ip in addrs {
        if !joined.contains(&ip) && s.join_multicast_v4(&GROUP, &ip).is_ok() {
            joined.push(ip);
        }
    }
    if joined.is_empty() {
        return Err(Error::unavailable(
            "mDNS: no IPv4 interface accepts multicast (on a host with only a loopback \
             interface, `ip link set lo multicast on`)",
        ));
    }
    let socket = UdpSocket::from_std(s.into()).map_err(|e| fail("socket", e))?;
    Ok((socket, joined))
}

impl Shared {
    /// Sends `msg` to the group out of every joined interface.
    async fn multicast(&self, msg: &Message) {
        let Ok(bytes) = msg.to_vec() else { return };
        for ip in &self.interfaces {
            let sock = socket2::SockRef::from(&self.socket);
            if let Err(e) = sock.set_multicast_if_v4(ip) {
                tracing::debug!("mDNS: multicast interface {ip}: {e}");
                continue;
            }
            if let Err(e) = self
                .socket
                .send_to(&bytes, SocketAddrV4::new(GROUP, PORT))
                .await
            {
                tracing::debug!("mDNS: sending on {ip}: {e}");
            }
        }
    }

    /// The records describing `me`, with `ttl` (0: a goodbye).
    fn records(me: &Published, ttl: u32) -> (Record, Vec<Record>) {
        let ptr = Record::from_rdata(
            me.service.clone(),
            ttl,
            RData::PTR(PTR(me.instance.clone())),
        );
        let srv = Record::from_rdata(
            me.instance.clone(),
            ttl,
            RData::SRV(SRV::new(0, 0, me.port, me.host.clone())),
        );
        let txt = Record::from_rdata(
            me.instance.clone(),
            ttl,
            RData::TXT(TXT::new(vec![me.app_id.clone()])),
        );
        let a = Record::from_rdata(me.host.clone(), ttl, RData::A(A(me.ip)));
        (ptr, vec![srv, txt, a])
    }

    fn announcement(me: &Published, ttl: u32) -> Message {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        let (ptr, rest) = Self::records(me, ttl);
        m.add_answer(ptr);
        m.add_additionals(rest);
        m
    }

    /// Answers the questions of `query` this responder owns.
    async fn answer(&self, query: &Message, from: SocketAddr) {
        let Some(me) = lock(&self.me).clone() else {
            return;
        };
        let mut reply = Message::new(0, MessageType::Response, OpCode::Query);
        reply.metadata.authoritative = true;
        let mut unicast = false;
        let (ptr, rest) = Self::records(&me, RECORD_TTL);
        for q in &query.queries {
            if q.name == me.service && matches!(q.query_type, RecordType::PTR | RecordType::ANY) {
                reply.add_answer(ptr.clone());
                reply.add_additionals(rest.clone());
            } else if q.name == me.instance {
                reply.add_answers(rest.clone());
            } else {
                continue;
            }
            unicast |= q.mdns_unicast_response;
        }
        if reply.answers.is_empty() {
            return;
        }
        if unicast || from.port() != PORT {
            // A legacy or unicast-response question: answer the asker directly.
            reply.metadata.id = query.metadata.id;
            if let Ok(bytes) = reply.to_vec() {
                let _ = self.socket.send_to(&bytes, from).await;
            }
        } else {
            self.multicast(&reply).await;
        }
    }

    /// Learns the addresses a response carries.
    fn learn(&self, msg: &Message) {
        let records: Vec<&Record> = msg.answers.iter().chain(&msg.additionals).collect();
        let mut learned = false;
        for srv in &records {
            let RData::SRV(s) = &srv.data else { continue };
            let Some(app_id) = records.iter().find_map(|r| match &r.data {
                RData::TXT(t) if r.name == srv.name => t
                    .txt_data
                    .first()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                _ => None,
            }) else {
                continue;
            };
            let Some(ip) = records.iter().find_map(|r| match &r.data {
                RData::A(a) if r.name == s.target => Some(a.0),
                _ => None,
            }) else {
                continue;
            };
            let Ok(service) = name(&format!("{app_id}.local.")) else {
                continue;
            };
            if !service.zone_of(&srv.name) {
                continue;
            }
            let address = format!("{ip}:{}", s.port);
            let mut known = lock(&self.known);
            let entry = known.entry(app_id).or_default();
            entry.addresses.retain(|(a, _)| *a != address);
            if srv.ttl > 0 {
                entry.addresses.push((address, Instant::now()));
                learned = true;
            }
        }
        if learned {
            self.found.notify_waiters();
        }
    }

    /// A live address of `id`, round robin.
    fn pick(&self, id: &str) -> Option<String> {
        let mut known = lock(&self.known);
        let entry = known.get_mut(id)?;
        entry
            .addresses
            .retain(|(_, seen)| seen.elapsed() < ADDRESS_LIFETIME);
        if entry.addresses.is_empty() {
            return None;
        }
        entry.next = entry.next.wrapping_add(1);
        Some(
            entry.addresses[entry.next % entry.addresses.len()]
                .0
                .clone(),
        )
    }

    async fn serve(self: Arc<Self>) {
        let mut buf = vec![0u8; 9000];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!("mDNS: receiving: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(msg) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            match msg.metadata.message_type {
                MessageType::Response => self.learn(&msg),
                MessageType::Query if msg.authorities.is_empty() => self.answer(&msg, from).await,
                MessageType::Query => {}
            }
        }
    }
}

/// This host's name, as zeroconf takes `os.Hostname()`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[async_trait]
impl NameResolver for MdnsResolver {
    fn kind(&self) -> &'static str {
        "mdns"
    }

    async fn register(&self, me: &Registration) -> Result<()> {
        if me.app_id.is_empty() {
            return Err(Error::invalid("mDNS: name is missing (the app id)"));
        }
        if me.internal_port == 0 {
            return Err(Error::invalid("mDNS: port is missing or invalid"));
        }
        let ip: Ipv4Addr = me.host_address.parse().map_err(|_| {
            Error::invalid(format!(
                "mDNS: address '{}' is not an IPv4 address (set DAPR_HOST_IP)",
                me.host_address
            ))
        })?;
        let host = hostname();
        let service = name(&format!("{}.local.", me.app_id))?;
        let instance_label =
            Label::from_raw_bytes(format!("{host}:{}", std::process::id()).as_bytes())
                .map_err(|e| Error::invalid(format!("mDNS: instance name: {e}")))?;
        let instance = Name::from_labels(std::iter::once(instance_label))
            .and_then(|n| n.append_domain(&service))
            .map_err(|e| Error::invalid(format!("mDNS: instance name: {e}")))?;
        let published = Published {
            service,
            instance,
            host: name(&format!("{host}.local."))?,
            app_id: me.app_id.clone(),
            ip,
            port: me.internal_port,
        };
        let (socket, interfaces) = open_socket(ip)?;
        let shared = Arc::new(Shared {
            socket,
            interfaces,
            me: Mutex::new(Some(published.clone())),
            known: Mutex::default(),
            found: tokio::sync::Notify::new(),
        });
        *lock(&self.shared) = Some(shared.clone());
        let mut tasks = lock(&self.tasks);
        tasks.push(tokio::spawn(shared.clone().serve()));
        tasks.push(tokio::spawn(async move {
            for delay in [
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2),
            ] {
                tokio::time::sleep(delay).await;
                shared
                    .multicast(&Shared::announcement(&published, RECORD_TTL))
                    .await;
            }
        }));
        tracing::info!(
            app_id = %me.app_id,
            address = %format!("{}:{}", me.host_address, me.internal_port),
            "mDNS: registered"
        );
        Ok(())
    }

    async fn resolve(&self, req: &ResolveRequest) -> Result<String> {
        let shared = self.shared()?;
        if let Some(a) = shared.pick(&req.id) {
            return Ok(a);
        }
        let service = name(&format!("{}.local.", req.id))?;
        let mut query = Message::new(rand_id(), MessageType::Query, OpCode::Query);
        query.add_query(Query::query(service, RecordType::PTR));
        let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        // Asked again after 250 ms: a first packet may be lost.
        for _ in 0..4 {
            let found = shared.found.notified();
            tokio::pin!(found);
            found.as_mut().enable();
            shared.multicast(&query).await;
            let round = (tokio::time::Instant::now() + Duration::from_millis(250)).min(deadline);
            loop {
                if let Some(a) = shared.pick(&req.id) {
                    return Ok(a);
                }
                if tokio::time::timeout_at(round, found.as_mut())
                    .await
                    .is_err()
                {
                    break;
                }
                found.set(shared.found.notified());
                found.as_mut().enable();
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        shared
            .pick(&req.id)
            .ok_or_else(|| Error::not_found(format!("couldn't find service: {}", req.id)))
    }

    async fn close(&self) {
        let shared = lock(&self.shared).take();
        if let Some(shared) = shared {
            let me = lock(&shared.me).take();
            if let Some(me) = me {
                shared.multicast(&Shared::announcement(&me, 0)).await;
            }
        }
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

/// A query id; mDNS queries may use 0, a varying one helps reading captures.
fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (nanos >> 8) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Published {
        let service = name("orders.local.").unwrap();
        let label = Label::from_raw_bytes(b"host:42").unwrap();
        Published {
            instance: Name::from_labels([label])
                .unwrap()
                .append_domain(&service)
                .unwrap(),
            service,
            host: name("host.local.").unwrap(),
            app_id: "orders".into(),
            ip: Ipv4Addr::new(127, 0, 0, 1),
            port: 50002,
        }
    }

    #[test]
    fn announcements_carry_what_zeroconf_needs_in_one_packet() {
        let m = Shared::announcement(&me(), RECORD_TTL);
        let bytes = m.to_vec().unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        assert_eq!(back.answers.len(), 1);
        let RData::PTR(p) = &back.answers[0].data else {
            panic!("{:?}", back.answers[0]);
        };
        // On the wire the instance label is `host:42` as is (zeroconf's `host:pid`).
        let labels: Vec<&[u8]> = p.0.iter().collect();
        assert_eq!(labels, [&b"host:42"[..], b"orders", b"local"]);
        let kinds: Vec<_> = back.additionals.iter().map(Record::record_type).collect();
        assert_eq!(kinds, [RecordType::SRV, RecordType::TXT, RecordType::A]);
    }
}
