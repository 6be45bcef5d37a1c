//! The DNS answer reader of the resolver (issue 14, runtime/dns/wire.rs).

use std::net::IpAddr;

/// Reads `msg` as the answer to an A query (AAAA when `aaaa`) with id `id` for `svc.test`,
/// keeping at most `limit` addresses: the addresses read, or `None` when the message was
/// refused.
pub fn answer(id: u16, aaaa: bool, limit: usize, msg: &[u8]) -> Option<Vec<IpAddr>> {
    use crate::runtime::dns::wire;
    let qtype = if aaaa { wire::TYPE_AAAA } else { wire::TYPE_A };
    let sent = wire::query(id, "svc.test", qtype).ok()?;
    let a = wire::parse_answer(msg, &sent, limit).ok()?;
    Some(a.addrs.into_iter().map(|(ip, _)| ip).collect())
}

/// The query [`answer`] reads answers to (for a harness that builds messages around it).
pub fn query(id: u16, aaaa: bool) -> Vec<u8> {
    use crate::runtime::dns::wire;
    let qtype = if aaaa { wire::TYPE_AAAA } else { wire::TYPE_A };
    wire::query(id, "svc.test", qtype).unwrap_or_default()
}
