//! Fuzzes the HTTP-mode framing checks: arbitrary client bytes, cut at arbitrary points, go
//! into the rewriter (for an untrusted client or a trusted proxy), with or without a server
//! answer to a tunnel request. Checked:
//! - no panic, and the input is consumed complete and in order (copied or removed);
//! - the output, read as a strict server reads it (`pen_core::fuzzing::http`), holds only
//!   requests with pen's forwarding headers: from an untrusted client exactly
//!   `X-Forwarded-For: <ip>`, from anyone exactly one `X-Forwarded-Proto: http`, and from a
//!   trusted proxy a chain ending in the client's address;
//! - it never ends inside a request head, and every head in it is readable: a refused request
//!   (`400`, `431`) forwards nothing of its head, nor anything after it;
//! - the same output and verdict whether the bytes come in one piece, in the given pieces, or
//!   (short inputs) one byte at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::fuzzing::http::{server_view, End};
use pen_core::http::{Output, Rewriter, Stop, MAX_HEAD};

const IP: &str = "192.0.2.7";

/// The server's answers to a tunnel request the input may get.
const ANSWERS: [Option<&[u8]>; 4] = [
    None,
    Some(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    Some(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 426 Upgrade Required\r\n\r\n"),
    Some(b"HTTP/1.1 200 Connection established\r\n\r\n"),
];

/// The output, and the input as consumed (copied or removed, in order).
#[derive(Default)]
struct Rec {
    out: Vec<u8>,
    consumed: Vec<u8>,
}

impl Output for Rec {
    fn copy(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.consumed.extend_from_slice(bytes);
    }
    fn insert(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.out.extend_from_slice(p);
        }
    }
    fn remove(&mut self, bytes: &[u8]) {
        self.consumed.extend_from_slice(bytes);
    }
}

/// Feeds `input` cut at `cuts`, then the server's `answer`, then EOF.
fn feed(input: &[u8], cuts: &[usize], trusted: bool, answer: Option<&[u8]>) -> (Rec, Option<Stop>) {
    let mut rw = Rewriter::new(IP.parse().unwrap(), false).trusting(trusted);
    let mut rec = Rec::default();
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        rw.push(&input[at..c], &mut rec);
        assert!(
            rw.held_for_answer() || rw.buffered() <= MAX_HEAD + (c - at),
            "held back too much"
        );
        at = c;
    }
    if let Some(a) = answer {
        rw.server_bytes(a, &mut rec);
    }
    rw.finish(&mut rec);
    assert_eq!(rw.buffered(), 0);
    assert_eq!(
        rec.consumed, input,
        "the input is consumed complete and in order"
    );
    (rec, rw.stopped())
}

/// What the server sees must carry pen's forwarding headers only.
fn check(out: &[u8], stop: Option<Stop>, trusted: bool) {
    if stop == Some(Stop::NotHttp) {
        return; // the connection's first bytes were not HTTP: passed unchanged
    }
    let (seen, end) = server_view(out, stop == Some(Stop::Tunnel));
    assert!(
        matches!(end, End::Boundary | End::InBody | End::Tunnel),
        "the server reads {end:?} after {} requests",
        seen.len()
    );
    for s in &seen {
        assert_eq!(s.xfp, [b"http".to_vec()], "X-Forwarded-Proto");
        if trusted {
            let last = s.xff.last().expect("an X-Forwarded-For");
            assert!(
                last == IP.as_bytes() || last.ends_with(format!(", {IP}").as_bytes()),
                "the chain ends with the client: {last:?}"
            );
        } else {
            assert_eq!(s.xff, [IP.as_bytes().to_vec()], "X-Forwarded-For");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: trusted (bit 0), the answer (bits 1-2), how many cut points follow (bits 3-7,
    // two bytes each); the rest is the client's bytes.
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let trusted = flags & 1 != 0;
    let answer = ANSWERS[usize::from(flags >> 1 & 3)];
    let n = usize::from(flags >> 3).min(rest.len() / 2);
    let (cut_bytes, input) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (input.len() + 1))
        .collect();
    cuts.sort_unstable();
    let (whole, stop) = feed(input, &[], trusted, answer);
    check(&whole.out, stop, trusted);
    let (cut, cut_stop) = feed(input, &cuts, trusted, answer);
    assert_eq!(
        cut.out, whole.out,
        "the output depends on the cuts {cuts:?}"
    );
    assert_eq!(cut_stop, stop, "the verdict depends on the cuts {cuts:?}");
    if input.len() <= 512 {
        let ones: Vec<usize> = (1..input.len()).collect();
        let (one, one_stop) = feed(input, &ones, trusted, answer);
        assert_eq!(one.out, whole.out, "one byte at a time");
        assert_eq!(one_stop, stop, "one byte at a time");
    }
});
