//! Reading a PROXY header from the first bytes of a connection (or a datagram).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::{
    Announced, Header, ProxyHeaderError, Transport, V1_MAX, V1_PREFIX, V2_MAX, V2_SIGNATURE,
};

/// Reads the header at the start of `buf`.
///
/// Returns `Ok(None)` while `buf` is a valid beginning of a header that is not complete yet (read
/// more and ask again), `Ok(Some(header))` once it is complete (the client's own bytes start at
/// `header.len`).
///
/// # Errors
/// [`ProxyHeaderError`] naming what is wrong, as soon as it is known (a header need not be
/// complete to be wrong).
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyHeaderError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if starts_like(buf, &V2_SIGNATURE) {
        return if buf.len() < 16 {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    if starts_like(buf, V1_PREFIX) {
        return if buf.len() < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(ProxyHeaderError::Missing)
}

/// Whether `buf` and `sig` agree on their common length.
fn starts_like(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf.get(..n) == sig.get(..n)
}

fn v1_err(token: &[u8], expected: &'static str) -> ProxyHeaderError {
    ProxyHeaderError::V1Field {
        token: String::from_utf8_lossy(token).into_owned(),
        expected,
    }
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyHeaderError> {
    let window = buf.get(..buf.len().min(V1_MAX)).unwrap_or_default();
    // The first CR or LF ends the line; it must be a CR followed by a LF.
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ProxyHeaderError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        // Its LF would be byte 108 or later (found by the fuzz target).
        return Err(ProxyHeaderError::V1TooLong);
    }
    match (window.get(end), buf.get(end + 1)) {
        (Some(b'\r'), Some(b'\n')) => {}
        (Some(b'\r'), None) => return Ok(None),
        _ => return Err(v1_err(b"\\n", "a line ending in '\\r\\n'")),
    }
    let line = buf.get(V1_PREFIX.len()..end).unwrap_or_default();
    let len = end + 2;
    let mut words = line.split(|&b| b == b' ');
    let proto = words.next().unwrap_or_default();
    let announced = match proto {
        // The rest of an UNKNOWN line is ignored, as the specification says.
        b"UNKNOWN" => Announced::Local,
        b"TCP4" | b"TCP6" => {
            let v6 = proto == b"TCP6";
            let mut field =
                |expected: &'static str| words.next().ok_or_else(|| v1_err(b"", expected));
            let src_ip = v1_ip(field("a source address")?, v6)?;
            let dst_ip = v1_ip(field("a destination address")?, v6)?;
            let sport = v1_port(field("a source port")?)?;
            let dport = v1_port(field("a destination port")?)?;
            if let Some(extra) = words.next() {
                return Err(v1_err(extra, "the end of the line after the ports"));
            }
            Announced::Proxy {
                src: SocketAddr::new(src_ip, sport),
                dst: SocketAddr::new(dst_ip, dport),
            }
        }
        other => return Err(v1_err(other, "TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Some(Header {
        version: 1,
        announced,
        transport: Transport::Unspec,
        len,
        tlv_start: len,
    }))
}

fn v1_ip(token: &[u8], v6: bool) -> Result<IpAddr, ProxyHeaderError> {
    let text = std::str::from_utf8(token).ok();
    let ip = if v6 {
        text.and_then(|t| Ipv6Addr::from_str(t).ok())
            .map(IpAddr::V6)
    } else {
        text.and_then(|t| Ipv4Addr::from_str(t).ok())
            .map(IpAddr::V4)
    };
    ip.ok_or_else(|| {
        let expected = if v6 {
            "an IPv6 address"
        } else {
            "a dotted IPv4 address"
        };
        v1_err(token, expected)
    })
}

fn v1_port(token: &[u8]) -> Result<u16, ProxyHeaderError> {
    const EXPECTED: &str = "a port 0-65535 without leading zeros";
    let digits = !token.is_empty() && token.len() <= 5 && token.iter().all(u8::is_ascii_digit);
    let leading_zero = token.len() > 1 && token.first() == Some(&b'0');
    if !digits || leading_zero {
        return Err(v1_err(token, EXPECTED));
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.parse::<u16>().ok())
        .ok_or_else(|| v1_err(token, EXPECTED))
}

/// Bytes of the address block each version 2 family needs.
fn v2_addr_len(family: u8) -> usize {
    match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    let hi = b.get(at).copied().unwrap_or(0);
    let lo = b.get(at + 1).copied().unwrap_or(0);
    u16::from_be_bytes([hi, lo])
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyHeaderError> {
    let ver_cmd = buf.get(12).copied().unwrap_or(0);
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::V2Version(ver_cmd >> 4));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(ProxyHeaderError::V2Command(command));
    }
    let fam = buf.get(13).copied().unwrap_or(0);
    let (family, transport) = (fam >> 4, fam & 0x0f);
    if family > 3 || transport > 2 {
        return Err(ProxyHeaderError::V2Family(fam));
    }
    let len = 16 + usize::from(be16(buf, 14));
    if len > V2_MAX {
        return Err(ProxyHeaderError::V2TooLong(len));
    }
    let Some(body) = buf.get(16..len) else {
        return Ok(None);
    };
    let need = v2_addr_len(family);
    let announced = if command == 0 {
        Announced::Local // LOCAL: the addresses, if any, are ignored
    } else {
        if body.len() < need {
            return Err(ProxyHeaderError::V2Short {
                got: body.len(),
                need,
            });
        }
        match family {
            1 => Announced::Proxy {
                src: SocketAddr::new(Ipv4Addr::from(array::<4>(body, 0)).into(), be16(body, 8)),
                dst: SocketAddr::new(Ipv4Addr::from(array::<4>(body, 4)).into(), be16(body, 10)),
            },
            2 => Announced::Proxy {
                src: SocketAddr::new(Ipv6Addr::from(array::<16>(body, 0)).into(), be16(body, 32)),
                dst: SocketAddr::new(Ipv6Addr::from(array::<16>(body, 16)).into(), be16(body, 34)),
            },
            // AF_UNSPEC, and AF_UNIX, which pen has no address for: the real endpoints.
            _ => Announced::Local,
        }
    };
    let tlv_start = (16 + need).min(len);
    let mut tlvs = buf.get(tlv_start..len).unwrap_or_default();
    while !tlvs.is_empty() {
        let kind = tlvs.first().copied().unwrap_or(0);
        let vlen = usize::from(be16(tlvs, 1));
        match tlvs.get(3 + vlen..) {
            Some(rest) if tlvs.len() >= 3 => tlvs = rest,
            _ => return Err(ProxyHeaderError::V2Tlv { kind }),
        }
    }
    let transport = match transport {
        1 => Transport::Stream,
        2 => Transport::Dgram,
        _ => Transport::Unspec,
    };
    Ok(Some(Header {
        version: 2,
        announced,
        transport,
        len,
        tlv_start,
    }))
}

/// One version 2 TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Its type.
    pub kind: u8,
    /// Its value.
    pub value: &'a [u8],
}

/// The TLVs in `bytes` (a header's bytes from [`Header::tlv_start`] to [`Header::len`], or the
/// value of an SSL TLV after its 5-byte prefix), in order; stops at the first malformed one.
pub fn parse_tlvs(mut bytes: &[u8]) -> impl Iterator<Item = Tlv<'_>> {
    std::iter::from_fn(move || {
        let kind = *bytes.first()?;
        let vlen = usize::from(be16(bytes, 1));
        let value = bytes.get(3..3 + vlen)?;
        bytes = bytes.get(3 + vlen..).unwrap_or_default();
        Some(Tlv { kind, value })
    })
}

/// Whether `buf` starts with a PROXY header's signature (`PROXY ` or the version 2 one):
/// `Some(true)` when it does, `Some(false)` when it cannot, `None` while `buf` is shorter than
/// the signature it could still become (read more to know).
pub fn starts_with_signature(buf: &[u8]) -> Option<bool> {
    let full = |sig: &[u8]| buf.len() >= sig.len() && buf.get(..sig.len()) == Some(sig);
    if full(&V2_SIGNATURE) || full(V1_PREFIX) {
        Some(true)
    } else if starts_like(buf, &V2_SIGNATURE) || starts_like(buf, V1_PREFIX) {
        (buf.len() >= V2_SIGNATURE.len()).then_some(false)
    } else {
        Some(false)
    }
}
