//! Configuration as plain data: what the command line (or an embedding program) sets before start.
//!
//! [`Settings`] are the knobs that control commands can change while running; [`Config`] adds what
//! is fixed at start (sockets, table sizes, worker count). Defaults follow C pen (PEN-SPEC 1).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::control::command::Fastclose;
use crate::domain::addr::{ListenAddr, ServerSpec};

/// Live-changeable settings. Units are in the field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long a failed server stays blacklisted (`-b`, `blacklist`) (default 30).
    pub blacklist_secs: u64,
    /// How long a client is remembered (`-T`, `tracking`), 0 = forever (default 0).
    pub tracking_secs: u64,
    /// Connect timeout towards servers (`-t`, `timeout`) (default 3).
    pub connect_timeout_secs: u64,
    /// Close connections idle this long (`idle_timeout`), 0 = never (default 0).
    pub idle_timeout_secs: u64,
    /// Debug level (`-d`, `debug`).
    pub debug: u32,
    /// `-h`, `hash`.
    pub hash: bool,
    /// `-r`, `roundrobin`.
    pub roundrobin: bool,
    /// `-s`, `stubborn`.
    pub stubborn: bool,
    /// `-W`, `weight`.
    pub weight: bool,
    /// `prio`.
    pub prio: bool,
    /// `-H`, `http`: insert `X-Forwarded-For`/`X-Forwarded-Proto` into requests (new connections).
    pub http: bool,
    /// `tcp_nodelay`.
    pub tcp_nodelay: bool,
    /// `tcp_fastclose`.
    pub tcp_fastclose: Fastclose,
    /// `-a`, `ascii`.
    pub ascii: bool,
    /// `abort_on_error`.
    pub abort_on_error: bool,
    /// `dummy`.
    pub dummy: bool,
    /// `transparent`.
    pub transparent: bool,
    /// ACL list checked for new clients (`client_acl`).
    pub client_acl: u8,
    /// ACL list checked for control clients (`control_acl`).
    pub control_acl: u8,
    /// Access log (`-l`, `log`): stored; the effect comes with the operations issue.
    pub log: Option<String>,
    /// HTML status file (`-w`, `web_stats`): stored.
    pub web_stats: Option<String>,
    /// Local address for connections to servers (`source`).
    pub source: Option<IpAddr>,
    /// Max connects in progress (`pending_max`) (default 100).
    pub pending_max: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            blacklist_secs: 30,
            tracking_secs: 0,
            connect_timeout_secs: 3,
            idle_timeout_secs: 0,
            debug: 0,
            hash: false,
            roundrobin: false,
            stubborn: false,
            weight: false,
            prio: false,
            http: false,
            tcp_nodelay: false,
            tcp_fastclose: Fastclose::Off,
            ascii: false,
            abort_on_error: false,
            dummy: false,
            transparent: false,
            client_acl: 0,
            control_acl: 0,
            log: None,
            web_stats: None,
            source: None,
            pending_max: 100,
        }
    }
}

/// Everything needed to start a balancer.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where clients connect.
    pub listen: ListenAddr,
    /// Servers, numbered from 0 in this order.
    pub servers: Vec<ServerSpec>,
    /// Emergency server (`-e`), used only when no regular server is available.
    pub emergency: Option<ServerSpec>,
    /// Control socket (`-C`).
    pub control: Option<ListenAddr>,
    /// Live-changeable settings.
    pub settings: Settings,
    /// Client table slots (`-c`) (default 2048).
    pub clients_max: usize,
    /// Max simultaneous connections (`-x`) (default 500).
    pub conn_max: usize,
    /// Listen backlog (`-q`) (default 500).
    pub backlog: i32,
    /// Connections accepted per readiness event per worker (`-m`) (default 100).
    pub accept_batch: usize,
    /// Worker threads; 0 = one per CPU (`-N` is taken by C pen, so `--workers`/`PEN_WORKERS`).
    pub workers: usize,
    /// Whether the `exit` control command is enabled (`-X`).
    pub exit_enabled: bool,
    /// Pid file to remove on exit (`-p`); the binary writes it.
    pub pid_file: Option<PathBuf>,
    /// The `-F` config file, the default target of `write`.
    pub config_file: Option<PathBuf>,
    /// Commands run at start, in order (`-O`).
    pub commands: Vec<String>,
    /// UDP instead of TCP (`-U`).
    pub udp: bool,
    /// Abuse server (`-B`): where clients denied by the client ACL go (none: they are closed).
    pub abuse: Option<ServerSpec>,
    /// Listener for the Prometheus `/metrics` HTTP endpoint (`--metrics ADDR`) \[ours\].
    pub metrics: Option<ListenAddr>,
    /// When to relay between TCP sockets with zero-copy `splice` (Linux) (default `Splice::Auto`).
    pub splice: Splice,
    /// TLS termination on the listener (`-E` and friends); `None`: plain TCP.
    pub tls: Option<crate::tls::TlsOptions>,
}

/// When the relay uses zero-copy `splice` (Linux; elsewhere it always copies).
///
/// Measured on loopback (2 cores, 2 GiB server-to-client through one worker): copying through a
/// 32 KiB user-space buffer moved 1,300-1,800 MB/s, `splice` with 256 KiB pipes 550-950 MB/s.
/// Loopback has no device to hand pages to, so moving them costs more than copying them; on real
/// interfaces `splice` saves the copy. Hence the default: splice only towards non-loopback servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Splice {
    /// Splice when the server is not on a loopback address.
    #[default]
    Auto,
    /// Always splice between TCP sockets.
    Always,
    /// Never splice; copy through pooled buffers.
    Never,
}

impl Config {
    /// A config with C pen's defaults, listening on `listen` and balancing over `servers`.
    pub fn new(listen: ListenAddr, servers: Vec<ServerSpec>) -> Self {
        Config {
            listen,
            servers,
            emergency: None,
            control: None,
            settings: Settings::default(),
            clients_max: 2048,
            conn_max: 500,
            backlog: 500,
            accept_batch: 100,
            workers: 0,
            exit_enabled: false,
            pid_file: None,
            config_file: None,
            commands: Vec::new(),
            metrics: None,
            udp: false,
            abuse: None,
            splice: Splice::Auto,
            tls: None,
        }
    }
}
