//! Fuzzes the TLS name parsers (`ssl_ciphers` lists, `-L` protocols): never a panic, and a
//! list that parses always offers at least one suite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::tls::{parse_cipher_list, parse_protocol};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_cipher_list(text) {
        assert!(!list.suites.is_empty());
    }
    let _ = parse_protocol(text);
});
