//! HTTP mode (`-H`, `http`): inserts `X-Forwarded-For` and `X-Forwarded-Proto` into every
//! request a client sends, as a relay `Carrier` for the client-to-server direction.
//!
//! The work is done by [`Rewriter`], a sans-IO rewriter (bytes in, bytes out, no sockets): see
//! it for what is rewritten, the limits and when the connection turns to plain pass-through.
//! `HttpCarrier` runs it inside the relay loop. The server-to-client direction is a plain
//! relay and never looks at the bytes.

mod chunked;
mod framing;
mod rewrite;

use std::io::{self, Read, Write};
use std::net::IpAddr;

pub use rewrite::{Output, Rewriter, Stop, MAX_HEAD, MAX_HEADERS};

use crate::engine::relay::{BufPool, Carrier};

/// The client-to-server carrier of one HTTP-mode connection.
///
/// Each `fill` reads once into a pooled buffer (given back before it returns) and runs the
/// rewriter into `out`, which holds only bytes ready to write and is freed once written. An
/// incomplete request head waits inside the rewriter and is not counted by `held`: the relay
/// loop must keep reading to complete it. When the client closes, that head is written
/// unchanged before the EOF is passed on.
#[derive(Debug)]
pub(crate) struct HttpCarrier {
    rw: Rewriter,
    out: Vec<u8>,
    written: usize,
    /// An oversized head seen and not yet reported by [`HttpCarrier::take_oversized`].
    oversized_unreported: bool,
}

impl HttpCarrier {
    /// A carrier for a connection from `client`; `https` when the client came over TLS.
    pub(crate) fn new(client: IpAddr, https: bool) -> Self {
        HttpCarrier {
            rw: Rewriter::new(client, https),
            out: Vec::new(),
            written: 0,
            oversized_unreported: false,
        }
    }

    /// Whether an oversized request head ([`MAX_HEAD`]) has been seen since the last call:
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
}

impl<S: Read, D: Write> Carrier<S, D> for HttpCarrier {
    fn held(&self) -> usize {
        self.out.len() - self.written
    }

    fn fill(&mut self, src: &mut S, pool: &mut BufPool) -> io::Result<(usize, usize)> {
        // Called with nothing held: whatever is in `out` has been written.
        self.out.clear();
        self.written = 0;
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
            // EOF: an incomplete head goes out as it is. `Pipe::run` sees (0, _), sets eof, and
            // writes what is held before passing the EOF on, so nothing is lost.
            self.rw.finish(&mut self.out);
        } else {
            let data = buf.get(..got).unwrap_or_default();
            let was_stopped = self.rw.stopped().is_some();
            self.rw.push(data, &mut self.out);
            if !was_stopped && self.rw.stopped() == Some(Stop::Oversized) {
                self.oversized_unreported = true;
            }
        }
        pool.put(buf);
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
        let mut carrier = HttpCarrier::new("127.0.0.1".parse().unwrap(), false);
        for _ in 0..1_000_000 {
            if pipe.done() {
                break;
            }
            let mut r = Readiness {
                read: true,
                write: true,
                hup: false,
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
    fn incomplete_head_at_eof_is_written_before_the_half_close() {
        let data = b"GET / HTTP/1.1\r\n\r\nGET /half HTTP/1.1\r\nHos";
        let (out, shut, c) = relay(data, vec![1, 0, 3], vec![2, 0]);
        assert_eq!(out, rewritten(data));
        assert!(String::from_utf8_lossy(&out).ends_with("\r\n\r\nGET /half HTTP/1.1\r\nHos"));
        assert!(shut);
        assert_eq!(c.rw.requests(), 1);
    }

    #[test]
    fn oversized_head_is_reported_once() {
        let data = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(MAX_HEAD));
        let (out, _, mut c) = relay(data.as_bytes(), vec![BUF_SIZE_TEST], vec![BUF_SIZE_TEST]);
        assert_eq!(out, data.as_bytes());
        assert!(c.take_oversized());
        assert!(!c.take_oversized());
        assert_eq!(c.stopped(), Some(Stop::Oversized));
    }

    const BUF_SIZE_TEST: usize = crate::engine::relay::BUF_SIZE;

    proptest! {
        /// Through the relay loop, with any short reads, short writes and WouldBlock, the
        /// server receives exactly what the rewriter makes of the whole input, then the EOF.
        #[test]
        fn relayed_output_is_the_rewritten_input(
            body in prop::collection::vec(any::<u8>(), 0..3000),
            heads in 1usize..4,
            tail in prop::collection::vec(any::<u8>(), 0..40),
            reads in prop::collection::vec(0usize..500, 1..6),
            writes in prop::collection::vec(0usize..500, 1..6),
        ) {
            let mut data = Vec::new();
            for _ in 0..heads {
                data.extend_from_slice(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                data.extend_from_slice(&body);
            }
            data.extend_from_slice(&tail);
            let mut reads = reads; reads.push(1);
            let mut writes = writes; writes.push(1);
            let (out, shut, c) = relay(&data, reads, writes);
            prop_assert_eq!(out, rewritten(&data));
            prop_assert!(shut);
            prop_assert!(c.rw.requests() >= heads as u64);
        }
    }
}
