//! HTTP mode (`-H`, `http`): sets `X-Forwarded-For` and `X-Forwarded-Proto` on every request a
//! client sends, and refuses (`400`, `431`) what it cannot frame safely, as a relay `Carrier`
//! for the client-to-server direction.
//!
//! The work is done by [`Rewriter`], a sans-IO rewriter (bytes in, bytes out, no sockets): see
//! it for what is rewritten, refused, and when the connection turns to a tunnel.
//! `HttpCarrier` runs it inside the relay loop. The server-to-client direction is a plain
//! relay and never looks at the bytes, with one exception: while the connection's first
//! request asked for a tunnel (`Upgrade`, `CONNECT`) and its answer is not known, the reactor
//! shows the server's first bytes to `HttpCarrier::server_bytes` (through the relay's read
//! hook, which copies through a user-space buffer for those reads only).
//!
//! A refused request ends the connection: the relay gets an error from the carrier, and the
//! reactor sends the client [`Refusal::response`] (`send_refusal`) before closing both sides.

mod answer;
mod chunked;
mod framing;
mod rewrite;

use std::io::{self, Read, Write};
use std::net::IpAddr;

pub use rewrite::{Output, Refusal, Rewriter, Stop, MAX_HEAD, MAX_HEADERS};

use crate::engine::relay::{BufPool, Carrier};

/// The client-to-server carrier of one HTTP-mode connection.
///
/// Each `fill` reads once into a pooled buffer (given back before it returns) and runs the
/// rewriter into `out`, which holds only bytes ready to write and is freed once written. An
/// incomplete request head waits inside the rewriter and is not counted by `held`: the relay
/// loop must keep reading to complete it. While a tunnel answer is awaited, `fill` reads
/// nothing (`WouldBlock`); the reactor sets the client readable again once
/// [`HttpCarrier::take_released`] says the answer came.
#[derive(Debug)]
pub(crate) struct HttpCarrier {
    rw: Rewriter,
    out: Vec<u8>,
    written: usize,
    /// An oversized head refused and not yet reported by [`HttpCarrier::take_oversized`].
    oversized_unreported: bool,
    /// Server bytes shown to the rewriter while it awaited an answer.
    watched: u64,
    /// The awaited answer came: client reads may resume.
    released: bool,
}

impl HttpCarrier {
    /// A carrier for a connection from `client`; `https` when the client came over TLS;
    /// `trusted` when it is a trusted proxy (`trusted_proxy_acl`).
    pub(crate) fn new(client: IpAddr, https: bool, trusted: bool) -> Self {
        HttpCarrier {
            rw: Rewriter::new(client, https).trusting(trusted),
            out: Vec::new(),
            written: 0,
            oversized_unreported: false,
            watched: 0,
            released: false,
        }
    }

    /// Whether an oversized request head ([`MAX_HEAD`]) has been refused since the last call:
    /// true at most once per connection, for a metric.
    pub(crate) fn take_oversized(&mut self) -> bool {
        std::mem::take(&mut self.oversized_unreported)
    }

    /// For the request-head deadline (`request_timeout`): `None` once requests are no longer
    /// framed, else the request heads done so far and whether one is incomplete (the first
    /// until it is done, a later one while its start is held back).
    pub(crate) fn head_progress(&self) -> Option<(u64, bool)> {
        if self.rw.stopped().is_some() {
            return None;
        }
        let heads = self.rw.requests();
        Some((heads, heads == 0 || self.rw.buffered() > 0))
    }

    /// Why requests are no longer rewritten on this connection, if they are not.
    #[allow(dead_code)] // for the status page and metrics
    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.rw.stopped()
    }

    /// The refusal to send the client, once a request has been refused.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        self.rw.refusal()
    }

    /// Whether the server's next bytes must be shown to [`HttpCarrier::server_bytes`]:
    /// `server_read` is how many bytes have been read from the server so far, `server_eof`
    /// whether it has closed. If bytes passed unseen (the server spoke first) or the server
    /// closed, the tunnel is declined here instead.
    pub(crate) fn watching(&mut self, server_read: u64, server_eof: bool) -> bool {
        if !self.rw.awaiting_answer() {
            return false;
        }
        if server_eof || server_read != self.watched {
            self.rw.decline(&mut self.out);
            self.after_answer();
            return false;
        }
        true
    }

    /// `carrier`, if the server's next bytes must be shown to it ([`HttpCarrier::watching`]).
    pub(crate) fn watch(
        carrier: Option<&mut HttpCarrier>,
        server_read: u64,
        server_eof: bool,
    ) -> Option<&mut HttpCarrier> {
        let h = carrier?;
        h.watching(server_read, server_eof).then_some(h)
    }

    /// Bytes read from the server while [`watching`](Self::watching).
    pub(crate) fn server_bytes(&mut self, chunk: &[u8]) {
        if self.rw.awaiting_answer() {
            self.watched += chunk.len() as u64;
            self.rw.server_bytes(chunk, &mut self.out);
            self.after_answer();
        }
    }

    /// After the answer may have come: note the release and any refusal among the bytes it
    /// let go.
    fn after_answer(&mut self) {
        if !self.rw.awaiting_answer() {
            self.released = true;
        }
        if self.rw.refusal().is_some() {
            self.refused();
        }
    }

    /// Whether the awaited answer came since the last call: the client's reads resume.
    pub(crate) fn take_released(&mut self) -> bool {
        std::mem::take(&mut self.released)
    }

    /// A request was refused: nothing more goes to the server.
    fn refused(&mut self) {
        self.out = Vec::new();
        self.written = 0;
        if self.rw.refusal() == Some(Refusal::TooLarge) {
            self.oversized_unreported = true;
        }
    }
}

/// The error `fill` returns when a request is refused (the reactor then sends the refusal).
fn refused_error() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "HTTP request refused")
}

/// Sends `refusal` to a plain client before its connection is closed, best effort: one
/// write (the answer is small and the socket's send buffer holds it unless the client stopped
/// reading), then the half-close, then what the client already sent is read and dropped (up to
/// one buffer a few times), so that the close does not reset the connection before the
/// client reads the answer.
pub(crate) fn send_refusal(
    client: &crate::engine::net::Stream,
    refusal: Refusal,
    pool: &mut BufPool,
) {
    let mut sock = client;
    if sock.write(refusal.response()).is_err() {
        return;
    }
    if client.shutdown_write().is_err() {
        return;
    }
    let mut buf = pool.get();
    for _ in 0..4 {
        match sock.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    pool.put(buf);
}

impl<S: Read, D: Write> Carrier<S, D> for HttpCarrier {
    fn held(&self) -> usize {
        self.out.len() - self.written
    }

    fn fill(&mut self, src: &mut S, pool: &mut BufPool) -> io::Result<(usize, usize)> {
        // Called with nothing held: whatever is in `out` has been written.
        self.out.clear();
        self.written = 0;
        if self.rw.refusal().is_some() {
            return Err(refused_error());
        }
        if self.rw.held_for_answer() {
            // Later requests wait, unread, until the server answers the tunnel request.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut buf = pool.get();
        let asked = buf.len();
        let got = match src.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                pool.put(buf);
                return Err(e);
            }
        };
        if got == 0 {
            // EOF: `Pipe::run` sees (0, _), sets eof, and writes what is held before passing
            // the EOF on.
            self.rw.finish(&mut self.out);
        } else {
            let data = buf.get(..got).unwrap_or_default();
            self.rw.push(data, &mut self.out);
        }
        pool.put(buf);
        if self.rw.refusal().is_some() {
            // Requests before the refused one in this read are dropped with it: the
            // connection ends here and their answers could not be delivered anyway.
            self.refused();
            return Err(refused_error());
        }
        // `got` is what was read, not what is now held, so the short-read rule stays right.
        Ok((got, asked))
    }

    fn drain(&mut self, dst: &mut D) -> io::Result<(usize, usize)> {
        let rest = self.out.get(self.written..).unwrap_or_default();
        let offered = rest.len();
        let n = dst.write(rest)?;
        self.written += n;
        Ok((n, offered))
    }

    fn release_if_empty(&mut self, _pool: &mut BufPool) {
        if self.written == self.out.len() {
            self.out = Vec::new();
            self.written = 0;
        }
    }

    fn visible(&self) -> &[u8] {
        self.out.get(self.written..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::relay::mock::{Dst, Src};
    use crate::engine::relay::{Pipe, Readiness};
    use proptest::prelude::*;

    /// Relays `data` through an HTTP carrier with the given read and write patterns.
    fn relay(data: &[u8], reads: Vec<usize>, writes: Vec<usize>) -> (Vec<u8>, bool, HttpCarrier) {
        let mut src = Src {
            data: data.to_vec(),
            pos: 0,
            chunks: reads,
            turn: 0,
        };
        let mut dst = Dst {
            out: Vec::new(),
            sizes: writes,
            turn: 0,
            shut: false,
        };
        let mut pool = BufPool::new(4);
        let mut pipe = Pipe::default();
        let mut carrier = HttpCarrier::new("127.0.0.1".parse().unwrap(), false, false);
        for _ in 0..1_000_000 {
            if pipe.done() {
                break;
            }
            let mut r = Readiness {
                read: true,
                write: true,
                hup: false,
                fin: false,
            };
            let mut w = r;
            let mut budget = crate::engine::relay::READS_PER_TURN;
            let ready = (&mut r, &mut w);
            pipe.pump_with(
                &mut carrier,
                &mut src,
                &mut dst,
                ready,
                false,
                &mut pool,
                &mut budget,
                None,
            )
            .unwrap();
            assert_eq!(pool.out, 0, "the read buffer goes back within fill");
        }
        assert!(pipe.done());
        assert!(carrier.out.capacity() == 0, "output freed once written");
        (dst.out, dst.shut, carrier)
    }

    fn rewritten(data: &[u8]) -> Vec<u8> {
        let mut rw = Rewriter::new("127.0.0.1".parse().unwrap(), false);
        let mut out = Vec::new();
        rw.push(data, &mut out);
        rw.finish(&mut out);
        out
    }

    #[test]
    fn incomplete_head_at_eof_is_dropped_before_the_half_close() {
        let data = b"GET / HTTP/1.1\r\n\r\nGET /half HTTP/1.1\r\nHos";
        let (out, shut, c) = relay(data, vec![1, 0, 3], vec![2, 0]);
        assert_eq!(out, rewritten(data));
        assert!(String::from_utf8_lossy(&out).ends_with("X-Forwarded-Proto: http\r\n\r\n"));
        assert!(shut);
        assert_eq!(c.rw.requests(), 1);
    }

    #[test]
    fn oversized_head_is_refused_and_reported_once() {
        let data = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(MAX_HEAD));
        let mut c = HttpCarrier::new("127.0.0.1".parse().unwrap(), false, false);
        let mut pool = BufPool::new(4);
        let mut src = data.as_bytes();
        let mut sink = Vec::new();
        let err = loop {
            match <HttpCarrier as Carrier<&[u8], &mut Vec<u8>>>::fill(&mut c, &mut src, &mut pool) {
                Ok(_) => {
                    <HttpCarrier as Carrier<&[u8], &mut Vec<u8>>>::drain(&mut c, &mut &mut sink)
                        .unwrap();
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(sink.is_empty(), "nothing of the refused head was forwarded");
        assert_eq!(c.refusal(), Some(Refusal::TooLarge));
        assert!(c.take_oversized());
        assert!(!c.take_oversized());
        assert_eq!(pool.out, 0);
    }

    #[test]
    fn requests_after_a_tunnel_request_wait_for_the_answer() {
        let data = b"GET /ws HTTP/1.1\r\nUpgrade: x\r\n\r\nGET /next HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
        for (answer, tunnel) in [
            (&b"HTTP/1.1 101 Switching\r\n\r\n"[..], true),
            (b"HTTP/1.1 400 No\r\n", false),
        ] {
            let mut c = HttpCarrier::new("127.0.0.1".parse().unwrap(), false, false);
            let mut pool = BufPool::new(4);
            let mut src = &data[..];
            let (got, _) =
                <HttpCarrier as Carrier<&[u8], Vec<u8>>>::fill(&mut c, &mut src, &mut pool)
                    .unwrap();
            assert_eq!(got, data.len());
            let first = String::from_utf8(c.out.clone()).unwrap();
            assert!(
                first.starts_with("GET /ws") && !first.contains("/next"),
                "{first}"
            );
            c.out.clear();
            // Nothing is read until the answer.
            let mut more = &b"X"[..];
            let e = <HttpCarrier as Carrier<&[u8], Vec<u8>>>::fill(&mut c, &mut more, &mut pool)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert_eq!(more.len(), 1);
            assert!(c.watching(0, false));
            // Bytes the reactor did not show: declined. Here they are shown, split.
            c.server_bytes(&answer[..5]);
            assert!(!c.take_released());
            c.server_bytes(&answer[5..]);
            assert!(c.take_released());
            assert!(!c.watching(answer.len() as u64, false));
            let next = String::from_utf8(c.out.clone()).unwrap();
            if tunnel {
                assert!(
                    next.contains("X-Forwarded-For: 6.6.6.6"),
                    "raw in a tunnel: {next}"
                );
                assert_eq!(c.stopped(), Some(Stop::Tunnel));
            } else {
                assert!(!next.contains("6.6.6.6"), "rewritten: {next}");
                assert!(next.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{next}");
            }
        }
        // The server spoke before pen watched, or closed: declined.
        let mut c = HttpCarrier::new("127.0.0.1".parse().unwrap(), false, false);
        let mut pool = BufPool::new(4);
        <HttpCarrier as Carrier<&[u8], Vec<u8>>>::fill(&mut c, &mut &data[..], &mut pool).unwrap();
        assert!(!c.watching(3, false));
        assert!(c.take_released());
        let mut c = HttpCarrier::new("127.0.0.1".parse().unwrap(), false, false);
        <HttpCarrier as Carrier<&[u8], Vec<u8>>>::fill(&mut c, &mut &data[..], &mut pool).unwrap();
        assert!(!c.watching(0, true));
        assert!(c.take_released());
    }

    proptest! {
        /// Through the relay loop, with any short reads, short writes and WouldBlock, the
        /// server receives exactly what the rewriter makes of the whole input, then the EOF.
        #[test]
        fn relayed_output_is_the_rewritten_input(
            body in prop::collection::vec(any::<u8>(), 0..3000),
            heads in 1usize..4,
            tail in 0usize..=28,
            reads in prop::collection::vec(0usize..500, 1..6),
            writes in prop::collection::vec(0usize..500, 1..6),
        ) {
            let mut data = Vec::new();
            for _ in 0..heads {
                data.extend_from_slice(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                data.extend_from_slice(&body);
            }
            // A complete request, or the start of one the client does not finish.
            data.extend_from_slice(&b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n"[..tail]);
            let mut reads = reads; reads.push(1);
            let mut writes = writes; writes.push(1);
            let (out, shut, c) = relay(&data, reads, writes);
            prop_assert_eq!(out, rewritten(&data));
            prop_assert!(shut);
            prop_assert!(c.rw.requests() >= heads as u64);
        }
    }
}
