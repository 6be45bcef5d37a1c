//! Fuzzes the HTTP-mode request rewriter with arbitrary bytes cut into arbitrary chunks: it must
//! never panic; the output minus the inserted pieces must be the input minus the removed pieces
//! (the client's forwarding-header lines, a refused request and what follows it, an unfinished
//! head at the end), byte for byte; every inserted piece must be one of the forwarding-header
//! forms; and the output must not depend on how the input was cut. (The framing checks and
//! what a server reads are fuzzed by `http_framing`.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::http::{Output, Rewriter, MAX_HEAD};

const IP: &str = "192.0.2.7";

/// Keeps the output, the copied bytes alone, the input as consumed (copied or removed) and
/// the inserted pieces with their offsets.
#[derive(Default)]
struct Rec {
    out: Vec<u8>,
    copied: Vec<u8>,
    consumed: Vec<u8>,
    inserts: Vec<(usize, Vec<u8>)>,
}

impl Output for Rec {
    fn copy(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.copied.extend_from_slice(bytes);
        self.consumed.extend_from_slice(bytes);
    }
    fn remove(&mut self, bytes: &[u8]) {
        self.consumed.extend_from_slice(bytes);
    }
    fn insert(&mut self, parts: &[&[u8]]) {
        let text = parts.concat();
        self.inserts.push((self.out.len(), text.clone()));
        self.out.extend_from_slice(&text);
    }
}

/// Feeds `input` cut at `cuts`, then EOF.
fn feed(input: &[u8], cuts: &[usize]) -> Rec {
    let mut rw = Rewriter::new(IP.parse().unwrap(), false);
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
    rw.finish(&mut rec);
    assert_eq!(rw.buffered(), 0);
    rec
}

fn check(input: &[u8], rec: &Rec) {
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
    let mut rebuilt = Vec::with_capacity(input.len());
    let mut at = 0;
    for (pos, text) in &rec.inserts {
        assert!(
            forms.iter().any(|f| f.as_bytes() == &text[..]),
            "bad insertion {text:?}"
        );
        rebuilt.extend_from_slice(&rec.out[at..*pos]);
        at = pos + text.len();
    }
    rebuilt.extend_from_slice(&rec.out[at..]);
    assert_eq!(
        rebuilt, rec.copied,
        "output minus insertions == the copied input"
    );
}

fuzz_target!(|data: &[u8]| {
    // First byte: how many cut points follow (two bytes each); the rest is the client's bytes.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len() / 2);
    let (cut_bytes, input) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (input.len() + 1))
        .collect();
    cuts.sort_unstable();
    let whole = feed(input, &[]);
    check(input, &whole);
    let cut = feed(input, &cuts);
    check(input, &cut);
    assert_eq!(
        cut.out, whole.out,
        "the output depends on the cuts {cuts:?}"
    );
    // One byte at a time too, for short inputs (the slowest pattern).
    if input.len() <= 512 {
        let ones: Vec<usize> = (1..input.len()).collect();
        assert_eq!(feed(input, &ones).out, whole.out, "one byte at a time");
    }
});
