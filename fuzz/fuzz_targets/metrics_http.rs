//! Fuzzes the metrics listener's request handling (`--metrics`, `GET /metrics`): arbitrary
//! bytes arriving in arbitrary pieces, asked about after each piece as its server loop asks
//! (`pen_core::fuzzing::metrics`, on a bound balancer with no thread running).
//!
//! Checked: never a panic; no answer before the head is complete unless it is over the limit;
//! never a wait once the input is over the limit or the client has finished (a client must
//! not hang until the timeout); no reply to a client that sent nothing; the reply is a
//! well-formed HTTP/1.1 response (status line, `Content-Length` equal to the body's length,
//! none for HEAD, `Connection: close`); its status is what a reference reading of the
//! request line gives (200, 404, 405, 400, 505 or 431); and it does not depend on how the
//! bytes were cut.
//!
//! Input: a cut count byte, two bytes per cut, then the client's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::fuzzing::config::Harness;
use pen_core::fuzzing::metrics::{answer, Answer, MAX_INPUT};

thread_local! {
    static H: Harness = Harness::new().expect("bind the balancer");
}

/// The status the reference reading gives for a complete input, and whether it is a HEAD
/// request answered without a body.
fn reference(input: &[u8]) -> (u16, bool) {
    let crlf = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = input.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => match a.or(b) {
            Some(e) => e,
            None if input.len() > MAX_INPUT => return (431, false),
            None => return (400, false), // truncated by the end of input
        },
    };
    if end > MAX_INPUT {
        return (431, false);
    }
    let head = &input[..end];
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return (400, false);
    };
    let words: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = words[..] else {
        return (400, false);
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty() || !method.bytes().all(tchar) || target.is_empty() {
        return (400, false);
    }
    let Some(v) = version.strip_prefix("HTTP/") else {
        return (400, false);
    };
    if !v.starts_with("1.") {
        return (505, false);
    }
    let head_req = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return (405, false),
    };
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    (if path == "/metrics" { 200 } else { 404 }, head_req)
}

/// Checks the response's form; returns its status.
fn check_response(r: &[u8], head_req: bool) -> u16 {
    let text = std::str::from_utf8(r).expect("response is text");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap();
    let code: u16 = status
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line {status:?}"));
    let mut length = None;
    let mut close = false;
    for l in lines {
        let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("header {l:?}"));
        match k {
            "Content-Length" => length = Some(v.parse::<usize>().expect("length")),
            "Connection" => close = v == "close",
            _ => {}
        }
    }
    assert!(close, "Connection: close");
    let length = length.expect("Content-Length");
    if head_req {
        assert!(body.is_empty(), "HEAD with a body");
    } else {
        assert_eq!(body.len(), length, "Content-Length");
    }
    code
}

/// The server loop reads 4 KiB at a time.
const STEP: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len() / 2);
    let (cut_bytes, input) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (input.len() + 1))
        .collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    // Pieces longer than the server loop's reads are split as it would split them.
    H.with(|h| {
        let mut at = 0;
        let mut got: Option<Vec<u8>> = None;
        for &c in &cuts {
            while at < c && got.is_none() {
                at = (at + STEP).min(c);
                let so_far = &input[..at];
                match answer(h, so_far, false) {
                    Answer::Wait => assert!(so_far.len() <= MAX_INPUT, "waits past the limit"),
                    Answer::Leave => panic!("left a client that has not finished"),
                    Answer::Reply(r) => got = Some(r),
                }
            }
        }
        let (reply, whole) = match got {
            Some(r) => {
                // Answered early: the head was complete (or too long) within what it read.
                (r, &input[..at])
            }
            None => match answer(h, input, true) {
                Answer::Wait => panic!("waits after the client finished"),
                Answer::Leave => {
                    assert!(input.is_empty(), "no reply to {input:?}");
                    return;
                }
                Answer::Reply(r) => {
                    assert!(!input.is_empty(), "a reply to nothing");
                    (r, input)
                }
            },
        };
        let (want, head_req) = reference(whole);
        let bodyless = head_req && (want == 200 || want == 404);
        let code = check_response(&reply, bodyless);
        assert_eq!(
            code,
            want,
            "status for {:?}",
            String::from_utf8_lossy(whole)
        );
        // Independent of the cuts: the whole input at once, then EOF, gets the same status.
        match answer(h, input, true) {
            Answer::Reply(r) => assert_eq!(r.get(..12), reply.get(..12), "depends on the cuts"),
            other => panic!("whole input: {other:?}"),
        }
    });
});
