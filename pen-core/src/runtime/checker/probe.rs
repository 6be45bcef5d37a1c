//! One check's I/O: the non-blocking connect, the request written, the TLS handshake, and the
//! answer read and judged against what the check expects.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::domain::check::{parse_agent_reply, CheckResult, CheckSpec, Expect, CHECK_READ_MAX};
/// One check under way.
pub(super) struct Probe {
    pub(super) sock: Socket,
    pub(super) started: u64,
    pub(super) deadline: u64,
    pub(super) phase: Phase,
    pub(super) out: Vec<u8>,
    pub(super) written: usize,
    pub(super) buf: Vec<u8>,
    pub(super) tls: Option<Box<rustls::ClientConnection>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    Handshaking,
    Writing,
    Reading,
}

/// A non-blocking connect under way.
pub(super) fn connect(addr: SocketAddr) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok(sock),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(sock),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(sock),
        Err(e) => Err(e),
    }
}

pub(super) type Outcome = Option<(CheckResult, Option<crate::domain::check::AgentReply>)>;

/// One step of a check: `None` while it waits for its socket.
pub(super) fn step(
    addr: SocketAddr,
    spec: &CheckSpec,
    regex: Option<&regex::bytes::Regex>,
    p: &mut Probe,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Outcome {
    let fail = Some((CheckResult::Failed, None));
    if p.phase == Phase::Connecting {
        match p.sock.take_error() {
            Ok(None) => {}
            _ => return fail,
        }
        if p.sock.peer_addr().is_err() {
            return None; // not connected yet
        }
        p.phase = match spec {
            CheckSpec::Connect => return Some((CheckResult::Ok, None)),
            CheckSpec::Agent { .. } => Phase::Reading,
            CheckSpec::Tls => {
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                match tls.and_then(|c| rustls::ClientConnection::new(c, name).ok()) {
                    Some(c) => p.tls = Some(Box::new(c)),
                    None => return fail,
                }
                Phase::Handshaking
            }
            CheckSpec::Send { send, .. } => {
                p.out.clone_from(send);
                Phase::Writing
            }
            CheckSpec::Http { path, host, .. } => {
                p.out = http_request(path, host.as_deref(), addr);
                Phase::Writing
            }
        };
    }
    if p.phase == Phase::Handshaking {
        let Some(conn) = p.tls.as_mut() else {
            return fail;
        };
        let mut sock = SockIo(&p.sock);
        while conn.is_handshaking() {
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) => return fail,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(_) => return fail,
            }
        }
        return Some((CheckResult::Ok, None));
    }
    if p.phase == Phase::Writing {
        while p.written < p.out.len() {
            match (&p.sock).write(p.out.get(p.written..).unwrap_or_default()) {
                Ok(0) => return fail,
                Ok(n) => p.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return fail,
            }
        }
        if matches!(
            spec,
            CheckSpec::Send {
                expect: Expect::Nothing,
                ..
            }
        ) {
            return Some((CheckResult::Ok, None));
        }
        p.phase = Phase::Reading;
    }
    // Reading: until the answer decides, the peer closes, or the buffer is full.
    let mut chunk = [0u8; 1024];
    loop {
        let room = CHECK_READ_MAX.saturating_sub(p.buf.len()).min(chunk.len());
        let eof = if room == 0 {
            true
        } else {
            match (&p.sock).read(chunk.get_mut(..room).unwrap_or_default()) {
                Ok(0) => true,
                Ok(n) => {
                    p.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return judge(spec, regex, &p.buf, false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                Err(_) => return fail,
            }
        };
        if let Some(done) = judge(spec, regex, &p.buf, eof) {
            return Some(done);
        }
        if eof {
            return Some((CheckResult::BadAnswer, None));
        }
    }
}

/// Whether the answer read so far decides the check (`eof`: nothing more will come).
fn judge(spec: &CheckSpec, regex: Option<&regex::bytes::Regex>, buf: &[u8], eof: bool) -> Outcome {
    let bad = (CheckResult::BadAnswer, None);
    match spec {
        CheckSpec::Send { expect, .. } => {
            let found = match expect {
                Expect::Nothing => true,
                Expect::Text(t) => buf.windows(t.len().max(1)).any(|w| w == t.as_slice()),
                Expect::Regex(_) => regex.is_some_and(|r| r.is_match(buf)),
            };
            if found {
                Some((CheckResult::Ok, None))
            } else {
                eof.then_some(bad)
            }
        }
        CheckSpec::Http { lo, hi, .. } => {
            let line_end = buf.iter().position(|&b| b == b'\n')?;
            let line = String::from_utf8_lossy(buf.get(..line_end).unwrap_or_default());
            let code = line
                .strip_prefix("HTTP/")
                .and_then(|r| r.split_ascii_whitespace().nth(1))
                .and_then(|c| c.parse::<u16>().ok());
            Some(match code {
                Some(c) if (*lo..=*hi).contains(&c) => (CheckResult::Ok, None),
                _ => bad,
            })
        }
        CheckSpec::Agent { .. } => {
            let end = buf.iter().position(|&b| b == b'\n');
            if end.is_none() && !eof {
                return None;
            }
            let line = buf.get(..end.unwrap_or(buf.len())).unwrap_or_default();
            Some(match parse_agent_reply(line) {
                Some(r) if r.up == Some(false) => (CheckResult::AgentDown, Some(r)),
                Some(r) => (CheckResult::Ok, Some(r)),
                None => bad,
            })
        }
        CheckSpec::Connect | CheckSpec::Tls => Some((CheckResult::Ok, None)),
    }
}

/// `Read + Write` over a shared socket reference, for rustls.
struct SockIo<'a>(&'a Socket);

impl Read for SockIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut &*self.0).read(buf)
    }
}

impl Write for SockIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&mut &*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An HTTP check's request: `Host:` is `host` if configured, else the server's address.
fn http_request(path: &str, host: Option<&str>, addr: SocketAddr) -> Vec<u8> {
    let host = host.map_or_else(|| addr.to_string(), str::to_string);
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: pen-check\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(lo: u16, hi: u16) -> CheckSpec {
        CheckSpec::Http {
            path: "/".into(),
            lo,
            hi,
            host: None,
        }
    }

    #[test]
    fn http_request_uses_the_configured_host_or_the_address() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let req = |h| String::from_utf8(http_request("/hz", h, addr)).unwrap();
        assert!(
            req(None).starts_with("GET /hz HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n"),
            "{}",
            req(None)
        );
        assert!(req(Some("api.example.com")).contains("\r\nHost: api.example.com\r\n"));
        assert!(!req(Some("api.example.com")).contains("127.0.0.1"));
    }

    #[test]
    fn judges_answers() {
        let ok = |o: Outcome| o.map(|(r, _)| r);
        assert_eq!(
            ok(judge(&http(200, 399), None, b"HTTP/1.1 204 No", false)),
            None
        );
        assert_eq!(
            ok(judge(&http(200, 399), None, b"HTTP/1.1 204 No\r\n", false)),
            Some(CheckResult::Ok)
        );
        assert_eq!(
            ok(judge(&http(200, 399), None, b"HTTP/1.1 503 No\r\n", false)),
            Some(CheckResult::BadAnswer)
        );
        let send = CheckSpec::Send {
            send: b"PING\r\n".to_vec(),
            expect: Expect::Text(b"+PONG".to_vec()),
        };
        assert_eq!(ok(judge(&send, None, b"+PO", false)), None);
        assert_eq!(
            ok(judge(&send, None, b"+PO", true)),
            Some(CheckResult::BadAnswer)
        );
        assert_eq!(
            ok(judge(&send, None, b"+PONG\r\n", false)),
            Some(CheckResult::Ok)
        );
        let re = regex::bytes::Regex::new("^220 ").ok();
        let banner = CheckSpec::Send {
            send: vec![],
            expect: Expect::Regex("^220 ".into()),
        };
        assert_eq!(
            ok(judge(&banner, re.as_ref(), b"220 mail", false)),
            Some(CheckResult::Ok)
        );
        let agent = CheckSpec::Agent { port: 1 };
        assert_eq!(ok(judge(&agent, None, b"drain", false)), None);
        assert_eq!(
            ok(judge(&agent, None, b"drain\n", false)),
            Some(CheckResult::Ok)
        );
        assert_eq!(
            ok(judge(&agent, None, b"down", true)),
            Some(CheckResult::AgentDown)
        );
    }
}
