//! The access log's line formatter: one line per chunk a client sends.

use std::net::{IpAddr, SocketAddr};

/// The log text recorded for `chunk` from `client` on its way to `server`.
pub fn record(client: IpAddr, server: Option<SocketAddr>, chunk: &[u8]) -> Vec<u8> {
    let mut b = crate::engine::accesslog::LogBuf::default();
    let clock = crate::domain::clock::ManualClock::new(1, 1_800_000_000);
    b.record(client, server, chunk, &clock);
    b.pending().to_vec()
}

/// The longest first line logged.
pub const MAX_LINE: usize = crate::engine::accesslog::MAX_LINE;
