//! One relay direction ([`crate::engine::relay::Pipe`]) between two simulated sockets, driven step by
//! step: data and FIN arriving at the source, room freeing in the destination's send buffer,
//! injected errors, and `pump` calls with the reactor's cached readiness.
//!
//! The sockets behave like non-blocking TCP sockets under an edge-triggered poller: a read
//! returns everything queued up to the buffer size (so a short read means "drained"), then
//! `WouldBlock`, or 0 once the FIN is in and everything was read; a write takes what fits in the
//! free send-buffer space, then `WouldBlock`. Readiness is only ever set by an event (data, FIN,
//! room, error) or a spurious wake-up, never by the harness on its own, so a relay that waits
//! for an edge that will not come shows up as a stall.

use std::io::{self, ErrorKind, Read, Write};
use std::net::IpAddr;

use crate::engine::http::HttpCarrier;
use crate::engine::relay::{BufPool, HalfClose, Pipe, Readiness};

/// Size of the largest relay buffer (the most one read asks for: buffers grow from 32 KiB
/// while reads fill them).
pub const BUF_SIZE: usize = crate::engine::relay::MAX_BUF;
/// Reads per connection per turn (the budget the reactor gives `pump`).
pub const READS_PER_TURN: u32 = crate::engine::relay::READS_PER_TURN;

/// The source socket: bytes queued in its receive buffer, the peer's FIN, injected failures.
#[derive(Debug, Default)]
struct Source {
    /// Received bytes; those before `at` have been read.
    queued: Vec<u8>,
    at: usize,
    fin: bool,
    /// The FIN has been returned (a read returned 0).
    fin_read: bool,
    /// `Interrupted` results to return before anything else.
    interrupts: u32,
    /// An error for the next read.
    fail: Option<ErrorKind>,
    /// Bytes handed to the relay.
    taken: u64,
}

impl Read for &mut Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.fail.take() {
            return Err(kind.into());
        }
        if self.interrupts > 0 {
            self.interrupts -= 1;
            return Err(ErrorKind::Interrupted.into());
        }
        let rest = self.queued.get(self.at..).unwrap_or_default();
        if rest.is_empty() {
            if self.fin {
                self.fin_read = true;
                return Ok(0);
            }
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(rest.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), rest.get(..n)) {
            to.copy_from_slice(from);
        }
        self.at += n;
        if self.at == self.queued.len() {
            (self.queued, self.at) = (Vec::new(), 0);
        }
        self.taken += n as u64;
        Ok(n)
    }
}

/// The destination socket: free send-buffer space, what was sent, the half-close.
#[derive(Debug, Default)]
struct Dest {
    out: Vec<u8>,
    space: usize,
    shut: bool,
    /// A write came after the half-close (a relay bug).
    write_after_shut: bool,
    interrupts: u32,
    /// An error for the next write.
    fail: Option<ErrorKind>,
    /// The next write returns `Ok(0)`.
    zero: bool,
    /// An error for the next `shutdown`.
    shutdown_fail: Option<ErrorKind>,
    shutdowns: u32,
}

impl Write for &mut Dest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shut {
            self.write_after_shut = true;
        }
        if let Some(kind) = self.fail.take() {
            return Err(kind.into());
        }
        if self.interrupts > 0 {
            self.interrupts -= 1;
            return Err(ErrorKind::Interrupted.into());
        }
        if std::mem::take(&mut self.zero) {
            return Ok(0);
        }
        if self.space == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.space);
        self.out.extend_from_slice(buf.get(..n).unwrap_or_default());
        self.space -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HalfClose for &mut Dest {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdowns += 1;
        if let Some(kind) = self.shutdown_fail.take() {
            return Err(kind.into());
        }
        self.shut = true;
        Ok(())
    }
}

/// A relay direction between a simulated source and destination.
#[derive(Debug)]
pub struct Relay {
    pipe: Pipe,
    /// HTTP mode: the client-to-server carrier that inserts the forwarding headers.
    http: Option<HttpCarrier>,
    pool: BufPool,
    src: Source,
    dst: Dest,
    src_ready: Readiness,
    dst_ready: Readiness,
    /// Every chunk the relay showed its `on_read` hook (the access log), concatenated.
    seen: Vec<u8>,
}

impl Relay {
    /// A plain relay (`http: None`) or an HTTP-mode one for a client at `ip` (`https`: it came
    /// over TLS); the destination starts with `space` bytes of free send buffer (and writable).
    pub fn new(http: Option<(IpAddr, bool)>, space: usize) -> Relay {
        Relay {
            pipe: Pipe::default(),
            http: http.map(|(ip, https)| HttpCarrier::new(ip, https, false)),
            pool: BufPool::new(4),
            src: Source::default(),
            dst: Dest {
                space,
                ..Dest::default()
            },
            src_ready: Readiness::default(),
            dst_ready: Readiness {
                write: true,
                ..Readiness::default()
            },
            seen: Vec::new(),
        }
    }

    /// Bytes arrive at the source (a readable edge). Ignored after the FIN.
    pub fn arrive(&mut self, bytes: &[u8]) {
        if self.src.fin || bytes.is_empty() {
            return;
        }
        self.src.queued.extend_from_slice(bytes);
        self.src_ready.read = true;
    }

    /// The source's peer half-closes (a readable edge with the hang-up flag).
    pub fn fin(&mut self) {
        self.src.fin = true;
        self.src_ready.read = true;
        self.src_ready.hup = true;
    }

    /// The source's peer half-closes and the poller says the FIN came clean (epoll's
    /// `EPOLLRDHUP` without an error or urgent data): the relay may take a short read as the end
    /// of file instead of reading the 0.
    pub fn clean_fin(&mut self) {
        self.fin();
        self.src_ready.fin = true;
    }

    /// The destination's peer reads `n` bytes, freeing send-buffer space (a writable edge).
    pub fn room(&mut self, n: usize) {
        if n > 0 {
            self.dst.space = self.dst.space.saturating_add(n);
            self.dst_ready.write = true;
        }
    }

    /// A spurious wake-up: the poller reports readiness with nothing new behind it.
    pub fn spurious(&mut self, read: bool, write: bool) {
        self.src_ready.read |= read;
        self.dst_ready.write |= write;
    }

    /// The next read fails with `kind` (a reset, say); reported with an edge, as an error is.
    pub fn fail_read(&mut self, kind: ErrorKind) {
        self.src.fail = Some(kind);
        self.src_ready.read = true;
        self.src_ready.hup = true;
    }

    /// The next `n` reads are interrupted by a signal.
    pub fn interrupt_reads(&mut self, n: u32) {
        self.src.interrupts = self.src.interrupts.saturating_add(n);
    }

    /// The next write fails with `kind`.
    pub fn fail_write(&mut self, kind: ErrorKind) {
        self.dst.fail = Some(kind);
    }

    /// The next `n` writes are interrupted by a signal.
    pub fn interrupt_writes(&mut self, n: u32) {
        self.dst.interrupts = self.dst.interrupts.saturating_add(n);
    }

    /// The next write returns `Ok(0)`.
    pub fn zero_write(&mut self) {
        self.dst.zero = true;
    }

    /// The next `shutdown(SHUT_WR)` fails with `kind`.
    pub fn fail_shutdown(&mut self, kind: ErrorKind) {
        self.dst.shutdown_fail = Some(kind);
    }

    /// One `pump` call, as the reactor makes it: `other_done` says the opposite direction has
    /// finished; `budget` is the number of reads allowed (the reactor gives
    /// [`READS_PER_TURN`]). Returns the bytes written, and the budget left.
    ///
    /// # Errors
    /// The relay's error: the connection would be closed now (see [`Relay::release`]).
    pub fn pump(&mut self, other_done: bool, budget: u32) -> io::Result<(u64, u32)> {
        let mut budget = budget;
        let seen = &mut self.seen;
        let mut hook = |chunk: &[u8]| seen.extend_from_slice(chunk);
        let ready = (&mut self.src_ready, &mut self.dst_ready);
        let (src, dst, pool) = (&mut self.src, &mut self.dst, &mut self.pool);
        let moved = match self.http.as_mut() {
            Some(c) => self.pipe.pump_with(
                c,
                src,
                dst,
                ready,
                other_done,
                pool,
                &mut budget,
                Some(&mut hook),
            ),
            None => self.pipe.pump(
                src,
                dst,
                ready,
                other_done,
                pool,
                &mut budget,
                Some(&mut hook),
            ),
        }?;
        // A tunnel request holds later requests until the server answers; this harness has no
        // server, so it declines at once, as the reactor does when the server closes, and
        // marks the source readable again as the reactor does on the release.
        if let Some(c) = self.http.as_mut() {
            if !c.watching(0, true) && c.take_released() {
                use crate::engine::relay::Carrier;
                let released = <HttpCarrier as Carrier<&mut Source, &mut Dest>>::visible(c);
                self.seen.extend_from_slice(released);
                self.src_ready.read = true;
            }
        }
        Ok((moved, budget))
    }

    /// Closes the connection (after an error, or when both directions are done): buffers go
    /// back to the pool.
    pub fn release(&mut self) {
        self.pipe.release(&mut self.pool);
    }

    /// What the destination received.
    pub fn out(&self) -> &[u8] {
        &self.dst.out
    }

    /// What the `on_read` hook saw, concatenated.
    pub fn seen(&self) -> &[u8] {
        &self.seen
    }

    /// The relay's count of bytes delivered.
    pub fn delivered(&self) -> u64 {
        self.pipe.bytes
    }

    /// Bytes the relay holds (read, not yet written).
    pub fn pending(&self) -> usize {
        use crate::engine::relay::Carrier;
        match &self.http {
            Some(c) => <HttpCarrier as Carrier<&mut Source, &mut Dest>>::held(c),
            None => self.pipe.pending(),
        }
    }

    /// The relay has seen the source's EOF.
    pub fn eof(&self) -> bool {
        self.pipe.eof
    }

    /// The relay has passed the EOF on (or decided the close will).
    pub fn shut(&self) -> bool {
        self.pipe.shut
    }

    /// This direction is finished.
    pub fn done(&self) -> bool {
        self.pipe.done() && self.pending() == 0
    }

    /// The destination was shut down for writing.
    pub fn dst_shut(&self) -> bool {
        self.dst.shut
    }

    /// `shutdown` calls made (successful or not).
    pub fn shutdowns(&self) -> u32 {
        self.dst.shutdowns
    }

    /// A write came after the destination was shut down.
    pub fn write_after_shut(&self) -> bool {
        self.dst.write_after_shut
    }

    /// Bytes the source handed to the relay.
    pub fn taken(&self) -> u64 {
        self.src.taken
    }

    /// The source has something the relay has not read yet: queued bytes, or the FIN (which
    /// the relay has also taken when it ended the stream on a short read after a clean FIN).
    pub fn src_has_input(&self) -> bool {
        self.src.at < self.src.queued.len()
            || (self.src.fin && !self.src.fin_read && !self.pipe.eof)
    }

    /// Free send-buffer space at the destination.
    pub fn dst_space(&self) -> usize {
        self.dst.space
    }

    /// The cached readiness: (source readable, destination writable).
    pub fn ready(&self) -> (bool, bool) {
        (self.src_ready.read, self.dst_ready.write)
    }

    /// Buffers checked out of the pool.
    pub fn buffers_out(&self) -> usize {
        self.pool.out
    }

    /// HTTP mode: an oversized request head was seen (reported once).
    pub fn take_oversized(&mut self) -> bool {
        self.http.as_mut().is_some_and(HttpCarrier::take_oversized)
    }
}
