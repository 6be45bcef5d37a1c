//! The runtime: [`Balancer`](balancer::Balancer) (bind, start, stop), the controller that owns
//! the configuration transaction (one path for the control socket, `-O`, `-F`, `include` and
//! reload), the start-up [`Config`](config::Config), the system clock, and the implementation of
//! the control layer's I/O trait over the real system.

pub mod balancer;
pub(crate) mod checker;
pub(crate) mod checker_tls;
pub(crate) mod clock;
pub mod config;
pub(crate) mod controller;
pub(crate) mod dns;
pub(crate) mod host;
pub(crate) mod listeners;
pub(crate) mod queries;
pub mod upgrade;
pub(crate) mod watch;
