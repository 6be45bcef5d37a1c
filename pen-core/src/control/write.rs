//! `write [FILE]` (PEN-SPEC 5): the running configuration rendered as a config file of penctl
//! commands, so that a pen started from it (`-F FILE`) behaves the same. The runtime writes the
//! text (atomically, see `crate::files`).

use std::path::Path;

use super::command::{Command, ModeFlag, ServerField, SslCommand, Switch};
use super::model::Model;
use crate::domain::addr::ListenAddr;
use crate::domain::settings::Settings;

/// The `-E -K -G -A -R` options of the equivalent command line (files cannot be set by
/// commands).
fn tls_options(t: &crate::tls::TlsOptions) -> String {
    let mut out = format!(" -E '{}'", t.cert.display());
    for (opt, p) in [("-K", &t.key), ("-G", &t.ca_file), ("-A", &t.ca_dir)] {
        if let Some(p) = p {
            out.push_str(&format!(" {opt} '{}'", p.display()));
        }
    }
    if t.require_client_cert {
        out.push_str(" -R");
    }
    out
}

/// The `ssl_*` commands that recreate the TLS settings.
fn tls_commands(t: &crate::tls::TlsOptions) -> Vec<Command> {
    let ssl = |which, arg: String| Command::Ssl(which, vec![arg]);
    let mut cmds = Vec::new();
    if let Some(c) = &t.ciphers {
        cmds.push(ssl(SslCommand::Ciphers, c.clone()));
    }
    for (off, name) in [
        (!t.versions.tls12, "no_tlsv1.2"),
        (!t.versions.tls13, "no_tlsv1.3"),
    ] {
        if off {
            cmds.push(ssl(SslCommand::Option, name.to_string()));
        }
    }
    if t.server_preference {
        cmds.push(ssl(
            SslCommand::Option,
            "cipher_server_preference".to_string(),
        ));
    }
    if let Some(d) = &t.sni_path {
        cmds.push(ssl(SslCommand::SniPath, d.display().to_string()));
    }
    if let Some(f) = &t.ocsp_response {
        cmds.push(ssl(SslCommand::OcspResponse, f.display().to_string()));
    }
    if let Some(n) = t.renegotiation_interval {
        cmds.push(ssl(SslCommand::ClientRenegotiationInterval, n.to_string()));
    }
    cmds
}

/// What `write`'s second comment line shows besides the model: the start-up options C pen
/// writes there (`-U -f -X -e -B -j -p -u` and the control address), as they are now.
#[derive(Clone, Debug, Default)]
pub(crate) struct StartLine {
    /// `-U`: UDP.
    pub(crate) udp: bool,
    /// `-f`: stays in the foreground.
    pub(crate) foreground: bool,
    /// `-X`: the `exit` command is enabled.
    pub(crate) exit_enabled: bool,
    /// `-e`: the emergency server, `host:port`.
    pub(crate) emergency: Option<String>,
    /// `-B`: the abuse server, `host:port`.
    pub(crate) abuse: Option<String>,
    /// `-j`: the chroot directory.
    pub(crate) chroot: Option<String>,
    /// `-p`: the pid file.
    pub(crate) pid_file: Option<String>,
    /// `-u`: the user pen runs as.
    pub(crate) user: Option<String>,
    /// `-C`: the control socket.
    pub(crate) control: Option<ListenAddr>,
}

/// C pen's defaults for `-c` and `-x`: the header names them only when they differ.
const CLIENTS_MAX_DEFAULT: usize = 2048;
const CONN_MAX_DEFAULT: usize = 500;

/// The second comment line: the command line that starts an equivalent pen, with C pen's
/// options in C pen's order (`-U -f -X -c -e -B -j -p -u -x -F -C`), then ours (`-E -K -G -A
/// -R`), then the listen address.
fn start_line(model: &Model, start: &StartLine, path: &Path) -> String {
    let mut out = String::from("# pen");
    for (on, flag) in [
        (start.udp, " -U"),
        (start.foreground, " -f"),
        (start.exit_enabled, " -X"),
    ] {
        if on {
            out.push_str(flag);
        }
    }
    if model.clients_max != CLIENTS_MAX_DEFAULT {
        out.push_str(&format!(" -c {}", model.clients_max));
    }
    for (opt, v) in [("-e", &start.emergency), ("-B", &start.abuse)] {
        if let Some(v) = v {
            out.push_str(&format!(" {opt} {v}"));
        }
    }
    for (opt, v) in [
        ("-j", &start.chroot),
        ("-p", &start.pid_file),
        ("-u", &start.user),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(" {opt} '{v}'"));
        }
    }
    if model.conn_max != CONN_MAX_DEFAULT {
        out.push_str(&format!(" -x {}", model.conn_max));
    }
    out.push_str(&format!(" -F '{}'", path.display()));
    if let Some(c) = &start.control {
        out.push_str(&format!(" -C {c}"));
    }
    if let Some(t) = &model.tls {
        out.push_str(&tls_options(t));
    }
    out.push_str(&format!(" {}\n", model.listen));
    out
}

/// The command that switches `balance` on (issue 14), `None` for C pen's modes.
fn policy_flag(balance: crate::domain::settings::Balance) -> Option<ModeFlag> {
    use crate::domain::settings::Balance;
    match balance {
        Balance::Modes => None,
        Balance::Maglev => Some(ModeFlag::Maglev),
        Balance::LeastConn => Some(ModeFlag::LeastConn),
        Balance::P2c => Some(ModeFlag::P2c),
        Balance::Random => Some(ModeFlag::Random),
    }
}

/// `server N ...` as C pen writes it: `acl A` (when set), `address IP port P` (when set), `max M
/// hard H`, then `weight W` when weight mode is on and `prio P` when prio mode is on (as C pen),
/// or when the value is not 0 (ours: so that reading the file back restores it).
fn server_command(id: usize, c: &crate::domain::server::ServerConf, s: &Settings) -> Command {
    let mut fields = Vec::new();
    if let Some(a) = c.acl {
        fields.push(ServerField::Acl(a));
    }
    if let Some(a) = c.addr {
        // Issue 14: a server given by name is written with its name (looked up again when
        // the file is read), and `all MAX` when the name owns several slots.
        match &c.dns {
            Some(d) => {
                fields.push(ServerField::Address(d.name.clone()));
                if d.all != 0 {
                    fields.push(ServerField::All(d.all));
                }
            }
            None => fields.push(ServerField::Address(a.ip().to_string())),
        }
        fields.push(ServerField::Port(a.port()));
    }
    fields.extend([ServerField::Max(c.max), ServerField::Hard(c.hard)]);
    if s.weight || c.weight != 0 {
        fields.push(ServerField::Weight(c.weight));
    }
    if s.prio || c.prio != 0 {
        fields.push(ServerField::Prio(c.prio));
    }
    // Ours, last on the line and only when not ready: C pen ignores the word.
    if c.admin != crate::domain::server_health::AdminState::Ready {
        fields.push(ServerField::State(c.admin));
    }
    // ---- PROXY protocol (issue 14): ours, only when on (C pen skips the two words) ----
    if c.proxy != crate::domain::proxy_header::ProxyVersion::Off {
        fields.push(ServerField::Proxy(c.proxy));
    }
    Command::Server { id, fields }
}

/// The config file text for `model`: two comment lines (the time, an equivalent command line),
/// then the commands that recreate the state, in C pen's order, plus our extra settings.
pub(crate) fn render(model: &Model, start: &StartLine, path: &Path, time: String) -> String {
    let s = &model.settings;
    let mut cmds: Vec<Command> = Vec::new();
    for list in 0..crate::domain::acl::ACL_LISTS as u8 {
        cmds.push(Command::NoAcl(list));
        for entry in model.acls.list(list) {
            cmds.push(Command::Acl {
                list,
                entry: entry.clone(),
            });
        }
    }
    cmds.push(Command::Switch(Switch::Ascii, s.ascii));
    cmds.push(Command::Blacklist(Some(s.blacklist_secs)));
    cmds.push(Command::ClientAcl(Some(s.client_acl)));
    cmds.push(Command::ControlAcl(Some(s.control_acl)));
    cmds.push(Command::Debug(Some(s.debug)));
    cmds.push(Command::Mode(ModeFlag::Hash, s.hash));
    cmds.push(Command::Switch(Switch::Http, s.http));
    cmds.push(
        s.log
            .clone()
            .map_or(Command::NoLog, |f| Command::Log(Some(f))),
    );
    cmds.push(Command::Mode(ModeFlag::RoundRobin, s.roundrobin));
    // Issue 14, only when set: before the servers, whose names are looked up with them when
    // the file is read.
    cmds.extend(dns_commands(&s.dns));
    for (id, c) in model.servers.iter().enumerate() {
        // A name's followers are recreated by its head's line (issue 14).
        if super::dns::group_of(&model.servers, id).is_none() {
            cmds.push(server_command(id, c, s));
        }
    }
    cmds.push(Command::Mode(ModeFlag::Stubborn, s.stubborn));
    cmds.push(Command::TcpFastclose(Some(s.tcp_fastclose)));
    cmds.push(Command::Switch(Switch::TcpNodelay, s.tcp_nodelay));
    cmds.push(Command::Timeout(Some(s.connect_timeout_secs)));
    cmds.push(Command::Tracking(Some(s.tracking_secs)));
    cmds.push(
        s.web_stats
            .clone()
            .map_or(Command::NoWebStats, |f| Command::WebStats(Some(f))),
    );
    cmds.push(Command::Mode(ModeFlag::Weight, s.weight));
    cmds.push(Command::Mode(ModeFlag::Prio, s.prio));
    // Ours: settings C pen keeps on its command line or does not write (C pen reads each of
    // these lines without a complaint).
    cmds.push(Command::IdleTimeout(Some(s.idle_timeout_secs)));
    cmds.push(Command::ConnMax(Some(model.conn_max)));
    cmds.push(Command::ClientsMax(Some(model.clients_max)));
    cmds.push(Command::PendingMax(Some(s.pending_max)));
    if let Some(ip) = s.source {
        cmds.push(Command::Source(ip));
    }
    cmds.push(Command::Switch(Switch::Transparent, s.transparent));
    cmds.push(Command::Switch(Switch::Dummy, s.dummy));
    cmds.push(Command::Switch(Switch::AbortOnError, s.abort_on_error));
    // The hardening settings (docs/compatibility.md: C pen rejects these lines).
    cmds.push(Command::MetricsAcl(Some(s.metrics_acl)));
    cmds.push(Command::ConnPerClient(Some(s.conn_per_client)));
    cmds.push(Command::HandshakeTimeout(Some(s.handshake_timeout_secs)));
    cmds.push(Command::RequestTimeout(Some(s.request_timeout_secs)));
    cmds.push(Command::Switch(Switch::ConnectOnData, s.connect_on_data));
    cmds.push(Command::TrustedProxyAcl(Some(s.trusted_proxy_acl)));
    // Stored without effect, but kept across `write` then `-F` so the file says what was set.
    if s.idlers != 0 {
        cmds.push(Command::Idlers(Some(s.idlers)));
    }
    if s.tarpit_acl >= 0 {
        cmds.push(Command::TarpitAcl(Some(s.tarpit_acl)));
    }
    if let Some(dsr) = &s.dsr_if {
        cmds.push(Command::DsrIf(Some(dsr.clone())));
    }
    if let Some(t) = &model.tls {
        cmds.extend(tls_commands(t));
    }
    cmds.extend(state_commands(&s.states));
    // Active health checks (ours, docs/health-checks.md): only what is set, so a
    // C-pen-compatible configuration writes what it did.
    let d = crate::domain::check::CheckSettings::default();
    let c = s.checks;
    if c != d {
        cmds.push(Command::CheckInterval(Some(c.interval_ms)));
        cmds.push(Command::CheckTimeout(Some(c.timeout_ms)));
        cmds.push(Command::CheckRise(Some(c.rise)));
        cmds.push(Command::CheckFall(Some(c.fall)));
    }
    for (id, conf) in model.servers.iter().enumerate() {
        if let Some(spec) = &conf.check {
            cmds.push(Command::Server {
                id,
                fields: vec![ServerField::Check(Some(spec.clone()))],
            });
        }
    }
    // The emergency and abuse servers' checks (issue 13; only when set).
    if let Some(c) = &model.target_checks.emergency {
        cmds.push(Command::EmergencyCheck(Some(Some(c.clone()))));
    }
    if let Some(c) = &model.target_checks.abuse {
        cmds.push(Command::AbuseCheck(Some(Some(c.clone()))));
    }
    // Issue 13 (ours; written only when set, so C pen's file stays as it was).
    if s.shutdown_timeout_secs != crate::Settings::default().shutdown_timeout_secs {
        cmds.push(Command::ShutdownTimeout(Some(s.shutdown_timeout_secs)));
    }
    // ---- PROXY protocol (issue 14): only when set ----
    if let Ok(n) = u8::try_from(s.accept_proxy_acl) {
        cmds.push(Command::AcceptProxy(Some(n)));
    }
    // ---- policies (issue 14; ours, written only when set) ----
    if s.maglev_table != crate::domain::maglev::DEFAULT_TABLE_SIZE {
        cmds.push(Command::MaglevTable(Some(s.maglev_table)));
    }
    if let Some(flag) = policy_flag(s.balance) {
        cmds.push(Command::Mode(flag, true));
    }

    let mut out = format!("# Generated by pen {time}\n");
    out.push_str(&start_line(model, start, path));
    for c in cmds {
        out.push_str(&c.to_string());
        out.push('\n');
    }
    out
}

// ---- server states (issue 13) ----

/// The server-state settings that differ from their defaults (so a file written without them
/// is byte-for-byte what it was before issue 13).
fn state_commands(st: &crate::domain::server_health::StateSettings) -> Vec<Command> {
    let d = crate::domain::server_health::StateSettings::default();
    let mut cmds = Vec::new();
    if st.slow_start_secs != d.slow_start_secs {
        cmds.push(Command::SlowStart(Some(st.slow_start_secs)));
    }
    if (st.panic_pct, st.panic_mode) != (d.panic_pct, d.panic_mode) {
        cmds.push(Command::PanicThreshold(Some((st.panic_pct, st.panic_mode))));
    }
    if st.outlier_failures != d.outlier_failures {
        cmds.push(Command::OutlierFailures(Some(st.outlier_failures)));
    }
    if st.outlier_ejection_secs != d.outlier_ejection_secs {
        cmds.push(Command::OutlierEjectionTime(Some(st.outlier_ejection_secs)));
    }
    if st.outlier_max_pct != d.outlier_max_pct {
        cmds.push(Command::OutlierMaxPercent(Some(st.outlier_max_pct)));
    }
    cmds
}

// ---- DNS-driven servers (issue 14) ----

/// `dns_interval` and `dns_server` when they differ from their defaults.
fn dns_commands(d: &crate::domain::dns::DnsSettings) -> Vec<Command> {
    let mut cmds = Vec::new();
    if d.interval_secs != crate::domain::dns::DnsSettings::default().interval_secs {
        cmds.push(Command::DnsInterval(Some(d.interval_secs)));
    }
    if let Some(a) = d.server {
        cmds.push(Command::DnsServer(Some(a)));
    }
    cmds
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
