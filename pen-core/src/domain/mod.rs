//! The pure domain: addresses, access lists, the server table, the client table, selection
//! policies, settings, the clock abstraction and the events reported to embedders. Plain data
//! and algorithms over it, std only: nothing here opens a socket, reads a file, or reads the
//! time — `now` is an argument.

pub mod acl;
pub mod addr;
pub mod check;
pub mod clients;
pub(crate) mod clock;
pub mod dns;
pub mod event;
pub mod health;
pub mod limits;
pub mod maglev;
pub mod policy;
pub mod proxy_header;
pub mod server;
pub mod server_health;
pub mod settings;
