//! `penctl`: send one control command to pen and print the reply.
fn main() {}
