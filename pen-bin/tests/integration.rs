//! Integration tests: start the real `pen` binary (or `$PEN_BIN`, e.g. Debian's C pen) against
//! backends running as threads on loopback, and check what clients and `penctl` see.
//!
//! Run against C pen: `PEN_BIN=/usr/bin/pen PENCTL_BIN=/usr/bin/penctl cargo test -p pen-bin
//! --test integration`; tests of behaviour marked [ours] in PEN-SPEC then return early.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable
)]

mod it;
