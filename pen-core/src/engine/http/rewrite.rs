//! The sans-IO request rewriter: client bytes in (in any chunks), the same bytes out with the
//! forwarding headers added to every request head.
//!
//! This file holds the rewriter's state machine: request-head parsing and its limits, header
//! insertion, and the body state between heads. What a parsed head says about its body and the
//! forwarding headers is read in `framing`; chunked bodies are walked in `chunked`.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::chunked::ChunkDecoder;
use super::framing::{Body, Framing};

/// The largest request head (request line, header lines and the blank line) that is rewritten.
/// A larger one is passed through unchanged, never truncated, together with everything after
/// it on the connection, and counted ([`Stop::Oversized`]). 64 KiB is well above what
/// browsers and common servers send or accept (nginx: 8 KiB lines, Apache: 8 KiB fields).
pub const MAX_HEAD: usize = 64 * 1024;

/// The most header lines in one request head; more counts as oversized too.
pub const MAX_HEADERS: usize = 128;

/// Why the rewriter stopped framing requests and passes the rest of the connection through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The bytes are not an HTTP/1.x request (the first bytes, or a later request head).
    NotHttp,
    /// A request head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] lines.
    Oversized,
    /// A head whose body length cannot be trusted (duplicate or invalid `Content-Length`,
    /// `Transfer-Encoding` that is not chunked or comes with `Content-Length`, a chunked
    /// HTTP/1.0 request) or a broken chunked body: framing on would risk rewriting a body.
    Framing,
    /// An `Upgrade` or `CONNECT` request: the rest is a tunnel (this is a normal stop).
    Tunnel,
}

/// Where the rewriter's output goes. Keeping copied and inserted bytes apart lets tests (and
/// the fuzz target) check that the input arrives complete and unchanged around the insertions.
pub trait Output {
    /// Appends input bytes, unchanged.
    fn copy(&mut self, bytes: &[u8]);
    /// Appends inserted bytes (the parts of one insertion, in order).
    fn insert(&mut self, parts: &[&[u8]]);
}

impl Output for Vec<u8> {
    fn copy(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn insert(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.extend_from_slice(p);
        }
    }
}

/// What comes next on the connection.
#[derive(Clone, Copy, Debug)]
enum State {
    /// A request head (possibly after empty lines).
    Head,
    /// A `Content-Length` body: this many bytes left.
    Body(u64),
    /// A chunked body.
    Chunked(ChunkDecoder),
    /// Everything passes through unchanged: after an upgrade, or after [`Rewriter::stop`].
    Raw,
}

/// Adds `X-Forwarded-For` and `X-Forwarded-Proto` to every request of one client connection.
///
/// Requests are framed with `httparse` (request line and headers) and the body length
/// (`Content-Length`, chunked, or none), so every request of a keep-alive or pipelined
/// connection gets the headers and bodies pass untouched. For each request head:
/// - an existing `X-Forwarded-For` (the last one, if several) gets `, <client ip>` appended in
///   place, keeping its name's spelling; otherwise `X-Forwarded-For: <client ip>` is added;
/// - `X-Forwarded-Proto: http` (or `https`) is added unless the request has one already;
/// - added lines go at the end of the header block, just before the blank line.
///
/// After a request with an `Upgrade` header or a `CONNECT` request, the rest of the connection
/// passes through unchanged. The switch happens on the request, because this direction never
/// sees the server's `101` or `2xx` answer: if the server declines the upgrade, later requests
/// on that connection go without the headers. Anything that does not parse (not HTTP at all, a
/// malformed head, untrustworthy framing) and heads over [`MAX_HEAD`] also switch the rest of
/// the connection to pass-through, unchanged; [`Rewriter::stopped`] says why.
///
/// Memory: at most one incomplete request head is buffered (bounded by [`MAX_HEAD`] plus one
/// input chunk) and freed once complete; the output goes to the caller's [`Output`].
#[derive(Debug)]
pub struct Rewriter {
    state: State,
    /// The start of an incomplete request head, waiting for more bytes.
    pending: Vec<u8>,
    /// How much of `pending` has been searched for line ends (so each byte is searched once).
    scanned: usize,
    /// The request line of the pending head is complete (and was parsed once).
    line_done: bool,
    /// The client address as text.
    ip: String,
    /// `http` or `https`.
    proto: &'static [u8],
    stopped: Option<Stop>,
    requests: u64,
}

impl Rewriter {
    /// A rewriter for a connection from `client`; `https` when it arrived over TLS. An
    /// IPv4-mapped IPv6 address is written as IPv4.
    pub fn new(client: IpAddr, https: bool) -> Self {
        Rewriter {
            state: State::Head,
            pending: Vec::new(),
            scanned: 0,
            line_done: false,
            ip: client.to_canonical().to_string(),
            proto: if https { b"https" } else { b"http" },
            stopped: None,
            requests: 0,
        }
    }

    /// Why requests are no longer framed, if they are not.
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    /// Request heads rewritten so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes of an incomplete request head held back until more arrive (or [`finish`]).
    ///
    /// [`finish`]: Rewriter::finish
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Takes the next chunk of client bytes, writing to `out` everything that can be written
    /// now; the start of an incomplete request head is held back.
    pub fn push<O: Output>(&mut self, input: &[u8], out: &mut O) {
        if self.pending.is_empty() {
            let used = self.run(input, out);
            if let Some(rest) = input.get(used..) {
                self.pending.extend_from_slice(rest);
            }
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(input);
        let used = self.run(&pending, out);
        if used >= pending.len() {
            return; // `self.pending` stays the empty Vec: the buffer is freed
        }
        // Keep the unfinished head, reusing the buffer.
        pending.drain(..used);
        self.pending = pending;
    }

    /// The client has closed: writes any incomplete head held back, unchanged.
    pub fn finish<O: Output>(&mut self, out: &mut O) {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            out.copy(&pending);
        }
        self.state = State::Raw;
        self.scanned = 0;
    }

    /// Processes `buf` as far as it can; returns the bytes consumed. Stops early only at an
    /// incomplete request head.
    fn run<O: Output>(&mut self, buf: &[u8], out: &mut O) -> usize {
        let mut pos = 0;
        while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
            let n = match self.unchanged(rest) {
                0 => match self.head(rest, out) {
                    Some(n) => n,
                    None => break,
                },
                n => {
                    out.copy(rest.get(..n).unwrap_or(rest));
                    n
                }
            };
            pos += n;
        }
        pos
    }

    /// Steps over the bytes at the start of `rest` that pass unchanged in the current state;
    /// 0 when `rest` starts a request head (or may: a lone CR).
    fn unchanged(&mut self, rest: &[u8]) -> usize {
        match self.state {
            State::Raw => rest.len(),
            State::Body(left) => {
                let take = left.min(rest.len() as u64);
                self.state = if take == left {
                    State::Head
                } else {
                    State::Body(left - take)
                };
                // take <= rest.len(), so it fits a usize.
                take as usize
            }
            State::Chunked(mut dec) => match dec.advance(rest) {
                Ok(n) => {
                    self.state = if dec.done() {
                        State::Head
                    } else {
                        State::Chunked(dec)
                    };
                    n
                }
                Err(_) => {
                    self.stop(Stop::Framing);
                    rest.len()
                }
            },
            // Empty lines before a request line are allowed (RFC 9112 section 2.2) and some
            // clients send one after a body: they pass on, so the head starts at its request
            // line.
            State::Head => {
                let n = match rest {
                    [b'\n', ..] => 1,
                    [b'\r', b'\n', ..] => 2,
                    _ => 0,
                };
                if n > 0 {
                    self.scanned = 0;
                    self.line_done = false;
                }
                n
            }
        }
    }

    /// Handles the request head at the start of `rest` (which starts with its request line):
    /// writes it, rewritten, and returns its length; `None` while it is incomplete. A head that
    /// cannot be rewritten is written unchanged with everything after it.
    fn head<O: Output>(&mut self, rest: &[u8], out: &mut O) -> Option<usize> {
        // Parse only when it can tell something new: on the first bytes (to spot non-HTTP at
        // once), when the request line completes, and when a blank line appears. Re-parsing on
        // every byte of a head that arrives slowly would cost time quadratic in its size.
        let from = self.scanned.saturating_sub(2).min(rest.len());
        let fresh = rest.get(from..).unwrap_or_default();
        let first = self.scanned == 0;
        let line_end = !self.line_done && fresh.contains(&b'\n');
        let blank =
            fresh.windows(2).any(|w| w == b"\n\n") || fresh.windows(3).any(|w| w == b"\n\r\n");
        if first || line_end || blank {
            let mut headers =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(rest, &mut headers) {
                Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
                    return Some(self.give_up(Stop::Oversized, rest, out));
                }
                Ok(httparse::Status::Complete(n)) => {
                    let head = rest.get(..n).unwrap_or(rest);
                    return Some(self.rewrite(&req, head, rest, out));
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Some(self.give_up(Stop::Oversized, rest, out));
                }
                Err(_) => return Some(self.give_up(Stop::NotHttp, rest, out)),
            }
        }
        if rest.len() > MAX_HEAD {
            return Some(self.give_up(Stop::Oversized, rest, out));
        }
        self.line_done |= line_end;
        self.scanned = rest.len();
        None
    }

    /// Writes one complete head (`head`, the start of `rest`) with the headers added and sets
    /// up its body; returns the bytes consumed (the head, or all of `rest` when its framing
    /// cannot be trusted).
    fn rewrite<O: Output>(
        &mut self,
        req: &httparse::Request<'_, '_>,
        head: &[u8],
        rest: &[u8],
        out: &mut O,
    ) -> usize {
        let Some(frame) = Framing::of(req) else {
            return self.give_up(Stop::Framing, rest, out);
        };
        // The blank line ending the head: CRLF, or a bare LF.
        let n = head.len();
        let blank = if head.get(n.wrapping_sub(2)) == Some(&b'\r') {
            n - 2
        } else {
            n.saturating_sub(1)
        };
        let before = head.get(..blank).unwrap_or(head);
        let ip = self.ip.as_bytes();
        match frame.xff.and_then(|name| value_end(head, name)) {
            Some((at, empty)) => {
                out.copy(before.get(..at).unwrap_or(before));
                // An empty value gets the address alone, after a space if there is none.
                let sep: &[u8] = match (empty, head.get(at.wrapping_sub(1))) {
                    (false, _) => b", ",
                    (true, Some(b':')) => b" ",
                    (true, _) => b"",
                };
                out.insert(&[sep, ip]);
                out.copy(before.get(at..).unwrap_or_default());
            }
            None => {
                out.copy(before);
                out.insert(&[b"X-Forwarded-For: ", ip, b"\r\n"]);
            }
        }
        if !frame.xfp {
            out.insert(&[b"X-Forwarded-Proto: ", self.proto, b"\r\n"]);
        }
        out.copy(head.get(blank..).unwrap_or_default());
        self.requests += 1;
        self.scanned = 0;
        self.line_done = false;
        self.state = match frame.body {
            _ if frame.tunnel => {
                self.stopped = Some(Stop::Tunnel);
                State::Raw
            }
            Body::None | Body::Length(0) => State::Head,
            Body::Length(len) => State::Body(len),
            Body::Chunked => State::Chunked(ChunkDecoder::default()),
        };
        n
    }

    /// Writes `rest` unchanged and passes the rest of the connection through; returns its
    /// length.
    fn give_up<O: Output>(&mut self, why: Stop, rest: &[u8], out: &mut O) -> usize {
        self.stop(why);
        out.copy(rest);
        rest.len()
    }

    /// Stops framing: everything from here on passes unchanged.
    fn stop(&mut self, why: Stop) {
        self.state = State::Raw;
        self.stopped = Some(why);
        self.scanned = 0;
    }
}

/// Where to append to the value of the header named `name` (a slice of `head`), and whether
/// the value is empty: after the last non-blank byte of a value, at the end of the line for an
/// empty one.
fn value_end(head: &[u8], name: &[u8]) -> Option<(usize, bool)> {
    // httparse hands out slices of the buffer it parsed: their addresses give the offsets.
    let start = (name.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    let colon = start.checked_add(name.len())?;
    let line = head.get(colon..)?;
    let nl = line.iter().position(|&b| b == b'\n')?;
    let value = line.get(1..nl)?; // after the colon, up to the LF
    let value = value.strip_suffix(b"\r").unwrap_or(value);
    Some(
        match value.iter().rposition(|&b| !matches!(b, b' ' | b'\t')) {
            Some(last) => (colon + 1 + last + 1, false),
            None => (colon + 1 + value.len(), true),
        },
    )
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
