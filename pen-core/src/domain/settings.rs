//! The live-changeable settings (what control commands change while running) and their value
//! types. Defaults follow C pen (PEN-SPEC 1).

use std::net::IpAddr;

/// Which side's close ends the whole connection (`tcp_fastclose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Fastclose {
    /// Half-closes are passed on; both sides close independently.
    #[default]
    Off,
    /// Close both as soon as the server closes (C pen's upstream side, `upfd`).
    Up,
    /// Close both as soon as the client closes (C pen's downstream side, `downfd`).
    Down,
    /// Close both as soon as either closes.
    Both,
}

/// The balancing policy beyond C pen's modes (issue 14): `maglev`, `leastconn`, `p2c`,
/// `random`; at most one is on, and when one is, it replaces `hash`, `weight`, `prio` and round
/// robin for the first choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Balance {
    /// None: C pen's modes choose (the default).
    #[default]
    Modes,
    /// Maglev consistent hashing of the client address (and port with `roundrobin`).
    Maglev,
    /// Fewest active connections per weight.
    LeastConn,
    /// Power of two choices: the less loaded of two random servers.
    P2c,
    /// A random server (by weight in weight mode).
    Random,
}

impl Balance {
    /// The command that switches it on (`None` for C pen's modes).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Balance::Modes => None,
            Balance::Maglev => Some("maglev"),
            Balance::LeastConn => Some("leastconn"),
            Balance::P2c => Some("p2c"),
            Balance::Random => Some("random"),
        }
    }
}

/// Live-changeable settings. Units are in the field names. [`Settings::default`] gives C pen's
/// defaults; change them with the `with_*` methods (or by assigning the public fields).
///
/// ```
/// use pen_core::Settings;
///
/// let s = Settings::default().with_roundrobin(true).with_tracking_secs(60);
/// assert!(s.roundrobin && s.tracking_secs == 60 && s.blacklist_secs == 30);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// `-N`: hash without remembering the server: the client table is not consulted, so a
    /// client's server is its hash's every time (still recorded for `recent`).
    pub no_tracking: bool,
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
    /// Idle upstream connections to keep ready (`idlers`): stored, no effect (default 0).
    pub idlers: u32,
    /// ACL list of clients to tarpit (`tarpit_acl`), -1 for none: stored, no effect (default -1).
    pub tarpit_acl: i8,
    /// Direct server return interface (`dsr_if`): stored, no effect.
    pub dsr_if: Option<String>,
    /// ACL list checked for metrics scrapers (`metrics_acl`) (default 0).
    pub metrics_acl: u8,
    /// At most this many connections at once per client address, IPv6 per /64
    /// (`conn_per_client`), 0 = unlimited (default 0).
    pub conn_per_client: usize,
    /// Seconds a client has to finish its TLS handshake (`handshake_timeout`) (default 10).
    pub handshake_timeout_secs: u64,
    /// Seconds a client has to send a complete request head under `-H`, or its first bytes
    /// with `connect_on_data` (`request_timeout`) (default 10).
    pub request_timeout_secs: u64,
    /// Connect to the server only once the client has sent data (`connect_on_data`).
    pub connect_on_data: bool,
    /// ACL list of trusted proxies whose `X-Forwarded-For` is appended to
    /// (`trusted_proxy_acl`), -1 for none (default -1).
    pub trusted_proxy_acl: i8,
    /// The listen address as the operator wrote it (`8080`, `127.0.0.1:gopher`), which the
    /// `listen` query echoes as C pen does; `None` shows the bound address.
    pub listen_text: Option<String>,
    /// The control address as written after `-C`, echoed by the `control` query.
    pub control_text: Option<String>,
    /// Server states: slow start, panic threshold, passive detection (issue 13) \[ours\].
    pub states: crate::domain::server_health::StateSettings,
    /// The timing of active health checks (`check_interval`, `check_timeout`, `check_rise`,
    /// `check_fall`).
    pub checks: crate::domain::check::CheckSettings,
    /// Seconds a graceful shutdown or an upgrade lets open connections finish
    /// (`shutdown_timeout`) (default 30).
    pub shutdown_timeout_secs: u64,
    // ---- PROXY protocol (issue 14) ----
    /// ACL list of the sources that must start with a PROXY header (`accept_proxy`), -1 for
    /// none (default -1): then nobody may send one.
    pub accept_proxy_acl: i8,
    /// Re-resolution of servers given by name (`dns_interval`, `dns_server`, issue 14)
    /// \[ours\].
    pub dns: crate::domain::dns::DnsSettings,
    /// The balancing policy (`maglev`, `leastconn`, `p2c`, `random`) \[ours\] (issue 14).
    pub balance: Balance,
    /// The Maglev table size, a prime (`maglev_table`) \[ours\] (default 65,537).
    pub maglev_table: u32,
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
            no_tracking: false,
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
            idlers: 0,
            tarpit_acl: -1,
            dsr_if: None,
            metrics_acl: 0,
            conn_per_client: 0,
            handshake_timeout_secs: 10,
            request_timeout_secs: 10,
            connect_on_data: false,
            trusted_proxy_acl: -1,
            listen_text: None,
            control_text: None,
            states: crate::domain::server_health::StateSettings::default(),
            checks: crate::domain::check::CheckSettings::default(),
            shutdown_timeout_secs: 30,
            accept_proxy_acl: -1,
            dns: crate::domain::dns::DnsSettings::default(),
            balance: Balance::Modes,
            maglev_table: crate::domain::maglev::DEFAULT_TABLE_SIZE,
        }
    }
}

impl Settings {
    /// How long a failed server stays blacklisted (`-b`, `blacklist`).
    #[must_use]
    pub fn with_blacklist_secs(mut self, secs: u64) -> Self {
        self.blacklist_secs = secs;
        self
    }

    /// How long a client is remembered (`-T`, `tracking`), 0 = forever.
    #[must_use]
    pub fn with_tracking_secs(mut self, secs: u64) -> Self {
        self.tracking_secs = secs;
        self
    }

    /// Connect timeout towards servers (`-t`, `timeout`).
    #[must_use]
    pub fn with_connect_timeout_secs(mut self, secs: u64) -> Self {
        self.connect_timeout_secs = secs;
        self
    }

    /// Close connections idle this long (`idle_timeout`), 0 = never.
    #[must_use]
    pub fn with_idle_timeout_secs(mut self, secs: u64) -> Self {
        self.idle_timeout_secs = secs;
        self
    }

    /// Debug level (`-d`, `debug`): 1 logs failures and refusals, 2 every client's server.
    #[must_use]
    pub fn with_debug(mut self, level: u32) -> Self {
        self.debug = level;
        self
    }

    /// Hash of the client address picks the first server (`-h`, `hash`).
    #[must_use]
    pub fn with_hash(mut self, on: bool) -> Self {
        self.hash = on;
        self
    }

    /// Round robin without client tracking (`-r`, `roundrobin`).
    #[must_use]
    pub fn with_roundrobin(mut self, on: bool) -> Self {
        self.roundrobin = on;
        self
    }

    /// No failover when the first choice fails (`-s`, `stubborn`).
    #[must_use]
    pub fn with_stubborn(mut self, on: bool) -> Self {
        self.stubborn = on;
        self
    }

    /// Least connections per weight (`-W`, `weight`).
    #[must_use]
    pub fn with_weight(mut self, on: bool) -> Self {
        self.weight = on;
        self
    }

    /// Lowest priority number first (`prio`).
    #[must_use]
    pub fn with_prio(mut self, on: bool) -> Self {
        self.prio = on;
        self
    }

    /// The balancing policy (`maglev`, `leastconn`, `p2c`, `random`; issue 14).
    #[must_use]
    pub fn with_balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// Insert `X-Forwarded-For`/`X-Forwarded-Proto` into HTTP requests (`-H`, `http`).
    #[must_use]
    pub fn with_http(mut self, on: bool) -> Self {
        self.http = on;
        self
    }

    /// The access log (`-l`, `log`): a file name or a `host:port` collector.
    #[must_use]
    pub fn with_log(mut self, log: impl Into<String>) -> Self {
        self.log = Some(log.into());
        self
    }

    /// The HTML status file (`-w`, `web_stats`).
    #[must_use]
    pub fn with_web_stats(mut self, file: impl Into<String>) -> Self {
        self.web_stats = Some(file.into());
        self
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
