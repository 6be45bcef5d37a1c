//! The metrics HTTP listener (`--metrics ADDR`): `GET /metrics` over HTTP/1.x for Prometheus.
//!
//! Served by [`crate::admin::oneshot`], like the control socket: its own thread and poller, bounded
//! clients with a timeout. Scrapers are checked against the metrics ACL list (`metrics_acl`,
//! default 0: an empty list permits everyone), not the control ACL, so opening metrics to a
//! monitoring network does not open penctl to it. Read-only by nature: it only renders
//! counters. One request per connection (`Connection: close`).

use std::sync::Arc;

use crate::admin::oneshot::{Answer, Protocol};
use crate::domain::event::Worker;
use crate::engine::net::Listener;
use crate::engine::state::Shared;

/// Longest accepted request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;

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
            crate::admin::metrics::CONTENT_TYPE,
            "",
            &crate::admin::metrics::render(shared),
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

/// The metrics HTTP protocol: one request head in, one response out.
pub(crate) struct MetricsHttp;

impl Protocol for MetricsHttp {
    const NAME: &'static str = "metrics listener";
    const WORKER: Worker = Worker::Metrics;
    const MAX_INPUT: usize = MAX_HEAD;
    const LINGER: bool = true;

    fn acl(&self, settings: &crate::domain::settings::Settings) -> u8 {
        settings.metrics_acl
    }

    fn answer(&self, shared: &Shared, input: &[u8], eof: bool) -> Answer {
        let req = match head_end(input) {
            Some(end) if end <= MAX_HEAD => {
                Some(parse_request(input.get(..end).unwrap_or_default()))
            }
            Some(_) => None,
            None if input.len() > MAX_HEAD => None,
            None if eof && input.is_empty() => return Answer::Leave, // connected and left
            None if eof => Some(Request::Malformed),                 // a truncated head
            None => return Answer::Wait,                             // the rest of the head
        };
        Answer::Reply(reply(shared, req))
    }
}

/// Serves `GET /metrics` over HTTP on `listener` until the balancer stops.
pub(crate) fn serve_http(shared: Arc<Shared>, listener: Listener) {
    crate::admin::oneshot::serve(shared, listener, MetricsHttp);
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
