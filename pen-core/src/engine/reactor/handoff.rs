//! Live connection handoff on a binary upgrade: the old pen's workers give up their
//! established plain connections ([`Worker::hand_off`]) with both descriptors, the bytes held
//! each way and the half-close state; the new pen's workers take them in ([`Worker::adopt`])
//! as established connections. [`Moved::encode`]/[`Moved::decode`] are the record that
//! travels with the two descriptors (`runtime::upgrade` sends it).
//!
//! Not moved (they drain in the old process): TLS (the session keys stay there), HTTP mode
//! (a request head may be half parsed), connections still connecting or waiting, `dummy`,
//! and a spliced direction whose kernel pipe holds bytes at that moment.

use std::net::{IpAddr, Ipv6Addr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering::Relaxed;

use super::{Conn, Worker};
use crate::domain::server::{ServerId, Target};
use crate::engine::lifecycle::{Lifecycle, Phase};
use crate::engine::net::{Peer, Stream};
use crate::engine::relay::{Pipe, PipeState, Readiness};
use crate::engine::slab::key;

/// The record's first bytes (and version).
const MAGIC: &[u8; 4] = b"PC1\n";

/// One established connection on its way to a new process.
#[derive(Debug)]
pub(crate) struct Moved {
    /// The client side.
    pub(crate) client: OwnedFd,
    /// The server side.
    pub(crate) server: OwnedFd,
    /// Whether the client came through a Unix-domain socket.
    pub(crate) client_unix: bool,
    /// The client's address.
    pub(crate) peer: Peer,
    /// The server it goes to.
    pub(crate) target: Target,
    /// Client to server.
    pub(crate) up: PipeState,
    /// Server to client.
    pub(crate) down: PipeState,
}

/// The fields of a [`Moved`] besides its descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Whether the client came through a Unix-domain socket.
    pub(crate) client_unix: bool,
    /// The client's address.
    pub(crate) peer: Peer,
    /// The server it goes to.
    pub(crate) target: Target,
    /// Client to server.
    pub(crate) up: PipeState,
    /// Server to client.
    pub(crate) down: PipeState,
}

fn put_pipe(out: &mut Vec<u8>, p: &PipeState) {
    out.push(u8::from(p.eof) | (u8::from(p.shut) << 1));
    out.extend_from_slice(&p.bytes.to_le_bytes());
    out.extend_from_slice(&(p.pending.len() as u32).to_le_bytes());
    out.extend_from_slice(&p.pending);
}

/// Reads little-endian fields off the front of a record.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head.to_vec())
    }

    fn pipe(&mut self) -> Option<PipeState> {
        let [flags] = self.take::<1>()?;
        let bytes = u64::from_le_bytes(self.take()?);
        let n = u32::from_le_bytes(self.take()?) as usize;
        if n > crate::engine::relay::BUF_SIZE {
            return None;
        }
        Some(PipeState {
            pending: self.bytes(n)?,
            eof: flags & 1 != 0,
            shut: flags & 2 != 0,
            bytes,
        })
    }
}

impl Record {
    /// The record's bytes: magic, kind, client address and port, target, then each direction
    /// (flags, bytes delivered, length and the held bytes).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.up.pending.len() + self.down.pending.len());
        out.extend_from_slice(MAGIC);
        out.push(u8::from(self.client_unix));
        let ip = match self.peer.ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        out.push(u8::from(self.peer.ip.is_ipv4()));
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(&self.peer.port.to_le_bytes());
        let (tag, id) = match self.target {
            Target::Server(ServerId(id)) => (0u8, id as u64),
            Target::Emergency => (1, 0),
            Target::Abuse => (2, 0),
        };
        out.push(tag);
        out.extend_from_slice(&id.to_le_bytes());
        put_pipe(&mut out, &self.up);
        put_pipe(&mut out, &self.down);
        out
    }

    /// The record in `data`, or `None` if it is malformed.
    pub(crate) fn decode(data: &[u8]) -> Option<Record> {
        let mut r = Reader(data.strip_prefix(MAGIC.as_slice())?);
        let [unix] = r.take::<1>()?;
        let [v4] = r.take::<1>()?;
        let v6 = Ipv6Addr::from(r.take::<16>()?);
        let ip = match (v4, v6.to_ipv4_mapped()) {
            (1, Some(a)) => IpAddr::V4(a),
            (0, _) => IpAddr::V6(v6),
            _ => return None,
        };
        let port = u16::from_le_bytes(r.take()?);
        let [tag] = r.take::<1>()?;
        let id = usize::try_from(u64::from_le_bytes(r.take()?)).ok()?;
        let target = match tag {
            0 => Target::Server(ServerId(id)),
            1 => Target::Emergency,
            2 => Target::Abuse,
            _ => return None,
        };
        let up = r.pipe()?;
        let down = r.pipe()?;
        if !r.0.is_empty() || unix > 1 {
            return None;
        }
        Some(Record {
            client_unix: unix == 1,
            peer: Peer { ip, port },
            target,
            up,
            down,
        })
    }
}

impl Moved {
    /// Its record (the descriptors travel beside it).
    pub(crate) fn record(&self) -> Record {
        Record {
            client_unix: self.client_unix,
            peer: self.peer,
            target: self.target,
            up: self.up.clone(),
            down: self.down.clone(),
        }
    }

    /// A connection from its record and its two descriptors (client, server).
    pub(crate) fn new(rec: Record, client: OwnedFd, server: OwnedFd) -> Moved {
        Moved {
            client,
            server,
            client_unix: rec.client_unix,
            peer: rec.peer,
            target: rec.target,
            up: rec.up,
            down: rec.down,
        }
    }
}

fn into_fd(s: Stream) -> OwnedFd {
    match s {
        Stream::Tcp(t) => t.into(),
        Stream::Unix(u) => u.into(),
    }
}

impl Worker {
    /// Whether the connection in `c` can move to a new process.
    fn movable(c: &Conn) -> bool {
        c.life.phase() == Phase::Established
            && c.tls.is_none()
            && c.http.is_none()
            && !c.dummy
            && c.server.is_some()
            && c.up.movable()
            && c.down.movable()
    }

    /// Gives up every movable connection: off the poller, out of the slab, uncounted here
    /// (`-x`, the server's connections, the per-client cap); the descriptors stay open in what
    /// is returned. The rest stay and drain.
    pub(crate) fn hand_off(&mut self) -> Vec<Moved> {
        let slots: Vec<usize> = (self.slots.iter())
            .filter(|(_, c)| Worker::movable(c))
            .map(|(i, _)| i)
            .collect();
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            let Some(c) = self.slots.get_mut(slot) else {
                continue;
            };
            let Some(up) = c.up.take_state(&mut self.pool) else {
                continue;
            };
            let Some(down) = c.down.take_state(&mut self.pool) else {
                // Nothing was lost: the up direction's bytes go back where they were.
                if let Some(p) = Pipe::restore(up, &mut self.pool) {
                    c.up = p;
                }
                continue;
            };
            let Some(mut conn) = self.slots.remove(slot) else {
                continue;
            };
            let Some(server) = conn.server.take() else {
                continue;
            };
            self.poller.delete(&conn.client);
            self.poller.delete(&server);
            if let Some(s) = self.shared.servers.read().target(conn.target) {
                s.release();
            }
            self.unadmit(conn.peer, conn.per_client);
            out.push(Moved {
                client_unix: matches!(conn.client, Stream::Unix(_)),
                client: into_fd(conn.client),
                server: into_fd(server),
                peer: conn.peer,
                target: conn.target,
                up,
                down,
            });
        }
        out
    }

    /// Takes in a connection handed over by the pen this one replaced: an established
    /// connection with its held bytes and half-close state, counted against `-x` (even over
    /// it: refusing would cut a live connection), its server's connections and, where there
    /// is room, `conn_per_client`.
    pub(crate) fn adopt(&mut self, m: Moved) {
        let now = self.shared.now_ms();
        let (Some(up), Some(down)) = (
            Pipe::restore(m.up, &mut self.pool),
            Pipe::restore(m.down, &mut self.pool),
        ) else {
            return;
        };
        let client = if m.client_unix {
            Stream::Unix(UnixStream::from(m.client))
        } else {
            Stream::Tcp(TcpStream::from(m.client))
        };
        let server = TcpStream::from(m.server);
        // For the access log, and `splice` decided as for a new connection.
        let server_addr = server.peer_addr().ok();
        let server = Stream::Tcp(server);
        self.shared.active.fetch_add(1, Relaxed);
        if let Some(s) = self.shared.servers.read().target(m.target) {
            s.conns.fetch_add(1, Relaxed);
        }
        let mut life = Lifecycle::connecting(now);
        life.connected(now);
        let mut conn = Conn::new(client, m.peer, m.target, None, life);
        // The per-client cap counts it where there is room (it is kept either way).
        let cap = self.shared.settings.read().conn_per_client;
        conn.per_client =
            cap != 0 && !m.peer.ip.is_unspecified() && self.shared.per_client.admit(m.peer.ip, cap);
        conn.up = up;
        conn.down = down;
        // Whatever is waiting is found by reading and writing: nothing is assumed idle.
        let all = Readiness {
            read: true,
            write: true,
            hup: false,
            fin: false,
        };
        (conn.c, conn.s) = (all, all);
        let loopback = server_addr.is_none_or(|a| a.ip().is_loopback());
        conn.splice = cfg!(target_os = "linux")
            && matches!(conn.client, Stream::Tcp(_))
            && match self.splice {
                crate::domain::settings::Splice::Always => true,
                crate::domain::settings::Splice::Never => false,
                crate::domain::settings::Splice::Auto => !loopback,
            };
        conn.server_addr = server_addr;
        conn.server = Some(server);
        let Some(slot) = self.install(conn) else {
            if let Some(s) = self.shared.servers.read().target(m.target) {
                s.release();
            }
            return;
        };
        let registered = match (self.slots.gen(slot), self.slots.get(slot)) {
            (Some(gen), Some(c)) => match c.server.as_ref() {
                Some(s) => self.poller.add(s, key(slot, gen, true)),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = registered {
            log::warn!("cannot watch a handed-over server socket: {e}");
            self.close(slot);
            return;
        }
        self.drive(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_malformed_ones_are_refused() {
        let rec = Record {
            client_unix: false,
            peer: Peer {
                ip: IpAddr::from([10, 1, 2, 3]),
                port: 4567,
            },
            target: Target::Server(ServerId(3)),
            up: PipeState {
                pending: b"held up".to_vec(),
                eof: true,
                shut: true,
                bytes: 1 << 40,
            },
            down: PipeState {
                pending: Vec::new(),
                eof: false,
                shut: false,
                bytes: 9,
            },
        };
        let data = rec.encode();
        assert_eq!(Record::decode(&data), Some(rec.clone()));
        let v6 = Record {
            peer: Peer {
                ip: "2001:db8::1".parse().unwrap(),
                port: 1,
            },
            target: Target::Emergency,
            client_unix: true,
            ..rec
        };
        assert_eq!(Record::decode(&v6.encode()), Some(v6));
        for n in 0..data.len() {
            assert_eq!(Record::decode(&data[..n]), None, "cut at {n}");
        }
        let mut long = data.clone();
        long.push(0);
        assert_eq!(Record::decode(&long), None);
    }
}
