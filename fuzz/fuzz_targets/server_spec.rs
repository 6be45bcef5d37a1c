//! Placeholder: fuzzes the server spec parser (the addr.rs owner replaces this file).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pen_core::addr::parse_server(s, 80);
    }
});
