//! Fuzzes the pure listen-address and port splitters: they must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::addr::{split_listen, split_port};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = split_listen(text);
    let _ = split_port(text);
});
