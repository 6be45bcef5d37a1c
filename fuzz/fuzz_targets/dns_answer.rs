//! Fuzzes the resolver's reading of DNS answers (issue 14, `dns_server`): whatever a server
//! (or someone forging its datagrams) sends, no panic, no endless loop on compression
//! pointers, at most `limit` addresses, and only addresses of the queried family.
//!
//! Input: a tag byte (bit 0: AAAA instead of A; bit 1: the message is spliced after the
//! query's own header and question, so that the fuzzer works on the answer records; bits
//! 2-7: the limit), then the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::fuzzing::dns::{answer, query};

fuzz_target!(|data: &[u8]| {
    let Some((&tag, rest)) = data.split_first() else {
        return;
    };
    let aaaa = tag & 1 == 1;
    let limit = usize::from(tag >> 2);
    let id = 0x5a5a;
    let msg = if tag & 2 == 2 {
        // The query turned into a response with the input's answer count, then the records.
        let mut m = query(id, aaaa);
        let Some((count, records)) = rest.split_first() else {
            return;
        };
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = *count;
        m.extend_from_slice(records);
        m
    } else {
        rest.to_vec()
    };
    if let Some(addrs) = answer(id, aaaa, limit, &msg) {
        assert!(
            addrs.len() <= limit,
            "{} addresses over {limit}",
            addrs.len()
        );
        assert!(addrs.iter().all(|ip| ip.is_ipv6() == aaaa), "{addrs:?}");
    }
});
