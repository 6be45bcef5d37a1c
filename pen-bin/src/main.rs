//! `pen`: command line -> `pen_core::Config` -> run.
fn main() {}
