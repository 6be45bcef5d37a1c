//! The control plane: the penctl command language ([`command`], [`parse`]) and its execution
//! against a running balancer (`apply`). `-O` options, the control socket and config files all
//! go through the same parse-then-apply path.

pub mod command;
mod display;
pub(crate) mod file;
pub(crate) mod model;
pub mod parse;
mod ssl;
pub(crate) mod write;

pub use command::Command;
pub use parse::parse_line;
