//! Tests of the rewriter's refusals (`400`, `431`: nothing of the refused request is written,
//! nor anything after it) and of tunnels (only after the server's answer).

use super::tests::{check, feed, feed_answer, new, rewrite, text};
use super::*;

const GOOD: &str = "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
const GOOD_OUT: &str =
    "GET /ok HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n";

/// `bad` after a good request is refused with `why`: only the good request is written,
/// however the bytes are cut (the helper checks the splits agree).
fn refused_after_a_good_request(bad: &[u8], why: Refusal) {
    let mut input = GOOD.as_bytes().to_vec();
    input.extend_from_slice(bad);
    input.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n");
    let (out, rw) = rewrite(&input);
    assert_eq!(text(&out), GOOD_OUT, "{}", text(bad));
    assert_eq!(rw.refusal(), Some(why), "{}", text(bad));
    assert_eq!(rw.requests(), 1);
    // As the connection's first request too.
    let (out, rw) = rewrite(&input[GOOD.len()..]);
    assert_eq!(text(&out), "", "{}", text(bad));
    assert_eq!(rw.refusal(), Some(why), "{}", text(bad));
}

#[test]
fn ambiguous_framing_is_refused_with_400() {
    for bad in [
        &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 3,3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gz ip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        refused_after_a_good_request(bad, Refusal::Framing);
    }
}

#[test]
fn a_broken_chunked_body_is_refused_from_the_broken_byte() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (body, valid) in [
        ("zz\r\n", 0),
        ("3\r\nabcX\r\n0\r\n\r\n", 6),
        ("3\nabc\r\n0\r\n\r\n", 1),
        ("3\r\nabc\n0\r\n\r\n", 6),
        ("0\r\nA: b\r\n c\r\n\r\n", 9),
        ("11111111111111111\r\n", 16),
    ] {
        let input = format!("{head}{body}GET /smuggled HTTP/1.1\r\n\r\n");
        let (out, rw) = rewrite(input.as_bytes());
        let want = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n{}",
            text(&body.as_bytes()[..valid])
        );
        assert_eq!(text(&out), want, "{body:?}");
        assert_eq!(rw.refusal(), Some(Refusal::Framing), "{body:?}");
    }
}

#[test]
fn malformed_heads_are_refused_with_400() {
    for bad in [
        // RFC 9112 section 5.1: no whitespace between a field name and its colon.
        &b"GET / HTTP/1.1\r\nX-Forwarded-For : 6.6.6.6\r\n\r\n"[..],
        // Section 5.2: obsolete line folding.
        b"GET / HTTP/1.1\r\nA: b\r\n X-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"GET / HTTP/1.1\r\n X: y\r\n\r\n",
        // Section 2.2: a bare CR.
        b"GET / HTTP/1.1\r\nA: b\rX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"GET / HTTP/1.1\rA: b\r\n\r\n",
        // Control bytes, a broken request line.
        b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n",
        b"GET / HTTP/1.1 junk\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/3.0\r\n\r\n",
        b"GET /\r\n\r\n",
    ] {
        refused_after_a_good_request(bad, Refusal::Malformed);
    }
    // Where a request must start, bytes that are not one are refused too.
    let mut input = GOOD.as_bytes().to_vec();
    input.extend_from_slice(b"\x00\x01GET / HTTP/1.1\r\n\r\n");
    let (out, rw) = rewrite(&input);
    assert_eq!(
        (text(&out), rw.refusal()),
        (GOOD_OUT.into(), Some(Refusal::Malformed))
    );
}

#[test]
fn oversized_heads_are_refused_with_431() {
    let big = "a".repeat(MAX_HEAD);
    refused_after_a_good_request(
        format!("GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nBig: {big}\r\n\r\n").as_bytes(),
        Refusal::TooLarge,
    );
    // Still incomplete at the limit: refused without waiting for the rest.
    let mut rw = new();
    let mut out = Vec::new();
    rw.push(format!("GET / HTTP/1.1\r\nBig: {big}").as_bytes(), &mut out);
    assert_eq!((out.len(), rw.refusal()), (0, Some(Refusal::TooLarge)));
    // One just under the limit is rewritten.
    let fill = "a".repeat(MAX_HEAD - 200);
    let (_, rw) = rewrite(format!("GET / HTTP/1.1\r\nBig: {fill}\r\n\r\n").as_bytes());
    assert_eq!((rw.requests(), rw.stopped()), (1, None));
    // Too many header lines.
    let many = "A: b\r\n".repeat(MAX_HEADERS + 1);
    refused_after_a_good_request(
        format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(),
        Refusal::TooLarge,
    );
    let many = "A: b\r\n".repeat(MAX_HEADERS);
    let (_, rw) = rewrite(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!((rw.requests(), rw.stopped()), (1, None));
}

#[test]
fn a_malformed_head_cut_short_by_eof_is_refused_however_it_arrived() {
    // No blank line ever comes: the verdict is the same whole or byte by byte.
    let (out, rw) = rewrite(b"GET / HTTP/1.1\r\nBad Name: x\r\nA: b");
    assert_eq!((out.len(), rw.refusal()), (0, Some(Refusal::Malformed)));
}

#[test]
fn refusal_answers() {
    assert_eq!(Refusal::TooLarge.status(), 431);
    assert_eq!(Refusal::Framing.status(), 400);
    let r = text(Refusal::TooLarge.response());
    assert!(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert!(r.contains("\r\nConnection: close\r\n") && r.ends_with("Content-Length: 0\r\n\r\n"));
    let r = text(Refusal::Malformed.response());
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n") && r.contains("Connection: close"));
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
const NEXT: &str = "GET /next HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";

#[test]
fn a_tunnel_opens_only_on_the_servers_switch() {
    let input = format!("{UPGRADE}{NEXT}");
    let head_out = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n";
    // Before the answer: the upgrade request goes, the rest waits.
    let mut rw = new();
    let mut out = Vec::new();
    rw.push(input.as_bytes(), &mut out);
    assert_eq!(text(&out), head_out);
    assert!(rw.awaiting_answer() && rw.held_for_answer());
    assert_eq!(rw.buffered(), NEXT.len());
    for (answer, raw) in [
        (&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..], true),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 426 Upgrade Required\r\n\r\n", false),
        (b"HTTP/1.1 200 OK\r\n", false),
        (b"garbage", false),
    ] {
        let mut cuts: Vec<usize> = (0..input.len()).step_by(7).collect();
        cuts.push(UPGRADE.len() + 3);
        for cuts in [&[][..], &cuts[..]] {
            let mut rw = new();
            let rec = feed_answer(&mut rw, input.as_bytes(), cuts, Some(answer));
            let out = check(input.as_bytes(), &rec);
            let rest = text(&out[head_out.len()..]);
            if raw {
                assert_eq!(rest, NEXT, "tunnel bytes pass unchanged");
                assert_eq!(rw.stopped(), Some(Stop::Tunnel));
            } else {
                assert_eq!(
                    rest,
                    "GET /next HTTP/1.1\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n",
                    "declined: the next request is rewritten"
                );
                assert_eq!((rw.stopped(), rw.requests()), (None, 2));
            }
        }
    }
    // No answer before the client closes: declined.
    let mut rw = new();
    let rec = feed(&mut rw, input.as_bytes(), &[]);
    assert!(!text(&rec.out).contains("6.6.6.6"));
    // Non-HTTP after a declined upgrade is refused, not passed.
    let input = format!("{UPGRADE}\x01\x05hello");
    let mut rw = new();
    let rec = feed_answer(&mut rw, input.as_bytes(), &[], Some(b"HTTP/1.1 400 No\r\n"));
    assert_eq!(text(&rec.out), head_out);
    assert_eq!(rw.refusal(), Some(Refusal::Malformed));
}

#[test]
fn an_answer_during_the_tunnel_requests_body_waits_for_its_end() {
    let input = format!("POST /up HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 4\r\n\r\nabcd{NEXT}");
    let mut rw = new();
    let mut out = Vec::new();
    rw.push(&input.as_bytes()[..input.len() - NEXT.len() - 2], &mut out);
    rw.server_bytes(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &mut out);
    assert!(!rw.held_for_answer());
    rw.push(&input.as_bytes()[input.len() - NEXT.len() - 2..], &mut out);
    assert!(text(&out).ends_with(&format!("abcd{NEXT}")));
    assert_eq!(rw.stopped(), Some(Stop::Tunnel));
}

#[test]
fn connect_and_later_upgrades() {
    // CONNECT: a 2xx opens the tunnel.
    let input = b"CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n\r\n";
    let mut rw = new();
    let rec = feed_answer(
        &mut rw,
        input,
        &[5, 30],
        Some(b"HTTP/1.1 200 Connection established\r\n\r\n"),
    );
    assert!(text(&rec.out)
        .ends_with("X-Forwarded-Proto: http\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n\r\n"));
    assert_eq!((rw.requests(), rw.stopped()), (1, Some(Stop::Tunnel)));
    let mut rw = new();
    let rec = feed_answer(&mut rw, input, &[], Some(b"HTTP/1.1 407 Auth\r\n\r\n"));
    assert_eq!(rw.refusal(), Some(Refusal::Malformed));
    assert!(!text(&rec.out).contains("\x16"));
    // An upgrade after another request never opens a tunnel: its answer is not the first
    // response, so it cannot be told apart without framing responses.
    let input = format!("{GOOD}{UPGRADE}{NEXT}");
    let (out, rw) = rewrite(input.as_bytes());
    assert!(!rw.awaiting_answer());
    assert_eq!(rw.requests(), 3);
    assert!(!text(&out).contains("6.6.6.6"));
}
