//! The engine: worker threads that accept, route and relay (TCP, TLS, UDP), HTTP header
//! insertion, the access log, and the state they share with the control plane (tables,
//! counters, worker messages, the event hub). Only the engine (and `sys` below it) touches
//! sockets.

pub(crate) mod accesslog;
mod admission;
pub(crate) mod events;
pub mod http;
pub(crate) mod lifecycle;
mod messages;
pub(crate) mod net;
pub(crate) mod per_client;
pub(crate) mod reactor;
pub(crate) mod relay;
pub(crate) mod route;
pub(crate) mod slab;
pub(crate) mod state;
pub(crate) mod tls_session;
pub(crate) mod udp;
pub(crate) mod udp_proxy;
#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
pub(crate) mod uring;
