//! Modules of the integration test binary.

pub(crate) mod backends;
pub(crate) mod harness;

mod cli;
mod control;
mod failover;
mod relay;
mod selection;
