//! One TLS connection in flight ([`Conn`]): a non-blocking connect, the handshake and the
//! request driven by poll(2) events, the response read to the end of the stream, and the
//! response check.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use rustix::event::PollFlags;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use socket2::{Domain, Socket, Type};

/// How a connection ended.
pub(crate) enum End {
    /// The whole response, ended by close_notify (`clean`) or by the bare end of the stream.
    Complete { clean: bool },
    /// A failure, described.
    Failed(String),
}

/// One connection in flight.
pub(crate) struct Conn {
    pub(crate) sock: TcpStream,
    pub(crate) tls: ClientConnection,
    /// The TCP connect has not completed yet.
    connecting: bool,
    response: Vec<u8>,
    pub(crate) started: Instant,
    pub(crate) last_progress: Instant,
}

impl Conn {
    /// Starts a non-blocking connect and a TLS client with the request queued.
    pub(crate) fn start(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        request: &[u8],
    ) -> Result<Conn, String> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .map_err(|e| format!("socket: {e}"))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        sock.set_tcp_nodelay(true)
            .map_err(|e| format!("socket: {e}"))?;
        let connecting = match sock.connect(&addr.into()) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {
                true
            }
            Err(e) => return Err(format!("connect: {e}")),
        };
        let mut tls =
            ClientConnection::new(config.clone(), name.clone()).map_err(|e| format!("TLS: {e}"))?;
        // Buffered by rustls until the handshake is done.
        tls.writer()
            .write_all(request)
            .map_err(|e| format!("TLS write: {e}"))?;
        let now = Instant::now();
        Ok(Conn {
            sock: sock.into(),
            tls,
            connecting,
            response: Vec::with_capacity(1024),
            started: now,
            last_progress: now,
        })
    }

    /// The poll(2) events this connection waits for.
    pub(crate) fn interest(&self) -> PollFlags {
        if self.connecting {
            PollFlags::OUT
        } else if self.tls.wants_write() {
            PollFlags::IN | PollFlags::OUT
        } else {
            PollFlags::IN
        }
    }

    /// Moves the connection on after poll(2) reported `revents`; `None` while it goes on.
    pub(crate) fn drive(&mut self, revents: PollFlags, scratch: &mut [u8]) -> Option<End> {
        if revents.is_empty() {
            return None;
        }
        self.last_progress = Instant::now();
        if self.connecting {
            match self.sock.take_error() {
                Ok(None) => self.connecting = false,
                Ok(Some(e)) | Err(e) => return Some(End::Failed(format!("connect: {e}"))),
            }
        }
        loop {
            while self.tls.wants_write() {
                match self.tls.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Some(End::Failed(format!("send: {e}"))),
                }
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(_) => {} // 0 (end of stream) is noted by rustls and reported by reader()
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(End::Failed(format!("receive: {e}"))),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // Best effort: tell the server why (the alert rustls queued).
                let _ = self.tls.write_tls(&mut self.sock);
                return Some(End::Failed(format!("TLS: {e}")));
            }
            loop {
                match self.tls.reader().read(scratch) {
                    Ok(0) => return Some(self.finish(true)),
                    Ok(n) => self.response.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                        return Some(self.finish(false))
                    }
                    Err(e) => return Some(End::Failed(format!("TLS read: {e}"))),
                }
            }
        }
    }

    /// Checks the response once the stream has ended.
    fn finish(&self, clean: bool) -> End {
        if self.tls.is_handshaking() {
            return End::Failed("connection closed during the handshake".into());
        }
        match check_response(&self.response) {
            Ok(()) => End::Complete { clean },
            Err(e) => End::Failed(e),
        }
    }
}

/// A response is good if it is `HTTP/1.1 200` and, with a `Content-Length`, complete.
fn check_response(r: &[u8]) -> Result<(), String> {
    if !r.starts_with(b"HTTP/1.1 200") {
        let line = r.split(|&b| b == b'\r').next().unwrap_or_default();
        return Err(format!(
            "bad response '{}' ({} bytes)",
            String::from_utf8_lossy(&line[..line.len().min(60)]),
            r.len()
        ));
    }
    let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err("response header incomplete".into());
    };
    let head = String::from_utf8_lossy(&r[..end]);
    let length = head.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(n) if r.len() - (end + 4) != n => Err(format!(
            "response body of {} bytes, Content-Length {n}",
            r.len() - (end + 4)
        )),
        _ => Ok(()),
    }
}
