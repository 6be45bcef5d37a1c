//! The control language as data: one [`Command`] per penctl line (PEN-SPEC 4).
//!
//! `parse.rs` turns text into a `Command`; `Display` turns it back into the canonical line, so
//! `parse(cmd.to_string()) == cmd` for every command (a property test checks it).

use std::net::IpAddr;

pub use crate::domain::acl::{AclAction, AclEntry, AclPattern};
pub use crate::domain::settings::Fastclose;

/// A selection mode toggled by `hash`/`no hash` etc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModeFlag {
    /// `hash`: hash of the client address picks the first server.
    Hash,
    /// `roundrobin`: no client tracking, next server each time.
    RoundRobin,
    /// `stubborn`: no failover when the first choice fails.
    Stubborn,
    /// `weight`: least connections per weight.
    Weight,
    /// `prio`: lowest priority number first.
    Prio,
    // ---- policies (issue 14) ----
    /// `maglev` \[ours\]: Maglev consistent hash of the client address (and port with
    /// `roundrobin`); switches the other three policies off.
    Maglev,
    /// `leastconn` \[ours\]: fewest active connections per weight.
    LeastConn,
    /// `p2c` \[ours\]: the less loaded of two random servers.
    P2c,
    /// `random` \[ours\]: a random server (by weight in weight mode).
    Random,
}

/// Boolean switches with a `no` form that only store a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Switch {
    /// `abort_on_error`.
    AbortOnError,
    /// `ascii` (dump format).
    Ascii,
    /// `dummy` (built-in trivial web server).
    Dummy,
    /// `http` (X-Forwarded-For insertion).
    Http,
    /// `tcp_nodelay`.
    TcpNodelay,
    /// `transparent` (IP_TRANSPARENT towards servers).
    Transparent,
    /// `connect_on_data` \[ours\]: connect to a server only once the client has sent its first
    /// bytes (within `request_timeout`), so an idle client holds no server connection.
    ConnectOnData,
}

/// One field of `server N ...`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerField {
    /// `acl A`: the ACL list that must permit a client for this server.
    Acl(u8),
    /// `address H`: host name or address, resolved when applied.
    Address(String),
    /// `port P` (number or service name resolved at parse time).
    Port(u16),
    /// `max M`: soft limit.
    Max(u32),
    /// `hard H`: hard limit.
    Hard(u32),
    /// `blacklist T`: blacklist for T seconds (0 clears).
    Blacklist(u64),
    /// `weight W`.
    Weight(u32),
    /// `prio P`.
    Prio(u32),
    /// `drain`, `maint`, `ready` \[ours\]: the operator's state (issue 13).
    State(crate::domain::server_health::AdminState),
    /// `check KIND ...` / `check off` \[ours\]: the server's active health check (the rest of
    /// the line; `None` = no check).
    Check(Option<crate::domain::check::ServerCheck>),
    // ---- PROXY protocol (issue 14) ----
    /// `proxy v1|v2|off` \[ours\]: the PROXY header pen sends this server before the
    /// client's bytes (docs/proxy-protocol.md).
    Proxy(crate::domain::proxy_header::ProxyVersion),
    // ---- DNS-driven servers (issue 14) ----
    /// `all MAX` after `address NAME` \[ours\] (issue 14): the name owns slots N..N+MAX-1,
    /// one address of its answer each (0: back to one address).
    All(u16),
}

/// The TLS commands (arguments kept raw; the TLS layer interprets them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SslCommand {
    /// `ssl_ciphers`.
    Ciphers,
    /// `ssl_option`.
    Option,
    /// `ssl_sni_path`.
    SniPath,
    /// `ssl_ocsp_response`.
    OcspResponse,
    /// `ssl_client_renegotiation_interval`.
    ClientRenegotiationInterval,
    /// `ssl_reload` \[ours\]: re-read the certificate, key, CA, SNI and OCSP files.
    Reload,
}

/// Event mechanism names C pen accepts (`epoll`, `kqueue`, `poll`, `select`): no effect here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventMechanism {
    /// `epoll`.
    Epoll,
    /// `kqueue`.
    Kqueue,
    /// `poll`.
    Poll,
    /// `select`.
    Select,
}

/// Obsolete commands: penctl(1) lists them as doing nothing, and C pen accepts only their `no`
/// form (silently, as it does any `no X`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Obsolete {
    /// `block`.
    Block,
    /// `delayed_forward`.
    DelayedForward,
}

/// One control command. `Option` arguments are queries when absent (the reply shows the value).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `acl N permit|deny ...`: append an entry to list N (0-9).
    Acl {
        /// List number 0-9.
        list: u8,
        /// The entry.
        entry: AclEntry,
    },
    /// `no acl N`: empty list N.
    NoAcl(u8),
    /// A boolean switch: `ascii`, `no ascii`, `http`, ...
    Switch(Switch, bool),
    /// A selection mode: `hash`, `no hash`, ...
    Mode(ModeFlag, bool),
    /// `blacklist [T]`.
    Blacklist(Option<u64>),
    /// `client_acl [N]`.
    ClientAcl(Option<u8>),
    /// `control_acl [N]`.
    ControlAcl(Option<u8>),
    /// `clients_max [N]`.
    ClientsMax(Option<usize>),
    /// `close N`.
    Close(u64),
    /// `connection N`.
    Connection(u64),
    /// `conn_max [N]`.
    ConnMax(Option<usize>),
    /// `control`: reply the control address.
    Control,
    /// `debug [N]`.
    Debug(Option<u32>),
    /// `conn_per_client [N]` \[ours\]: at most N connections at once from one client address
    /// (IPv6: one /64); 0 = unlimited.
    ConnPerClient(Option<usize>),
    /// `handshake_timeout [S]` \[ours\]: seconds a client has to finish its TLS handshake.
    HandshakeTimeout(Option<u64>),
    /// `metrics_acl [N]` \[ours\]: the ACL list checked for metrics scrapers.
    MetricsAcl(Option<u8>),
    /// `request_timeout [S]` \[ours\]: seconds a client has to send a complete request head
    /// (`-H`) or, with `connect_on_data`, its first bytes.
    RequestTimeout(Option<u64>),
    /// `trusted_proxy_acl [N]` \[ours\]: in HTTP mode, clients permitted by list N are proxies
    /// whose `X-Forwarded-For` pen appends to (others' is replaced); -1: none.
    TrustedProxyAcl(Option<i8>),
    /// `dsr_if [IF]`: the direct server return interface; stored, no effect (DSR is not
    /// implemented).
    DsrIf(Option<String>),
    /// `epoll`, `kqueue`, `poll`, `select`: accepted, no effect.
    EventMechanism(EventMechanism),
    /// `exit`.
    Exit,
    /// `idle_timeout [N]`.
    IdleTimeout(Option<u64>),
    /// `idlers [N]`: how many idle upstream connections to keep ready; stored, no effect.
    Idlers(Option<u32>),
    /// `include FILE`.
    Include(String),
    /// `listen [ADDR]`.
    Listen(Option<String>),
    /// `log [FILE]`.
    Log(Option<String>),
    /// `no log`.
    NoLog,
    /// `no block`, `no delayed_forward`: accepted, nothing to do.
    NoObsolete(Obsolete),
    /// `mode`: reply the selection modes.
    ShowMode,
    /// `pending_max [N]`.
    PendingMax(Option<usize>),
    /// `pid`.
    Pid,
    /// `reload_reset` \[ours\]: the configuration becomes the command line plus the `-F` file
    /// as it is now, dropping what penctl changed (SIGHUP applies the file on top instead).
    ReloadReset,
    /// `recent [S]` (default 300 seconds).
    Recent(Option<u64>),
    /// `server N field value ...`.
    Server {
        /// Server number.
        id: usize,
        /// Fields to change, in order.
        fields: Vec<ServerField>,
    },
    /// `servers`.
    Servers,
    /// `socket N`.
    Socket(u64),
    /// `source IP`.
    Source(IpAddr),
    /// `status`.
    Status,
    /// `metrics` \[ours\]: the Prometheus text exposition of the counters.
    Metrics,
    /// `tarpit_acl [N]`: the ACL list of clients to tarpit (-1: none); stored, no effect.
    TarpitAcl(Option<i8>),
    /// `tcp_fastclose [up|down|both|off]`.
    TcpFastclose(Option<Fastclose>),
    /// `timeout [N]` (connect timeout, seconds).
    Timeout(Option<u64>),
    /// `tracking [N]` (seconds, 0 = forever).
    Tracking(Option<u64>),
    /// `web_stats [FILE]`.
    WebStats(Option<String>),
    /// `no web_stats`.
    NoWebStats,
    /// `write [FILE]`.
    Write(Option<String>),
    /// `ssl_*` commands with their raw arguments.
    Ssl(SslCommand, Vec<String>),
    // ---- server states (issue 13) ----
    /// `slow_start [S]` \[ours\]: seconds over which a returning server ramps its weight.
    SlowStart(Option<u64>),
    /// `panic_threshold [P [open|refuse]]` \[ours\]: below P % of servers available, spread
    /// over all (`open`, the default) or keep refusing.
    PanicThreshold(Option<(u32, crate::domain::policy::PanicMode)>),
    /// `outlier_failures [N]` \[ours\]: failed connects in a row that eject a server (0: C
    /// pen's blacklist on every failure).
    OutlierFailures(Option<u32>),
    /// `outlier_ejection_time [S]` \[ours\]: the first ejection's length in seconds.
    OutlierEjectionTime(Option<u64>),
    /// `outlier_max_percent [P]` \[ours\]: at most this share of servers ejected at once.
    OutlierMaxPercent(Option<u32>),
    /// `check_interval [MS]` \[ours\]: milliseconds between two checks of a server.
    CheckInterval(Option<u64>),
    /// `check_timeout [MS]` \[ours\]: milliseconds one check may take.
    CheckTimeout(Option<u64>),
    /// `check_rise [N]` \[ours\]: successes in a row that bring a down server up.
    CheckRise(Option<u32>),
    /// `check_fall [N]` \[ours\]: failures in a row that take an up server down.
    CheckFall(Option<u32>),
    /// `shutdown_timeout [S]` \[ours\]: seconds a graceful shutdown or an upgrade lets open
    /// connections finish before closing them (default 30).
    ShutdownTimeout(Option<u64>),
    /// `shutdown [S]` \[ours\]: graceful shutdown (as SIGQUIT): stop accepting, let open
    /// connections finish (up to S seconds, else `shutdown_timeout`), exit.
    Shutdown(Option<u64>),
    /// `upgrade` \[ours\]: start the binary anew and hand it the listening sockets (as
    /// SIGUSR2); this pen then drains and exits.
    Upgrade,
    // ---- checks on the emergency and abuse servers (issue 13) ----
    /// `emergency_check [KIND ... | off]` \[ours\]: the emergency server's (`-e`) active check,
    /// as `server N check` takes it (`None`: show it).
    EmergencyCheck(Option<Option<crate::domain::check::ServerCheck>>),
    /// `abuse_check [KIND ... | off]` \[ours\]: the abuse server's (`-B`) active check.
    AbuseCheck(Option<Option<crate::domain::check::ServerCheck>>),
    // ---- PROXY protocol (issue 14) ----
    /// `accept_proxy [N]` \[ours\]: clients permitted by ACL list N must start with a PROXY
    /// header (v1 or v2), whose client address then stands for theirs; others must not send
    /// one. Without N: the list in use (-1: none).
    AcceptProxy(Option<u8>),
    /// `no accept_proxy` \[ours\]: no client may send a PROXY header (nobody is checked).
    NoAcceptProxy,
    // ---- DNS-driven servers (issue 14) ----
    /// `dns_interval [S]` \[ours\]: seconds between two lookups of a server's host name (0:
    /// looked up when given, never again).
    DnsInterval(Option<u64>),
    /// `dns_server [IP:PORT]` \[ours\]: the DNS server asked for server names instead of the
    /// system resolver.
    DnsServer(Option<std::net::SocketAddr>),
    /// `no dns_server` \[ours\]: back to the system resolver.
    NoDnsServer,
    /// `dns` \[ours\]: the server names, their addresses and lookup counters.
    Dns,
    // ---- policies (issue 14) ----
    /// `maglev_table [M]` \[ours\]: the Maglev table size, a prime.
    MaglevTable(Option<u32>),
    /// `lookup ADDR[:PORT]` \[ours\]: the server a new client from ADDR (source PORT) would
    /// be given now, ignoring client tracking.
    Lookup(IpAddr, Option<u16>),
}
