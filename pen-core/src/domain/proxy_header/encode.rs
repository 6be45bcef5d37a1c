//! Writing the header pen sends a server, into a caller's fixed array (no allocation).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use super::{tlv, ProxyHeaderError, Transport, V1_MAX, V2_MAX, V2_SIGNATURE};

/// The longest version 2 header without TLVs (IPv6 addresses): the room a UDP datagram needs
/// in front of it.
pub const V2_ADDR_MAX: usize = 16 + 36;

/// What the version 2 TLS TLVs say about a connection pen terminated TLS for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo<'a> {
    /// The protocol version, e.g. `TLSv1.3`.
    pub version: &'a str,
    /// The cipher suite's name (rustls' names, e.g. `TLS13_AES_256_GCM_SHA384`).
    pub cipher: &'a str,
    /// The server name the client asked for (SNI), if any: sent as `PP2_TYPE_AUTHORITY`.
    pub sni: Option<&'a str>,
    /// The client presented a certificate that was verified.
    pub client_cert: bool,
}

/// Both addresses in one family: IPv4 when both are, else IPv6 (an IPv4 address as
/// `::ffff:a.b.c.d`).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr, bool) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if src.is_ipv4() && dst.is_ipv4() {
        (src, dst, false)
    } else {
        (v6(src), v6(dst), true)
    }
}

/// Writes the version 1 line for a client `src` that connected to `dst` into `out`; returns
/// its length. `None` for either address (a Unix-socket client) writes `PROXY UNKNOWN\r\n`.
///
/// # Errors
/// [`ProxyHeaderError::NoRoom`] never happens for real addresses (the longest line is 104
/// bytes); it is there so nothing can panic.
pub fn encode_v1(
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    out: &mut [u8; V1_MAX],
) -> Result<usize, ProxyHeaderError> {
    let mut w: &mut [u8] = &mut out[..];
    let written = match (src, dst) {
        (Some(s), Some(d)) => {
            let (s, d, v6) = same_family(s, d);
            let proto = if v6 { "TCP6" } else { "TCP4" };
            write!(
                w,
                "PROXY {proto} {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            )
        }
        _ => w.write_all(b"PROXY UNKNOWN\r\n"),
    };
    written.map_err(|_| ProxyHeaderError::NoRoom(V1_MAX))?;
    Ok(V1_MAX - w.len())
}

/// A cursor over a fixed array.
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ProxyHeaderError> {
        let room = self.buf.len();
        let dst = (self.buf.get_mut(self.at..self.at + bytes.len()))
            .ok_or(ProxyHeaderError::NoRoom(room))?;
        dst.copy_from_slice(bytes);
        self.at += bytes.len();
        Ok(())
    }

    /// A TLV header: type and a 16-bit length.
    fn tlv(&mut self, kind: u8, len: usize) -> Result<(), ProxyHeaderError> {
        let len = u16::try_from(len).map_err(|_| ProxyHeaderError::NoRoom(V2_MAX))?;
        self.put(&[kind])?;
        self.put(&len.to_be_bytes())
    }
}

/// Writes a version 2 PROXY header for a client `src` that connected to `dst` over
/// `transport`, with the TLS TLVs when `tls` is given, into `out`; returns its length. `None`
/// for either address (a Unix-socket client) announces `AF_UNSPEC`, which tells the server to
/// use the connection's own endpoints.
///
/// # Errors
/// [`ProxyHeaderError::NoRoom`] if the TLVs do not fit `out` (they always fit [`V2_MAX`] for
/// a host name of at most 255 bytes and a version and cipher name of at most 255 bytes each).
pub fn encode_v2(
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    transport: Transport,
    tls: Option<&TlsInfo<'_>>,
    out: &mut [u8],
) -> Result<usize, ProxyHeaderError> {
    let mut o = Out { buf: out, at: 0 };
    o.put(&V2_SIGNATURE)?;
    o.put(&[0x21])?; // version 2, PROXY
    let proto = match transport {
        Transport::Unspec => 0,
        Transport::Stream => 1,
        Transport::Dgram => 2,
    };
    let pair = src.zip(dst).map(|(s, d)| same_family(s, d));
    let family: u8 = match pair {
        None => 0,
        Some((_, _, false)) => 1,
        Some((_, _, true)) => 2,
    };
    o.put(&[family << 4 | proto])?;
    o.put(&[0, 0])?; // the length, filled in below
    if let Some((s, d, _)) = pair {
        match (s.ip(), d.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                o.put(&a.octets())?;
                o.put(&b.octets())?;
            }
            (a, b) => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                o.put(&v6(a))?;
                o.put(&v6(b))?;
            }
        }
        o.put(&s.port().to_be_bytes())?;
        o.put(&d.port().to_be_bytes())?;
    }
    if let Some(t) = tls {
        if let Some(sni) = t.sni {
            o.tlv(tlv::AUTHORITY, sni.len())?;
            o.put(sni.as_bytes())?;
        }
        // PP2_TYPE_SSL: client bits, verify (0: a client certificate was verified), sub-TLVs.
        let subs = 3 + t.version.len() + 3 + t.cipher.len();
        o.tlv(tlv::SSL, 5 + subs)?;
        let (bits, verify) = if t.client_cert {
            (tlv::CLIENT_SSL | 0x02 | 0x04, 0u32)
        } else {
            (tlv::CLIENT_SSL, 1u32)
        };
        o.put(&[bits])?;
        o.put(&verify.to_be_bytes())?;
        o.tlv(tlv::SSL_VERSION, t.version.len())?;
        o.put(t.version.as_bytes())?;
        o.tlv(tlv::SSL_CIPHER, t.cipher.len())?;
        o.put(t.cipher.as_bytes())?;
    }
    let total = o.at;
    let body = u16::try_from(total - 16).map_err(|_| ProxyHeaderError::NoRoom(V2_MAX))?;
    let len_at = o.buf.get_mut(14..16).ok_or(ProxyHeaderError::NoRoom(16))?;
    len_at.copy_from_slice(&body.to_be_bytes());
    if total > V2_MAX {
        return Err(ProxyHeaderError::NoRoom(V2_MAX));
    }
    Ok(total)
}
