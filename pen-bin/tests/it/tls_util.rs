//! Helpers for the TLS tests: a test PKI made with rcgen, rustls client configurations, a
//! blocking TLS client over a `TcpStream` with timeouts, a full-duplex TLS transfer on two
//! threads, an HTTP backend that reports the forwarding headers it saw, and a small reader for
//! single samples of the `metrics` text.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned, SupportedCipherSuite, SupportedProtocolVersion,
};

use super::backends::Backend;
use super::harness::{Fnv, Prng, WAIT};

// ---- a test PKI ---------------------------------------------------------------------------

/// Validity of every certificate that is meant to be valid: 2020 to 2090.
fn valid_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names).expect("certificate names");
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2090, 1, 1);
    p
}

/// A certificate authority: its certificate and what it needs to sign others.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (DER).
    pub(crate) der: CertificateDer<'static>,
    /// The CA certificate (PEM).
    pub(crate) pem: String,
}

impl Ca {
    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = valid_params(&[]);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    }

    /// A self-signed root CA with an ECDSA P-256 key.
    pub(crate) fn root(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let params = Self::ca_params(cn);
        let cert = params.self_signed(&key).expect("self-sign CA");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one.
    pub(crate) fn intermediate(&self, cn: &str) -> Ca {
        let key = KeyPair::generate().expect("intermediate key");
        let mut params = Self::ca_params(cn);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("sign CA");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, mut params: CertificateParams, cn: &str) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn server(&self, names: &[&str]) -> Leaf {
        self.server_valid(names, 2020, 2090)
    }

    /// A server certificate valid from 1 January `from` to 1 January `to`.
    pub(crate) fn server_valid(&self, names: &[&str], from: i32, to: i32) -> Leaf {
        let mut p = valid_params(names);
        p.not_before = rcgen::date_time_ymd(from, 1, 1);
        p.not_after = rcgen::date_time_ymd(to, 1, 1);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf(p, names.first().copied().unwrap_or("server"))
    }

    /// A client certificate with common name `cn`.
    pub(crate) fn client(&self, cn: &str) -> Leaf {
        let mut p = valid_params(&[]);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(p, cn)
    }
}

/// An end-entity certificate and its key.
pub(crate) struct Leaf {
    /// The certificate (DER).
    pub(crate) der: CertificateDer<'static>,
    /// The certificate (PEM).
    pub(crate) cert_pem: String,
    key: KeyPair,
}

impl Leaf {
    /// The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub(crate) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The private key as SEC1 PEM (`BEGIN EC PRIVATE KEY`, with the P-256 curve named).
    pub(crate) fn key_sec1_pem(&self) -> String {
        pem(
            "EC PRIVATE KEY",
            &pkcs8_p256_to_sec1(self.key.serialized_der()),
        )
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

/// Writes `contents` to `dir/name` (through a temporary file and a rename, so a reader never
/// sees half a file); returns the path as a string for the command line.
pub(crate) fn put(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename {}: {e}", path.display()));
    path.display().to_string()
}

// ---- DER and PEM, just enough for a SEC1 key ----------------------------------------------

/// Splits one DER TLV off `input`: (tag, content, rest).
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, hdr) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(input[2]), 3),
        0x82 => ((usize::from(input[2]) << 8) | usize::from(input[3]), 4),
        n => panic!("DER length form {n:#x}"),
    };
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// Rewrites a PKCS#8 P-256 key (as ring makes it) as a SEC1 `ECPrivateKey` that names its curve.
fn pkcs8_p256_to_sec1(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = tlv(pkcs8); // PrivateKeyInfo
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, ec_key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey OCTET STRING");
    let (_, fields, _) = tlv(ec_key); // ECPrivateKey
    let (_, _version, rest) = tlv(fields);
    let (tag, scalar, mut rest) = tlv(rest);
    assert_eq!(tag, 0x04, "ECPrivateKey privateKey");
    let mut public = None;
    while !rest.is_empty() {
        let (tag, content, r) = tlv(rest);
        if tag == 0xa1 {
            public = Some(content.to_vec());
        }
        rest = r;
    }
    // prime256v1 = 1.2.840.10045.3.1.7
    let oid = der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    let mut body = der(0x02, &[1]);
    body.extend(der(0x04, scalar));
    body.extend(der(0xa0, &oid));
    if let Some(p) = public {
        body.extend(der(0xa1, &p));
    }
    der(0x30, &body)
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---- client configurations ----------------------------------------------------------------

fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Builds a rustls `ClientConfig` that trusts one CA.
pub(crate) struct ClientCfg<'a> {
    ca: &'a Ca,
    versions: Vec<&'static SupportedProtocolVersion>,
    suites: Option<Vec<SupportedCipherSuite>>,
    cert: Option<&'a Leaf>,
    ocsp: Option<Arc<Mutex<Vec<u8>>>>,
}

impl<'a> ClientCfg<'a> {
    /// TLS 1.2 and 1.3, all of ring's suites, no client certificate.
    pub(crate) fn new(ca: &'a Ca) -> Self {
        ClientCfg {
            ca,
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            suites: None,
            cert: None,
            ocsp: None,
        }
    }

    /// Offers only TLS 1.2.
    pub(crate) fn tls12(mut self) -> Self {
        self.versions = vec![&rustls::version::TLS12];
        self
    }

    /// Offers only TLS 1.3.
    pub(crate) fn tls13(mut self) -> Self {
        self.versions = vec![&rustls::version::TLS13];
        self
    }

    /// Offers only these cipher suites.
    pub(crate) fn suites(mut self, s: &[SupportedCipherSuite]) -> Self {
        self.suites = Some(s.to_vec());
        self
    }

    /// Presents this client certificate when asked.
    pub(crate) fn cert(mut self, leaf: &'a Leaf) -> Self {
        self.cert = Some(leaf);
        self
    }

    /// Stores the stapled OCSP response of each handshake (empty when none) in `sink`.
    pub(crate) fn record_ocsp(mut self, sink: Arc<Mutex<Vec<u8>>>) -> Self {
        self.ocsp = Some(sink);
        self
    }

    pub(crate) fn build(self) -> Arc<ClientConfig> {
        let mut provider = ring();
        if let Some(s) = self.suites {
            provider.cipher_suites = s;
        }
        let provider = Arc::new(provider);
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der.clone()).expect("add test CA");
        let roots = Arc::new(roots);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .expect("protocol versions");
        let builder = match self.ocsp {
            None => builder.with_root_certificates(roots),
            Some(sink) => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .expect("verifier");
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(RecordOcsp { inner, sink }))
            }
        };
        let cfg = match self.cert {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.der.clone()], leaf.key_der())
                .expect("client cert"),
        };
        Arc::new(cfg)
    }
}

/// The webpki verifier, noting the stapled OCSP response on the way.
#[derive(Debug)]
struct RecordOcsp {
    inner: Arc<WebPkiServerVerifier>,
    sink: Arc<Mutex<Vec<u8>>>,
}

impl ServerCertVerifier for RecordOcsp {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.sink.lock().expect("lock") = ocsp_response.to_vec();
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

// ---- a blocking TLS client ----------------------------------------------------------------

/// A TLS client stream over a TCP socket that has read and write timeouts.
pub(crate) type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Runs the client handshake on `sock` for `name` (a DNS name, sent as SNI, or an IP address,
/// in which case no SNI is sent). Bounded by the socket's timeouts and an overall deadline.
pub(crate) fn handshake(
    mut sock: TcpStream,
    cfg: &Arc<ClientConfig>,
    name: &str,
) -> io::Result<Tls> {
    let server_name = ServerName::try_from(name.to_string()).expect("server name");
    let mut conn = ClientConnection::new(cfg.clone(), server_name).map_err(io::Error::other)?;
    let deadline = Instant::now() + 2 * WAIT;
    while conn.is_handshaking() {
        if Instant::now() > deadline {
            return Err(io::Error::new(ErrorKind::TimedOut, "handshake deadline"));
        }
        conn.complete_io(&mut sock)?;
    }
    Ok(StreamOwned::new(conn, sock))
}

/// How a TLS stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer sent close_notify.
    CloseNotify,
    /// TCP EOF without close_notify.
    NoCloseNotify,
    /// The connection was reset.
    Reset,
}

/// Reads until the stream ends, passing the plaintext to `f`. Errors (a timeout, a TLS alert)
/// are returned.
pub(crate) fn drain(s: &mut Tls, mut f: impl FnMut(&[u8])) -> io::Result<End> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(End::CloseNotify),
            Ok(n) => f(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(End::NoCloseNotify),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(End::Reset),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads everything until the stream ends; panics on an error.
pub(crate) fn read_all(s: &mut Tls) -> (Vec<u8>, End) {
    let mut data = Vec::new();
    match drain(s, |b| data.extend_from_slice(b)) {
        Ok(end) => (data, end),
        Err(e) => panic!(
            "TLS read: {e} (got so far {:?})",
            String::from_utf8_lossy(&data)
        ),
    }
}

/// Sends close_notify, then shuts the TCP connection down for writing.
pub(crate) fn half_close(s: &mut Tls) -> io::Result<()> {
    s.conn.send_close_notify();
    s.flush()?;
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    s.sock.shutdown(Shutdown::Write)
}

/// After the peer's close_notify: the TCP connection itself must be closed by the peer (EOF or
/// reset) within `WAIT`, with no further bytes.
pub(crate) fn tcp_closed_after(sock: &mut TcpStream) -> Result<(), String> {
    let mut buf = [0u8; 1024];
    sock.set_read_timeout(Some(WAIT)).expect("read timeout");
    match sock.read(&mut buf) {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        Ok(n) => Err(format!("{n} more bytes after close_notify")),
        Err(e) => Err(format!("TCP connection still open after close_notify: {e}")),
    }
}

/// What a full-duplex transfer saw.
#[derive(Debug)]
pub(crate) struct Transfer {
    /// Checksum of what was sent.
    pub(crate) sent: Fnv,
    /// Checksum and length of what came back.
    pub(crate) got: Fnv,
    pub(crate) n: usize,
    /// How the stream from the peer ended.
    pub(crate) end: End,
}

/// Writes `len` bytes of the stream seeded with `seed` through `s` on one thread while reading
/// on this one; then close_notify and a TCP write shutdown; reads until the peer's end. The
/// connection is shared under a mutex that is never held across socket I/O; only the writer
/// thread writes to the socket, so TLS records go out in order.
pub(crate) fn duplex(s: Tls, seed: u64, len: usize) -> Result<Transfer, String> {
    let (conn, sock) = s.into_parts();
    let long = Some(Duration::from_secs(20));
    sock.set_read_timeout(long).expect("read timeout");
    sock.set_write_timeout(long).expect("write timeout");
    let conn = Arc::new(Mutex::new(conn));
    let mut wsock = sock.try_clone().expect("clone socket");
    let wconn = conn.clone();
    let writer = thread::spawn(move || -> io::Result<Fnv> {
        let mut rng = Prng::new(seed);
        let mut h = Fnv::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut tls = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            rng.fill(&mut buf[..n]);
            h.update(&buf[..n]);
            let mut off = 0;
            while off < n {
                {
                    let mut c = wconn.lock().expect("lock");
                    off += c.writer().write(&buf[off..n])?;
                    while c.wants_write() {
                        c.write_tls(&mut tls)?;
                    }
                }
                wsock.write_all(&tls)?;
                tls.clear();
            }
            left -= n;
        }
        {
            let mut c = wconn.lock().expect("lock");
            c.send_close_notify();
            while c.wants_write() {
                c.write_tls(&mut tls)?;
            }
        }
        wsock.write_all(&tls)?;
        wsock.shutdown(Shutdown::Write)?;
        Ok(h)
    });

    let mut rsock = sock;
    let mut got = Fnv::new();
    let mut n = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut plain = vec![0u8; 64 * 1024];
    let end = 'outer: loop {
        let k = match rsock.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => return Err(format!("read after {n} bytes: {e}")),
        };
        let mut c = conn.lock().expect("lock");
        let mut input = &buf[..k];
        loop {
            // read_tls(empty) records the TCP EOF.
            c.read_tls(&mut input)
                .map_err(|e| format!("read_tls: {e}"))?;
            c.process_new_packets()
                .map_err(|e| format!("TLS error after {n} bytes: {e}"))?;
            loop {
                match c.reader().read(&mut plain) {
                    Ok(0) => break 'outer End::CloseNotify,
                    Ok(m) => {
                        got.update(&plain[..m]);
                        n += m;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                        break 'outer End::NoCloseNotify
                    }
                    Err(e) => return Err(format!("plaintext read: {e}")),
                }
            }
            if input.is_empty() {
                break;
            }
        }
        if k == 0 {
            return Err(format!(
                "EOF after {n} bytes, yet neither close_notify nor EOF"
            ));
        }
    };
    let sent = writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("write: {e}"))?;
    if end == End::CloseNotify {
        tcp_closed_after(&mut rsock)?;
    }
    Ok(Transfer { sent, got, n, end })
}

// ---- backends -----------------------------------------------------------------------------

/// An HTTP/1.x backend that answers one request with a `text/plain` body reporting the request
/// line and the values of `X-Forwarded-For` and `X-Forwarded-Proto` (joined with `|`), as
/// `request: ...\nxff: ...\nxfp: ...\n`, then closes.
pub(crate) fn http_reporter() -> Backend {
    Backend::custom(|s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let Ok(mut w) = s.try_clone() else { return };
        let mut r = BufReader::new(s);
        let mut request = String::new();
        if r.read_line(&mut request).is_err() {
            return;
        }
        let (mut xff, mut xfp) = (Vec::new(), Vec::new());
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "x-forwarded-for" => xff.push(v.trim().to_string()),
                    "x-forwarded-proto" => xfp.push(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let body = format!(
            "request: {}\nxff: {}\nxfp: {}\n",
            request.trim_end(),
            xff.join("|"),
            xfp.join("|")
        );
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = w.write_all(resp.as_bytes());
        let _ = w.shutdown(Shutdown::Write);
    })
}

// ---- metrics ------------------------------------------------------------------------------

/// Label names and values.
type Labels = Vec<(String, String)>;

/// One sample line `name{k="v",...} value`: (name, labels, value).
fn sample(line: &str) -> Option<(&str, Labels, f64)> {
    let (series, value) = line.trim().rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series, Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut rest = rest.strip_suffix('}')?;
    while !rest.is_empty() {
        let (k, r) = rest.split_once("=\"")?;
        let mut v = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => v.push(chars.next()?.1),
                '"' => break i,
                c => v.push(c),
            }
        };
        labels.push((k.trim_start_matches(',').to_string(), v));
        rest = r[end + 1..].trim_start_matches(',');
    }
    Some((name, labels, value))
}

/// The value of the sample `name` with exactly these labels (in any order).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(sample)
        .find_map(|(n, mut l, v)| {
            l.sort();
            (n == name && l == want).then_some(v)
        })
}

/// The sum of every sample of `name`.
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(sample)
        .filter(|(n, _, _)| *n == name)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn sample_lines_parse() {
    let text = "# HELP x y\npen_a{reason=\"eof\",k=\"a\\\"b\"} 3\npen_b 1.5\n";
    assert_eq!(
        metric(text, "pen_a", &[("k", "a\"b"), ("reason", "eof")]),
        Some(3.0)
    );
    assert_eq!(metric(text, "pen_b", &[]), Some(1.5));
    assert_eq!(metric(text, "pen_a", &[("reason", "eof")]), None);
    assert_eq!(metric_sum(text, "pen_a"), 3.0);
}

#[test]
fn sec1_key_is_accepted_by_rustls() {
    let ca = Ca::root("sec1 check");
    let leaf = ca.server(&["localhost"]);
    let pem = leaf.key_sec1_pem();
    assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("parse SEC1 PEM");
    assert!(matches!(key, PrivateKeyDer::Sec1(_)));
    ring()
        .key_provider
        .load_private_key(key)
        .expect("ring loads the SEC1 key");
}
