//! The PROXY protocol (issue 14, docs/proxy-protocol.md) with the real binary: headers pen
//! sends to servers (`server N proxy v1|v2`: IPv4, IPv6, TLS TLVs, UDP datagrams), read here by
//! a parser written from the specification independently of pen's; headers pen accepts from
//! the sources `accept_proxy N` names (split across writes, the announced client then seen by
//! the client ACL, `recent`, the access log, X-Forwarded-For and the header pen sends on); and
//! every refusal with its counter. Ours only: skipped against C pen.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backends::Backend;
use super::harness::{
    control, free_port, ipv6_available, is_c_pen, pen_bin, poll_until, read_to_eof,
    running_as_root, socket_inodes, wait_for, wait_until, ListenKind, Pen, PenBuilder, ScratchDir,
    WAIT,
};
use super::tls_util::{handshake, put, Ca, ClientCfg};

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A PROXY header as this test's own reader understood it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Hdr {
    version: u8,
    /// The v1 line as sent (without CRLF).
    line: String,
    /// Version 2: the command/version byte and the family/transport byte.
    ver_cmd: u8,
    fam: u8,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    tlvs: Vec<(u8, Vec<u8>)>,
}

fn tlvs(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([b[1], b[2]]));
        assert!(b.len() >= 3 + len, "TLV {:#x} overruns the header", b[0]);
        out.push((b[0], b[3..3 + len].to_vec()));
        b = &b[3 + len..];
    }
    assert!(b.is_empty(), "trailing bytes after the TLVs");
    out
}

/// Reads a version 2 header from its 16 fixed bytes and the rest.
fn v2(fixed: &[u8], body: &[u8]) -> Hdr {
    assert_eq!(&fixed[..12], V2_SIG);
    let (ver_cmd, fam) = (fixed[12], fixed[13]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let (src, dst, at) = match fam >> 4 {
        1 => {
            let ip = |o: usize| IpAddr::from(<[u8; 4]>::try_from(&body[o..o + 4]).unwrap());
            (
                Some(SocketAddr::new(ip(0), port(&body[8..]))),
                Some(SocketAddr::new(ip(4), port(&body[10..]))),
                12,
            )
        }
        2 => {
            let ip = |o: usize| IpAddr::from(<[u8; 16]>::try_from(&body[o..o + 16]).unwrap());
            (
                Some(SocketAddr::new(ip(0), port(&body[32..]))),
                Some(SocketAddr::new(ip(16), port(&body[34..]))),
                36,
            )
        }
        _ => (None, None, 0),
    };
    Hdr {
        version: 2,
        ver_cmd,
        fam,
        src,
        dst,
        tlvs: tlvs(&body[at..]),
        ..Hdr::default()
    }
}

/// Reads one header (either version) off `s`.
fn read_header(s: &mut TcpStream) -> Hdr {
    let mut first = [0u8; 1];
    s.read_exact(&mut first).expect("first header byte");
    if first[0] == b'P' {
        let mut line = vec![b'P'];
        while !line.ends_with(b"\r\n") {
            assert!(line.len() < 107, "v1 line too long: {line:?}");
            let mut b = [0u8; 1];
            s.read_exact(&mut b).expect("v1 byte");
            line.push(b[0]);
        }
        let text = String::from_utf8(line).expect("ASCII");
        let text = text.trim_end_matches("\r\n").to_string();
        let w: Vec<&str> = text.split(' ').collect();
        assert_eq!(w[0], "PROXY");
        let (src, dst) = match w[1] {
            "TCP4" | "TCP6" => {
                assert_eq!(w.len(), 6, "{text:?}");
                let ip = |t: &str| t.parse::<IpAddr>().expect("address");
                let port = |t: &str| t.parse::<u16>().expect("port");
                (
                    Some(SocketAddr::new(ip(w[2]), port(w[4]))),
                    Some(SocketAddr::new(ip(w[3]), port(w[5]))),
                )
            }
            _ => (None, None),
        };
        return Hdr {
            version: 1,
            line: text,
            src,
            dst,
            ..Hdr::default()
        };
    }
    let mut fixed = [0u8; 16];
    fixed[0] = first[0];
    s.read_exact(&mut fixed[1..]).expect("v2 fixed part");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
    s.read_exact(&mut body).expect("v2 body");
    v2(&fixed, &body)
}

/// What a server behind pen saw on one connection: the header, then the bytes up to the end
/// of a request head (or EOF).
type Seen = (Hdr, String);

/// A server that reads a PROXY header and a request head, reports them, answers `ok`.
fn header_server() -> (Backend, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let b = Backend::custom(move |mut s: TcpStream| {
        s.set_read_timeout(Some(WAIT)).ok();
        let h = read_header(&mut s);
        let mut rest = Vec::new();
        let mut b = [0u8; 1];
        while !rest.ends_with(b"\r\n\r\n") && rest.len() < 4096 {
            match s.read(&mut b) {
                Ok(1) => rest.push(b[0]),
                _ => break,
            }
        }
        let _ = tx
            .lock()
            .unwrap()
            .send((h, String::from_utf8_lossy(&rest).into_owned()));
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let _ = s.shutdown(Shutdown::Both);
    });
    (b, rx)
}

fn seen(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(WAIT).expect("the server saw a connection")
}

/// Sends `bytes`, half-closes, reads the answer (pen may have closed already).
fn exchange(mut s: TcpStream, bytes: &[u8]) -> String {
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    read_to_eof(&mut s)
}

fn sock(s: &TcpStream) -> (SocketAddr, SocketAddr) {
    (s.local_addr().unwrap(), s.peer_addr().unwrap())
}

// ---- sending ------------------------------------------------------------------------------

#[test]
fn sends_v1_and_v2_with_the_client_address_over_ipv4() {
    if is_c_pen() {
        return;
    }
    let (srv, rx) = header_server();
    let pen = PenBuilder::new()
        .opts(&["-O", "server 0 proxy v1"])
        .server(srv.spec())
        .start();
    let c = pen.connect_from(5);
    let (me, pen_addr) = sock(&c);
    assert!(exchange(c, b"hello\r\n\r\n").ends_with("ok"));
    let (h, rest) = seen(&rx);
    let want = format!(
        "PROXY TCP4 127.0.0.5 {} {} {}",
        pen_addr.ip(),
        me.port(),
        pen_addr.port()
    );
    assert_eq!(h.line, want);
    assert_eq!(
        rest, "hello\r\n\r\n",
        "the client's bytes follow the header"
    );

    assert_eq!(pen.ctl("server 0 proxy v2"), "");
    let c = pen.connect_from(6);
    let (me, pen_addr) = sock(&c);
    exchange(c, b"again\r\n\r\n");
    let (h, rest) = seen(&rx);
    assert_eq!((h.version, h.ver_cmd, h.fam), (2, 0x21, 0x11));
    assert_eq!(h.src, Some(me));
    assert_eq!(h.dst, Some(pen_addr));
    assert!(h.tlvs.is_empty(), "no TLS: no TLVs");
    assert_eq!(rest, "again\r\n\r\n");

    // `servers` is C pen's line; `write` carries the setting; `off` stops it.
    let dir = ScratchDir::new("proxy-write");
    let file = dir.0.join("pen.cfg");
    pen.ctl(&format!("write {}", file.display()));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(
        text.lines()
            .any(|l| l.starts_with("server 0 ") && l.ends_with(" proxy v2")),
        "{text}"
    );
    assert_eq!(pen.ctl("server 0 proxy off"), "");
    let mut plain = pen.connect();
    plain.write_all(b"x\r\n\r\n").unwrap();
    let _ = plain.shutdown(Shutdown::Write);
    let _ = read_to_eof(&mut plain);
}

#[test]
fn sends_v1_and_v2_for_an_ipv6_client() {
    if is_c_pen() || !ipv6_available() {
        eprintln!("skipped: no IPv6 loopback (or C pen)");
        return;
    }
    let (srv, rx) = header_server();
    let pen = PenBuilder::new()
        .listen(ListenKind::V6)
        .opts(&["-O", "server 0 proxy v1"])
        .server(srv.spec())
        .start();
    let c = pen.connect();
    let (me, pen_addr) = sock(&c);
    exchange(c, b"six\r\n\r\n");
    let (h, _) = seen(&rx);
    assert_eq!(
        h.line,
        format!("PROXY TCP6 ::1 ::1 {} {}", me.port(), pen_addr.port())
    );
    pen.ctl("server 0 proxy v2");
    let c = pen.connect();
    let (me, pen_addr) = sock(&c);
    exchange(c, b"six\r\n\r\n");
    let (h, _) = seen(&rx);
    assert_eq!(h.fam, 0x21, "AF_INET6, STREAM");
    assert_eq!(h.src, Some(me));
    assert_eq!(h.dst, Some(pen_addr));
    assert_eq!(h.src.unwrap().ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn sends_the_tls_details_in_v2_when_pen_terminates_tls() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("proxy-tls");
    let ca = Ca::root("pen proxy test CA");
    let leaf = ca.server(&["localhost", "proxy.test"]);
    let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
    let key = put(&dir.0, "key.pem", leaf.key_pem());
    let (srv, rx) = header_server();
    let pen = PenBuilder::new()
        .opts(&["-E", &cert, "-K", &key, "-O", "server 0 proxy v2"])
        .server(srv.spec())
        .start();
    for (cfg, version) in [
        (ClientCfg::new(&ca).tls13().build(), "TLSv1.3"),
        (ClientCfg::new(&ca).tls12().build(), "TLSv1.2"),
    ] {
        let s = pen.connect();
        let (me, pen_addr) = sock(&s);
        let mut t = handshake(s, &cfg, "proxy.test").expect("TLS handshake");
        let cipher = t
            .conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .expect("a named suite");
        t.write_all(b"secret\r\n\r\n").unwrap();
        t.flush().unwrap();
        let (h, rest) = seen(&rx);
        assert_eq!((h.src, h.dst), (Some(me), Some(pen_addr)));
        assert_eq!(rest, "secret\r\n\r\n", "the plaintext follows the header");
        let authority = h.tlvs.iter().find(|(k, _)| *k == 0x02).expect("AUTHORITY");
        assert_eq!(authority.1, b"proxy.test");
        let ssl = &h.tlvs.iter().find(|(k, _)| *k == 0x20).expect("SSL TLV").1;
        assert_eq!(ssl[0] & 0x01, 0x01, "PP2_CLIENT_SSL");
        let subs = tlvs(&ssl[5..]);
        let sub = |k: u8| subs.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone());
        assert_eq!(
            sub(0x21).as_deref(),
            Some(version.as_bytes()),
            "SSL_VERSION"
        );
        assert_eq!(sub(0x23).as_deref(), Some(cipher.as_bytes()), "SSL_CIPHER");
        let mut answer = Vec::new();
        let _ = t.read_to_end(&mut answer);
    }
}

#[test]
fn with_tls_an_accepted_header_comes_before_the_handshake() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("proxy-tls-accept");
    let ca = Ca::root("pen proxy test CA");
    let leaf = ca.server(&["localhost"]);
    let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
    let key = put(&dir.0, "key.pem", leaf.key_pem());
    let (srv, rx) = header_server();
    let pen = PenBuilder::new()
        .opts(&["-E", &cert, "-K", &key, "-O", "server 0 proxy v1"])
        .opts(&["-O", "acl 1 permit 127.0.0.7", "-O", "accept_proxy 1"])
        .server(srv.spec())
        .start();
    let mut c = pen.connect_from(7);
    c.write_all(b"PROXY TCP4 198.51.100.9 192.0.2.1 5000 443\r\n")
        .unwrap();
    let cfg = ClientCfg::new(&ca).build();
    let mut t = handshake(c, &cfg, "localhost").expect("TLS after the header");
    t.write_all(b"tls\r\n\r\n").unwrap();
    t.flush().unwrap();
    let (h, rest) = seen(&rx);
    assert_eq!(h.line, "PROXY TCP4 198.51.100.9 192.0.2.1 5000 443");
    assert_eq!(rest, "tls\r\n\r\n");
    let mut answer = Vec::new();
    let _ = t.read_to_end(&mut answer);
    assert_eq!(pen.metric("pen_proxy_headers_accepted_total"), Some(1.0));
}

// ---- accepting ----------------------------------------------------------------------------

/// pen with `accept_proxy 1` naming 127.0.0.7, HTTP mode, an access log, `proxy v2` to the
/// server, and `client_acl 2` denying 203.0.113.9 (127.0.0.7 itself is permitted).
fn accepting_pen(srv: &Backend, log: &str) -> Pen {
    PenBuilder::new()
        .opts(&["-H", "-l", log])
        .opts(&["-O", "acl 1 permit 127.0.0.7"])
        .opts(&["-O", "accept_proxy 1"])
        .opts(&["-O", "acl 2 deny 203.0.113.9"])
        .opts(&["-O", "acl 2 permit 0.0.0.0 0.0.0.0"])
        .opts(&["-O", "client_acl 2"])
        .opts(&["-O", "handshake_timeout 1"])
        .opts(&["-O", "server 0 proxy v2"])
        .server(srv.spec())
        .start()
}

fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only here");
    };
    let mut h = V2_SIG.to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(s.octets());
    h.extend(d.octets());
    h.extend(src.port().to_be_bytes());
    h.extend(dst.port().to_be_bytes());
    h
}

/// Sends `header` in two writes, the second once pen has taken the connection (so it looks
/// at the header in two pieces: it peeks at a client's first bytes as soon as it accepts it,
/// and leaves them in the socket until the header is whole), then an HTTP request; returns
/// pen's answer.
fn split_then_request(pen: &Pen, header: &[u8]) -> String {
    // pen's sockets before: the one it accepts is the first new one (it opens none towards
    // the server before the header is whole). Polled in /proc/PID/fd, not /proc/net/tcp,
    // which can take longer to read than the handshake timeout of 1 s on a busy machine.
    let before = socket_inodes(pen.pid);
    let mut c = pen.connect_from(7);
    c.set_nodelay(true).unwrap();
    c.write_all(&header[..10]).unwrap();
    wait_until(WAIT, "pen to accept the connection", || {
        !socket_inodes(pen.pid).is_subset(&before)
    });
    c.write_all(&header[10..]).unwrap();
    exchange(c, b"GET / HTTP/1.0\r\n\r\n")
}

#[test]
fn an_accepted_header_names_the_client_for_everything_that_follows() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("proxy-accept");
    let log = dir.0.join("access.log").display().to_string();
    let (srv, rx) = header_server();
    let pen = accepting_pen(&srv, &log);

    // Version 1, split across two writes.
    let answer = split_then_request(&pen, b"PROXY TCP4 198.51.100.4 192.0.2.1 40000 8443\r\n");
    assert!(answer.ends_with("ok"), "{answer:?}");
    let (h, request) = seen(&rx);
    assert_eq!(h.src, Some("198.51.100.4:40000".parse().unwrap()));
    assert_eq!(
        h.dst,
        Some("192.0.2.1:8443".parse().unwrap()),
        "the announced destination"
    );
    assert!(
        request.contains("X-Forwarded-For: 198.51.100.4\r\n"),
        "{request:?}"
    );
    // Version 2, split too.
    let v2h = v2_header(
        "198.51.100.5:40001".parse().unwrap(),
        "192.0.2.1:80".parse().unwrap(),
    );
    assert!(split_then_request(&pen, &v2h).ends_with("ok"));
    let (h, request) = seen(&rx);
    assert_eq!(h.src, Some("198.51.100.5:40001".parse().unwrap()));
    assert!(request.contains("X-Forwarded-For: 198.51.100.5\r\n"));
    // `recent` and the access log name the announced clients, never 127.0.0.7.
    let recent = pen.ctl("recent");
    assert!(
        recent.contains("198.51.100.4") && recent.contains("198.51.100.5"),
        "{recent}"
    );
    assert!(!recent.contains("127.0.0.7"), "{recent}");
    wait_until(WAIT, "access log lines", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("198.51.100.4") && text.contains("198.51.100.5")
    });
    assert!(!std::fs::read_to_string(&log).unwrap().contains("127.0.0.7"));
    // The client ACL judges the announced address: 203.0.113.9 is denied.
    let denied = v2_header(
        "203.0.113.9:1234".parse().unwrap(),
        "192.0.2.1:80".parse().unwrap(),
    );
    let before = pen.metric("pen_connections_refused_total{reason=\"acl\"}");
    let answer = split_then_request(&pen, &denied);
    assert!(!answer.contains("ok"), "{answer:?}");
    assert_eq!(
        pen.metric("pen_connections_refused_total{reason=\"acl\"}"),
        before.map(|b| b + 1.0)
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no server connection"
    );
    // A LOCAL header (v2) uses the real address.
    let mut local = V2_SIG.to_vec();
    local.extend([0x20, 0x00, 0, 0]);
    assert!(split_then_request(&pen, &local).ends_with("ok"));
    let (h, request) = seen(&rx);
    assert_eq!(h.src.map(|a| a.ip()), Some("127.0.0.7".parse().unwrap()));
    assert!(request.contains("X-Forwarded-For: 127.0.0.7\r\n"));
    assert_eq!(pen.metric("pen_proxy_headers_accepted_total"), Some(4.0));
    // `accept_proxy` is a setting `write` keeps.
    let file = dir.0.join("pen.cfg");
    pen.ctl(&format!("write {}", file.display()));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(text.lines().any(|l| l == "accept_proxy 1"), "{text}");
    assert_eq!(pen.ctl("accept_proxy"), "1\n");
}

fn refused(pen: &Pen, reason: &str) -> f64 {
    let series = format!("pen_proxy_headers_refused_total{{reason=\"{reason}\"}}");
    pen.metric(&series).unwrap_or_else(|| panic!("no {series}"))
}

/// Sends `bytes` from 127.0.0.`n` and expects pen to close with nothing of the client's
/// reaching a server. A source `accept_proxy` names is judged before any server is chosen; any
/// other source is judged on its first bytes, when its server connection may be open already
/// (pen cannot wait for the first bytes of a protocol where the server speaks first): that
/// server then sees no byte of the client's.
fn expect_closed(pen: &Pen, n: u8, bytes: &[u8], rx: &mpsc::Receiver<Seen>) {
    let mut c = pen.connect_from(n);
    let _ = c.write_all(bytes);
    let answer = read_to_eof(&mut c);
    assert_eq!(answer, "", "closed at once");
    if n == 7 {
        let s = rx.recv_timeout(Duration::from_millis(300));
        assert!(
            s.is_err(),
            "a server connection for an allowed source: {s:?}"
        );
    } else {
        let (h, rest) = seen(rx);
        assert_eq!(
            h.src.map(|a| a.ip()),
            Some(format!("127.0.0.{n}").parse().unwrap())
        );
        assert_eq!(rest, "", "no client byte reached the server");
    }
}

#[test]
fn every_refusal_is_counted_by_reason() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("proxy-refusals");
    let log = dir.0.join("access.log").display().to_string();
    let (srv, rx) = header_server();
    let pen = accepting_pen(&srv, &log);
    for r in ["missing", "malformed", "not_allowed", "timeout"] {
        assert_eq!(refused(&pen, r), 0.0, "{r}");
    }
    // From the allowed source, without a header.
    expect_closed(&pen, 7, b"GET / HTTP/1.0\r\n\r\n", &rx);
    assert_eq!(refused(&pen, "missing"), 1.0);
    // From the allowed source, a malformed header (v1, then v2).
    expect_closed(
        &pen,
        7,
        b"PROXY TCP4 198.51.100.4 192.0.2.1 040000 80\r\n",
        &rx,
    );
    let mut bad = V2_SIG.to_vec();
    bad.extend([0x23, 0x11, 0, 12]);
    expect_closed(&pen, 7, &bad, &rx);
    assert_eq!(refused(&pen, "malformed"), 2.0);
    // A valid header from a source accept_proxy does not name (v1, v2; TLS-looking bytes do
    // not matter here: this listener is plain).
    expect_closed(
        &pen,
        8,
        b"PROXY TCP4 198.51.100.4 192.0.2.1 4000 80\r\n",
        &rx,
    );
    let v2h = v2_header(
        "198.51.100.4:4000".parse().unwrap(),
        "192.0.2.1:80".parse().unwrap(),
    );
    expect_closed(&pen, 8, &v2h, &rx);
    assert_eq!(refused(&pen, "not_allowed"), 2.0);
    // The same source without a header is an ordinary client (its own address, a v2 header
    // from pen to the server).
    let c = pen.connect_from(8);
    let me = c.local_addr().unwrap();
    assert!(exchange(c, b"GET / HTTP/1.0\r\n\r\n").ends_with("ok"));
    assert_eq!(seen(&rx).0.src, Some(me));
    // The allowed source sends half a header and stops: closed after handshake_timeout (1 s).
    let mut c = pen.connect_from(7);
    c.write_all(b"PROXY TCP4 198.").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let closed = poll_until(Duration::from_secs(4), || {
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(0) => Some(()),
            Ok(_) => panic!("pen sent something"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(_) => Some(()), // reset
        }
    });
    assert!(closed.is_some(), "closed within the header timeout");
    assert_eq!(refused(&pen, "timeout"), 1.0);
    assert_eq!(pen.metric("pen_proxy_headers_accepted_total"), Some(0.0));
    // `no accept_proxy`: nobody is checked; what starts like a header is then just bytes for
    // the server (here an HTTP request whose method happens to be PROXY).
    assert_eq!(pen.ctl("no accept_proxy"), "");
    assert_eq!(pen.ctl("accept_proxy"), "-1\n");
    for n in [7, 8] {
        let c = pen.connect_from(n);
        exchange(c, b"PROXY / HTTP/1.0\r\n\r\n");
        let (_, rest) = seen(&rx);
        assert!(rest.starts_with("PROXY / HTTP/1.0\r\n"), "{rest:?}");
    }
}

// ---- UDP ----------------------------------------------------------------------------------

/// A running `pen -U` (the harness waits for a TCP listener, which UDP mode has not).
struct UdpPen(Child, #[allow(dead_code)] ScratchDir);

impl Drop for UdpPen {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn udp_datagrams_to_a_v2_server_start_with_a_dgram_header() {
    if is_c_pen() {
        return;
    }
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    let server_addr = server.local_addr().unwrap();
    let listen_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctl = format!("127.0.0.1:{}", free_port());
    let dir = ScratchDir::new("proxy-udp");
    let mut args: Vec<String> = vec!["-f".into()];
    if running_as_root() {
        args.extend(["-u".into(), "root".into()]);
    }
    args.extend(["-C".into(), ctl.clone(), "-U".into()]);
    args.extend(["-O".into(), "server 0 proxy v2".into()]);
    args.push(format!("127.0.0.1:{listen_port}"));
    args.push(server_addr.to_string());
    let log = std::fs::File::create(dir.0.join("pen.log")).unwrap();
    let child = Command::new(pen_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn pen -U");
    let _pen = UdpPen(child, dir);
    wait_for(WAIT, "pen -U's control socket", || {
        TcpStream::connect(&ctl).ok().map(|_| ())
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = client.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    for payload in [b"first".as_slice(), b"second datagram"] {
        client.send_to(payload, ("127.0.0.1", listen_port)).unwrap();
        let (n, _) = server
            .recv_from(&mut buf)
            .expect("a datagram reaches the server");
        let d = &buf[..n];
        let len = usize::from(u16::from_be_bytes([d[14], d[15]]));
        let h = v2(&d[..16], &d[16..16 + len]);
        assert_eq!((h.ver_cmd, h.fam), (0x21, 0x12), "PROXY, AF_INET, DGRAM");
        assert_eq!(h.src, Some(me));
        assert_eq!(h.dst, Some(SocketAddr::from(([127, 0, 0, 1], listen_port))));
        assert_eq!(&d[16 + len..], payload, "the payload follows, whole");
    }
    // `server 0 proxy off`: datagrams go bare again.
    assert_eq!(control(&ctl, "server 0 proxy off"), "");
    client.send_to(b"bare", ("127.0.0.1", listen_port)).unwrap();
    // The flow keeps its server socket; a new flow picks up the setting.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.send_to(b"bare", ("127.0.0.1", listen_port)).unwrap();
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    for _ in 0..2 {
        let (n, _) = server.recv_from(&mut buf).expect("datagram");
        got.lock().unwrap().push(buf[..n].to_vec());
    }
    assert!(
        got.lock().unwrap().iter().any(|d| d == b"bare"),
        "a bare datagram"
    );
}
