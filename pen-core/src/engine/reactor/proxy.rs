//! The PROXY protocol in the TCP worker (docs/proxy-protocol.md).
//!
//! Accepting (`accept_proxy N`): a client from a source ACL list N permits must start with a
//! version 1 or 2 header. Its bytes are peeked at (never taken until the header is complete,
//! so nothing needs buffering), within `handshake_timeout`; once complete, exactly the header
//! is read off the socket and the connection starts as if the announced client had connected:
//! the per-client cap, the client ACL, tracking, hashing, the access log, `recent`,
//! X-Forwarded-For and the header pen itself sends all see the announced address. A client
//! from any other source must not send a header: its first bytes are peeked at once (one
//! `recv(MSG_PEEK)` per such connection) and a signature there closes it. Refusals are counted
//! by reason ([`ProxyCounters`]).
//!
//! Sending (`server N proxy v1|v2`): once the connect succeeds, the header is built in a stack
//! array and written before any client byte.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{Conn, Worker};
use crate::domain::proxy_header::{self as ph, Announced, ProxyVersion, Transport};
use crate::domain::server::Target;
use crate::engine::lifecycle::{Lifecycle, Timer};
use crate::engine::net::{canonical_ip, Peer, Stream};

/// Why a connection was refused by the PROXY protocol checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// From a source `accept_proxy` names, without a header (other bytes, or an end of file).
    Missing,
    /// A header that is not valid.
    Malformed,
    /// A header from a source `accept_proxy` does not name.
    NotAllowed,
    /// The header was not complete within `handshake_timeout`.
    Timeout,
}

impl Refusal {
    /// The label the metrics and the status page use.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::NotAllowed => "not_allowed",
            Refusal::Timeout => "timeout",
        }
    }
}

/// The PROXY protocol counters.
#[derive(Debug, Default)]
pub(crate) struct ProxyCounters {
    /// Valid headers read (the connection then went on).
    pub(crate) accepted: AtomicU64,
    /// Refusals by reason (indexed by the [`Refusal`]'s discriminant).
    refused: [AtomicU64; 4],
}

impl ProxyCounters {
    fn refuse(&self, why: Refusal) {
        if let Some(c) = self.refused.get(why as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Refusals for `why` so far.
    pub(crate) fn refused(&self, why: Refusal) -> u64 {
        self.refused
            .get(why as usize)
            .map_or(0, |c| c.load(Relaxed))
    }
}

/// What a new connection owes the PROXY checks, decided at accept.
pub(crate) enum Gate {
    /// `accept_proxy` is off (or a Unix-socket client): nothing to check.
    Open,
    /// A source `accept_proxy` does not name: it must not send a header.
    Sniff,
    /// A source `accept_proxy` names: it must send one.
    Header,
}

/// What a connection's first bytes say.
enum Read1 {
    /// A complete header, already taken off the socket: the client it announces (or the real
    /// one) and where it connected to (if announced).
    Done(Peer, Option<SocketAddr>),
    /// Not complete yet.
    NotYet,
    /// Refused.
    Refused(Refusal),
}

/// Peeks at `tcp`'s first bytes; takes the header off the socket once it is complete.
fn read_header(tcp: &std::net::TcpStream, real: Peer) -> Read1 {
    let mut buf = [0u8; ph::V2_MAX];
    let n = loop {
        match tcp.peek(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read1::NotYet,
            Err(_) => return Read1::Refused(Refusal::Missing),
        }
    };
    if n == 0 {
        return Read1::Refused(Refusal::Missing); // closed before a header
    }
    let header = match ph::parse(buf.get(..n).unwrap_or_default()) {
        Ok(Some(h)) => h,
        // The parser never waits on a full buffer (fuzzed); if it did, that is no header.
        Ok(None) if n < buf.len() => return Read1::NotYet,
        Ok(None) => return Read1::Refused(Refusal::Malformed),
        Err(ph::ProxyHeaderError::Missing) => return Read1::Refused(Refusal::Missing),
        Err(_) => return Read1::Refused(Refusal::Malformed),
    };
    // The header's bytes are in the socket (just peeked): one read takes exactly them.
    let took = buf.get_mut(..header.len).map(|b| (&*tcp).read(b));
    if !matches!(took, Some(Ok(n)) if n == header.len) {
        return Read1::Refused(Refusal::Malformed);
    }
    match header.announced {
        Announced::Proxy { src, dst } => {
            let peer = Peer {
                ip: canonical_ip(src.ip()),
                port: src.port(),
            };
            Read1::Done(peer, Some(dst))
        }
        Announced::Local => Read1::Done(real, None),
    }
}

/// Whether a client's first bytes are a header's signature: `Some(true)` to refuse,
/// `Some(false)` when they are not (or it is not a TCP client, or it closed), `None` when too
/// few bytes are in to tell.
fn sniff(client: &Stream) -> Option<bool> {
    let Stream::Tcp(tcp) = client else {
        return Some(false);
    };
    let mut buf = [0u8; ph::V2_SIGNATURE.len()];
    loop {
        return match tcp.peek(&mut buf) {
            Ok(0) => Some(false), // the relay sees the end of file
            Ok(n) => ph::starts_with_signature(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(_) => Some(false), // the relay sees the error
        };
    }
}

impl Worker {
    /// What `client` from `peer` owes the PROXY checks.
    pub(super) fn proxy_gate(&self, client: &Stream, peer: Peer) -> Gate {
        let list = self.shared.settings.read().accept_proxy_acl;
        let (Ok(list), Stream::Tcp(_)) = (u8::try_from(list), client) else {
            return Gate::Open;
        };
        // An empty list names nobody (unlike a client ACL, where it permits everyone): a
        // forgotten list must not let every client choose its own address.
        let acls = self.shared.acls.read();
        if !acls.list(list).is_empty() && acls.permits(list, peer.ip) {
            Gate::Header
        } else {
            Gate::Sniff
        }
    }

    /// A client that must start with a header: read it now if it is in, else wait for it
    /// (within `handshake_timeout`) in a slot of its own.
    pub(super) fn start_proxied(&mut self, client: Stream, peer: Peer, now: u64) {
        let Stream::Tcp(tcp) = &client else {
            return;
        };
        match read_header(tcp, peer) {
            Read1::Done(announced, dst) => {
                self.shared.counters.proxy.accepted.fetch_add(1, Relaxed);
                self.start_as(client, announced, now, false, dst);
            }
            Read1::Refused(why) => {
                self.proxy_refused(peer, why);
                self.shared.release(); // dropping the socket closes it
            }
            Read1::NotYet => {
                let limit = self.shared.settings.read().handshake_timeout_secs;
                let (life, deadline) = Lifecycle::handshaking(now, limit);
                let mut conn = Conn::new(client, peer, Target::Abuse, None, life);
                conn.proxy_wait = true;
                if let Some(slot) = self.install(conn) {
                    self.arm(slot, Timer::Handshake, deadline);
                }
            }
        }
    }

    /// The socket of a client still owing its header may have more bytes.
    pub(super) fn proxy_header(&mut self, slot: usize, now: u64) {
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let Stream::Tcp(tcp) = &conn.client else {
            return;
        };
        if !conn.c.read {
            return;
        }
        match read_header(tcp, conn.peer) {
            Read1::NotYet => conn.c.read = false, // the next bytes bring another event
            Read1::Refused(why) => self.proxy_failed(slot, why),
            Read1::Done(announced, dst) => {
                self.shared.counters.proxy.accepted.fetch_add(1, Relaxed);
                // Out of its waiting slot (nothing was counted but `-x`, which stays) and in
                // again as the announced client.
                let Some(conn) = self.slots.remove(slot) else {
                    return;
                };
                self.poller.delete(&conn.client);
                self.start_as(conn.client, announced, now, false, dst);
            }
        }
    }

    /// Closes a client still owing its header (refused, or its time is up).
    pub(super) fn proxy_failed(&mut self, slot: usize, why: Refusal) {
        if let Some(c) = self.slots.get(slot) {
            self.proxy_refused(c.peer, why);
        }
        self.close(slot);
    }

    fn proxy_refused(&self, peer: Peer, why: Refusal) {
        self.shared.counters.proxy.refuse(why);
        if self.shared.settings.read().debug > 0 {
            let (ip, port) = (peer.ip, peer.port);
            log::debug!("client {ip}:{port}: PROXY header {}: closed", why.label());
        }
    }

    /// For a client that must not send a header, before its first bytes are read: whether it
    /// may go on (`false`: it sent one, and is closed). Until enough bytes are in to tell,
    /// its readiness is cleared so nothing is read from it (the next bytes bring an event).
    pub(super) fn proxy_sniffed(&mut self, slot: usize) -> bool {
        let Some(conn) = self.slots.get_mut(slot) else {
            return false;
        };
        if !conn.sniff || !conn.c.read {
            return true;
        }
        match sniff(&conn.client) {
            Some(false) => conn.sniff = false,
            None => conn.c.read = false,
            Some(true) => {
                let peer = conn.peer;
                self.proxy_refused(peer, Refusal::NotAllowed);
                self.close(slot);
                return false;
            }
        }
        true
    }

    /// Writes the PROXY header `version` for `slot`'s connection to its server (just
    /// connected, so its send buffer is empty and takes the whole header at once). Returns
    /// whether the connection goes on; on a failure it is closed.
    pub(super) fn send_proxy_header(&mut self, slot: usize, version: ProxyVersion) -> bool {
        let Some(conn) = self.slots.get(slot) else {
            return false;
        };
        let written = match (&conn.server, version) {
            (_, ProxyVersion::Off) => return true,
            (Some(server), v) => write_header(conn, server, v),
            (None, _) => Err(io::ErrorKind::NotConnected.into()),
        };
        if let Err(e) = written {
            log::warn!(
                "client {}:{}: cannot send the PROXY header: {e}",
                conn.peer.ip,
                conn.peer.port
            );
            self.close(slot);
            return false;
        }
        true
    }
}

/// Builds and writes the header for `conn` to `server`.
fn write_header(conn: &Conn, server: &Stream, version: ProxyVersion) -> io::Result<()> {
    // The client as pen knows it (announced, or real); a Unix-socket client has no address.
    let (src, dst) = match &conn.client {
        Stream::Tcp(tcp) => {
            let src = SocketAddr::new(conn.peer.ip, conn.peer.port);
            let dst = match conn.proxied_dst {
                Some(d) => d,
                None => tcp.local_addr()?,
            };
            (Some(src), Some(dst))
        }
        Stream::Unix(_) => (None, None),
    };
    let bad = |e: ph::ProxyHeaderError| io::Error::new(io::ErrorKind::InvalidData, e);
    if version == ProxyVersion::V1 {
        let mut line = [0u8; ph::V1_MAX];
        let n = ph::encode_v1(src, dst, &mut line).map_err(bad)?;
        return send_all(server, line.get(..n).unwrap_or_default());
    }
    let mut buf = [0u8; ph::V2_MAX];
    let info = conn.tls.as_deref().map(|t| t.proxy_tls());
    let n = ph::encode_v2(src, dst, Transport::Stream, info.as_ref(), &mut buf).map_err(bad)?;
    send_all(server, buf.get(..n).unwrap_or_default())
}

/// One write of the whole header (a short one is an error: see `send_proxy_header`).
fn send_all(mut server: &Stream, header: &[u8]) -> io::Result<()> {
    loop {
        return match server.write(header) {
            Ok(w) if w == header.len() => Ok(()),
            Ok(_) => Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}
