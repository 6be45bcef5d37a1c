//! HTTP mode (`-H`, `http`/`no http`) with the real binary: `X-Forwarded-For` and
//! `X-Forwarded-Proto` on every request of a connection, bodies untouched, upgrades passed
//! through. These check [ours] behaviour (PEN-SPEC 3), so they are skipped against C pen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use super::harness::{is_c_pen, Fnv, Pen, PenBuilder, Prng};

/// One request as the backend received it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// The request line.
    line: String,
    /// The values of every `X-Forwarded-For` header, in order.
    xff: Vec<String>,
    /// The values of every `X-Forwarded-Proto` header, in order.
    xfp: Vec<String>,
    /// Checksum and length of the body (decoded, for a chunked one).
    body: (u64, usize),
    /// Trailer lines of a chunked body.
    trailers: Vec<String>,
}

impl Seen {
    /// The backend's reply body: one `key: value` line each, values joined with `|`.
    fn encode(&self) -> String {
        format!(
            "line: {}\nxff: {}\nxfp: {}\nbody: {:016x} {}\ntrailers: {}\n",
            self.line,
            self.xff.join("|"),
            self.xfp.join("|"),
            self.body.0,
            self.body.1,
            self.trailers.join("|")
        )
    }

    fn decode(text: &str) -> Seen {
        let mut s = Seen::default();
        let list = |v: &str| -> Vec<String> {
            if v.is_empty() {
                Vec::new()
            } else {
                v.split('|').map(str::to_string).collect()
            }
        };
        for l in text.lines() {
            let (k, v) = l.split_once(": ").unwrap_or((l.trim_end_matches(':'), ""));
            match k {
                "line" => s.line = v.to_string(),
                "xff" => s.xff = list(v),
                "xfp" => s.xfp = list(v),
                "body" => {
                    let (h, n) = v.split_once(' ').expect("body: SUM LEN");
                    s.body = (
                        u64::from_str_radix(h, 16).expect("hex sum"),
                        n.parse().expect("len"),
                    );
                }
                "trailers" => s.trailers = list(v),
                _ => panic!("unexpected reply line {l:?}"),
            }
        }
        s
    }
}

/// An HTTP/1.1 backend with its own small parser: answers each request with what it saw
/// ([`Seen`]) as the response body, keeps the connection alive, and after a request with
/// `Upgrade` answers `101` and echoes raw bytes to EOF.
struct HttpBackend {
    spec: String,
}

impl HttpBackend {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let spec = l.local_addr().expect("local_addr").to_string();
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                thread::spawn(move || serve(conn));
            }
        });
        HttpBackend { spec }
    }
}

/// Reads one line (with its line end) or None at EOF.
fn line<R: BufRead>(r: &mut R) -> Option<String> {
    let mut buf = Vec::new();
    match r.read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
    }
}

fn serve(conn: TcpStream) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    while let Some((seen, upgrade)) = read_request(&mut r) {
        if upgrade {
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-Xff: {}\r\n\r\n",
                seen.xff.join("|")
            );
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            // Raw bytes from here on: echo them (what BufReader already holds first).
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = w.shutdown(Shutdown::Write);
            return;
        }
        let body = seen.encode();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
    let _ = w.shutdown(Shutdown::Write);
}

/// Reads one request; returns what was seen and whether it asked for an upgrade.
fn read_request<R: BufRead>(r: &mut R) -> Option<(Seen, bool)> {
    let mut seen = Seen {
        line: line(r)?.trim_end().to_string(),
        ..Seen::default()
    };
    let (mut length, mut chunked, mut upgrade) = (0usize, false, false);
    loop {
        let l = line(r)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').expect("header line");
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => seen.xff.push(value),
            "x-forwarded-proto" => seen.xfp.push(value),
            "content-length" => length = value.parse().expect("content-length"),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "upgrade" => upgrade = true,
            _ => {}
        }
    }
    let mut h = Fnv::new();
    let mut total = 0;
    let mut take = |r: &mut R, n: usize| -> Option<()> {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).ok()?;
        h.update(&buf);
        total += n;
        Some(())
    };
    if chunked {
        loop {
            let size_line = line(r)?;
            let size = size_line.trim_end().split(';').next()?.trim();
            let size = usize::from_str_radix(size, 16).ok()?;
            if size == 0 {
                break;
            }
            take(r, size)?;
            line(r)?; // the CRLF after the data
        }
        loop {
            let t = line(r)?;
            let t = t.trim_end();
            if t.is_empty() {
                break;
            }
            seen.trailers.push(t.to_string());
        }
    } else if length > 0 {
        take(r, length)?;
    }
    seen.body = (h.0, total);
    Some((seen, upgrade))
}

/// Reads one response to a request and decodes the backend's report.
fn response<R: BufRead>(r: &mut R) -> Seen {
    let status = line(r).expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "status {status:?}");
    let mut length = 0;
    loop {
        let l = line(r).expect("response header");
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("Content-Length: ") {
            length = v.parse().expect("length");
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).expect("response body");
    Seen::decode(&String::from_utf8(body).expect("utf-8 report"))
}

fn sum(data: &[u8]) -> (u64, usize) {
    let mut h = Fnv::new();
    h.update(data);
    (h.0, data.len())
}

fn http_pen(backend: &HttpBackend, opts: &[&str]) -> Pen {
    PenBuilder::new()
        .opts(opts)
        .server(backend.spec.clone())
        .start()
}

/// Sends one request on a new connection from 127.0.0.`from` and returns the report.
fn one(pen: &Pen, from: u8, request: &str) -> Seen {
    let mut c = pen.connect_from(from);
    c.write_all(request.as_bytes()).expect("send");
    response(&mut BufReader::new(c))
}

const GET: &str = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn two_clients_each_see_their_own_address() {
    if is_c_pen() {
        return;
    }
    let b = HttpBackend::start();
    let pen = http_pen(&b, &["-H"]);
    for n in [1u8, 2] {
        let seen = one(&pen, n, GET);
        assert_eq!(seen.line, "GET /x HTTP/1.1");
        assert_eq!(seen.xff, vec![format!("127.0.0.{n}")]);
        assert_eq!(seen.xfp, vec!["http".to_string()]);
    }
}

#[test]
fn a_clients_forwarding_headers_are_replaced() {
    if is_c_pen() {
        return;
    }
    let b = HttpBackend::start();
    let pen = http_pen(&b, &["-H"]);
    // Issue 11: a client that is not a trusted proxy (`trusted_proxy_acl`, none by default)
    // cannot choose what the server sees (this test used to expect the chain extended and the
    // client's `https` kept).
    let seen = one(
        &pen,
        1,
        "GET / HTTP/1.1\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(seen.xff, vec!["127.0.0.1".to_string()]);
    assert_eq!(seen.xfp, vec!["http".to_string()], "replaced, not doubled");
}

#[test]
fn three_requests_on_one_keep_alive_connection() {
    if is_c_pen() {
        return;
    }
    let b = HttpBackend::start();
    let pen = http_pen(&b, &["-H"]);
    // A body that reads like a request, then random bytes.
    let mut body = b"GET /evil HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n".to_vec();
    let mut rnd = vec![0u8; 100_000];
    Prng::new(4).fill(&mut rnd);
    body.extend_from_slice(&rnd);
    let c = pen.connect_from(2);
    let mut w = c.try_clone().expect("clone");
    let mut r = BufReader::new(c);
    w.write_all(GET.as_bytes()).expect("send 1");
    let first = response(&mut r);
    let head = format!(
        "POST /up HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes()).expect("send 2");
    w.write_all(&body).expect("send 2 body");
    let second = response(&mut r);
    w.write_all(b"GET /3 HTTP/1.0\r\n\r\n").expect("send 3");
    let third = response(&mut r);
    for s in [&first, &second, &third] {
        assert_eq!(s.xff, vec!["127.0.0.2".to_string()], "{s:?}");
        assert_eq!(s.xfp, vec!["http".to_string()]);
    }
    assert_eq!(second.line, "POST /up HTTP/1.1");
    assert_eq!(second.body, sum(&body), "the body arrives byte-identical");
    assert_eq!(third.line, "GET /3 HTTP/1.0");
}

#[test]
fn chunked_bodies_and_pipelining() {
    if is_c_pen() {
        return;
    }
    let b = HttpBackend::start();
    let pen = http_pen(&b, &["-H"]);
    let data = "GET / HTTP/1.1\r\n\r\nmore";
    // All three requests in one write: a chunked POST (extensions, a trailer, data that reads
    // like a request), a GET, and a Content-Length POST.
    let pipelined = format!(
        "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x};name=v\r\n{}\r\n{:x}\r\n{}\r\n0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n\
         {GET}\
         POST /l HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
        18,
        &data[..18],
        data.len() - 18,
        &data[18..],
    );
    let c = pen.connect();
    let mut w = c.try_clone().expect("clone");
    w.write_all(pipelined.as_bytes()).expect("send");
    let mut r = BufReader::new(c);
    let (a, g, l) = (response(&mut r), response(&mut r), response(&mut r));
    assert_eq!(a.line, "POST /c HTTP/1.1");
    assert_eq!(a.body, sum(data.as_bytes()));
    assert_eq!(a.trailers, vec!["X-Trailer: GET / HTTP/1.1".to_string()]);
    assert_eq!(g.line, "GET /x HTTP/1.1");
    assert_eq!(l.line, "POST /l HTTP/1.1");
    assert_eq!(l.body, sum(b"abcd"));
    for s in [&a, &g, &l] {
        assert_eq!(s.xff, vec!["127.0.0.1".to_string()], "{s:?}");
    }
}

#[test]
fn websocket_upgrade_passes_through_unchanged() {
    if is_c_pen() {
        return;
    }
    let b = HttpBackend::start();
    let pen = http_pen(&b, &["-H"]);
    let c = pen.connect();
    let mut w = c.try_clone().expect("clone");
    let mut r = BufReader::new(c);
    w.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .expect("send upgrade");
    let status = line(&mut r).expect("101");
    assert!(status.starts_with("HTTP/1.1 101"), "{status:?}");
    let mut saw = String::new();
    loop {
        let l = line(&mut r).expect("101 header");
        if l.trim_end().is_empty() {
            break;
        }
        saw.push_str(&l);
    }
    assert!(saw.contains("X-Seen-Xff: 127.0.0.1\r\n"), "{saw:?}");
    // After the upgrade, bytes that look like requests are not rewritten.
    let raw: &[u8] = b"\x81\x7fGET / HTTP/1.1\r\nHost: t\r\n\r\n\x00\xff";
    w.write_all(raw).expect("send raw");
    w.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    r.read_to_end(&mut back).expect("echo");
    assert_eq!(back, raw);
}

#[test]
fn no_http_stops_insertion_for_new_connections() {
    if is_c_pen() {
        return;
    }
    let b = HttpBackend::start();
    let pen = http_pen(&b, &[]);
    assert!(one(&pen, 1, GET).xff.is_empty(), "off by default");
    assert_eq!(pen.ctl("http").trim(), "");
    // A connection set up while http is on keeps it after `no http`.
    let kept = pen.connect();
    let mut w = kept.try_clone().expect("clone");
    let mut kept = BufReader::new(kept);
    w.write_all(GET.as_bytes()).expect("send");
    assert_eq!(response(&mut kept).xff, vec!["127.0.0.1".to_string()]);
    let (out, code) = pen.penctl(&["no", "http"]);
    assert_eq!(code, 0, "penctl no http: {out:?}");
    let seen = one(&pen, 2, GET);
    assert!(seen.xff.is_empty() && seen.xfp.is_empty(), "{seen:?}");
    w.write_all(GET.as_bytes()).expect("send");
    assert_eq!(response(&mut kept).xff, vec!["127.0.0.1".to_string()]);
}
