//! Data-port admission (issue 11): idle clients from one address cannot lock others out
//! (`conn_per_client`), a client the ACL denies costs no TLS handshake, deadlines on the TLS
//! handshake (`handshake_timeout`) and the request head (`request_timeout`), and
//! `connect_on_data` (no server connection for a client that has sent nothing). These are
//! ours: C pen has none of them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use super::backends::Backend;
use super::harness::{is_c_pen, wait_until, Pen, PenBuilder, ScratchDir, WAIT};
use super::tls_util::{handshake, metric, metric_sum, put, Ca, ClientCfg};

/// Sends `msg` and reads the same number of bytes back (through an echo backend).
fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("send");
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).expect("echo back");
    assert_eq!(got, msg);
}

/// Reads until the peer closes (EOF or reset) within `within`; returns what arrived. Panics if
/// the connection is still open then.
fn closed_within(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("connection not closed within {within:?}: {e} (got {got:?})"),
        }
    }
}

fn metrics(pen: &Pen) -> String {
    pen.ctl("metrics")
}

/// Waits until the metric sample `name{labels}` is `want`.
fn wait_metric(pen: &Pen, name: &str, labels: &[(&str, &str)], want: f64) {
    wait_until(WAIT, &format!("{name}{labels:?} = {want}"), || {
        metric(&metrics(pen), name, labels) == Some(want)
    });
}

// ---- conn_per_client ----------------------------------------------------------------------

/// `-x 20`: twenty idle connections from 127.0.0.2 used to take every place, and a request
/// from 127.0.0.1 then waited in the kernel's queue. With `conn_per_client 5`, 127.0.0.2 gets
/// five; the other fifteen are closed at accept and counted; 127.0.0.1 is served; the count
/// is given back as connections close.
#[test]
fn idle_clients_from_one_address_do_not_lock_others_out() {
    if is_c_pen() {
        return;
    }
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-x", "20", "-O", "conn_per_client 5"])
        .server(echo.spec())
        .start();
    let idle: Vec<TcpStream> = (0..20).map(|_| pen.connect_from(2)).collect();
    let mut other = pen.connect();
    echo_once(&mut other, b"served despite 20 idle clients from 127.0.0.2");
    let refused = [("reason", "conn_per_client")];
    wait_metric(&pen, "pen_connections_refused_total", &refused, 15.0);
    drop(idle);
    drop(other);
    wait_until(WAIT, "every connection closed", || {
        pen.metric("pen_connections_active") == Some(0.0)
    });
    // The closes gave the places back.
    let mut again: Vec<TcpStream> = (0..5).map(|_| pen.connect_from(2)).collect();
    for s in &mut again {
        echo_once(s, b"again");
    }
    let m = metrics(&pen);
    assert_eq!(
        metric(&m, "pen_connections_refused_total", &refused),
        Some(15.0),
        "{m}"
    );
}

// ---- client ACL before the TLS handshake --------------------------------------------------

/// A CA, a certificate for `localhost` and `127.0.0.1`, and their files.
struct Site {
    _dir: ScratchDir,
    ca: Ca,
    cert: String,
    key: String,
}

impl Site {
    fn new(tag: &str) -> Site {
        let dir = ScratchDir::new(tag);
        let ca = Ca::root("pen admission test CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
        let key = put(&dir.0, "key.pem", leaf.key_pem());
        Site {
            _dir: dir,
            ca,
            cert,
            key,
        }
    }

    fn pen(&self, extra: &[&str], server: String) -> Pen {
        PenBuilder::new()
            .opts(&["-E", &self.cert, "-K", &self.key])
            .opts(extra)
            .server(server)
            .start()
    }

    fn client(&self) -> Arc<ClientConfig> {
        ClientCfg::new(&self.ca).build()
    }
}

/// A whole ClientHello, as a rustls client sends it first.
fn client_hello(cfg: &Arc<ClientConfig>) -> Vec<u8> {
    let name = "localhost".try_into().expect("name");
    let mut c = rustls::ClientConnection::new(cfg.clone(), name).expect("client");
    let mut hello = Vec::new();
    c.write_tls(&mut hello).expect("ClientHello");
    hello
}

/// The client ACL is decided at accept: a denied client's ClientHello gets no ServerHello,
/// its connection is closed, and no handshake is counted; a permitted one is served.
#[test]
fn a_client_the_acl_denies_costs_no_tls_handshake() {
    if is_c_pen() {
        return;
    }
    let site = Site::new("adm-tls-acl");
    let echo = Backend::echo();
    let pen = site.pen(
        &["-O", "acl 1 deny 127.0.0.1", "-O", "client_acl 1"],
        echo.spec(),
    );
    let cfg = site.client();
    let mut raw = pen.connect();
    raw.write_all(&client_hello(&cfg))
        .expect("send ClientHello");
    let got = closed_within(&mut raw, WAIT);
    assert!(
        got.is_empty(),
        "a denied client got {} bytes back",
        got.len()
    );
    assert!(
        handshake(pen.connect(), &cfg, "localhost").is_err(),
        "the handshake of a denied client completed"
    );
    let m = metrics(&pen);
    assert_eq!(metric_sum(&m, "pen_tls_handshakes_total"), 0.0, "{m}");
    assert_eq!(
        metric(&m, "pen_connections_refused_total", &[("reason", "acl")]),
        Some(2.0),
        "{m}"
    );
    assert_eq!(echo.accepted(), 0);
    // A permitted client is served.
    let mut ok = handshake(pen.connect_from(2), &cfg, "localhost").expect("permitted client");
    ok.write_all(b"permitted").expect("send");
    let mut back = [0u8; 9];
    ok.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"permitted");
}

/// With an abuse server (`-B`), a denied TLS client is still handshaken and sent there, as
/// before: the abuse server needs the decrypted bytes.
#[test]
fn a_denied_tls_client_still_reaches_the_abuse_server() {
    if is_c_pen() {
        return;
    }
    let site = Site::new("adm-tls-abuse");
    let (a, abuse) = (Backend::name("A"), Backend::name("X"));
    let pen = site.pen(
        &[
            "-B",
            &abuse.spec(),
            "-O",
            "acl 1 deny 127.0.0.1",
            "-O",
            "client_acl 1",
        ],
        a.spec(),
    );
    let mut s = handshake(pen.connect(), &site.client(), "localhost").expect("handshake");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(String::from_utf8_lossy(&got), "X");
    assert_eq!((abuse.accepted(), a.accepted()), (1, 0));
}

// ---- handshake_timeout and request_timeout ------------------------------------------------

/// `handshake_timeout 1`: a client that never finishes its handshake is closed after about a
/// second (it was a fixed 10 s), and counted as a timed-out handshake.
#[test]
fn a_stalled_tls_handshake_is_closed_after_handshake_timeout() {
    if is_c_pen() {
        return;
    }
    let site = Site::new("adm-tls-deadline");
    let echo = Backend::echo();
    let pen = site.pen(&["-O", "handshake_timeout 1"], echo.spec());
    let mut silent = pen.connect();
    closed_within(&mut silent, Duration::from_secs(4));
    wait_metric(
        &pen,
        "pen_tls_handshake_failures_total",
        &[("reason", "timeout")],
        1.0,
    );
    assert_eq!(echo.accepted(), 0);
}

/// `-H` with `request_timeout 1`: a client whose first request head is still unfinished
/// (61 KiB of it) after a second is closed (it was held for ever, with its server
/// connection); a client that finished its head and then waits is not.
#[test]
fn an_unfinished_request_head_is_closed_after_request_timeout() {
    if is_c_pen() {
        return;
    }
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-H", "-O", "request_timeout 1"])
        .server(echo.spec())
        .start();
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut done = pen.connect();
    done.write_all(request).expect("send a whole head");
    let mut partial = pen.connect();
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    head.resize(61 * 1024, b'a');
    partial.write_all(&head).expect("send most of a head");
    closed_within(&mut partial, Duration::from_secs(4));
    wait_until(WAIT, "a request timeout counted", || {
        pen.metric("pen_request_timeouts_total") == Some(1.0)
    });
    // The whole head went through (with X-Forwarded-For); the connection is still served.
    let mut echoed = vec![0u8; 64];
    let n = done.read(&mut echoed).expect("echo of the first request");
    assert!(
        String::from_utf8_lossy(&echoed[..n]).starts_with("GET / HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&echoed[..n])
    );
    let mut rest = Vec::new();
    done.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let _ = done.read_to_end(&mut rest); // the rest of the first echo
    done.set_read_timeout(Some(WAIT)).expect("timeout");
    done.write_all(request).expect("second request");
    let n = done.read(&mut echoed).expect("echo of the second request");
    assert!(n > 0, "the keep-alive client was closed");
}

// ---- connect_on_data ----------------------------------------------------------------------

/// `connect_on_data`: ten idle clients hold no server connection; a client that sends gets
/// its reply.
#[test]
fn connect_on_data_idle_clients_hold_no_server_connection() {
    if is_c_pen() {
        return;
    }
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-O", "connect_on_data"])
        .server(echo.spec())
        .start();
    let idle: Vec<TcpStream> = (0..10).map(|_| pen.connect()).collect();
    let mut talker = pen.connect();
    echo_once(&mut talker, b"hello");
    wait_until(WAIT, "all 11 clients accepted", || {
        pen.metric("pen_connections_active") == Some(11.0)
    });
    let m = metrics(&pen);
    assert_eq!(metric_sum(&m, "pen_server_connections"), 1.0, "{m}");
    assert_eq!(
        echo.accepted(),
        1,
        "the backend saw only the client that sent"
    );
    drop(idle);
}

/// `connect_on_data` with `request_timeout 1`: a client that sends nothing is closed after a
/// second, and no server ever heard of it.
#[test]
fn connect_on_data_closes_a_silent_client_after_request_timeout() {
    if is_c_pen() {
        return;
    }
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-O", "connect_on_data", "-O", "request_timeout 1"])
        .server(echo.spec())
        .start();
    let mut silent = pen.connect();
    closed_within(&mut silent, Duration::from_secs(4));
    wait_until(WAIT, "a request timeout counted", || {
        pen.metric("pen_request_timeouts_total") == Some(1.0)
    });
    assert_eq!(echo.accepted(), 0);
}
