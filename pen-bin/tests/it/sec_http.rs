//! HTTP mode fails closed (issue 11): with the real binary and a backend that records every
//! byte it receives, spoofed forwarding headers never reach the server, oversized heads get
//! `431` and ambiguous framing `400` (and nothing of them, nor a smuggled request, reaches the
//! server), and a request after a declined `Upgrade` is still rewritten. These check [ours]
//! behaviour (docs/compatibility.md 8.5), so they are skipped against C pen.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::harness::{is_c_pen, read_to_eof, wait_until, Pen, PenBuilder, ScratchDir};
use super::tls_util::{half_close, handshake, put, read_all, Ca, ClientCfg};

const WAIT: Duration = Duration::from_secs(10);

/// A backend that records what each connection received (complete when the connection
/// ends) and answers each request head: `101` to a request for `/ws-yes` (then echoes raw
/// bytes), `426` to `/ws-no`, `200` to anything else (all with an empty body; request bodies
/// are not expected by these tests).
struct Recorder {
    spec: String,
    /// The bytes of each finished connection, in the order they finished.
    done: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let spec = l.local_addr().expect("local_addr").to_string();
        let done = Arc::new(Mutex::new(Vec::new()));
        let d = Arc::clone(&done);
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let d = Arc::clone(&d);
                thread::spawn(move || {
                    let got = serve(conn);
                    d.lock().expect("lock").push(got);
                });
            }
        });
        Recorder { spec, done }
    }

    /// Waits until `n` connections have ended; returns everything they received.
    fn received(&self, n: usize) -> String {
        wait_until(WAIT, "backend connections to end", || {
            self.done.lock().expect("lock").len() >= n
        });
        let all = self.done.lock().expect("lock").concat();
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// Serves one connection; returns every byte received.
fn serve(mut conn: TcpStream) -> Vec<u8> {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut got = Vec::new();
    let mut answered = 0; // bytes of `got` whose heads were answered
    let mut tunnel = false;
    let mut buf = [0u8; 16384];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        got.extend_from_slice(&buf[..n]);
        if tunnel {
            let _ = conn.write_all(&buf[..n]);
            continue;
        }
        while let Some(end) = find(&got[answered..], b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[answered..answered + end]).into_owned();
            answered += end + 4;
            let reply: &[u8] = if head.starts_with("GET /ws-yes ") {
                tunnel = true;
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"
            } else if head.starts_with("GET /ws-no ") {
                b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            };
            if conn.write_all(reply).is_err() {
                return got;
            }
            if tunnel {
                let rest = got[answered..].to_vec();
                let _ = conn.write_all(&rest);
                break;
            }
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
    got
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn http_pen(backend: &Recorder) -> Pen {
    PenBuilder::new()
        .opts(&["-H"])
        .server(backend.spec.clone())
        .start()
}

/// Sends `request` from 127.0.0.`from`, half-closes, and reads the answer to EOF.
fn exchange(pen: &Pen, from: u8, request: &[u8]) -> String {
    let mut c = pen.connect_from(from);
    c.write_all(request).expect("send");
    let _ = c.shutdown(Shutdown::Write);
    read_to_eof(&mut c)
}

/// The values of every header line named `name` in `text` (case-insensitive).
fn values(text: &str, name: &str) -> Vec<String> {
    text.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

#[test]
fn a_clients_forwarded_proto_is_replaced_on_a_plain_connection() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    let answer = exchange(
        &pen,
        1,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nx-forwarded-proto: https\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let seen = b.received(1);
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"], "{seen:?}");
}

#[test]
fn an_untrusted_clients_forwarded_for_is_replaced() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    exchange(
        &pen,
        2,
        b"GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nHost: a\r\nX-Forwarded-For: 7.7.7.7\r\n\r\n",
    );
    let seen = b.received(1);
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.2"], "{seen:?}");
}

#[test]
fn a_trusted_proxys_forwarded_for_is_extended() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    for cmd in ["acl 1 permit 127.0.0.2", "trusted_proxy_acl 1"] {
        pen.ctl(cmd);
    }
    assert_eq!(pen.ctl("trusted_proxy_acl").trim(), "1");
    let req = b"GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n";
    exchange(&pen, 2, req);
    let seen = b.received(1);
    assert_eq!(values(&seen, "x-forwarded-for"), ["6.6.6.6, 127.0.0.2"]);
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
    // Another client is not in the list: replaced.
    exchange(&pen, 3, req);
    let seen = b.received(2);
    assert_eq!(
        values(&seen, "x-forwarded-for"),
        ["6.6.6.6, 127.0.0.2", "127.0.0.3"]
    );
}

/// Sends `request` (which carries the marker `6.6.6.6` and a smuggled `/smuggled` request)
/// and checks the client gets `status` then EOF, and the server nothing of it.
fn refused(pen: &Pen, b: &Recorder, n: usize, request: &[u8], status: &str) {
    let answer = exchange(pen, 1, request);
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer:?} for {:?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer:?}");
    let seen = b.received(n);
    assert!(
        !seen.contains("6.6.6.6") && !seen.contains("/smuggled"),
        "reached the server: {:?}",
        &seen[..seen.len().min(300)]
    );
}

#[test]
fn oversized_heads_get_431_and_nothing_reaches_the_server() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    let big = format!(
        "GET /smuggled HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nBig: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    refused(
        &pen,
        &b,
        1,
        big.as_bytes(),
        "431 Request Header Fields Too Large",
    );
    let many = format!(
        "GET /smuggled HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n{}\r\n",
        "A: b\r\n".repeat(200)
    );
    refused(&pen, &b, 2, many.as_bytes(), "431 ");
    assert_eq!(pen.metric("pen_http_oversized_heads_total"), Some(2.0));
}

#[test]
fn ambiguous_framing_gets_400_and_the_smuggled_request_never_arrives() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    let smuggled = "GET /smuggled HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    let attempts = [
        // TE + CL: the classic.
        format!("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        // Duplicate, conflicting Content-Length.
        format!("POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 52\r\n\r\n{smuggled}"),
        // A coding other than a final chunked.
        format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"),
        // A chunk size that is not hex.
        format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{smuggled}"),
        // Whitespace before the colon, obsolete folding.
        format!("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("GET / HTTP/1.1\r\nA: b\r\n X-Forwarded-For: 6.6.6.6\r\n\r\n{smuggled}"),
    ];
    for (i, a) in attempts.iter().enumerate() {
        refused(&pen, &b, i + 1, a.as_bytes(), "400 Bad Request");
    }
    // After a good request on the same connection: it is answered, the bad one refused.
    let mut c = pen.connect();
    c.write_all(format!("GET /first HTTP/1.1\r\n\r\n{}", attempts[0]).as_bytes())
        .expect("send");
    let answer = read_to_eof(&mut c);
    assert!(
        answer.ends_with(
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ),
        "{answer:?}"
    );
    let seen = b.received(attempts.len() + 1);
    assert!(!seen.contains("/smuggled"), "{seen:?}");
}

#[test]
fn a_request_after_a_declined_upgrade_is_still_rewritten() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    let mut c = pen.connect();
    c.write_all(
        b"GET /ws-no HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\
          GET /next HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n",
    )
    .expect("send");
    let _ = c.shutdown(Shutdown::Write);
    let answer = read_to_eof(&mut c);
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer:?}");
    assert!(
        answer.contains("HTTP/1.1 200"),
        "the next request answered: {answer:?}"
    );
    let seen = b.received(1);
    let next = &seen[seen.find("GET /next").expect("next request forwarded")..];
    assert_eq!(values(next, "x-forwarded-for"), ["127.0.0.1"], "{seen:?}");
    assert_eq!(values(next, "x-forwarded-proto"), ["http"], "{seen:?}");
}

#[test]
fn an_accepted_upgrade_tunnels_what_follows_unchanged() {
    if is_c_pen() {
        return;
    }
    let b = Recorder::start();
    let pen = http_pen(&b);
    let mut c = pen.connect();
    // Sent with the upgrade request: held until the 101, then passed unchanged.
    let raw = "GET /raw HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    c.write_all(format!("GET /ws-yes HTTP/1.1\r\nUpgrade: x\r\n\r\n{raw}").as_bytes())
        .expect("send");
    let _ = c.shutdown(Shutdown::Write);
    let answer = read_to_eof(&mut c);
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer:?}");
    assert!(
        answer.ends_with(raw),
        "echoed through the tunnel: {answer:?}"
    );
    let seen = b.received(1);
    assert!(seen.ends_with(raw), "{seen:?}");
}

#[test]
fn behind_tls_the_proto_is_https_and_smuggling_is_refused_encrypted() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("sec-http-tls");
    let ca = Ca::root("pen test CA");
    let leaf = ca.server(&["localhost"]);
    let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
    let key = put(&dir.0, "key.pem", leaf.key_pem());
    let b = Recorder::start();
    let pen = PenBuilder::new()
        .opts(&["-H", "-E", &cert, "-K", &key])
        .server(b.spec.clone())
        .start();
    let cfg = ClientCfg::new(&ca).build();
    // A TLS client claiming plain http (and a chain): pen says https, with its address.
    let mut s = handshake(pen.connect(), &cfg, "localhost").expect("handshake");
    s.write_all(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        .expect("send");
    s.flush().expect("flush");
    half_close(&mut s).expect("half-close");
    let (answer, _) = read_all(&mut s);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let seen = b.received(1);
    assert_eq!(values(&seen, "x-forwarded-proto"), ["https"], "{seen:?}");
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"], "{seen:?}");
    // Smuggling: the 400 comes encrypted, and the smuggled request never arrives.
    let mut s = handshake(pen.connect(), &cfg, "localhost").expect("handshake");
    s.write_all(
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /smuggled HTTP/1.1\r\n\r\n",
    )
    .expect("send");
    s.flush().expect("flush");
    let (answer, _) = read_all(&mut s);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    let seen = b.received(2);
    assert!(!seen.contains("/smuggled"), "{seen:?}");
}
