//! The live-changeable settings (what control commands change while running) and their value
//! types. Defaults follow C pen (PEN-SPEC 1).

use std::net::IpAddr;

/// Which side's close ends the whole connection (`tcp_fastclose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Fastclose {
    /// Half-closes are passed on; both sides close independently.
    #[default]
    Off,
    /// Close both as soon as the client (upstream side) closes.
    Up,
    /// Close both as soon as the server (downstream side) closes.
    Down,
    /// Close both as soon as either closes.
    Both,
}

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
