//! The configuration as a value. Every command that changes configuration is applied to a
//! [`Model`] taken from the running balancer, and the runtime commits the model back as a diff
//! only if every command succeeded. So one bad command changes nothing, a config file (`-F`,
//! `include`, reload) is applied as a whole or not at all, and live connections are never
//! touched: servers are updated in place. `write` renders a model.
//!
//! The model does no I/O of its own: reading an included file, resolving a name, binding a
//! listener, opening a log and building TLS go through the [`Host`] it is given, and what they
//! produce waits in [`Pending`] until the runtime commits.

use std::net::SocketAddr;

use super::command::{Command, ModeFlag, ServerField, SslCommand, Switch};
use super::host::Host;
use crate::domain::acl::AclSet;
use crate::domain::addr::ListenAddr;
use crate::domain::server::ServerConf;
use crate::domain::settings::Settings;
use crate::error::ApplyError;

/// Server numbers `server N` may create are below this (a typo must not allocate millions of
/// slots): [`crate::domain::limits::SERVERS_MAX`].
pub(crate) const MAX_SERVERS: usize = crate::domain::limits::SERVERS_MAX;

/// Everything a config file can set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Model {
    pub(crate) settings: Settings,
    pub(crate) acls: AclSet,
    pub(crate) servers: Vec<ServerConf>,
    pub(crate) conn_max: usize,
    pub(crate) clients_max: usize,
    pub(crate) listen: ListenAddr,
    /// TLS settings; `None` when pen runs without `-E`.
    pub(crate) tls: Option<crate::tls::TlsOptions>,
    /// The emergency (`-e`) and abuse (`-B`) servers' checks (`emergency_check`,
    /// `abuse_check`; issue 13).
    pub(crate) target_checks: TargetChecks,
}

/// The active checks of the servers without a number (issue 13).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TargetChecks {
    /// `emergency_check`.
    pub(crate) emergency: Option<crate::domain::check::ServerCheck>,
    /// `abuse_check`.
    pub(crate) abuse: Option<crate::domain::check::ServerCheck>,
}

/// Effects that are actions rather than state, carried out at commit, and what the [`Host`]
/// prepared for them.
pub(crate) struct Pending<H: Host> {
    /// New listeners (already bound) and their address, for `listen ADDR`.
    pub(crate) listen: Option<(H::Listeners, ListenAddr)>,
    /// `server N blacklist T`: (server, seconds; 0 clears).
    pub(crate) blacklist: Vec<(usize, u64)>,
    /// `log FILE` / `no log`: the target, opened (so a bad path is an error before commit).
    pub(crate) log: Option<Option<H::Log>>,
    /// An `ssl_*` command ran: rebuild the TLS configuration (re-reading its files, so a
    /// repeated `ssl_ocsp_response FILE` picks up a new response) even if the options match.
    pub(crate) tls_touched: bool,
    /// The TLS configuration built by [`Model::prepare`], installed at commit.
    pub(crate) tls: Option<H::Tls>,
    /// The config files this change has read so far (bounded in number and bytes).
    pub(crate) read: super::file::Budget,
    /// Errors of config-file lines may quote the line: set for the `-F` file (the operator's
    /// own, at start and on reload); never for a file named over the control socket.
    pub(crate) quote_lines: bool,
}

impl<H: Host> Default for Pending<H> {
    fn default() -> Self {
        Pending {
            listen: None,
            blacklist: Vec::new(),
            log: None,
            tls_touched: false,
            tls: None,
            read: super::file::Budget::default(),
            quote_lines: false,
        }
    }
}

/// The error for an `ssl_*` command when pen runs without TLS.
pub(crate) fn tls_off() -> ApplyError {
    ApplyError::NotSupported("ssl_* commands without TLS (start pen with -E certfile)".to_string())
}

fn invalid(token: impl ToString, reason: impl ToString) -> ApplyError {
    ApplyError::Invalid {
        token: token.to_string(),
        reason: reason.to_string(),
    }
}

fn nl(v: impl std::fmt::Display) -> String {
    format!("{v}\n")
}

/// Sets `*field` to `v` when given; returns the (new) value.
fn set<T>(field: &mut T, v: Option<T>) -> &T {
    if let Some(v) = v {
        *field = v;
    }
    field
}

impl Model {
    /// Whether `cmd` changes configuration (and so goes through a model).
    pub(crate) fn is_config(cmd: &Command) -> bool {
        matches!(
            cmd,
            Command::Acl { .. }
                | Command::NoAcl(_)
                | Command::Switch(..)
                | Command::Mode(..)
                | Command::Blacklist(Some(_))
                | Command::ClientAcl(Some(_))
                | Command::ControlAcl(Some(_))
                | Command::ClientsMax(Some(_))
                | Command::ConnMax(Some(_))
                | Command::Debug(Some(_))
                | Command::DsrIf(Some(_))
                | Command::ConnPerClient(Some(_))
                | Command::HandshakeTimeout(Some(_))
                | Command::MetricsAcl(Some(_))
                | Command::RequestTimeout(Some(_))
                | Command::TrustedProxyAcl(Some(_))
                | Command::IdleTimeout(Some(_))
                | Command::Idlers(Some(_))
                | Command::Include(_)
                | Command::Listen(Some(_))
                | Command::Log(Some(_))
                | Command::NoLog
                | Command::PendingMax(Some(_))
                | Command::Server { .. }
                | Command::Source(_)
                | Command::TarpitAcl(Some(_))
                | Command::TcpFastclose(Some(_))
                | Command::Timeout(Some(_))
                | Command::Tracking(Some(_))
                | Command::WebStats(Some(_))
                | Command::NoWebStats
                // ---- server states (issue 13) ----
                | Command::SlowStart(Some(_))
                | Command::PanicThreshold(Some(_))
                | Command::OutlierFailures(Some(_))
                | Command::OutlierEjectionTime(Some(_))
                | Command::OutlierMaxPercent(Some(_))
                | Command::CheckInterval(Some(_))
                | Command::CheckTimeout(Some(_))
                | Command::CheckRise(Some(_))
                | Command::CheckFall(Some(_))
                | Command::ShutdownTimeout(Some(_))
                // ---- checks on the emergency and abuse servers (issue 13) ----
                | Command::EmergencyCheck(Some(_))
                | Command::AbuseCheck(Some(_))
                // ---- PROXY protocol (issue 14) ----
                | Command::AcceptProxy(Some(_))
                | Command::NoAcceptProxy
                // ---- DNS-driven servers (issue 14) ----
                | Command::DnsInterval(Some(_))
                | Command::DnsServer(Some(_))
                | Command::NoDnsServer
                // ---- policies (issue 14) ----
                | Command::MaglevTable(Some(_))
        ) || matches!(cmd, Command::Ssl(which, _) if *which != SslCommand::Reload)
    }

    /// Applies a configuration command (see [`Model::is_config`]) and returns its reply.
    /// `include` reads its file and applies every line to this same model.
    pub(crate) fn apply<H: Host>(
        &mut self,
        host: &H,
        cmd: Command,
        pending: &mut Pending<H>,
        depth: usize,
    ) -> Result<String, ApplyError> {
        let s = &mut self.settings;
        Ok(match cmd {
            Command::Acl { list, entry } => {
                self.acls.push(list, entry);
                String::new()
            }
            Command::NoAcl(list) => {
                self.acls.clear(list);
                String::new()
            }
            Command::Switch(sw, on) => {
                *match sw {
                    Switch::AbortOnError => &mut s.abort_on_error,
                    Switch::Ascii => &mut s.ascii,
                    Switch::Dummy => &mut s.dummy,
                    Switch::Http => &mut s.http,
                    Switch::TcpNodelay => &mut s.tcp_nodelay,
                    Switch::Transparent => &mut s.transparent,
                    Switch::ConnectOnData => &mut s.connect_on_data,
                } = on;
                String::new()
            }
            Command::Mode(flag, on) => {
                *match flag {
                    ModeFlag::Hash => &mut s.hash,
                    ModeFlag::RoundRobin => &mut s.roundrobin,
                    ModeFlag::Stubborn => &mut s.stubborn,
                    ModeFlag::Weight => &mut s.weight,
                    ModeFlag::Prio => &mut s.prio,
                    // ---- policies (issue 14) ----
                    policy => {
                        s.balance = switch_policy(s.balance, policy, on);
                        return Ok(String::new());
                    }
                } = on;
                String::new()
            }
            Command::Blacklist(v) => nl(*set(&mut s.blacklist_secs, v)),
            Command::ClientAcl(v) => nl(*set(&mut s.client_acl, v)),
            Command::ControlAcl(v) => nl(*set(&mut s.control_acl, v)),
            Command::Debug(v) => nl(*set(&mut s.debug, v)),
            Command::IdleTimeout(v) => {
                format!(
                    "Idle timeout: {} seconds\n",
                    set(&mut s.idle_timeout_secs, v)
                )
            }
            Command::Timeout(v) => {
                if v == Some(0) {
                    return Err(invalid(
                        "0",
                        "expected a connect timeout of at least 1 second",
                    ));
                }
                nl(*set(&mut s.connect_timeout_secs, v))
            }
            Command::Tracking(v) => nl(*set(&mut s.tracking_secs, v)),
            Command::ConnPerClient(v) => nl(*set(&mut s.conn_per_client, v)),
            Command::MetricsAcl(v) => nl(*set(&mut s.metrics_acl, v)),
            Command::TrustedProxyAcl(v) => nl(*set(&mut s.trusted_proxy_acl, v)),
            Command::HandshakeTimeout(v) | Command::RequestTimeout(v) if v == Some(0) => {
                return Err(invalid("0", "expected a timeout of at least 1 second"));
            }
            Command::HandshakeTimeout(v) => nl(*set(&mut s.handshake_timeout_secs, v)),
            Command::RequestTimeout(v) => nl(*set(&mut s.request_timeout_secs, v)),
            Command::PendingMax(v) => nl(*set(&mut s.pending_max, v)),
            // Stored for the queries and `write`-free round trips; they have no effect.
            Command::DsrIf(v) => {
                set(&mut s.dsr_if, v.map(Some));
                String::new()
            }
            Command::Idlers(v) => format!("Idlers: 0/{}\n", set(&mut s.idlers, v)),
            // C pen's reply has no newline.
            Command::TarpitAcl(v) => format!("tarpit_acl = {}", set(&mut s.tarpit_acl, v)),
            Command::Log(v) => {
                if let Some(f) = &v {
                    pending.log = Some(Some(host.open_log(f)?));
                }
                set(&mut s.log, v.map(Some));
                s.log.as_ref().map(nl).unwrap_or_default()
            }
            Command::NoLog => {
                pending.log = Some(None);
                s.log = None;
                String::new()
            }
            Command::WebStats(v) => {
                set(&mut s.web_stats, v.map(Some));
                s.web_stats.as_ref().map(nl).unwrap_or_default()
            }
            Command::NoWebStats => {
                s.web_stats = None;
                String::new()
            }
            Command::Source(ip) => {
                s.source = Some(ip);
                String::new()
            }
            Command::TcpFastclose(v) => {
                set(&mut s.tcp_fastclose, v);
                String::new()
            }
            Command::ClientsMax(v) => {
                if let Some(n) = v {
                    if n == 0 {
                        return Err(invalid(n, "expected at least 1 client slot"));
                    }
                    if n > crate::domain::clients::MAX_CAPACITY {
                        // The table could not grow that far: the reply would not be the truth.
                        let most = crate::domain::clients::MAX_CAPACITY;
                        return Err(invalid(n, format!("expected at most {most} client slots")));
                    }
                    // The table grows but never shrinks while running, as in C pen.
                    self.clients_max = self.clients_max.max(n);
                }
                nl(self.clients_max)
            }
            Command::ConnMax(v) => {
                if let Some(n) = v {
                    if n == 0 {
                        return Err(invalid(n, "expected at least 1 connection"));
                    }
                    // Raised, never lowered while running, as in C pen (as `clients_max`).
                    self.conn_max = self.conn_max.max(n);
                }
                nl(self.conn_max)
            }
            Command::Listen(Some(a)) => {
                if host.udp() {
                    // Moving a UDP listener live would orphan its flows: restart pen instead.
                    return Err(ApplyError::NotSupported("listen ADDR with -U".to_string()));
                }
                let addr = crate::domain::addr::parse_listen(&a)?;
                if addr != self.listen {
                    let (listeners, bound) = host.bind(&addr)?;
                    self.listen = bound.clone();
                    pending.listen = Some((listeners, bound));
                }
                // The reply and later queries echo the text as given, as C pen; but a port 0
                // shows the port the system chose.
                let text = if addr == self.listen {
                    a
                } else {
                    self.listen.to_string()
                };
                s.listen_text = Some(text);
                nl(s.listen_text.as_deref().unwrap_or_default())
            }
            Command::Server { id, fields } => {
                self.server(host, id, &fields, pending)?;
                String::new()
            }
            Command::Include(file) => {
                // The file's commands answer nothing: C pen's `include` replies nothing.
                super::file::include(host, self, pending, &file, depth)?;
                String::new()
            }
            Command::Ssl(which, args) => {
                let tls = self.tls.as_mut().ok_or_else(tls_off)?;
                pending.tls_touched = true;
                super::ssl::apply(tls, which, &args)?
            }
            // ---- server states (issue 13) ----
            Command::SlowStart(v) => nl(*set(&mut s.states.slow_start_secs, v)),
            Command::PanicThreshold(v) => {
                if let Some((p, m)) = v {
                    s.states.panic_pct = p;
                    s.states.panic_mode = m;
                }
                let word = s.states.panic_mode.word();
                format!("{} {word}\n", s.states.panic_pct)
            }
            Command::OutlierFailures(v) => nl(*set(&mut s.states.outlier_failures, v)),
            Command::OutlierEjectionTime(Some(0)) => {
                return Err(invalid(
                    "0",
                    "expected an ejection time of at least 1 second",
                ));
            }
            Command::OutlierEjectionTime(v) => nl(*set(&mut s.states.outlier_ejection_secs, v)),
            Command::OutlierMaxPercent(v) => nl(*set(&mut s.states.outlier_max_pct, v)),
            Command::CheckInterval(v) | Command::CheckTimeout(v)
                if v.is_some_and(|ms| ms < crate::domain::check::CHECK_MS_MIN) =>
            {
                return Err(invalid(
                    v.unwrap_or_default(),
                    "expected at least 10 milliseconds",
                ));
            }
            Command::CheckInterval(v) => nl(*set(&mut s.checks.interval_ms, v)),
            Command::CheckTimeout(v) => nl(*set(&mut s.checks.timeout_ms, v)),
            Command::CheckRise(v) | Command::CheckFall(v) if v == Some(0) => {
                return Err(invalid("0", "expected at least 1 check"));
            }
            Command::CheckRise(v) => nl(*set(&mut s.checks.rise, v)),
            Command::CheckFall(v) => nl(*set(&mut s.checks.fall, v)),
            Command::ShutdownTimeout(v) => {
                let s = &mut self.settings;
                nl(*set(&mut s.shutdown_timeout_secs, v))
            }
            // ---- checks on the emergency and abuse servers (issue 13) ----
            Command::EmergencyCheck(Some(c)) => {
                self.target_checks.emergency = c;
                String::new()
            }
            Command::AbuseCheck(Some(c)) => {
                self.target_checks.abuse = c;
                String::new()
            }
            // ---- PROXY protocol (issue 14) ----
            Command::AcceptProxy(Some(n)) => {
                self.settings.accept_proxy_acl = i8::try_from(n)
                    .ok()
                    .filter(|_| usize::from(n) < crate::domain::acl::ACL_LISTS)
                    .ok_or_else(|| invalid(n, "expected an ACL list number 0-9"))?;
                String::new()
            }
            Command::NoAcceptProxy => {
                self.settings.accept_proxy_acl = -1;
                String::new()
            }
            // ---- DNS-driven servers (issue 14) ----
            Command::DnsInterval(v) => nl(*set(&mut self.settings.dns.interval_secs, v)),
            Command::DnsServer(v) => {
                let d = &mut self.settings.dns;
                set(&mut d.server, v.map(Some));
                d.server.map(nl).unwrap_or_default()
            }
            Command::NoDnsServer => {
                self.settings.dns.server = None;
                String::new()
            }
            // ---- policies (issue 14) ----
            Command::MaglevTable(v) => nl(*set(&mut self.settings.maglev_table, v)),
            other => return Err(ApplyError::NotSupported(other.to_string())),
        })
    }

    /// `server N field value ...`: resolve and check every field, then change the model.
    fn server<H: Host>(
        &mut self,
        host: &H,
        id: usize,
        fields: &[ServerField],
        pending: &mut Pending<H>,
    ) -> Result<(), ApplyError> {
        let out_of_range = || invalid(id, format!("expected a server number below {MAX_SERVERS}"));
        if id >= MAX_SERVERS {
            return Err(out_of_range());
        }
        if id >= self.servers.len() {
            self.servers.resize_with(id + 1, ServerConf::default);
        }
        let before = self.servers.get(id).and_then(|c| c.dns.clone());
        let dns_server = self.settings.dns.server;
        // Present after the resize above.
        let c = self.servers.get_mut(id).ok_or_else(out_of_range)?;
        for f in fields {
            match f {
                ServerField::Acl(a) => {
                    if usize::from(*a) >= crate::domain::acl::ACL_LISTS {
                        return Err(invalid(a, "expected an ACL list number 0-9"));
                    }
                    c.acl = Some(*a);
                }
                ServerField::Address(h) => {
                    let bare = h.trim_start_matches('[').trim_end_matches(']');
                    let name = crate::domain::addr::split_host(bare)?;
                    let ip = host.resolve(&name, dns_server)?;
                    super::dns::set_address(c, &name, ip, before.as_ref());
                }
                ServerField::Port(p) => {
                    let ip = c
                        .addr
                        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
                    c.addr = Some(SocketAddr::new(ip, *p));
                }
                ServerField::Max(m) => c.max = *m,
                ServerField::Hard(h) => c.hard = *h,
                ServerField::Weight(w) => c.weight = *w,
                ServerField::Prio(p) => c.prio = *p,
                ServerField::Blacklist(t) => pending.blacklist.push((id, *t)),
                ServerField::State(a) => c.admin = *a,
                ServerField::Check(spec) => c.check = spec.clone(),
                // ---- PROXY protocol (issue 14) ----
                ServerField::Proxy(v) => c.proxy = *v,
                ServerField::All(n) => super::dns::set_all(c, *n)?,
            }
        }
        let addressed = fields.iter().any(|f| matches!(f, ServerField::Address(_)));
        super::dns::settle(&mut self.servers, id, before.as_ref(), addressed)
    }

    /// Checks what can only be checked as a whole, before the runtime commits: has the host
    /// build the TLS configuration when the TLS settings changed (or an `ssl_*` command ran),
    /// reading every certificate and key, so a bad file fails the change and nothing is
    /// installed.
    pub(crate) fn prepare<H: Host>(
        &self,
        host: &H,
        pending: &mut Pending<H>,
    ) -> Result<(), ApplyError> {
        if let Some(options) = self.tls.as_ref() {
            pending.tls = host.prepare_tls(options, pending.tls_touched)?;
        }
        Ok(())
    }
}

/// The policy after `maglev`, `leastconn`, `p2c` or `random` (`flag`) is switched on (the
/// others go off) or off (C pen's modes again, if it was the one on) (issue 14).
fn switch_policy(
    current: crate::domain::settings::Balance,
    flag: ModeFlag,
    on: bool,
) -> crate::domain::settings::Balance {
    use crate::domain::settings::Balance;
    let named = match flag {
        ModeFlag::Maglev => Balance::Maglev,
        ModeFlag::LeastConn => Balance::LeastConn,
        ModeFlag::P2c => Balance::P2c,
        ModeFlag::Random => Balance::Random,
        _ => return current,
    };
    match (on, current == named) {
        (true, _) => named,
        (false, true) => Balance::Modes,
        (false, false) => current,
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
