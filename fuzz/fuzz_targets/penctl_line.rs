//! Fuzzes the penctl line parser: it must never panic, and any accepted line must print back
//! (via `Display`) to a line that parses to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::control::parse_line;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cmd) = parse_line(line) {
        let printed = cmd.to_string();
        assert_eq!(
            parse_line(&printed),
            Ok(cmd),
            "round trip of {line:?} via {printed:?}"
        );
    }
});
