//! UDP and the PROXY protocol (issue 14): with `server N proxy v2`, each datagram to that
//! server starts with a version 2 header (transport DGRAM: the client's address and port, and
//! the listening socket's address). The UDP worker reads every datagram a fixed headroom into
//! its buffer, so the header is written in front of it in place: no copy of the payload, no
//! allocation.

use std::net::SocketAddr;

use crate::domain::proxy_header::{encode_v2, Transport, V2_ADDR_MAX};

/// The bytes to send for the `n`-byte datagram at `at` in `buf`: itself, or (with `proxy` and
/// room in front) a PROXY v2 header followed by it. Without a known local address the header
/// announces `AF_UNSPEC` (the server then uses the datagram's own addresses).
pub(crate) fn datagram(
    buf: &mut [u8],
    at: usize,
    n: usize,
    proxy: bool,
    client: SocketAddr,
    local: Option<SocketAddr>,
) -> &[u8] {
    let mut start = at;
    if proxy {
        let mut header = [0u8; V2_ADDR_MAX];
        let src = local.map(|_| client);
        if let Ok(len) = encode_v2(src, local, Transport::Dgram, None, &mut header) {
            let room = at.checked_sub(len).and_then(|from| buf.get_mut(from..at));
            if let (Some(room), Some(h)) = (room, header.get(..len)) {
                room.copy_from_slice(h);
                start = at - len;
            }
        }
    }
    buf.get(start..at + n).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::proxy_header::{parse, Announced};

    #[test]
    fn a_header_goes_in_front_without_touching_the_payload() {
        let mut buf = vec![0u8; V2_ADDR_MAX + 5];
        buf[V2_ADDR_MAX..].copy_from_slice(b"hello");
        let client: SocketAddr = "10.1.2.3:5353".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let plain = datagram(&mut buf, V2_ADDR_MAX, 5, false, client, Some(local)).to_vec();
        assert_eq!(plain, b"hello");
        let sent = datagram(&mut buf, V2_ADDR_MAX, 5, true, client, Some(local)).to_vec();
        let h = parse(&sent).unwrap().unwrap();
        assert_eq!(h.transport, Transport::Dgram);
        assert_eq!(
            h.announced,
            Announced::Proxy {
                src: client,
                dst: local
            }
        );
        assert_eq!(&sent[h.len..], b"hello");
        // IPv6 fills the whole headroom.
        let client6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let sent = datagram(&mut buf, V2_ADDR_MAX, 5, true, client6, Some(local)).to_vec();
        assert_eq!(sent.len(), V2_ADDR_MAX + 5);
        assert_eq!(&sent[V2_ADDR_MAX..], b"hello");
    }
}
