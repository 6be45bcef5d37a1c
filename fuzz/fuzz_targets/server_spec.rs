//! Fuzzes the pure server-spec splitter: it must never panic, and a spec it accepts must
//! survive formatting and re-parsing unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::addr::split_server_spec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parts) = split_server_spec(text) {
        let again = split_server_spec(&parts.to_string());
        assert_eq!(again.as_ref(), Ok(&parts), "round trip of {text:?}");
    }
});
