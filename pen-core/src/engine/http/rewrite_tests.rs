//! Tests of the request rewriter: the insertions on hand-written requests, pass-through on
//! non-HTTP, untrustworthy framing and oversized heads, and properties over generated requests
//! fed in any chunks.

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
fn existing_forwarded_for_gets_the_address_appended() {
    let (out, _) = rewrite(b"GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1 \r\nHost: a\r\n\r\n");
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\r\nx-forwarded-FOR: 10.0.0.1, 127.0.0.1 \r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n"
    );
    // Several: the last one is the end of the chain.
    let (out, _) =
        rewrite(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n");
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
    let (out, rw) = rewrite(b"CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n\r\n");
    assert!(
        text(&out).ends_with("X-Forwarded-Proto: http\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n\r\n")
    );
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
    let input = format!("GET / HTTP/1.1\r\nHost: a\r\nBig: {big}\r\n\r\nGET / HTTP/1.1\r\n\r\n");
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
    let (out, rw) =
        rewrite(b"\r\n\nGET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\n\r\n");
    assert_eq!(rw.requests(), 2);
    assert!(text(&out).starts_with("\r\n\nGET / HTTP/1.1\r\n"));
}

/// One generated request: its bytes, and how many insertions it must get.
fn request() -> impl Strategy<Value = (Vec<u8>, usize)> {
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
