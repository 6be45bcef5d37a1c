//! Control protocol replies checked byte for byte against C pen 0.34.1 (issue 12, "drop-in
//! fidelity"). Every test here passes against both binaries (`PEN_BIN=/usr/bin/pen
//! PENCTL_BIN=/usr/bin/penctl`).

use std::io::Write;
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{connect, peek, Peek, Pen, PenBuilder};

fn pen() -> Pen {
    let a = Backend::name("A");
    PenBuilder::new().server(a.spec()).start()
}

/// Sends `bytes` without a newline, keeps the connection open, and returns what came back
/// within 2 s and how long it took.
fn unterminated(pen: &Pen, bytes: &[u8]) -> (Peek, Duration) {
    let mut s = connect(&pen.control);
    s.write_all(bytes).expect("send");
    let t0 = Instant::now();
    let got = peek(&mut s, Duration::from_secs(2));
    (got, t0.elapsed())
}

#[test]
fn an_unterminated_command_is_answered_at_once() {
    let pen = pen();
    let (got, took) = unterminated(&pen, b"blacklist");
    assert_eq!(got, Peek::Data(b"30\n".to_vec()));
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let (got, _) = unterminated(&pen, b"blacklist 12");
    assert_eq!(got, Peek::Data(b"12\n".to_vec()));
    assert_eq!(pen.ctl("blacklist"), "12\n");
}
