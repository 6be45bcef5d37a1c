//! A TLS handshake load generator for the load benchmark's TLS table: every request is a new
//! TLS connection.
//!
//! ```text
//! tls_load --addr IP:PORT (--ca CERT.pem | --insecure) [--seconds N] [--threads T]
//!          [--conns-per-thread C] [--resume] [--tls12] [--suite NAME] [--group NAME]
//!          [--sni NAME] [--path P]
//! ```
//!
//! Each of the `--threads` threads (default 2) keeps `--conns-per-thread` connections (default
//! 16) in flight on non-blocking sockets and one `poll(2)` loop; when one ends, the next starts
//! in its place at once. A connection is: TCP connect, TLS handshake (rustls, ring provider),
//! `GET PATH HTTP/1.1` with `Host: SNI` and `Connection: close`, the response read to the end
//! of the stream, a close_notify (best effort), close. A response counts only if it starts
//! with `HTTP/1.1 200` and, when it has a `Content-Length`, its body is complete.
//!
//! Without `--resume` session resumption is disabled: every handshake is a full one. With
//! `--resume` the connections of one thread share a session store, so every connection after
//! the first few resumes a session (a TLS 1.3 ticket, or a TLS 1.2 session ID or ticket)
//! received on an earlier one. The store is rustls's `ClientSessionMemoryCache` but for its
//! limit: that one keeps 8 TLS 1.3 tickets per server, each used once, too few for 16
//! connections in flight, which then push each other's tickets out (about 85% resumed instead
//! of 99.5% against C pen). The output says which share of the connections really resumed.
//!
//! The server's certificate is verified against `--ca` (a PEM file, e.g. the self-signed
//! certificate itself) for the name `--sni` (default `localhost`). `--insecure` accepts any
//! certificate but still checks the handshake signature made with its key, so the client
//! does the same public-key work either way. `--tls12` allows only TLS 1.2 (default: TLS 1.3
//! or 1.2, 1.3 preferred); `--suite` offers only the named cipher suite (rustls's name, e.g.
//! `TLS13_AES_256_GCM_SHA384`), `--group` only the named key-exchange group (`X25519`,
//! `secp256r1`, `secp384r1`; by default all three with an X25519 key share, so a server
//! without X25519 answers the first flight with a HelloRetryRequest).
//!
//! Runs for `--seconds` (default 10) and prints one line:
//!
//! ```text
//! handshakes_per_sec=2345 connections=23450 resumed_fraction=0.000 retry_fraction=0.000 \
//!   errors=0 unclean_closes=0 seconds=10.00 avg_ms=13.6 protocol=TLSv1_3 \
//!   suite=TLS13_AES_256_GCM_SHA384 group=secp256r1
//! ```
//!
//! - `handshakes_per_sec`: connections completed (response verified) before the end of the
//!   run, per second; `connections` their number; connections still in flight at the end are
//!   not counted.
//! - `resumed_fraction`: the share of them that resumed a session; `retry_fraction`: the share
//!   that were full handshakes with a HelloRetryRequest.
//! - `errors`: failed connections (refused, TLS alert, bad or short response, no progress for
//!   10 s, or in flight at the end without progress for the last second).
//! - `unclean_closes`: complete responses whose stream ended without the server's
//!   close_notify (counted as completed).
//! - with `--resume`, `sessions_received` and `sessions_offered`: sessions (TLS 1.3 tickets)
//!   the servers gave, and those offered to them for resumption.
//! - `avg_ms`: mean time from connect to the end of the response.
//! - `protocol`, `suite`, `group`: what the last completed connection negotiated (`-` if none).
//!
//! The first few errors are printed on stderr.
// A load generator, not pen: its input is what it sends itself, so the workspace's
// no-panic lints for network-facing code do not apply; its buffers are indexed by their own
// lengths.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup,
    RootCertStore, SignatureScheme,
};
use socket2::{Domain, Socket, Type};

/// A connection that makes no progress for this long fails.
const STALL: Duration = Duration::from_secs(10);
/// A connection in flight at the end of the run without progress for this long is an error.
const STUCK_AT_END: Duration = Duration::from_secs(1);
/// After an error a slot waits this long before it connects again (no spinning on a refusal).
const BACKOFF: Duration = Duration::from_millis(10);
/// Errors printed on stderr, at most.
const SHOWN_ERRORS: u64 = 5;

/// The parsed command line.
struct Args {
    addr: SocketAddr,
    seconds: f64,
    threads: usize,
    conns: usize,
    resume: bool,
    tls12: bool,
    ca: Option<String>,
    insecure: bool,
    suite: Option<String>,
    group: Option<String>,
    sni: String,
    path: String,
}

const USAGE: &str = "usage: tls_load --addr IP:PORT (--ca CERT.pem | --insecure) [--seconds N] \
                     [--threads T] [--conns-per-thread C] [--resume] [--tls12] [--suite NAME] \
                     [--group NAME] [--sni NAME] [--path /P]";

/// Parses the value following option `opt`.
fn value<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{opt}: missing value"))?;
    v.parse().map_err(|_| format!("{opt}: bad value '{v}'"))
}

/// Parses the command line (without the program name).
fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut addr = None;
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        seconds: 10.0,
        threads: 2,
        conns: 16,
        resume: false,
        tls12: false,
        ca: None,
        insecure: false,
        suite: None,
        group: None,
        sni: "localhost".into(),
        path: "/".into(),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--addr" => addr = Some(value::<SocketAddr>("--addr", it.next())?),
            "--seconds" => args.seconds = value("--seconds", it.next())?,
            "--threads" => args.threads = value("--threads", it.next())?,
            "--conns-per-thread" => args.conns = value("--conns-per-thread", it.next())?,
            "--resume" => args.resume = true,
            "--tls12" => args.tls12 = true,
            "--ca" => args.ca = Some(value("--ca", it.next())?),
            "--insecure" => args.insecure = true,
            "--suite" => args.suite = Some(value("--suite", it.next())?),
            "--group" => args.group = Some(value("--group", it.next())?),
            "--sni" => args.sni = value("--sni", it.next())?,
            "--path" => args.path = value("--path", it.next())?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unexpected argument '{a}'\n{USAGE}")),
        }
    }
    args.addr = addr.ok_or(USAGE)?;
    if args.ca.is_some() == args.insecure {
        return Err(format!("give exactly one of --ca and --insecure\n{USAGE}"));
    }
    if args.threads == 0 || args.conns == 0 || !args.seconds.is_finite() || args.seconds <= 0.0 {
        return Err("--threads, --conns-per-thread and --seconds must be positive".into());
    }
    if !args.path.starts_with('/') {
        return Err("--path must start with '/'".into());
    }
    Ok(args)
}

/// `--insecure`: accepts any certificate, but verifies the handshake signature with the key in
/// it, so that the client's share of the handshake's public-key work is the same as with `--ca`.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS 1.3 tickets kept per server name by [`TicketStore`].
const TICKETS_PER_SERVER: usize = 1024;

/// What [`TicketStore`] remembers about one server.
#[derive(Debug, Default)]
struct ServerSessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first; the newest is handed out first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

/// `--resume`: the session store of one thread's connections. Like rustls's
/// `ClientSessionMemoryCache`, but it keeps up to [`TICKETS_PER_SERVER`] TLS 1.3 tickets per
/// server instead of 8: with more connections in flight than that, tickets received by
/// connections still running would push each other out, and their successors would find none
/// and make a full handshake. It counts the sessions it receives (TLS 1.3 tickets, TLS 1.2
/// sessions) and those it hands out to be offered to the server.
#[derive(Debug, Default)]
struct TicketStore {
    servers: Mutex<HashMap<ServerName<'static>, ServerSessions>>,
    received: AtomicU64,
    offered: AtomicU64,
}

impl TicketStore {
    /// Runs `f` on the entry of `name` (created if missing).
    fn with<T>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut ServerSessions) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        f(servers.entry(name.to_owned()).or_default())
    }

    /// Counts a session handed out.
    fn offer<T>(&self, v: Option<T>) -> Option<T> {
        if v.is_some() {
            self.offered.fetch_add(1, Ordering::Relaxed);
        }
        v
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with(&server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(server_name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.with(&server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.offer(self.with(server_name, |s| s.tls12.clone()))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(server_name, |s| s.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.with(&server_name, |s| {
            if s.tls13.len() == TICKETS_PER_SERVER {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.offer(self.with(server_name, |s| s.tls13.pop_back()))
    }
}

/// One client configuration (one per thread, so that each thread has its own session cache),
/// and with `--resume` its session store.
fn client_config(args: &Args) -> Result<(ClientConfig, Option<Arc<TicketStore>>), String> {
    let mut provider = ring::default_provider();
    if let Some(name) = &args.suite {
        provider
            .cipher_suites
            .retain(|s| format!("{:?}", s.suite()).eq_ignore_ascii_case(name));
        if provider.cipher_suites.is_empty() {
            return Err(format!("--suite: unknown cipher suite '{name}'"));
        }
    }
    if let Some(name) = &args.group {
        provider
            .kx_groups
            .retain(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(name));
        if provider.kx_groups.is_empty() {
            return Err(format!("--group: unknown key-exchange group '{name}'"));
        }
    }
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls12 {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let mut config = if let Some(ca) = &args.ca {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
            let cert = cert.map_err(|e| format!("{ca}: {e}"))?;
            roots.add(cert).map_err(|e| format!("{ca}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("{ca}: no certificate"));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    let store = args.resume.then(|| Arc::new(TicketStore::default()));
    config.resumption = match &store {
        Some(s) => Resumption::store(s.clone()),
        None => Resumption::disabled(),
    };
    Ok((config, store))
}

/// How a connection ended.
enum End {
    /// The whole response, ended by close_notify (`clean`) or by the bare end of the stream.
    Complete { clean: bool },
    /// A failure, described.
    Failed(String),
}

/// One connection in flight.
struct Conn {
    sock: TcpStream,
    tls: ClientConnection,
    /// The TCP connect has not completed yet.
    connecting: bool,
    response: Vec<u8>,
    started: Instant,
    last_progress: Instant,
}

impl Conn {
    /// Starts a non-blocking connect and a TLS client with the request queued.
    fn start(
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
    fn interest(&self) -> PollFlags {
        if self.connecting {
            PollFlags::OUT
        } else if self.tls.wants_write() {
            PollFlags::IN | PollFlags::OUT
        } else {
            PollFlags::IN
        }
    }

    /// Moves the connection on after poll(2) reported `revents`; `None` while it goes on.
    fn drive(&mut self, revents: PollFlags, scratch: &mut [u8]) -> Option<End> {
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

/// What one thread counted.
#[derive(Default)]
struct Tally {
    completed: u64,
    resumed: u64,
    /// Full handshakes that needed a HelloRetryRequest (the server wanted another key share).
    retried: u64,
    errors: u64,
    unclean: u64,
    busy: Duration,
    /// Protocol, suite and group of the last completed connection.
    negotiated: Option<String>,
}

/// "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519" for a finished handshake.
fn negotiated(tls: &ClientConnection) -> String {
    let show = |s: Option<String>| s.unwrap_or_else(|| "-".into());
    format!(
        "protocol={} suite={} group={}",
        show(tls.protocol_version().map(|v| format!("{v:?}"))),
        show(
            tls.negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
        ),
        show(
            tls.negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
        ),
    )
}

/// One thread: `args.conns` connection slots until `end`.
fn run(args: &Args, config: Arc<ClientConfig>, end: Instant, shown: &Mutex<u64>) -> Tally {
    let mut tally = Tally::default();
    let name = match ServerName::try_from(args.sni.clone()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tls_load: --sni: {e}");
            tally.errors += 1;
            return tally;
        }
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.path, args.sni
    );
    let mut slots: Vec<Option<Conn>> = (0..args.conns).map(|_| None).collect();
    let mut retry_at = vec![Instant::now(); args.conns];
    let mut scratch = vec![0u8; 64 * 1024];
    let report = |tally: &mut Tally, what: String| {
        tally.errors += 1;
        if let Ok(mut n) = shown.lock() {
            *n += 1;
            if *n <= SHOWN_ERRORS {
                eprintln!("tls_load: {what}");
            }
        }
    };
    // Fills an empty slot whose back-off has passed.
    let open = |slot: &mut Option<Conn>, retry_at: &mut Instant, tally: &mut Tally| {
        let now = Instant::now();
        if slot.is_none() && now >= *retry_at && now < end {
            match Conn::start(args.addr, &config, &name, request.as_bytes()) {
                Ok(c) => *slot = Some(c),
                Err(e) => {
                    report(tally, e);
                    *retry_at = now + BACKOFF;
                }
            }
        }
    };
    let mut polled: Vec<usize> = Vec::with_capacity(args.conns);
    loop {
        let now = Instant::now();
        if now >= end {
            // Connections still in flight are not counted, unless stuck: then they are errors
            // (a server that accepts connections but never answers must not look idle).
            for c in slots.iter().flatten() {
                if now.duration_since(c.last_progress) > STUCK_AT_END {
                    report(&mut tally, "connection stuck at the end of the run".into());
                }
            }
            break;
        }
        for (slot, retry) in slots.iter_mut().zip(&mut retry_at) {
            open(slot, retry, &mut tally);
        }
        polled.clear();
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(args.conns);
        for (i, slot) in slots.iter().enumerate() {
            if let Some(c) = slot {
                polled.push(i);
                fds.push(PollFd::new(&c.sock, c.interest()));
            }
        }
        // Short waits while a slot is backing off, so that it reconnects on time.
        let cap = Duration::from_millis(if fds.len() < args.conns { 5 } else { 100 });
        let wait = end.saturating_duration_since(now).min(cap);
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        });
        if let Err(e) = poll(&mut fds, Some(&timeout)) {
            if e != rustix::io::Errno::INTR {
                report(&mut tally, format!("poll: {e}"));
                thread::sleep(BACKOFF);
            }
            continue;
        }
        let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        let now = Instant::now();
        for (&i, ev) in polled.iter().zip(revents) {
            let Some(conn) = slots[i].as_mut() else {
                continue;
            };
            let outcome = match conn.drive(ev, &mut scratch) {
                None if now.duration_since(conn.last_progress) > STALL => Some(End::Failed(
                    format!("no progress for {} s", STALL.as_secs()),
                )),
                other => other,
            };
            let Some(outcome) = outcome else { continue };
            let done = Instant::now();
            match outcome {
                End::Complete { clean } if done <= end => {
                    tally.completed += 1;
                    tally.unclean += u64::from(!clean);
                    tally.busy += done.duration_since(conn.started);
                    match conn.tls.handshake_kind() {
                        Some(HandshakeKind::Resumed) => tally.resumed += 1,
                        Some(HandshakeKind::FullWithHelloRetryRequest) => tally.retried += 1,
                        _ => {}
                    }
                    tally.negotiated = Some(negotiated(&conn.tls));
                    // Say goodbye properly (best effort), as curl and browsers do.
                    conn.tls.send_close_notify();
                    let _ = conn.tls.write_tls(&mut conn.sock);
                }
                End::Complete { .. } => {}
                End::Failed(e) => {
                    report(&mut tally, e);
                    retry_at[i] = done + BACKOFF;
                }
            }
            // The next connection starts at once, so with --resume it finds the tickets the
            // one that just ended received (the store keeps only a few per server).
            slots[i] = None;
            open(&mut slots[i], &mut retry_at[i], &mut tally);
        }
    }
    tally
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("tls_load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut configs = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..args.threads {
        match client_config(&args) {
            Ok((c, store)) => {
                configs.push(Arc::new(c));
                stores.extend(store);
            }
            Err(e) => {
                eprintln!("tls_load: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let shown = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let handles: Vec<_> = configs
        .into_iter()
        .map(|config| {
            let (args, shown) = (args.clone(), shown.clone());
            thread::spawn(move || run(&args, config, end, &shown))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => {
                total.completed += t.completed;
                total.resumed += t.resumed;
                total.retried += t.retried;
                total.errors += t.errors;
                total.unclean += t.unclean;
                total.busy += t.busy;
                total.negotiated = t.negotiated.or(total.negotiated);
            }
            Err(_) => {
                eprintln!("tls_load: a thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = args.seconds;
    let count = |f: fn(&TicketStore) -> &AtomicU64| {
        stores
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let sessions = if args.resume {
        format!(
            " sessions_received={} sessions_offered={}",
            count(|s| &s.received),
            count(|s| &s.offered)
        )
    } else {
        String::new()
    };
    let per = |x: u64| x as f64 / total.completed.max(1) as f64;
    println!(
        "handshakes_per_sec={:.0} connections={} resumed_fraction={:.3} retry_fraction={:.3} \
         errors={} unclean_closes={}{sessions} seconds={secs:.2} avg_ms={:.1} {}",
        total.completed as f64 / secs,
        total.completed,
        per(total.resumed),
        per(total.retried),
        total.errors,
        total.unclean,
        total.busy.as_secs_f64() * 1e3 / total.completed.max(1) as f64,
        total
            .negotiated
            .unwrap_or_else(|| "protocol=- suite=- group=-".into()),
    );
    if total.completed == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
