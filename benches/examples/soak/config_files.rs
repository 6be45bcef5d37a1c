//! The `-F` files: the three reload variants (round robin, hash, tracking) of the TCP and
//! UDP pens' settings, what `mode` and `idle_timeout` must show after each, and the files' text.

use std::fmt::Write as _;

/// The TCP pen's `idle_timeout` is always one of these (files and control commands).
pub(crate) const IDLE_CHOICES: [u64; 3] = [20, 25, 30];

/// A reload variant: the TCP and UDP files' settings and the `mode` pen should then show.
pub(crate) struct Variant {
    pub(crate) tcp: &'static str,
    pub(crate) tcp_mode: &'static str,
    pub(crate) tcp_idle: u64,
    pub(crate) udp: &'static str,
    pub(crate) udp_mode: &'static str,
    pub(crate) udp_idle: u64,
}

pub(crate) const VARIANTS: [Variant; 3] = [
    Variant {
        tcp: "no hash\nroundrobin\nblacklist 2\nidle_timeout 20\n",
        tcp_mode: "no hash roundrobin no stubborn no weight no prio",
        tcp_idle: 20,
        udp: "no hash\nno roundrobin\nidle_timeout 4\n",
        udp_mode: "no hash no roundrobin no stubborn no weight no prio",
        udp_idle: 4,
    },
    Variant {
        tcp: "hash\nno roundrobin\nblacklist 3\nidle_timeout 30\n",
        tcp_mode: "hash no roundrobin no stubborn no weight no prio",
        tcp_idle: 30,
        udp: "no hash\nroundrobin\nidle_timeout 8\n",
        udp_mode: "no hash roundrobin no stubborn no weight no prio",
        udp_idle: 8,
    },
    Variant {
        tcp: "no hash\nno roundrobin\ntracking 20\nblacklist 2\nidle_timeout 25\n",
        tcp_mode: "no hash no roundrobin no stubborn no weight no prio",
        tcp_idle: 25,
        udp: "hash\nno roundrobin\nidle_timeout 6\n",
        udp_mode: "hash no roundrobin no stubborn no weight no prio",
        udp_idle: 6,
    },
];

pub(crate) fn cfg_text(variant: &str, ports: &[u16], kind: &str, n: usize) -> String {
    let mut s = format!("# pen soak test, {kind} variant {n} (rewritten before every SIGHUP)\n");
    for (i, p) in ports.iter().enumerate() {
        let _ = writeln!(s, "server {i} address 127.0.0.1 port {p}");
    }
    s.push_str(variant);
    s
}
