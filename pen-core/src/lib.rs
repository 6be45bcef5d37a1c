//! # pen-core
//!
//! The pen load balancer as a library: the server table, client tracking, selection policies,
//! access lists, the penctl control language and the relay engine. The `pen` and `penctl`
//! binaries are thin wrappers over this API.
//!
//! ```no_run
//! use pen_core::{addr, Balancer, Config};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listen = addr::parse_listen("127.0.0.1:8080")?;
//!     let servers = vec![addr::parse_server("127.0.0.1:8081", 8080)?, addr::parse_server("127.0.0.1:8082", 8080)?];
//!     let balancer = Balancer::start(Config::new(listen, servers))?;
//!     println!("{}", balancer.apply("servers")?);
//!     balancer.wait(); // until `exit` or stop()
//!     Ok(())
//! }
//! ```
//!
//! ## Design
//! Data flows one way: a worker's listener accepts; the client ACL decides; the selection policy
//! ([`policy`]) picks a server from the [`server`] table, consulting the [`clients`] table; the
//! relay connects and copies bytes both ways; counters update the tables; the control plane
//! ([`control`]) reads and changes the tables. Each worker thread has its own poller, its own
//! `SO_REUSEPORT` listener (Linux) and its own connections; the tables are shared behind
//! parking_lot locks, counters are atomic.
//!
//! Every socket is registered once, edge-triggered, for reading, writing and (epoll) the peer's
//! half-close; readiness is cached per socket, so a short read means "drained" and nothing is
//! ever re-armed. On Linux the poller is a thin epoll layer of our own (the `polling` crate,
//! used elsewhere and with the `portable-poller` feature, re-arms a timer and a notifier on
//! every wait and cannot ask for `EPOLLRDHUP`, so short reads are not trusted there); the
//! per-request cost is one `recv` and one `send` per direction. Buffers (or,
//! towards non-loopback servers, `splice` pipes) are checked out of a per-worker pool only
//! while bytes are in flight.
//!
//! [`os`] has what a program running the balancer needs from the operating system at start-up
//! (dropping privileges, daemon mode, chroot, syslog) as safe functions: all `unsafe` code of
//! the workspace is in one private module, `sys`, each block with a `// SAFETY:` comment.

mod accesslog;
pub mod acl;
pub mod addr;
pub mod balancer;
pub mod clients;
pub mod clock;
pub mod config;
pub mod control;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub(crate) mod metrics;
mod metrics_http;
mod net;
mod oneshot;
pub mod os;
pub mod policy;
mod poll;
mod reactor;
mod relay;
mod route;
pub mod server;
mod state;
mod stats;
// The one module allowed to hold `unsafe` (each block with a `// SAFETY:` comment).
#[allow(unsafe_code)]
mod sys;
pub mod tls;
mod udp;

pub use balancer::{Balancer, Bound};
pub use config::{Config, Settings, Splice};
pub use control::Command;
pub use error::{AddrError, ApplyError, ParseError, StartError};
pub use tls::{TlsError, TlsOptions};
