//! The runtime: [`Balancer`](balancer::Balancer) (bind, start, stop), the controller that owns
//! the configuration transaction (one path for the control socket, `-O`, `-F`, `include` and
//! reload), the start-up [`Config`](config::Config), and the implementation of the control
//! layer's I/O trait.

pub mod balancer;
pub mod config;
pub(crate) mod controller;
