//! Live connections across a binary upgrade on the uring engine, as on the epoll engine
//! (`engine::reactor::handoff`): [`UringWorker::give_up`] stops every operation on the
//! established connections (cancelled, and waited for: a receive that completes meanwhile
//! brings its bytes, a send that completes has sent them), then gives up each whose held
//! bytes fit the record (one relay buffer each way; the others go on here and drain), with
//! both descriptors, the half-close state and the byte counts. [`UringWorker::take_in`]
//! takes such a connection in, its held bytes in a buffer of the ring's own.

use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::{Chunk, Conn, Dir, UringWorker, BUF_SIZE};
use crate::engine::lifecycle::{Lifecycle, Phase};
use crate::engine::net::Stream;
use crate::engine::reactor::handoff::Moved;
use crate::engine::relay::PipeState;

/// How long the operations of the connections to hand over may take to end.
const QUIESCE: Duration = Duration::from_secs(1);

fn into_fd(s: Stream) -> OwnedFd {
    match s {
        Stream::Tcp(t) => t.into(),
        Stream::Unix(u) => u.into(),
    }
}

impl UringWorker {
    /// Gives up the established connections whose state can travel (see the module).
    pub(super) fn give_up(&mut self) -> Vec<Moved> {
        let slots: Vec<usize> = (self.slots.iter())
            .filter(|(_, c)| {
                c.life.phase() == Phase::Established && c.server.is_some() && c.client.is_some()
            })
            .map(|(i, _)| i)
            .collect();
        self.quiet = true;
        for &slot in &slots {
            if let Some(c) = self.slots.get(slot) {
                let (cfd, sfd) = (c.client_fd(), c.server_fd());
                self.ring.cancel_fd(cfd);
                self.ring.cancel_fd(sfd);
            }
        }
        let busy = |w: &UringWorker| {
            slots
                .iter()
                .any(|&s| (w.slots.get(s)).is_some_and(|c| c.dirs.iter().any(|d| d.recv || d.send)))
        };
        let deadline = std::time::Instant::now() + QUIESCE;
        let mut out = Vec::new();
        while busy(self) && std::time::Instant::now() < deadline {
            out.clear();
            let _ = (self.ring).submit_and_wait(Some(Duration::from_millis(10)), &mut out);
            for cqe in &out {
                self.on_completion(cqe);
            }
        }
        self.quiet = false;
        let mut moved = Vec::with_capacity(slots.len());
        for slot in slots {
            match self.move_out(slot) {
                Some(m) => moved.push(m),
                // Stays: relaying goes on here.
                None => {
                    self.pump(slot, 0);
                    self.pump(slot, 1);
                }
            }
        }
        moved
    }

    /// One direction's state as it travels (`None`: busy, or more bytes than a buffer).
    fn dir_state(&self, d: &Dir) -> Option<PipeState> {
        if d.recv || d.send {
            return None;
        }
        let mut pending = Vec::new();
        for c in &d.queue {
            pending.extend_from_slice(self.ring.bytes(c.bid, c.start as usize, c.end as usize));
        }
        (pending.len() <= BUF_SIZE && pending.len() == d.pending()).then_some(PipeState {
            pending,
            eof: d.eof,
            shut: d.shut,
            bytes: d.bytes,
        })
    }

    /// Takes `slot`'s connection out, uncounted here, if its state can travel.
    fn move_out(&mut self, slot: usize) -> Option<Moved> {
        let c = self.slots.get(slot)?;
        let up = self.dir_state(&c.dirs[0])?;
        let down = self.dir_state(&c.dirs[1])?;
        let mut conn = self.slots.remove(slot)?;
        for d in &mut conn.dirs {
            while let Some(ch) = d.queue.pop_front() {
                self.ring.release(ch.bid);
            }
        }
        if let Some(s) = self.shared.servers.read().target(conn.target) {
            s.release();
        }
        self.unadmit(conn.peer, conn.per_client);
        let client = conn.client.take()?;
        let server = conn.server.take()?;
        Some(Moved {
            client_unix: matches!(client, Stream::Unix(_)),
            client: into_fd(client),
            server: server.into(),
            peer: conn.peer,
            target: conn.target,
            up,
            down,
        })
    }

    /// Takes in a connection handed over by the pen this one replaced: established, counted
    /// against `-x` (even over it: refusing would cut a live connection), its server's
    /// connections and, where there is room, `conn_per_client`.
    pub(super) fn take_in(&mut self, m: Moved) {
        let now = self.shared.now_ms();
        let client = if m.client_unix {
            Stream::Unix(UnixStream::from(m.client))
        } else {
            Stream::Tcp(TcpStream::from(m.client))
        };
        let server = TcpStream::from(m.server);
        let server_addr = server.peer_addr().ok();
        self.shared.active.fetch_add(1, Relaxed);
        if let Some(s) = self.shared.servers.read().target(m.target) {
            s.conns.fetch_add(1, Relaxed);
        }
        let cap = self.shared.settings.read().conn_per_client;
        let per_client =
            cap != 0 && !m.peer.ip.is_unspecified() && self.shared.per_client.admit(m.peer.ip, cap);
        let mut life = Lifecycle::connecting(now);
        life.connected(now);
        let mut dirs: [Dir; 2] = Default::default();
        for (d, st) in dirs.iter_mut().zip([m.up, m.down]) {
            d.eof = st.eof;
            d.shut = st.shut;
            d.bytes = st.bytes;
            if !st.pending.is_empty() {
                match self.ring.hold_bytes(&st.pending) {
                    Some(bid) => d.queue.push_back(Chunk {
                        bid,
                        start: 0,
                        end: st.pending.len() as u32,
                    }),
                    None => log::warn!(
                        "worker {}: no buffer id for a moved connection's bytes",
                        self.index
                    ),
                }
            }
        }
        let conn = Conn {
            client: Some(client),
            peer: m.peer,
            server: Some(server),
            target: m.target,
            first: None,
            server_addr,
            life,
            dirs,
            per_client,
        };
        let (slot, _) = self.slots.insert(conn);
        self.pump(slot, 0);
        self.pump(slot, 1);
    }
}
