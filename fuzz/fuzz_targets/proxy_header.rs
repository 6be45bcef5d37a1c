//! Fuzzes the PROXY protocol header reader (`domain::proxy_header::parse`) with arbitrary
//! bytes. Invariants:
//! - no panic;
//! - "need more bytes" is only ever said of fewer bytes than the bounds (107 for version 1,
//!   1536 for version 2), so a reader that stops at the bounds never waits forever;
//! - a complete header lies within the input, and the same bytes cut right after it, or
//!   followed by anything else, give the same header (the client's own bytes never change
//!   what the header says);
//! - every prefix of a complete header is "need more bytes" (a header split across reads is
//!   read the same);
//! - what a header announces, written again by the encoder of the same version, reads back
//!   the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::domain::proxy_header::{
    encode_v1, encode_v2, parse, Announced, Transport, V1_MAX, V2_MAX,
};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(None) => assert!(data.len() < V2_MAX, "waiting with {} bytes", data.len()),
        Ok(Some(h)) => {
            assert!(h.tlv_start <= h.len && h.len <= data.len());
            let head = &data[..h.len];
            assert_eq!(parse(head), Ok(Some(h)));
            let mut more = head.to_vec();
            more.extend_from_slice(b"PROXY \r\n\r\n\0junk");
            assert_eq!(parse(&more), Ok(Some(h)));
            for cut in 0..h.len {
                assert_eq!(parse(&head[..cut]), Ok(None), "cut at {cut} of {}", h.len);
            }
            if let Announced::Proxy { src, dst } = h.announced {
                let again = if h.version == 1 {
                    let mut out = [0u8; V1_MAX];
                    let n = encode_v1(Some(src), Some(dst), &mut out).unwrap();
                    parse(&out[..n])
                } else {
                    let mut out = [0u8; V2_MAX];
                    let t = h.transport;
                    let n = encode_v2(Some(src), Some(dst), t, None, &mut out).unwrap();
                    parse(&out[..n])
                };
                let again = again.unwrap().unwrap();
                assert_eq!(again.announced, h.announced);
                if h.version == 2 {
                    assert_eq!(again.transport, h.transport);
                } else {
                    assert_eq!(again.transport, Transport::Unspec);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
