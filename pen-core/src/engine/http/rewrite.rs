//! The sans-IO request rewriter: client bytes in (in any chunks), the requests out with the
//! forwarding headers set by pen, or a refusal.
//!
//! This file holds the rewriter's state machine: request-head recognition, parsing and its
//! limits, the header rewriting, the body state between heads, and the wait for the server's
//! answer to a tunnel request. What a parsed head says about its body is read in `framing`;
//! chunked bodies are walked in `chunked`; the server's answer is read in `answer`.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::answer::AnswerReader;
use super::chunked::ChunkDecoder;
use super::framing::{Body, Framing};

/// The largest request head (request line, header lines and the blank line) accepted; a
/// larger one is refused with `431`. 64 KiB is well above what browsers and common servers
/// send or accept (nginx: 8 KiB lines, Apache: 8 KiB fields).
pub const MAX_HEAD: usize = 64 * 1024;

/// The most header lines in one request head; more is refused with `431` too.
pub const MAX_HEADERS: usize = 128;

/// Why a request was refused: pen answers the client itself and closes the connection, and
/// nothing of the refused request reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] lines: `431`.
    TooLarge,
    /// A head that starts like an HTTP request but breaks RFC 9112's syntax (request line,
    /// field lines: whitespace before a colon, obsolete line folding, a bare CR, control
    /// bytes), or bytes that are not a request where one must start: `400`.
    Malformed,
    /// A body whose length cannot be trusted: `Transfer-Encoding` with `Content-Length`, a
    /// coding other than a final `chunked`, a chunked HTTP/1.0 request, a duplicate, listed or
    /// invalid `Content-Length`, a broken chunked body: `400`.
    Framing,
}

impl Refusal {
    /// The status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            Refusal::TooLarge => 431,
            Refusal::Malformed | Refusal::Framing => 400,
        }
    }

    /// The whole answer pen sends the client before it closes.
    pub fn response(self) -> &'static [u8] {
        match self {
            Refusal::TooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
            Refusal::Malformed | Refusal::Framing => {
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
        }
    }
}

/// Why the rewriter no longer rewrites requests on this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The connection's first bytes are not an HTTP/1.x request: it passes through unchanged.
    NotHttp,
    /// The server switched protocols (`101` to an `Upgrade`, `2xx` to a `CONNECT`): the rest
    /// is a tunnel, passed unchanged (a normal stop).
    Tunnel,
    /// A request was refused: nothing more goes to the server.
    Refused(Refusal),
}

/// Where the rewriter's output goes. Keeping copied, removed and inserted bytes apart lets
/// tests (and the fuzz targets) check that the input arrives complete and in order, minus the
/// removed forwarding headers and refused bytes, around the insertions.
pub trait Output {
    /// Appends input bytes, unchanged.
    fn copy(&mut self, bytes: &[u8]);
    /// Appends inserted bytes (the parts of one insertion, in order).
    fn insert(&mut self, parts: &[&[u8]]);
    /// Input bytes left out: a client's forwarding header line, a refused request and what
    /// followed it, an incomplete head at the end. Nothing is written.
    fn remove(&mut self, bytes: &[u8]) {
        let _ = bytes;
    }
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
    /// A tunnel request has been forwarded: later bytes are held until the server answers.
    Await,
    /// Everything passes through unchanged: not HTTP, or a tunnel.
    Raw,
    /// A request was refused: everything is dropped.
    Refused,
}

/// A tunnel request waiting for, or with, the server's answer.
#[derive(Clone, Copy, Debug)]
struct Tunnel {
    reader: AnswerReader,
    /// `Some(true)`: switched; `Some(false)`: declined.
    answer: Option<bool>,
}

/// Sets `X-Forwarded-For` and `X-Forwarded-Proto` on every request of one client connection,
/// and refuses what it cannot frame safely.
///
/// Requests are framed with `httparse` (request line and headers) and the body length
/// (`Content-Length`, chunked, or none), so every request of a keep-alive or pipelined
/// connection is rewritten and bodies pass untouched. For each request head:
/// - every `X-Forwarded-Proto` line the client sent is removed and pen's own
///   (`X-Forwarded-Proto: http` or `https`) is added;
/// - from an untrusted client every `X-Forwarded-For` line is removed and
///   `X-Forwarded-For: <client ip>` is added; from a trusted proxy ([`Rewriter::trusting`])
///   the last one gets `, <client ip>` appended in place (the usual chain), or the line is
///   added if there is none;
/// - added lines go at the end of the header block, just before the blank line.
///
/// Refusals ([`Refusal`]): a head over the limits, a head that starts like a request but is
/// malformed, a later request that is not HTTP at all, a body whose length cannot be trusted.
/// The refused request and everything after it are dropped; the caller answers the client
/// with [`Refusal::response`] and closes. Only the connection's first bytes may be something
/// else than HTTP/1.x (a TLS handshake, an HTTP/2 preface): then the whole connection passes
/// through unchanged, as C pen passes it.
///
/// Tunnels: when the connection's first request is an `Upgrade` or `CONNECT` request, the
/// bytes after it (and its body) are held, unread by the caller, until the server's answer
/// decides ([`Rewriter::server_bytes`], [`Rewriter::decline`]): a switch turns the rest of the
/// connection into a tunnel passed unchanged, anything else continues with requests rewritten.
/// Only the first request may open a tunnel, because its answer is the first response on the
/// connection and can be recognised without framing responses; a later `Upgrade` request is
/// forwarded as an ordinary one and the connection stays in HTTP mode.
///
/// Memory: at most one incomplete request head is buffered (bounded by [`MAX_HEAD`] plus one
/// input chunk) and freed once complete, or the bytes held while a tunnel answer is awaited;
/// the output goes to the caller's [`Output`].
#[derive(Debug)]
pub struct Rewriter {
    state: State,
    /// The start of an incomplete request head, or the bytes held during [`State::Await`].
    pending: Vec<u8>,
    /// How much of `pending` has been searched for line ends (so each byte is searched once).
    scanned: usize,
    /// The request line of the pending head is complete (and was parsed once).
    line_done: bool,
    /// The pending head starts like an HTTP request line (a method token and a space).
    sniffed: bool,
    /// The client address as text.
    ip: String,
    /// `http` or `https`.
    proto: &'static [u8],
    /// The client is a trusted proxy: its `X-Forwarded-For` is extended, not replaced.
    trusted: bool,
    tunnel: Option<Tunnel>,
    stopped: Option<Stop>,
    requests: u64,
}

impl Rewriter {
    /// A rewriter for a connection from `client`, not trusted; `https` when it arrived over
    /// TLS. An IPv4-mapped IPv6 address is written as IPv4.
    pub fn new(client: IpAddr, https: bool) -> Self {
        Rewriter {
            state: State::Head,
            pending: Vec::new(),
            scanned: 0,
            line_done: false,
            sniffed: false,
            ip: client.to_canonical().to_string(),
            proto: if https { b"https" } else { b"http" },
            trusted: false,
            tunnel: None,
            stopped: None,
            requests: 0,
        }
    }

    /// Whether the client is a trusted proxy (`trusted_proxy_acl`), whose `X-Forwarded-For`
    /// is extended rather than replaced.
    #[must_use]
    pub fn trusting(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }

    /// Why requests are no longer rewritten, if they are not.
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    /// The refusal, once a request has been refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.stopped {
            Some(Stop::Refused(r)) => Some(r),
            _ => None,
        }
    }

    /// Request heads rewritten so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes held back: an incomplete request head, or what came after a tunnel request.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// A tunnel request was forwarded and the server's answer is not known yet: the server's
    /// bytes go to [`Rewriter::server_bytes`] (from the first one on the connection).
    pub fn awaiting_answer(&self) -> bool {
        self.tunnel.is_some_and(|t| t.answer.is_none())
    }

    /// Input is held until the server answers: the caller stops reading from the client
    /// (bytes pushed now are held, unbounded).
    pub fn held_for_answer(&self) -> bool {
        matches!(self.state, State::Await)
    }

    /// The server's bytes while [`awaiting_answer`](Self::awaiting_answer), from its first:
    /// once they show its answer, the held bytes are released into `out`.
    pub fn server_bytes<O: Output>(&mut self, bytes: &[u8], out: &mut O) {
        if let Some(t) = self.tunnel.as_mut().filter(|t| t.answer.is_none()) {
            t.answer = t.reader.read(bytes);
            self.release(out);
        }
    }

    /// The server's answer cannot be read (its bytes passed unseen, or it closed first): the
    /// tunnel is declined and the held bytes are released into `out` as requests.
    pub fn decline<O: Output>(&mut self, out: &mut O) {
        if let Some(t) = self.tunnel.as_mut().filter(|t| t.answer.is_none()) {
            t.answer = Some(false);
            self.release(out);
        }
    }

    /// Once the answer is known and the tunnel request is complete: switch or go on.
    fn release<O: Output>(&mut self, out: &mut O) {
        if matches!(self.state, State::Await) && self.tunnel.is_some_and(|t| t.answer.is_some()) {
            self.state = self.after_request();
            let held = std::mem::take(&mut self.pending);
            self.push(&held, out);
        }
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

    /// The client has closed: an awaited tunnel answer counts as declined, and an incomplete
    /// head is dropped (or refused, if what came of it is already malformed), unless the
    /// connection's first bytes are still undecided: those pass unchanged, as not HTTP.
    pub fn finish<O: Output>(&mut self, out: &mut O) {
        self.decline(out);
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() && matches!(self.state, State::Head) {
            self.end_head(&pending, out);
        }
        if !matches!(self.state, State::Refused) {
            self.state = State::Raw;
        }
        self.scanned = 0;
    }

    /// Processes `buf` as far as it can; returns the bytes consumed. Stops early at an
    /// incomplete request head and while a tunnel answer is awaited.
    fn run<O: Output>(&mut self, buf: &[u8], out: &mut O) -> usize {
        let mut pos = 0;
        while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
            let n = match self.state {
                State::Raw => {
                    out.copy(rest);
                    rest.len()
                }
                State::Refused => {
                    out.remove(rest);
                    rest.len()
                }
                State::Await => break,
                State::Body(left) => {
                    // take <= rest.len(), so it fits a usize.
                    let take = left.min(rest.len() as u64) as usize;
                    out.copy(rest.get(..take).unwrap_or(rest));
                    self.state = match left - take as u64 {
                        0 => self.after_request(),
                        more => State::Body(more),
                    };
                    take
                }
                State::Chunked(mut dec) => match dec.advance(rest) {
                    Ok(n) => {
                        out.copy(rest.get(..n).unwrap_or(rest));
                        self.state = if dec.done() {
                            self.after_request()
                        } else {
                            State::Chunked(dec)
                        };
                        n
                    }
                    Err(bad) => {
                        let (valid, refused) = rest.split_at(bad.valid.min(rest.len()));
                        out.copy(valid);
                        valid.len() + self.refuse(Refusal::Framing, refused, out)
                    }
                },
                // Empty lines before a request line are allowed (RFC 9112 section 2.2) and some
                // clients send one after a body: they pass on, so the head starts at its
                // request line.
                State::Head => match rest {
                    [b'\n', ..] | [b'\r', b'\n', ..] => {
                        let n = if rest.first() == Some(&b'\n') { 1 } else { 2 };
                        out.copy(rest.get(..n).unwrap_or(rest));
                        self.new_head();
                        n
                    }
                    _ => match self.head(rest, out) {
                        Some(n) => n,
                        None => break,
                    },
                },
            };
            pos += n;
        }
        pos
    }

    /// The state after a complete request (head and body): the next head, or the tunnel's
    /// wait or switch.
    fn after_request(&mut self) -> State {
        match self.tunnel {
            None => State::Head,
            Some(Tunnel { answer: None, .. }) => State::Await,
            Some(Tunnel {
                answer: Some(true), ..
            }) => {
                self.stopped = Some(Stop::Tunnel);
                State::Raw
            }
            Some(Tunnel {
                answer: Some(false),
                ..
            }) => {
                self.tunnel = None;
                State::Head
            }
        }
    }

    /// Forgets the scanning state of the head just done.
    fn new_head(&mut self) {
        self.scanned = 0;
        self.line_done = false;
        self.sniffed = false;
    }

    /// Handles the request head at the start of `rest` (which starts with its request line):
    /// writes it, rewritten, and returns its length; `None` while it is incomplete. A head
    /// that cannot be rewritten is refused, or, as the connection's first bytes, passed on
    /// with everything after it when it is not HTTP at all.
    fn head<O: Output>(&mut self, rest: &[u8], out: &mut O) -> Option<usize> {
        if rest == b"\r" {
            return None; // maybe the start of an empty line
        }
        if !self.sniffed {
            // Only the first MAX_HEAD bytes count, so the verdict does not depend on how the
            // bytes arrived.
            match sniff(rest.get(..MAX_HEAD).unwrap_or(rest)) {
                Some(true) => self.sniffed = true,
                Some(false) => return Some(self.not_http(rest, out)),
                None if rest.len() >= MAX_HEAD => return Some(self.not_http(rest, out)),
                None => return None,
            }
        }
        // Parse only when it can tell something new: when the request line completes, when a
        // blank line appears, and at the size limit. Re-parsing on every byte of a head that
        // arrives slowly would cost time quadratic in its size.
        let from = self.scanned.saturating_sub(2).min(rest.len());
        let fresh = rest.get(from..).unwrap_or_default();
        let line_end = !self.line_done && fresh.contains(&b'\n');
        let blank =
            fresh.windows(2).any(|w| w == b"\n\n") || fresh.windows(3).any(|w| w == b"\n\r\n");
        if line_end || blank || rest.len() >= MAX_HEAD {
            if let Some(n) = self.parse(rest, out, false) {
                return Some(n);
            }
        }
        self.line_done |= line_end;
        self.scanned = rest.len();
        None
    }

    /// The client closed with `pending`, an incomplete head, held.
    fn end_head<O: Output>(&mut self, pending: &[u8], out: &mut O) {
        if !self.sniffed && self.requests == 0 {
            // Undecided first bytes ("hello"): not HTTP as far as anyone can tell.
            self.stopped = Some(Stop::NotHttp);
            out.copy(pending);
        } else if self.sniffed {
            // Whatever it parses to now, it never completed: dropped, or refused if broken.
            self.parse(pending, out, true);
        } else {
            out.remove(pending);
        }
    }

    /// Parses the head at the start of `rest` (the first [`MAX_HEAD`] bytes, so the verdict
    /// does not depend on how the bytes arrived); `None` while it is incomplete. At `eof` an
    /// incomplete head is dropped.
    fn parse<O: Output>(&mut self, rest: &[u8], out: &mut O, eof: bool) -> Option<usize> {
        let upto = rest.get(..MAX_HEAD).unwrap_or(rest);
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(upto, &mut headers) {
            Ok(httparse::Status::Complete(n)) => {
                let head = rest.get(..n).unwrap_or(rest);
                Some(self.rewrite(&req, head, rest, out))
            }
            Ok(httparse::Status::Partial) if rest.len() >= MAX_HEAD => {
                Some(self.refuse(Refusal::TooLarge, rest, out))
            }
            Ok(httparse::Status::Partial) if eof => {
                out.remove(rest);
                Some(rest.len())
            }
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => Some(self.refuse(Refusal::TooLarge, rest, out)),
            Err(_) => Some(self.refuse(Refusal::Malformed, rest, out)),
        }
    }

    /// Bytes that cannot start a request: the first bytes of a connection that is not HTTP
    /// pass on with everything after; where a request must start, they are refused.
    fn not_http<O: Output>(&mut self, rest: &[u8], out: &mut O) -> usize {
        if self.requests > 0 {
            return self.refuse(Refusal::Malformed, rest, out);
        }
        self.state = State::Raw;
        self.stopped = Some(Stop::NotHttp);
        out.copy(rest);
        rest.len()
    }

    /// Writes one complete head (`head`, the start of `rest`) with the forwarding headers set
    /// and sets up its body; returns the bytes consumed (the head, or all of `rest` when the
    /// request is refused).
    fn rewrite<O: Output>(
        &mut self,
        req: &httparse::Request<'_, '_>,
        head: &[u8],
        rest: &[u8],
        out: &mut O,
    ) -> usize {
        let Some(frame) = Framing::of(req) else {
            return self.refuse(Refusal::Framing, rest, out);
        };
        // The blank line ending the head: CRLF, or a bare LF.
        let n = head.len();
        let blank = if head.get(n.wrapping_sub(2)) == Some(&b'\r') {
            n - 2
        } else {
            n.saturating_sub(1)
        };
        let ip = self.ip.as_bytes();
        let extend = frame.xff.filter(|_| self.trusted);
        let mut at = 0;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            let xff = name.eq_ignore_ascii_case(b"x-forwarded-for");
            if !xff && !name.eq_ignore_ascii_case(b"x-forwarded-proto") {
                continue;
            }
            if xff && extend.is_some() {
                // A trusted proxy's chain: append to its last X-Forwarded-For, keep the others.
                if extend.map(<[u8]>::as_ptr) == Some(name.as_ptr()) {
                    if let Some((end, empty)) = value_end(head, name) {
                        out.copy(head.get(at..end).unwrap_or_default());
                        // An empty value gets the address alone, after a space if there is none.
                        let sep: &[u8] = match (empty, head.get(end.wrapping_sub(1))) {
                            (false, _) => b", ",
                            (true, Some(b':')) => b" ",
                            (true, _) => b"",
                        };
                        out.insert(&[sep, ip]);
                        at = end;
                    }
                }
                continue;
            }
            // The client's own line goes: pen sets this header.
            if let Some((start, end)) = line_of(head, name) {
                out.copy(head.get(at..start).unwrap_or_default());
                out.remove(head.get(start..end).unwrap_or_default());
                at = end;
            }
        }
        out.copy(head.get(at..blank).unwrap_or_default());
        if extend.is_none() {
            out.insert(&[b"X-Forwarded-For: ", ip, b"\r\n"]);
        }
        out.insert(&[b"X-Forwarded-Proto: ", self.proto, b"\r\n"]);
        out.copy(head.get(blank..).unwrap_or_default());
        // Only the first request's answer is the first response: see the type's docs.
        if self.requests == 0 {
            self.tunnel = frame.tunnel.map(|ask| Tunnel {
                reader: AnswerReader::new(ask),
                answer: None,
            });
        }
        self.requests += 1;
        self.new_head();
        self.state = match frame.body {
            Body::None | Body::Length(0) => self.after_request(),
            Body::Length(len) => State::Body(len),
            Body::Chunked => State::Chunked(ChunkDecoder::default()),
        };
        n
    }

    /// Refuses the request at the start of `rest`: drops it and everything after; returns its
    /// length.
    fn refuse<O: Output>(&mut self, why: Refusal, rest: &[u8], out: &mut O) -> usize {
        out.remove(rest);
        self.state = State::Refused;
        self.stopped = Some(Stop::Refused(why));
        self.tunnel = None;
        self.new_head();
        rest.len()
    }
}

/// Whether `rest` starts like an HTTP/1.x request line: a method token and a space.
/// `None` while it cannot tell (only token bytes so far, or a prefix of the HTTP/2 preface,
/// which is not HTTP/1.x).
fn sniff(rest: &[u8]) -> Option<bool> {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    if rest.starts_with(H2_PREFACE) {
        return Some(false);
    }
    if H2_PREFACE.starts_with(rest) {
        return None;
    }
    let end = rest.iter().position(|&b| !is_tchar(b))?;
    Some(end > 0 && rest.get(end) == Some(&b' '))
}

/// A `tchar` of RFC 9110 section 5.6.2 (the bytes of a method name, a coding name).
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The span of the header line whose name is `name` (a slice of `head`), line end included.
fn line_of(head: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let start = (name.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    // A field value holds no LF (obsolete folding is refused by the parser).
    let nl = head.get(start..)?.iter().position(|&b| b == b'\n')?;
    Some((start, start + nl + 1))
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

#[cfg(test)]
#[path = "rewrite_refusal_tests.rs"]
mod refusal_tests;
