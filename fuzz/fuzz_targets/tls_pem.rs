//! Fuzzes certificate and key loading (PEM, DER, X.509 dates, key matching): input is a
//! certificate text, a NUL byte, and a key text. Never a panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cert, key) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    // A fixed "now" (2027-01-01) keeps runs reproducible; the seeds are valid then.
    let _ = pen_core::tls::check_pem(cert, key, 1_798_761_600);
});
