//! Entry points for the cargo-fuzz targets in `fuzz/` (the `fuzzing` feature, off by default).
//! Not part of the public API: they reach internals (the relay loop, the config-file path, the
//! metrics listener's request handling, the access-log formatter, a server's reading of the
//! HTTP-mode output) through small harnesses, so the targets can check invariants without
//! threads or network traffic.

pub mod accesslog;
pub mod config;
pub mod control_level;
pub mod dns;
pub mod http;
pub mod metrics;
pub mod relay;
