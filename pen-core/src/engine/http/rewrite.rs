//! The sans-IO request rewriter: client bytes in (in any chunks), the same bytes out with the
//! forwarding headers added to every request head.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::chunked::ChunkDecoder;

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

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// What the rewriter needs to know about one parsed request head.
struct Framing<'b> {
    body: Body,
    /// The name of the last `X-Forwarded-For` header, a slice of the head.
    xff: Option<&'b [u8]>,
    /// It has an `X-Forwarded-Proto` header.
    xfp: bool,
    /// `CONNECT` or `Upgrade`: the rest of the connection is a tunnel.
    tunnel: bool,
}

impl<'b> Framing<'b> {
    /// Reads the headers that matter; `None` when the body length cannot be trusted.
    fn of(req: &httparse::Request<'_, 'b>) -> Option<Self> {
        let (mut length, mut lengths) = (None, 0u32);
        let (mut codings, mut chunked_at, mut chunked_count) = (0u32, 0u32, 0u32);
        let mut f = Framing {
            body: Body::None,
            xff: None,
            xfp: false,
            tunnel: req.method == Some("CONNECT"),
        };
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                lengths += 1;
                length = content_length(h.value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                for coding in h.value.split(|&b| b == b',') {
                    let coding = coding.trim_ascii();
                    if coding.is_empty() {
                        continue; // empty list elements are allowed (RFC 9110 section 5.6.1)
                    }
                    codings += 1;
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked_count += 1;
                        chunked_at = codings;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                f.xff = Some(name);
            } else if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
                f.xfp = true;
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                f.tunnel = true;
            }
        }
        f.body = if codings > 0 {
            // Chunked must be the last coding, once; with Content-Length as well the message
            // is a smuggling attempt; HTTP/1.0 has no chunked framing (RFC 9112 section 6.1).
            let ok = chunked_count == 1 && chunked_at == codings;
            if !ok || lengths > 0 || req.version != Some(1) {
                return None;
            }
            Body::Chunked
        } else {
            match (lengths, length) {
                (0, _) => Body::None,
                (1, Some(len)) => Body::Length(len),
                _ => return None,
            }
        };
        Some(f)
    }
}

/// A `Content-Length` value: decimal digits only (no sign, no list), within `u64`.
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IP: &str = "127.0.0.1";

    /// Records the output, the copied bytes alone, and each insertion with its offset.
    #[derive(Debug, Default)]
    struct Rec {
        out: Vec<u8>,
        copied: Vec<u8>,
        inserts: Vec<(usize, Vec<u8>)>,
    }

    impl Output for Rec {
        fn copy(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
            self.copied.extend_from_slice(bytes);
        }
        fn insert(&mut self, parts: &[&[u8]]) {
            let at = self.out.len();
            let text: Vec<u8> = parts.concat();
            self.out.extend_from_slice(&text);
            self.inserts.push((at, text));
        }
    }

    /// Feeds `input` cut at `cuts` (offsets, any order, out of range ignored), then EOF.
    fn feed(rw: &mut Rewriter, input: &[u8], cuts: &[usize]) -> Rec {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut rec = Rec::default();
        let mut at = 0;
        for c in cuts {
            rw.push(&input[at..c], &mut rec);
            // The bound on what is held back: one head plus one chunk.
            assert!(rw.buffered() <= MAX_HEAD + (c - at));
            at = c;
        }
        rw.finish(&mut rec);
        rec
    }

    /// Checks the output is the input plus well-formed insertions only, and returns it.
    fn check(input: &[u8], rec: &Rec) -> Vec<u8> {
        assert_eq!(rec.copied, input, "the input passes complete and in order");
        // Taking the insertions out of the output gives the input back, byte for byte.
        let mut rebuilt = Vec::new();
        let mut at = 0;
        for (pos, text) in &rec.inserts {
            rebuilt.extend_from_slice(&rec.out[at..*pos]);
            at = pos + text.len();
            let ok = [
                format!(", {IP}"),
                format!(" {IP}"),
                IP.to_string(),
                format!("X-Forwarded-For: {IP}\r\n"),
                "X-Forwarded-Proto: http\r\n".to_string(),
            ]
            .iter()
            .any(|t| t.as_bytes() == &text[..]);
            assert!(
                ok,
                "unexpected insertion {:?}",
                String::from_utf8_lossy(text)
            );
        }
        rebuilt.extend_from_slice(&rec.out[at..]);
        assert_eq!(rebuilt, input);
        rec.out.clone()
    }

    fn new() -> Rewriter {
        Rewriter::new(IP.parse().unwrap(), false)
    }

    /// Rewrites `input` whole, one byte at a time and in a few odd splits: all must agree.
    fn rewrite(input: &[u8]) -> (Vec<u8>, Rewriter) {
        let mut rw = new();
        let whole = check(input, &feed(&mut rw, input, &[]));
        let ones: Vec<usize> = (0..input.len()).collect();
        let mut rw1 = new();
        assert_eq!(
            check(input, &feed(&mut rw1, input, &ones)),
            whole,
            "1 byte at a time"
        );
        for cuts in [&[3usize, 17, 40][..], &[1, 2, 100, 101], &[input.len() / 2]] {
            let mut r = new();
            assert_eq!(
                check(input, &feed(&mut r, input, cuts)),
                whole,
                "cuts {cuts:?}"
            );
        }
        assert_eq!(rw1.stopped(), rw.stopped());
        (whole, rw)
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn adds_both_headers_before_the_blank_line() {
        let (out, rw) = rewrite(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            text(&out),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        assert_eq!((rw.requests(), rw.stopped()), (1, None));
    }

    #[test]
    fn any_method_and_http_1_0_and_no_headers() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "X",
        ] {
            let (out, rw) = rewrite(format!("{m} /x HTTP/1.0\r\n\r\n").as_bytes());
            assert_eq!(
                text(&out),
                format!("{m} /x HTTP/1.0\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n")
            );
            assert_eq!(rw.requests(), 1);
        }
    }

    #[test]
    fn bare_lf_heads_are_framed_too() {
        let (out, _) = rewrite(b"GET / HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\n\n");
        assert_eq!(
            text(&out),
            "GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\n\
             GET /2 HTTP/1.1\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\n"
        );
    }

    #[test]
    fn keep_alive_three_requests_body_never_touched() {
        let body = "GET /evil HTTP/1.1\r\nHost: x\r\n\r\n";
        let input = format!(
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
             POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}\
             GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
            body.len()
        );
        let (out, rw) = rewrite(input.as_bytes());
        let add = "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n";
        assert_eq!(
            text(&out),
            format!(
                "GET /1 HTTP/1.1\r\nHost: a\r\n{add}\r\n\
                 POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n{add}\r\n{body}\
                 GET /3 HTTP/1.1\r\nHost: a\r\n{add}\r\n",
                body.len()
            )
        );
        assert_eq!(rw.requests(), 3);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let body = "5;name=\"v\"\r\nGET /\r\n1A ; x\r\n HTTP/1.1\r\nHost: y\r\n\r\n....\r\n0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n";
        let input = format!(
            "POST /up HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{body}GET /next HTTP/1.1\r\n\r\n"
        );
        let (out, rw) = rewrite(input.as_bytes());
        let add = "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n";
        assert_eq!(
            text(&out),
            format!("POST /up HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n{add}\r\n{body}GET /next HTTP/1.1\r\n{add}\r\n")
        );
        assert_eq!((rw.requests(), rw.stopped()), (2, None));
    }

    #[test]
    fn pipelined_requests_each_get_the_headers() {
        let one = "GET /p HTTP/1.1\r\nHost: a\r\n\r\n";
        let (out, rw) = rewrite(one.repeat(10).as_bytes());
        assert_eq!(rw.requests(), 10);
        assert_eq!(
            text(&out).matches("X-Forwarded-For: 127.0.0.1\r\n").count(),
            10
        );
    }

    #[test]
    fn existing_forwarded_for_gets_the_address_appended() {
        let (out, _) = rewrite(b"GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1 \r\nHost: a\r\n\r\n");
        assert_eq!(
            text(&out),
            "GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1, 127.0.0.1 \r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        // Several: the last one is the end of the chain.
        let (out, _) = rewrite(
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
        );
        assert_eq!(
            text(&out),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        // Empty values get the address alone.
        let (out, _) = rewrite(b"GET / HTTP/1.1\r\nX-Forwarded-For:\r\nA: b\r\n\r\n");
        assert!(text(&out).contains("X-Forwarded-For: 127.0.0.1\r\nA: b\r\n"));
        let (out, _) = rewrite(b"GET / HTTP/1.1\r\nX-Forwarded-For: \r\n\r\n");
        assert!(text(&out).contains("X-Forwarded-For: 127.0.0.1\r\n"));
    }

    #[test]
    fn existing_forwarded_proto_is_kept_and_not_doubled() {
        let (out, _) = rewrite(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n");
        assert_eq!(
            text(&out),
            "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n"
        );
    }

    #[test]
    fn https_and_ipv6_clients() {
        let mut out = Vec::new();
        let mut rw = Rewriter::new("::1".parse().unwrap(), true);
        rw.push(&b"GET / HTTP/1.1\r\n\r\n"[..], &mut out);
        assert_eq!(
            text(&out),
            "GET / HTTP/1.1\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        let mut out = Vec::new();
        let mut rw = Rewriter::new("::ffff:10.1.2.3".parse().unwrap(), false);
        rw.push(&b"GET / HTTP/1.1\r\n\r\n"[..], &mut out);
        assert!(text(&out).contains("X-Forwarded-For: 10.1.2.3\r\n"));
    }

    #[test]
    fn upgrade_and_connect_turn_into_tunnels() {
        let raw = "\x01\x05hello GET / HTTP/1.1\r\n\r\n";
        let input =
            format!("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n{raw}");
        let (out, rw) = rewrite(input.as_bytes());
        assert_eq!(
            text(&out),
            format!("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n{raw}")
        );
        assert_eq!(rw.stopped(), Some(Stop::Tunnel));
        let (out, rw) =
            rewrite(b"CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n\r\n");
        assert!(text(&out)
            .ends_with("X-Forwarded-Proto: http\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n\r\n"));
        assert_eq!((rw.requests(), rw.stopped()), (1, Some(Stop::Tunnel)));
    }

    #[test]
    fn non_http_passes_through_unchanged() {
        for input in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\nGET / HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1 junk\r\n\r\n",
            b"hello",
            b"\r\r\n",
        ] {
            let (out, rw) = rewrite(input);
            assert_eq!(out, input);
            assert_eq!(rw.requests(), 0);
        }
        // Binary bytes are spotted at once, before any line end.
        let mut rw = new();
        let mut out = Vec::new();
        rw.push(&b"\x16\x03"[..], &mut out);
        assert_eq!(
            (&out[..], rw.stopped()),
            (&b"\x16\x03"[..], Some(Stop::NotHttp))
        );
        // A broken second request: the first is rewritten, the rest passes.
        let (out, rw) = rewrite(b"GET / HTTP/1.1\r\n\r\n\x00\x01GET / HTTP/1.1\r\n\r\n");
        assert!(text(&out).ends_with("\r\n\r\n\x00\x01GET / HTTP/1.1\r\n\r\n"));
        assert_eq!((rw.requests(), rw.stopped()), (1, Some(Stop::NotHttp)));
    }

    #[test]
    fn untrustworthy_framing_passes_through() {
        for input in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 3,3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            let (out, rw) = rewrite(input);
            assert_eq!(text(&out), text(input));
            assert_eq!(rw.stopped(), Some(Stop::Framing), "{}", text(input));
        }
        // A broken chunked body: the head was rewritten, the rest passes.
        let (out, rw) = rewrite(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n",
        );
        assert!(text(&out).ends_with("\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n"));
        assert_eq!((rw.requests(), rw.stopped()), (1, Some(Stop::Framing)));
    }

    #[test]
    fn oversized_heads_pass_through_unchanged_and_are_counted() {
        let big = "a".repeat(MAX_HEAD);
        let input =
            format!("GET / HTTP/1.1\r\nHost: a\r\nBig: {big}\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        let (out, rw) = rewrite(input.as_bytes());
        assert_eq!(out, input.as_bytes());
        assert_eq!(rw.stopped(), Some(Stop::Oversized));
        // One just under the limit is rewritten.
        let fill = "a".repeat(MAX_HEAD - 200);
        let input = format!("GET / HTTP/1.1\r\nBig: {fill}\r\n\r\n");
        let (_, rw) = rewrite(input.as_bytes());
        assert_eq!((rw.requests(), rw.stopped()), (1, None));
        // Too many header lines.
        let many = "A: b\r\n".repeat(MAX_HEADERS + 1);
        let input = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let (out, rw) = rewrite(input.as_bytes());
        assert_eq!(out, input.as_bytes());
        assert_eq!(rw.stopped(), Some(Stop::Oversized));
    }

    #[test]
    fn incomplete_head_is_held_then_flushed_at_eof() {
        let mut rw = new();
        let mut out = Vec::new();
        rw.push(&b"GET / HTTP/1.1\r\nHo"[..], &mut out);
        assert!(out.is_empty());
        assert_eq!(rw.buffered(), 18);
        rw.finish(&mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\nHo");
        assert_eq!(rw.buffered(), 0);
    }

    #[test]
    fn empty_lines_between_requests_pass() {
        let (out, rw) = rewrite(
            b"\r\n\nGET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\n\r\n",
        );
        assert_eq!(rw.requests(), 2);
        assert!(text(&out).starts_with("\r\n\nGET / HTTP/1.1\r\n"));
    }

    /// One generated request: its bytes, and how many insertions it must get.
    fn request() -> impl Strategy<Value = (Vec<u8>, usize)> {
        let method =
            prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "M-SEARCH"]);
        let version = prop::sample::select(vec!["1.0", "1.1"]);
        let headers = prop::collection::vec(
            prop::sample::select(vec![
                "Host: example",
                "X-Forwarded-For: 10.0.0.1",
                "x-forwarded-for:",
                "X-Forwarded-Proto: https",
                "Accept: */*",
                "Cookie: GET / HTTP/1.1",
            ]),
            0..5,
        );
        // Bodies that read like requests, and random bytes.
        let body = prop_oneof![
            Just(b"GET /evil HTTP/1.1\r\n\r\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..300),
        ];
        let chunked = prop::collection::vec((1usize..40, any::<bool>()), 0..5);
        (
            method,
            version,
            headers,
            body,
            any::<u8>(),
            chunked,
            any::<bool>(),
        )
            .prop_map(|(m, v, headers, body, kind, chunks, trailer)| {
                let mut r = format!("{m} /p?q=1 HTTP/{v}\r\n");
                for h in &headers {
                    r.push_str(h);
                    r.push_str("\r\n");
                }
                let mut bytes;
                match kind % 3 {
                    0 => {
                        r.push_str("\r\n");
                        bytes = r.into_bytes();
                    }
                    1 => {
                        r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                        bytes = r.into_bytes();
                        bytes.extend_from_slice(&body);
                    }
                    _ if v == "1.0" => {
                        r.push_str("\r\n");
                        bytes = r.into_bytes();
                    }
                    _ => {
                        r.push_str("Transfer-Encoding: chunked\r\n\r\n");
                        bytes = r.into_bytes();
                        let mut at = 0;
                        for (len, ext) in chunks {
                            let piece = &body[at.min(body.len())..(at + len).min(body.len())];
                            at += len;
                            if piece.is_empty() {
                                break;
                            }
                            let ext = if ext { ";a=b;c" } else { "" };
                            bytes.extend_from_slice(
                                format!("{:x}{ext}\r\n", piece.len()).as_bytes(),
                            );
                            bytes.extend_from_slice(piece);
                            bytes.extend_from_slice(b"\r\n");
                        }
                        bytes.extend_from_slice(b"0\r\n");
                        if trailer {
                            bytes.extend_from_slice(b"Trailer: GET / HTTP/1.1\r\n");
                        }
                        bytes.extend_from_slice(b"\r\n");
                    }
                }
                let xfp = headers.iter().any(|h| h.starts_with("X-Forwarded-Proto"));
                (bytes, 1 + usize::from(!xfp))
            })
    }

    proptest! {
        /// Keep-alive sequences of generated requests, cut anywhere: every request gets its
        /// insertions, the bytes are otherwise unchanged, and the output does not depend on
        /// the cuts.
        #[test]
        fn requests_in_any_chunks(
            reqs in prop::collection::vec(request(), 1..6),
            tail in prop::collection::vec(any::<u8>(), 0..50),
            upgrade in any::<bool>(),
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut input = Vec::new();
            let mut expect = 0;
            for (r, n) in &reqs {
                input.extend_from_slice(r);
                expect += n;
            }
            if upgrade {
                input.extend_from_slice(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
                input.extend_from_slice(&tail);
                expect += 2;
            }
            let mut rw = new();
            let whole = feed(&mut rw, &input, &[]);
            check(&input, &whole);
            prop_assert_eq!(whole.inserts.len(), expect);
            prop_assert_eq!(rw.requests() as usize, reqs.len() + usize::from(upgrade));
            prop_assert_eq!(rw.stopped(), upgrade.then_some(Stop::Tunnel));
            let mut rw = new();
            let cut = feed(&mut rw, &input, &cuts);
            check(&input, &cut);
            prop_assert_eq!(cut.out, whole.out);
        }

        /// Arbitrary bytes, cut anywhere: never a panic, only well-formed insertions, and the
        /// same output however the bytes arrive.
        #[test]
        fn arbitrary_bytes_in_any_chunks(
            prefix in prop::sample::select(vec![&b""[..], b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"]),
            data in prop::collection::vec(any::<u8>(), 0..400),
            cuts in prop::collection::vec(any::<usize>(), 0..30),
        ) {
            let mut input = prefix.to_vec();
            input.extend_from_slice(&data);
            let mut rw = new();
            let whole = check(&input, &feed(&mut rw, &input, &[]));
            let mut rw = new();
            prop_assert_eq!(check(&input, &feed(&mut rw, &input, &cuts)), whole);
        }
    }
}
