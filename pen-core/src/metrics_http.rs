//! The metrics HTTP listener (`--metrics ADDR`): `GET /metrics` over HTTP/1.x for Prometheus.
//!
//! Shaped like the control socket: non-blocking, on its own thread with its own poller, at
//! most [`MAX_CLIENTS`] at once, each with [`CLIENT_TIMEOUT_MS`] to send its request and read
//! the reply, so a slow or idle scraper never stalls anything. One request per connection
//! (`Connection: close`); clients are checked against the control ACL, like the control socket.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::net::{Listener, Stream};
use crate::poll::{Events, Poller};
use crate::state::Shared;

/// A client gets this long to send its request and read the reply.
const CLIENT_TIMEOUT_MS: u64 = 10_000;
/// After the reply, how long to wait for the client to close before we do (reading what it
/// still sends, so our close does not reset the connection before it read the reply).
const LINGER_MS: u64 = 2_000;
/// Longest accepted request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// At most this many clients at once; more wait in the accept queue.
const MAX_CLIENTS: usize = 64;
const LISTENER_KEY: usize = usize::MAX - 1;

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `GET /metrics` (`head`: a HEAD request, no body).
    Metrics { head: bool },
    /// Another path.
    NotFound { head: bool },
    /// A method other than GET and HEAD.
    BadMethod,
    /// Not an HTTP/1.x request line.
    Malformed,
    /// An HTTP version other than 1.x.
    BadVersion,
}

/// Where a client is.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the request head.
    Reading,
    /// Writing the reply.
    Writing,
    /// Reply written and write side shut: waiting for the client to close.
    Lingering,
}

struct Client {
    stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    phase: Phase,
    deadline: u64,
}

/// Finds the end of the request head (after the blank line), if it has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Classifies a request from its head (only the request line matters).
fn parse_request(head: &[u8]) -> Request {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Some(line) = head.get(..line_end) else {
        return Request::Malformed;
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Malformed;
    };
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Request::Malformed;
    };
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        || target.is_empty()
    {
        return Request::Malformed;
    }
    let Some(minor) = version.strip_prefix("HTTP/") else {
        return Request::Malformed;
    };
    if !minor.starts_with("1.") {
        return Request::BadVersion;
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::BadMethod,
    };
    // The path without a query string; absolute-form targets (`http://host/metrics`) too.
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => path,
    };
    if path == "/metrics" {
        Request::Metrics { head }
    } else {
        Request::NotFound { head }
    }
}

/// A complete HTTP/1.1 response with `Content-Length` and `Connection: close`.
fn response(status: &str, content_type: &str, extra: &str, body: &str, head: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

/// The reply to a request head (`None`: the head was too long, `431`).
fn reply(shared: &Shared, req: Option<Request>) -> Vec<u8> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match req {
        Some(Request::Metrics { head }) => response(
            "200 OK",
            crate::metrics::CONTENT_TYPE,
            "",
            &crate::metrics::render(shared),
            head,
        ),
        Some(Request::NotFound { head }) => {
            response("404 Not Found", TEXT, "", "not found: try /metrics\n", head)
        }
        Some(Request::BadMethod) => response(
            "405 Method Not Allowed",
            TEXT,
            "Allow: GET, HEAD\r\n",
            "method not allowed\n",
            false,
        ),
        Some(Request::Malformed) => response("400 Bad Request", TEXT, "", "bad request\n", false),
        Some(Request::BadVersion) => response(
            "505 HTTP Version Not Supported",
            TEXT,
            "",
            "HTTP/1.x only\n",
            false,
        ),
        None => response(
            "431 Request Header Fields Too Large",
            TEXT,
            "",
            "request head too large\n",
            false,
        ),
    }
}

/// Serves `GET /metrics` over HTTP on `listener` until the balancer stops.
pub(crate) fn serve_http(shared: Arc<Shared>, listener: Listener) {
    let poller = match Poller::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pen: metrics listener disabled: {e}");
            return;
        }
    };
    if let Err(e) = poller.add(&listener, LISTENER_KEY) {
        eprintln!("pen: metrics listener disabled: {e}");
        return;
    }
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = Events::new();
    let mut accept_ready = true;
    // At MAX_CLIENTS: stopped accepting until a client finishes.
    let mut full = false;
    loop {
        let timeout = if accept_ready {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        let _ = poller.wait(&mut events, Some(timeout));
        let stopping = shared.stopping.load(Relaxed);
        let mut ready: Vec<usize> = Vec::new();
        for ev in events.iter() {
            if ev.key == LISTENER_KEY {
                accept_ready = true;
            } else {
                ready.push(ev.key);
            }
        }
        let now = now_ms();
        if accept_ready && !stopping {
            accept_ready = false;
            full = accept(&shared, &poller, &listener, &mut clients, now);
        }
        for k in ready {
            serve_client(&shared, &poller, &mut clients, k, now);
        }
        for c in clients.iter_mut() {
            if c.as_ref().is_some_and(|c| now > c.deadline) {
                if let Some(c) = c.take() {
                    poller.delete(&c.stream);
                }
            }
        }
        if full && clients.iter().filter(|c| c.is_some()).count() < MAX_CLIENTS {
            // A place freed: the clients still queued raise no new edge, so look now.
            full = false;
            accept_ready = true;
        }
        if stopping {
            for c in clients.iter_mut().filter_map(Option::take) {
                poller.delete(&c.stream);
            }
            poller.delete(&listener);
            return;
        }
    }
}

/// Accepts pending clients until the queue is empty (returns false) or the table is full
/// (returns true: accepting resumes when a place frees).
fn accept(
    shared: &Shared,
    poller: &Poller,
    listener: &Listener,
    clients: &mut Vec<Option<Client>>,
    now: u64,
) -> bool {
    loop {
        let live = clients.iter().filter(|c| c.is_some()).count();
        if live >= MAX_CLIENTS {
            return true;
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(_) => return false,
        };
        let list = shared.settings.read().control_acl;
        if !shared.acls.read().permits(list, peer.ip) {
            continue; // dropped: closed at once
        }
        let idx = clients.iter().position(Option::is_none).unwrap_or_else(|| {
            clients.push(None);
            clients.len() - 1
        });
        if poller.add(&stream, idx).is_err() {
            continue;
        }
        if let Some(slot) = clients.get_mut(idx) {
            *slot = Some(Client {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                phase: Phase::Reading,
                deadline: now + CLIENT_TIMEOUT_MS,
            });
        }
        // Data may already be there; the edge for it may have fired before registration.
        serve_client(shared, poller, clients, idx, now);
    }
}

fn serve_client(
    shared: &Shared,
    poller: &Poller,
    clients: &mut [Option<Client>],
    k: usize,
    now: u64,
) {
    let Some(slot) = clients.get_mut(k) else {
        return;
    };
    let Some(c) = slot.as_mut() else { return };
    let finished = step(shared, c, now).unwrap_or(true);
    if finished {
        if let Some(c) = slot.take() {
            poller.delete(&c.stream);
        }
    }
}

/// Reads the request head, replies once, lingers for the client's close. Returns whether the
/// client is finished. Every read loop runs to `WouldBlock` or end of file: the poller is
/// edge-triggered.
fn step(shared: &Shared, c: &mut Client, now: u64) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    if c.phase == Phase::Reading {
        let mut eof = false;
        loop {
            match (&c.stream).read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.input.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if head_end(&c.input).is_some() || c.input.len() > MAX_HEAD {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let req = match head_end(&c.input) {
            Some(end) if end <= MAX_HEAD => {
                Some(parse_request(c.input.get(..end).unwrap_or_default()))
            }
            Some(_) => None,
            None if c.input.len() > MAX_HEAD => None,
            None if eof && c.input.is_empty() => return Ok(true), // connected and left
            None if eof => Some(Request::Malformed),              // a truncated head
            None => return Ok(false),                             // wait for the rest of the head
        };
        c.output = reply(shared, req);
        c.input = Vec::new();
        c.phase = Phase::Writing;
    }
    if c.phase == Phase::Writing {
        while c.written < c.output.len() {
            let rest = c.output.get(c.written..).unwrap_or_default();
            match (&c.stream).write(rest) {
                Ok(0) => return Ok(true),
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        c.output = Vec::new();
        c.stream.shutdown_write()?;
        c.phase = Phase::Lingering;
        c.deadline = c.deadline.min(now + LINGER_MS);
    }
    // Lingering: discard what the client still sends until it closes.
    loop {
        match (&c.stream).read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classifies_requests() {
        let p = |s: &str| parse_request(s.as_bytes());
        assert_eq!(
            p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            p("GET /metrics?x=1 HTTP/1.0\n\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            p("GET http://h:9/metrics HTTP/1.1\r\n\r\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            p("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Request::Metrics { head: true }
        );
        assert_eq!(
            p("GET / HTTP/1.1\r\n\r\n"),
            Request::NotFound { head: false }
        );
        assert_eq!(
            p("GET /metricsx HTTP/1.1\r\n\r\n"),
            Request::NotFound { head: false }
        );
        assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
        assert_eq!(p("GET /metrics HTTP/2.0\r\n\r\n"), Request::BadVersion);
        assert_eq!(p("GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(p("GET  /metrics HTTP/1.1\r\n\r\n"), Request::Malformed);
        assert_eq!(p("G(T /metrics HTTP/1.1\r\n\r\n"), Request::Malformed);
        assert_eq!(p("\u{ff}\r\n\r\n"), Request::Malformed);
        assert_eq!(p(""), Request::Malformed);
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r =
            String::from_utf8(response("404 Not Found", "text/plain", "", "abc\n", false)).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabc\n"
        );
        let h = response("200 OK", "text/plain", "", "abc\n", true);
        assert!(String::from_utf8(h)
            .unwrap()
            .ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
    }

    proptest! {
        /// No input makes the parser panic.
        #[test]
        fn any_bytes_parse_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = head_end(&bytes);
            let _ = parse_request(&bytes);
        }

        /// Request lines built from arbitrary words are classified without panic.
        #[test]
        fn any_request_line_is_classified(m in "[A-Z]{0,7}", t in "\\PC{0,40}", v in "HTTP/[0-9.]{0,4}") {
            let _ = parse_request(format!("{m} {t} {v}\r\n\r\n").as_bytes());
        }
    }
}
