//! Engine settings C pen acts on (issue 12, "drop-in fidelity", C-10..C-13): `dummy` answers
//! every client with the built-in page instead of relaying. Each test runs against both
//! binaries unless it says it is ours only.

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use super::backends::Backend;
use super::harness::{peek, read_to_eof, Peek, PenBuilder};

/// C pen's dummy page, byte for byte.
const PAGE: &str =
    "HTTP/1.1 200 OK\r\nContent-Length: 15\r\nContent-Type: text/html\r\n\r\nUlric was here.";

/// C-10: under `dummy` (here from `-o dummy`) every client gets the page once it has sent
/// something, then the connection is closed; a client that sends nothing gets nothing (and
/// stays open until it closes); the server is never used. `no dummy` relays again.
#[test]
fn dummy_answers_every_client_with_the_built_in_page() {
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&["-o", "dummy"])
        .server(a.spec())
        .start();
    for request in [&b"GET / HTTP/1.0\r\n\r\n"[..], b"x"] {
        let mut s = pen.connect();
        s.write_all(request).expect("send");
        assert_eq!(read_to_eof(&mut s), PAGE, "after {request:?}");
    }
    // Nothing sent: no page, still open; then closing gets no page either.
    let mut quiet = pen.connect();
    assert_eq!(peek(&mut quiet, Duration::from_millis(300)), Peek::Quiet);
    quiet.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(read_to_eof(&mut quiet), "");
    assert_eq!(pen.ctl("no dummy"), "");
    assert_eq!(pen.fetch(), "A", "no dummy relays again");
}
