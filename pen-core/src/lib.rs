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
//! ## Embedding
//! Besides the text of penctl ([`Balancer::apply`]), a program embedding the balancer has a
//! typed API:
//! - [`Balancer::execute`] runs a [`Command`] and returns its [`Reply`];
//! - [`Balancer::snapshot`] returns the state as plain data ([`Status`]: servers, clients,
//!   counters, settings);
//! - [`Balancer::subscribe`] streams [`Event`]s (see below);
//! - [`Config::with_policy`] plugs a selection [`policy::Policy`] of its own and
//!   [`Config::with_health`] a [`health::HealthSource`] (an external view of which servers are
//!   up);
//! - `pen-core/examples/embed.rs` shows them together.
//!
//! ## Layers
//! Dependencies point one way, towards the pure core (a unit test checks it):
//!
//! ```text
//! runtime  ->  admin, control, engine  ->  domain   (and tls, poll/sys at the bottom)
//! ```
//!
//! - [`domain`]: addresses, ACLs, the server and client tables, selection policies and health
//!   sources, settings, events, and the (crate-private) clock trait. Plain data and
//!   algorithms, std only; time is an argument.
//! - [`control`]: the penctl language ([`Command`], [`control::parse_line`]) and the
//!   configuration model that commands change. Its I/O (reading an included file, resolving a
//!   name, binding a listener, opening a log, building TLS) goes through a `Host` trait.
//! - [`engine`]: the workers (TCP, TLS, UDP), one poller, one `SO_REUSEPORT` listener and one
//!   slab of connections each; the relay, HTTP header insertion ([`http`]), routing (client ACL,
//!   tracking, the policy, failover), admission against `-x`, each connection's lifecycle and
//!   timers, the access log, and the tables and counters shared with the control plane.
//! - [`admin`]: the control socket and the metrics HTTP listener (one request per connection,
//!   on their own threads), the status page and the metrics text.
//! - [`runtime`]: [`Balancer`] (bind, start, stop), the controller that owns the one
//!   configuration transaction (penctl, `-O`, `-F`, `include`, reload: applied to a model,
//!   committed as a diff only if every command succeeded), the system clock.
//! - [`tls`]: TLS settings and the rustls configuration built from them.
//!
//! Data flows one way: a worker's listener accepts; the client ACL decides; the selection policy
//! picks a server from the server table, consulting the client table; the relay connects and
//! copies bytes both ways; counters update the tables; the control plane reads and changes the
//! tables through the controller. The tables are shared behind parking_lot locks, counters are
//! atomic.
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
//! ## Events
//! [`Balancer::subscribe`] (or [`Config::subscribe`] before start) returns a receiver of
//! [`Event`]s: servers blacklisted and restored, failovers, configuration changes applied or
//! refused (and where they came from), worker errors. A slow subscriber never holds the
//! balancer up: its queue is bounded and what does not fit is dropped and counted.
//!
//! ## Logging
//! pen-core writes its diagnostics through the [`log`](https://docs.rs/log) facade and installs
//! no logger: the embedding program picks one (the `pen` binary prints to stderr in the
//! foreground and to syslog as a daemon). Warnings (a status file or access log that cannot be
//! written, an admin listener that cannot start) are logged at `warn`/`error`; C pen's debug
//! lines (`-d`, the `debug N` command) at `debug` (level 1) and `trace` (level 2), and only while
//! `debug` is at least that level.
//!
//! `os` (hidden from these docs: it is for the `pen` binary) has what a program running the
//! balancer needs from the operating system at start-up (dropping privileges, daemon mode,
//! chroot, syslog) as safe functions: all `unsafe` code of the workspace is in one private
//! module, `sys`, each block with a `// SAFETY:` comment.

pub mod admin;
pub mod control;
pub mod domain;
pub mod engine;
pub mod error;
mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod layering_audit;
#[doc(hidden)]
pub mod os;
mod poll;
pub mod runtime;
// The one module allowed to hold `unsafe` (each block with a `// SAFETY:` comment).
#[allow(unsafe_code)]
mod sys;
pub mod tls;

// The public paths embedders and the binaries use.
pub use admin::stats::{ClientStatus, CounterValues, ServerStatus, Status};
pub use control::{Command, Reply};
pub use domain::event::Event;
pub use domain::settings::{Settings, Splice};
pub use domain::{acl, addr, clients, dns, event, health, maglev, policy, server, server_health};
pub use engine::http;
pub use error::{AddrError, ApplyError, ParseError, StartError};
pub use runtime::balancer::{Balancer, Bound};
pub use runtime::config::{Config, EngineKind};
pub use tls::{TlsError, TlsOptions};
