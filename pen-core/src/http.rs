//! HTTP mode (`-H`, `http`): inserts `X-Forwarded-For` and `X-Forwarded-Proto` into every
//! request a client sends, as a relay [`Carrier`] for the client-to-server direction.
//!
//! (Stub: passes bytes through unchanged; the framing rewriter comes next.)

use std::io::{self, Read, Write};
use std::net::IpAddr;

use crate::relay::{BufPool, Carrier};

/// The client-to-server carrier of one HTTP-mode connection.
#[derive(Debug)]
pub(crate) struct HttpCarrier {
    /// The client's address, for `X-Forwarded-For`.
    client: IpAddr,
    /// `X-Forwarded-Proto: https` (behind TLS) rather than `http`.
    https: bool,
    out: Vec<u8>,
    written: usize,
}

impl HttpCarrier {
    /// A carrier for a connection from `client`.
    pub(crate) fn new(client: IpAddr, https: bool) -> Self {
        HttpCarrier {
            client,
            https,
            out: Vec::new(),
            written: 0,
        }
    }
}

impl<S: Read, D: Write> Carrier<S, D> for HttpCarrier {
    fn held(&self) -> usize {
        self.out.len() - self.written
    }

    fn fill(&mut self, src: &mut S, _pool: &mut BufPool) -> io::Result<(usize, usize)> {
        let _ = (self.client, self.https);
        let mut buf = [0u8; 16 * 1024];
        let n = src.read(&mut buf)?;
        self.out.clear();
        self.written = 0;
        self.out.extend_from_slice(buf.get(..n).unwrap_or_default());
        Ok((n, buf.len()))
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
