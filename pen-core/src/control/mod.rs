//! The control language and the configuration model: the penctl commands as data
//! ([`command`]), parsing and printing them ([`parse`], `display`), the configuration as a value
//! that commands change (`model`), config files (`file`) and their rendering (`write`). All I/O
//! goes through the `host::Host` trait; the runtime carries the result out. This layer never
//! names the engine or the runtime.

pub mod command;
mod display;
pub(crate) mod dns;
pub(crate) mod file;
pub(crate) mod host;
pub mod level;
/// The maximum of every time and count argument (they live in the domain).
pub use crate::domain::limits;
pub(crate) mod model;
pub mod parse;
mod reply;
mod ssl;
pub(crate) mod write;

pub use command::Command;
pub use level::{required_level, Level};
pub use parse::parse_line;
pub use reply::Reply;
