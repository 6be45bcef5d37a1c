//! The PROXY protocol (haproxy's `proxy-protocol.txt`), versions 1 (one text line) and 2
//! (binary), as pure functions over byte slices: [`parse`] reads a header a client put in
//! front of its bytes, [`encode_v1`] and [`encode_v2`] build the one pen puts in front of the
//! bytes it sends a server. Nothing here touches a socket: the engine peeks at the client's
//! first bytes, asks [`parse`], and consumes exactly [`Header::len`] bytes.
//!
//! Bounds: a version 1 line is at most [`V1_MAX`] bytes (the specification's 107); a version 2
//! header at most [`V2_MAX`] bytes in all (16 plus its announced length; larger ones are refused
//! as malformed rather than buffered), so a caller can peek into a fixed stack array.

use std::net::SocketAddr;

mod encode;
mod parse;

pub use encode::{encode_v1, encode_v2, TlsInfo, V2_ADDR_MAX};
pub use parse::{parse, parse_tlvs, starts_with_signature, Tlv};

/// The longest version 1 header, `\r\n` included (the specification's bound).
pub const V1_MAX: usize = 107;
/// The longest version 2 header pen reads or writes: the 16-byte fixed part plus up to 1520
/// bytes of addresses and TLVs (room for the largest address block, a host name and the TLS
/// details, with plenty to spare).
pub const V2_MAX: usize = 1536;
/// The version 2 signature, the first 12 bytes of every version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The start of every version 1 header.
pub const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// Version 2 TLV types pen writes (and the test servers read).
pub mod tlv {
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI).
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_SSL`: the client connected over TLS (with sub-TLVs).
    pub const SSL: u8 = 0x20;
    /// `PP2_SUBTYPE_SSL_VERSION`: the TLS version, e.g. `TLSv1.3`.
    pub const SSL_VERSION: u8 = 0x21;
    /// `PP2_SUBTYPE_SSL_CIPHER`: the cipher suite's name.
    pub const SSL_CIPHER: u8 = 0x23;
    /// `PP2_CLIENT_SSL`: the bit of the SSL TLV's client field saying TLS was used.
    pub const CLIENT_SSL: u8 = 0x01;
}

/// What pen sends a server before the client's bytes (`server N proxy v1|v2|off`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// Nothing (the default, as C pen).
    #[default]
    Off,
    /// A version 1 text line.
    V1,
    /// A version 2 binary header (with TLS details when pen terminated TLS; also in front of
    /// each UDP datagram).
    V2,
}

impl ProxyVersion {
    /// The word `server N proxy` takes and shows: `v1`, `v2` or `off`.
    pub fn word(self) -> &'static str {
        match self {
            ProxyVersion::Off => "off",
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        }
    }

    /// The version a word names, if any.
    pub fn from_word(w: &str) -> Option<Self> {
        match w {
            "off" => Some(ProxyVersion::Off),
            "v1" => Some(ProxyVersion::V1),
            "v2" => Some(ProxyVersion::V2),
            _ => None,
        }
    }
}

/// The transport a version 2 header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Unspecified (or version 1, which only knows TCP).
    Unspec,
    /// A stream (TCP).
    Stream,
    /// Datagrams (UDP).
    Dgram,
}

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// The connection was relayed for this client (`src`) to this address (`dst`).
    Proxy {
        /// The client.
        src: SocketAddr,
        /// Where the client connected to.
        dst: SocketAddr,
    },
    /// Version 2 `LOCAL`, version 1 `UNKNOWN`, or an address family pen cannot represent
    /// (`AF_UNSPEC`, `AF_UNIX`): the specification says to use the connection's real
    /// endpoints.
    Local,
}

/// A complete, valid header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// What it announces.
    pub announced: Announced,
    /// The transport (version 2; `Unspec` for version 1).
    pub transport: Transport,
    /// Its length in bytes: the client's own bytes start after it.
    pub len: usize,
    /// Where its TLVs start (version 2; equal to `len` when there are none).
    pub tlv_start: usize,
}

/// Why bytes are not a valid header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The bytes start with neither `PROXY ` nor the version 2 signature.
    #[error("no PROXY header: expected 'PROXY ' or the version 2 signature")]
    Missing,
    /// A version 1 line without `\r\n` within its first 107 bytes.
    #[error("version 1 line longer than 107 bytes: expected '\\r\\n' within them")]
    V1TooLong,
    /// A version 1 line that is not of the form `PROXY TCP4|TCP6|UNKNOWN ...`.
    #[error("version 1 '{token}': expected {expected}")]
    V1Field {
        /// The offending word (lossily decoded).
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A version 2 header whose version nibble is not 2.
    #[error("version 2 header with version {0}: expected 2")]
    V2Version(u8),
    /// A version 2 command other than LOCAL (0) and PROXY (1).
    #[error("version 2 command {0}: expected 0 (LOCAL) or 1 (PROXY)")]
    V2Command(u8),
    /// A version 2 address family or transport byte outside the specification.
    #[error("version 2 family/transport byte {0:#04x}: expected family 0-3 and transport 0-2")]
    V2Family(u8),
    /// A version 2 header longer than pen reads.
    #[error("version 2 header of {0} bytes: at most 1536 are read")]
    V2TooLong(usize),
    /// A version 2 address block shorter than its family needs.
    #[error("version 2 address block of {got} bytes: the family needs {need}")]
    V2Short {
        /// Bytes announced.
        got: usize,
        /// Bytes the family needs.
        need: usize,
    },
    /// A TLV running past the end of the header.
    #[error("version 2 TLV of type {kind:#04x} runs past the end of the header")]
    V2Tlv {
        /// The TLV's type.
        kind: u8,
    },
    /// A header pen was asked to write does not fit its buffer.
    #[error("a PROXY header of more than {0} bytes cannot be written")]
    NoRoom(usize),
}

#[cfg(test)]
mod tests;
