//! One connection's TLS, sans-IO in the middle: rustls holds the state, this wrapper moves
//! records between it and the client socket under the worker's cached readiness, and lends the
//! relay a plaintext reader and writer. Nothing here blocks: a socket that would block clears
//! its readiness bit and the edge-triggered poller says when to come back.
//!
//! The relay sees the client through [`PlainReader`] (decrypted bytes; `WouldBlock` when none
//! are buffered; end of file on the client's close_notify or TCP FIN) and [`PlainWriter`]
//! (bytes to encrypt; `WouldBlock` when rustls' send buffer is full; a half-close queues a
//! close_notify, and the socket's write side is shut once it is out).

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::engine::net::Stream;
use crate::engine::relay::{BufPool, HalfClose, Readiness};

use crate::tls::stats::Failure;

/// Bytes of TLS records rustls may hold unsent (and plaintext before the handshake ends):
/// back-pressure on the server-to-client direction beyond this.
const SEND_LIMIT: usize = 64 * 1024;

/// The TLS side of one client connection.
pub(crate) struct TlsConn {
    conn: rustls::ServerConnection,
    /// The socket's end of file has been read.
    eof: bool,
    /// A close_notify is queued: shut the socket's write side once everything is out.
    shut_pending: bool,
    /// The socket's write side is shut.
    shut_done: bool,
    /// Records read from the socket and not yet taken by rustls (it takes at most one
    /// record's worth of plaintext at a time): a pooled buffer, held only while non-empty.
    /// Reading 32 KiB per `recv` rather than letting rustls read 4 KiB at a time saves most
    /// of the system calls of a client's upload.
    inbuf: Option<Box<[u8]>>,
    in_start: usize,
    in_end: usize,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("handshaking", &self.conn.is_handshaking())
            .field("eof", &self.eof)
            .finish()
    }
}

/// A TLS error on a connection: why, for the metrics (the connection is closed).
#[derive(Debug)]
pub(crate) struct TlsFailed(pub(crate) Failure);

impl From<io::Error> for TlsFailed {
    fn from(_: io::Error) -> Self {
        TlsFailed(Failure::Other)
    }
}

impl TlsConn {
    /// A server-side session for a new connection.
    pub(crate) fn new(config: Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        let mut conn = rustls::ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(SEND_LIMIT));
        Ok(TlsConn {
            conn,
            eof: false,
            shut_pending: false,
            shut_done: false,
            inbuf: None,
            in_start: 0,
            in_end: 0,
        })
    }

    /// Whether the handshake is still going on.
    pub(crate) fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The socket's end of file has been read.
    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    /// (TLS 1.3, resumed) of a completed handshake.
    pub(crate) fn kind(&self) -> (bool, bool) {
        (
            self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
            self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        )
    }

    /// What the PROXY protocol's version 2 TLS TLVs say of this connection once its handshake
    /// is done: the version (`TLSv1.3`), the cipher suite's name, the SNI host name, and
    /// whether a client certificate was verified.
    pub(crate) fn proxy_tls(&self) -> crate::domain::proxy_header::TlsInfo<'_> {
        let version = match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let cipher = (self.conn.negotiated_cipher_suite())
            .and_then(|s| s.suite().as_str())
            .unwrap_or("");
        crate::domain::proxy_header::TlsInfo {
            version,
            cipher,
            sni: self.conn.server_name(),
            client_cert: self.conn.peer_certificates().is_some(),
        }
    }

    /// Feeds records to rustls and processes them, reading the socket (into a pooled buffer)
    /// while it is readable, rustls wants more and `budget` (reads) lasts. Returns whether
    /// anything moved.
    ///
    /// # Errors
    /// A socket error or a TLS protocol error; the caller sends what rustls queued (an alert)
    /// with [`TlsConn::push`] and closes.
    pub(crate) fn pull(
        &mut self,
        sock: &Stream,
        ready: &mut Readiness,
        budget: &mut u32,
        pool: &mut BufPool,
    ) -> Result<bool, TlsFailed> {
        let mut progress = false;
        let result = loop {
            if let Err(e) = self.feed(&mut progress) {
                break Err(e);
            }
            if self.in_start < self.in_end {
                break Ok(()); // rustls holds plaintext the relay has not taken yet
            }
            if !ready.read || self.eof || *budget == 0 || !self.conn.wants_read() {
                break Ok(());
            }
            *budget -= 1;
            let buf = self.inbuf.get_or_insert_with(|| pool.get());
            match (&*sock).read(buf) {
                Ok(0) => {
                    self.eof = true;
                    progress = true;
                    // An empty read tells rustls the peer has closed.
                    let _ = self.conn.read_tls(&mut &[][..]);
                    if let Err(e) = self.conn.process_new_packets() {
                        break Err(TlsFailed(Failure::of(&e)));
                    }
                }
                Ok(n) => {
                    ready.after_read(n, buf.len());
                    (self.in_start, self.in_end) = (0, n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.read = false;
                    break Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e.into()),
            }
        };
        if self.in_start >= self.in_end {
            (self.in_start, self.in_end) = (0, 0);
            if let Some(b) = self.inbuf.take() {
                pool.put(b);
            }
        }
        result.map(|()| progress)
    }

    /// Hands buffered records to rustls while it wants them.
    fn feed(&mut self, progress: &mut bool) -> Result<(), TlsFailed> {
        while self.in_start < self.in_end && self.conn.wants_read() {
            let Some(mut rest) = self
                .inbuf
                .as_deref()
                .and_then(|b| b.get(self.in_start..self.in_end))
            else {
                self.in_start = self.in_end;
                break;
            };
            let n = self.conn.read_tls(&mut rest)?;
            if n == 0 {
                // rustls takes nothing more (a close_notify came): the rest is discarded.
                self.in_start = self.in_end;
                break;
            }
            self.in_start += n;
            *progress = true;
            if let Err(e) = self.conn.process_new_packets() {
                return Err(TlsFailed(Failure::of(&e)));
            }
        }
        Ok(())
    }

    /// Writes queued records to the socket while it takes them; then, after a close_notify,
    /// shuts the socket's write side. Returns whether it wrote anything.
    ///
    /// # Errors
    /// A socket error.
    pub(crate) fn push(&mut self, mut sock: &Stream, ready: &mut Readiness) -> io::Result<bool> {
        let mut progress = false;
        while ready.write && self.conn.wants_write() {
            match self.conn.write_tls(&mut sock) {
                Ok(0) => break,
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.shut_pending && !self.shut_done && !self.conn.wants_write() {
            self.shut_done = true;
            match sock.shutdown_write() {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => return Err(e),
                _ => {}
            }
        }
        Ok(progress)
    }

    /// Whether everything queued has been sent (and a requested half-close passed on).
    pub(crate) fn flushed(&self) -> bool {
        !self.conn.wants_write() && self.shut_pending == self.shut_done
    }

    /// At close: queue a close_notify if none was, try once to send what is queued, and give
    /// the input buffer back.
    pub(crate) fn close(&mut self, sock: &Stream, pool: &mut BufPool) {
        if let Some(b) = self.inbuf.take() {
            pool.put(b);
        }
        if !self.shut_pending && !self.conn.is_handshaking() {
            self.conn.send_close_notify();
        }
        let mut ready = Readiness {
            write: true,
            ..Readiness::default()
        };
        let _ = self.push(sock, &mut ready);
    }

    /// The relay's source: decrypted bytes from the client.
    pub(crate) fn reader(&mut self) -> PlainReader<'_> {
        PlainReader(self)
    }

    /// The relay's destination: bytes to encrypt towards the client.
    pub(crate) fn writer(&mut self) -> PlainWriter<'_> {
        PlainWriter(self)
    }
}

/// Decrypted bytes from the client (see the module docs).
pub(crate) struct PlainReader<'a>(&'a mut TlsConn);

impl Read for PlainReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.conn.reader().read(buf) {
            // The TCP FIN came without a close_notify. The relay passes the end of file on all
            // the same, as for a plain connection: the server sees what the client sent, and a
            // truncation is the application protocol's to notice.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

/// Bytes to encrypt towards the client (see the module docs).
pub(crate) struct PlainWriter<'a>(&'a mut TlsConn);

impl Write for PlainWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.conn.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into()); // send buffer full
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HalfClose for PlainWriter<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        if !self.0.shut_pending {
            self.0.conn.send_close_notify();
            self.0.shut_pending = true;
        }
        Ok(())
    }
}
