//! Engine settings C pen acts on (issue 12, "drop-in fidelity", C-10..C-13): `dummy` answers
//! every client with the built-in page instead of relaying; `tcp_fastclose` names the side
//! whose close ends the connection. Each test runs against both binaries unless it says it is
//! ours only.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use super::backends::Backend;
use super::harness::{peek, read_to_eof, Peek, PenBuilder, ScratchDir, WAIT};
use super::tls_util::{handshake, put, Ca, ClientCfg};

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

/// Reads until end of file or `WAIT`: `Some(bytes)` at end of file, `None` on a timeout.
fn read_until_eof(s: &mut TcpStream) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(_) => return None,
        }
    }
}

/// `tcp_fastclose down` (C pen's downstream side: the client): the client's close ends both
/// sides. The server answers and keeps its side open; the client half-closes and gets the end
/// of file at once (with `off`, or ours before the audit, it waited for the server).
#[test]
fn fastclose_down_closes_both_when_the_client_closes() {
    // The server holds its side open until the test ends (it drops `done`).
    let (done, held) = mpsc::channel::<()>();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    let server = Backend::custom(move |mut s| {
        let mut buf = [0u8; 16];
        if s.read(&mut buf).is_ok() {
            let _ = s.write_all(b"hi");
        }
        if let Ok(held) = held.lock() {
            let _ = held.recv_timeout(2 * WAIT);
        }
    });
    let pen = PenBuilder::new()
        .opts(&["-o", "tcp_fastclose down"])
        .server(server.spec())
        .start();
    let mut c = pen.connect();
    c.write_all(b"x").expect("send");
    let mut hi = [0u8; 2];
    c.read_exact(&mut hi).expect("the server's answer");
    c.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(
        read_until_eof(&mut c),
        Some(Vec::new()),
        "end of file, not a wait"
    );
    drop(done);
}

/// `tcp_fastclose up` (C pen's upstream side: the server): the server's close ends both sides.
/// The server answers and half-closes; pen closes the server's socket too, so the server reads
/// the end of file although the client never closed (with `off`, or ours before the audit,
/// the server waited for the client).
#[test]
fn fastclose_up_closes_both_when_the_server_closes() {
    fastclose_up(false);
}

/// The same behind TLS termination (`-E`), which ours relays on its own path.
#[test]
fn fastclose_up_closes_both_when_the_server_closes_behind_tls() {
    fastclose_up(true);
}

fn fastclose_up(tls: bool) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Backend::custom(move |mut s| {
        let mut buf = [0u8; 16];
        if s.read(&mut buf).is_ok() && s.write_all(b"hi").is_ok() {
            let _ = s.shutdown(Shutdown::Write);
            let eof = read_until_eof(&mut s);
            let _ = tx.lock().map(|t| t.send(eof));
        }
    });
    let dir = ScratchDir::new("fastclose-tls");
    let ca = Ca::root("pen test CA");
    let leaf = ca.server(&["localhost"]);
    let mut pen = PenBuilder::new();
    if tls {
        let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
        let key = put(&dir.0, "key.pem", leaf.key_pem());
        pen = pen.opts(&["-E", &cert, "-K", &key]);
    }
    let pen = pen
        .opts(&["-o", "tcp_fastclose up"])
        .server(server.spec())
        .start();
    let mut hi = [0u8; 2];
    // Kept open (not half-closed) until the server's verdict is in.
    let _client: Box<dyn std::any::Any> = if tls {
        let cfg = ClientCfg::new(&ca).build();
        let mut c = handshake(pen.connect(), &cfg, "localhost").expect("TLS handshake");
        c.write_all(b"x").expect("send");
        c.flush().expect("flush");
        c.read_exact(&mut hi).expect("the server's answer");
        Box::new(c)
    } else {
        let mut c = pen.connect();
        c.write_all(b"x").expect("send");
        c.read_exact(&mut hi).expect("the server's answer");
        Box::new(c)
    };
    let eof = rx.recv_timeout(2 * WAIT).expect("the server's read ended");
    assert_eq!(
        eof,
        Some(Vec::new()),
        "the server saw the end of file, not a wait"
    );
}
