//! Tests of the request rewriter: the forwarding headers on hand-written requests, trusted
//! proxies, pass-through of non-HTTP, and properties over generated requests fed in any
//! chunks. Refusals and tunnels are tested in `rewrite_refusal_tests.rs`.

use super::*;
use proptest::prelude::*;

pub(super) const IP: &str = "127.0.0.1";

/// Records the output, the input as consumed (copied or removed, in order), and each
/// insertion and removal with its offset in the output.
#[derive(Debug, Default)]
pub(super) struct Rec {
    pub(super) out: Vec<u8>,
    pub(super) consumed: Vec<u8>,
    pub(super) inserts: Vec<(usize, Vec<u8>)>,
    pub(super) removed: Vec<Vec<u8>>,
}

impl Output for Rec {
    fn copy(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.consumed.extend_from_slice(bytes);
    }
    fn insert(&mut self, parts: &[&[u8]]) {
        let at = self.out.len();
        let text: Vec<u8> = parts.concat();
        self.out.extend_from_slice(&text);
        self.inserts.push((at, text));
    }
    fn remove(&mut self, bytes: &[u8]) {
        self.consumed.extend_from_slice(bytes);
        if !bytes.is_empty() {
            self.removed.push(bytes.to_vec());
        }
    }
}

/// Feeds `input` cut at `cuts` (offsets, any order, out of range ignored), then the server's
/// `answer` if any, then EOF.
pub(super) fn feed_answer(
    rw: &mut Rewriter,
    input: &[u8],
    cuts: &[usize],
    answer: Option<&[u8]>,
) -> Rec {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut rec = Rec::default();
    let mut at = 0;
    for c in cuts {
        rw.push(&input[at..c], &mut rec);
        // The bound on what is held back: one head plus one chunk, unless the rest waits for
        // a tunnel answer.
        assert!(rw.held_for_answer() || rw.buffered() <= MAX_HEAD + (c - at));
        at = c;
    }
    if let Some(a) = answer {
        rw.server_bytes(a, &mut rec);
    }
    rw.finish(&mut rec);
    assert_eq!(rw.buffered(), 0);
    rec
}

/// Feeds `input` cut at `cuts`, then EOF.
pub(super) fn feed(rw: &mut Rewriter, input: &[u8], cuts: &[usize]) -> Rec {
    feed_answer(rw, input, cuts, None)
}

/// Checks the output is the input minus removed pieces plus well-formed insertions only, and
/// returns it.
pub(super) fn check(input: &[u8], rec: &Rec) -> Vec<u8> {
    assert_eq!(
        rec.consumed, input,
        "the input is consumed complete and in order"
    );
    let forms = [
        format!(", {IP}"),
        format!(" {IP}"),
        IP.to_string(),
        format!("X-Forwarded-For: {IP}\r\n"),
        "X-Forwarded-Proto: http\r\n".to_string(),
    ];
    // Taking the insertions out of the output gives the copied bytes back.
    let mut rebuilt = Vec::new();
    let mut at = 0;
    for (pos, text) in &rec.inserts {
        rebuilt.extend_from_slice(&rec.out[at..*pos]);
        at = pos + text.len();
        let ok = forms.iter().any(|t| t.as_bytes() == &text[..]);
        assert!(
            ok,
            "unexpected insertion {:?}",
            String::from_utf8_lossy(text)
        );
    }
    rebuilt.extend_from_slice(&rec.out[at..]);
    let removed: usize = rec.removed.iter().map(Vec::len).sum();
    assert_eq!(rebuilt.len() + removed, input.len());
    rec.out.clone()
}

pub(super) fn new() -> Rewriter {
    Rewriter::new(IP.parse().unwrap(), false)
}

/// Rewrites `input` with `make`'s rewriters whole, one byte at a time and in a few odd
/// splits: all must agree.
pub(super) fn rewrite_with(make: fn() -> Rewriter, input: &[u8]) -> (Vec<u8>, Rewriter) {
    let mut rw = make();
    let whole = check(input, &feed(&mut rw, input, &[]));
    let ones: Vec<usize> = (0..input.len()).collect();
    let mut rw1 = make();
    assert_eq!(
        check(input, &feed(&mut rw1, input, &ones)),
        whole,
        "1 byte at a time"
    );
    for cuts in [&[3usize, 17, 40][..], &[1, 2, 100, 101], &[input.len() / 2]] {
        let mut r = make();
        assert_eq!(
            check(input, &feed(&mut r, input, cuts)),
            whole,
            "cuts {cuts:?}"
        );
        assert_eq!(r.stopped(), rw.stopped(), "cuts {cuts:?}");
    }
    assert_eq!(rw1.stopped(), rw.stopped());
    (whole, rw)
}

/// [`rewrite_with`] for an untrusted client.
pub(super) fn rewrite(input: &[u8]) -> (Vec<u8>, Rewriter) {
    rewrite_with(new, input)
}

pub(super) fn text(b: &[u8]) -> String {
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
            format!(
                "{m} /x HTTP/1.0\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
            )
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
fn an_untrusted_clients_forwarding_headers_are_replaced() {
    // Every occurrence goes, whatever the spelling; pen's own lines are added.
    let (out, rw) = rewrite(
        b"GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1 \r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 2.2.2.2\r\nx-forwarded-proto:https\r\n\r\n",
    );
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
    );
    assert_eq!((rw.requests(), rw.stopped()), (1, None));
    // Bare LF lines too.
    let (out, _) = rewrite(b"GET / HTTP/1.1\nX-Forwarded-For: 6.6.6.6\nA: b\n\n");
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\nA: b\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\n"
    );
    // Names that only start like one stay.
    let (out, _) =
        rewrite(b"GET / HTTP/1.1\r\nX-Forwarded-For-Real: 1\r\nX-Forwarded-Protocol: 2\r\n\r\n");
    assert!(text(&out).contains("X-Forwarded-For-Real: 1\r\nX-Forwarded-Protocol: 2\r\n"));
}

fn trusted() -> Rewriter {
    new().trusting(true)
}

#[test]
fn a_trusted_proxys_forwarded_for_gets_the_address_appended() {
    let (out, _) = rewrite_with(
        trusted,
        b"GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1 \r\nHost: a\r\n\r\n",
    );
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1, 127.0.0.1 \r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n"
    );
    // Several: the last one is the end of the chain.
    let (out, _) = rewrite_with(
        trusted,
        b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
    );
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
    );
    // Empty values get the address alone.
    let (out, _) = rewrite_with(
        trusted,
        b"GET / HTTP/1.1\r\nX-Forwarded-For:\r\nA: b\r\n\r\n",
    );
    assert!(text(&out).contains("X-Forwarded-For: 127.0.0.1\r\nA: b\r\n"));
    let (out, _) = rewrite_with(trusted, b"GET / HTTP/1.1\r\nX-Forwarded-For: \r\n\r\n");
    assert!(text(&out).contains("X-Forwarded-For: 127.0.0.1\r\n"));
    // None: added. A proxy's X-Forwarded-Proto is replaced all the same.
    let (out, _) = rewrite_with(
        trusted,
        b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
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
fn non_http_passes_through_unchanged() {
    for input in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH_9.6\r\nGET / HTTP/1.1\r\nX-Forwarded-For: 1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"hello",
        b"\r\r\n",
        b"\r\n/ x",
    ] {
        let (out, rw) = rewrite(input);
        assert_eq!(out, input);
        assert_eq!(rw.requests(), 0);
        assert_eq!(rw.stopped(), Some(Stop::NotHttp), "{}", text(input));
    }
    // A token longer than a head may be is not a method: the verdict looks at the first
    // MAX_HEAD bytes only, however they arrive.
    let mut long = vec![b'z'; MAX_HEAD + 10];
    long.extend_from_slice(b" / HTTP/1.1\r\n\r\n");
    for cuts in [&[][..], &[MAX_HEAD / 2, MAX_HEAD + 5][..]] {
        let mut rw = new();
        assert_eq!(check(&long, &feed(&mut rw, &long, cuts)), long);
        assert_eq!(rw.stopped(), Some(Stop::NotHttp));
    }
    // Binary bytes are spotted at once, before any line end.
    let mut rw = new();
    let mut out = Vec::new();
    rw.push(&b"\x16\x03"[..], &mut out);
    assert_eq!(
        (&out[..], rw.stopped()),
        (&b"\x16\x03"[..], Some(Stop::NotHttp))
    );
}

#[test]
fn incomplete_head_is_held_then_dropped_at_eof() {
    let mut rw = new();
    let mut out = Vec::new();
    rw.push(&b"GET / HTTP/1.1\r\nHo"[..], &mut out);
    assert!(out.is_empty());
    assert_eq!(rw.buffered(), 18);
    rw.finish(&mut out);
    assert!(
        out.is_empty(),
        "an unfinished request never reaches the server"
    );
    assert_eq!((rw.buffered(), rw.stopped()), (0, None));
}

#[test]
fn empty_lines_between_requests_pass() {
    let (out, rw) =
        rewrite(b"\r\n\nGET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\n\r\n");
    assert_eq!(rw.requests(), 2);
    assert!(text(&out).starts_with("\r\n\nGET / HTTP/1.1\r\n"));
}

/// One generated request: its bytes.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "M-SEARCH"]);
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
        Just(b"GET /evil HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n".to_vec()),
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
                        bytes.extend_from_slice(format!("{:x}{ext}\r\n", piece.len()).as_bytes());
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
            bytes
        })
}

/// The server's answer to a generated tunnel request.
const SWITCHED: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
const DECLINED: &[u8] = b"HTTP/1.1 426 Upgrade Required\r\n\r\n";

proptest! {
    /// Keep-alive sequences of generated requests, after an optional upgrade request that the
    /// server accepts or declines, cut anywhere: every request gets exactly pen's two lines,
    /// the bytes are otherwise unchanged, and the output does not depend on the cuts.
    #[test]
    fn requests_in_any_chunks(
        reqs in prop::collection::vec(request(), 1..6),
        tail in prop::collection::vec(any::<u8>(), 0..50),
        upgrade in prop::option::of(any::<bool>()),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut input = Vec::new();
        if upgrade.is_some() {
            input.extend_from_slice(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
        }
        for r in &reqs {
            input.extend_from_slice(r);
        }
        let switched = upgrade == Some(true);
        if switched {
            input.extend_from_slice(&tail); // raw bytes in the tunnel
        }
        let answer = upgrade.map(|s| if s { SWITCHED } else { DECLINED });
        let heads = if switched { 1 } else { reqs.len() + usize::from(upgrade.is_some()) };
        let mut rw = new();
        let whole = feed_answer(&mut rw, &input, &[], answer);
        check(&input, &whole);
        prop_assert_eq!(whole.inserts.len(), 2 * heads);
        prop_assert_eq!(rw.requests() as usize, heads);
        prop_assert_eq!(rw.stopped(), switched.then_some(Stop::Tunnel));
        if !switched {
            // No client-sent forwarding header reached the server.
            let out = text(&whole.out);
            prop_assert!(!out.contains("10.0.0.1") && !out.contains("https"), "{}", out);
        }
        let mut rw = new();
        let cut = feed_answer(&mut rw, &input, &cuts, answer);
        check(&input, &cut);
        prop_assert_eq!(cut.out, whole.out);
    }

    /// Arbitrary bytes, cut anywhere: never a panic, only well-formed insertions, and the
    /// same output (and refusal) however the bytes arrive.
    #[test]
    fn arbitrary_bytes_in_any_chunks(
        prefix in prop::sample::select(vec![&b""[..], b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", b"GET / HTTP/1.1\r\nUpgrade: x\r\n\r\n"]),
        data in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
        answer in prop::option::of(prop::sample::select(vec![SWITCHED, DECLINED])),
    ) {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&data);
        let mut rw = new();
        let whole = check(&input, &feed_answer(&mut rw, &input, &[], answer));
        let mut rw2 = new();
        prop_assert_eq!(check(&input, &feed_answer(&mut rw2, &input, &cuts, answer)), whole);
        prop_assert_eq!(rw.stopped(), rw2.stopped());
    }
}
