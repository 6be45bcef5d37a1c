//! The configuration model against the in-memory host: no socket, no file, no resolver.

use std::net::{IpAddr, SocketAddr};

use crate::control::host::mem::MemHost;
use crate::control::model::{Model, Pending};
use crate::control::parse_line;
use crate::domain::acl::AclSet;
use crate::domain::addr::ListenAddr;
use crate::domain::settings::Settings;
use crate::error::ApplyError;

fn model() -> Model {
    Model {
        settings: Settings::default(),
        acls: AclSet::default(),
        servers: Vec::new(),
        conn_max: 500,
        clients_max: 2048,
        listen: ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 8080))),
        tls: None,
        target_checks: Default::default(),
    }
}

/// Applies `line` to `m` through `host`, with fresh pending actions.
fn apply(m: &mut Model, host: &MemHost, line: &str) -> Result<String, ApplyError> {
    let mut pending = Pending::default();
    m.apply(host, parse_line(line)?, &mut pending, 0)
}

#[test]
fn settings_change_the_model_and_reply_as_c_pen() {
    let host = MemHost::default();
    let mut m = model();
    assert_eq!(apply(&mut m, &host, "blacklist 7").unwrap(), "7\n");
    assert_eq!(
        apply(&mut m, &host, "idle_timeout 9").unwrap(),
        "Idle timeout: 9 seconds\n"
    );
    assert_eq!(apply(&mut m, &host, "roundrobin").unwrap(), "");
    assert_eq!(m.settings.blacklist_secs, 7);
    assert_eq!(m.settings.idle_timeout_secs, 9);
    assert!(m.settings.roundrobin);
    let e = apply(&mut m, &host, "timeout 0").unwrap_err();
    assert!(e.to_string().contains("at least 1 second"), "{e}");
    assert_eq!(
        m.settings.connect_timeout_secs, 3,
        "a refused value changes nothing"
    );
}

#[test]
fn server_addresses_are_resolved_through_the_host() {
    let mut host = MemHost::default();
    host.names
        .insert("web1.test".to_string(), IpAddr::from([10, 0, 0, 7]));
    let mut m = model();
    apply(&mut m, &host, "server 2 address web1.test port 81").unwrap();
    assert_eq!(m.servers.len(), 3);
    let addr = m.servers.get(2).and_then(|s| s.addr);
    assert_eq!(addr, Some(SocketAddr::from(([10, 0, 0, 7], 81))));
    let e = apply(&mut m, &host, "server 0 address nowhere.test").unwrap_err();
    assert!(e.to_string().contains("nowhere.test"), "{e}");
}

#[test]
fn listen_binds_through_the_host_and_refuses_under_udp() {
    let mut host = MemHost::default();
    let mut m = model();
    let mut pending = Pending::default();
    let reply = m
        .apply(
            &host,
            parse_line("listen 127.0.0.1:9090").unwrap(),
            &mut pending,
            0,
        )
        .unwrap();
    assert_eq!(reply, "127.0.0.1:9090\n");
    assert!(
        pending.listen.is_some(),
        "the new listener waits for the commit"
    );
    let busy = ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 9191)));
    host.busy.push(busy);
    let e = apply(&mut m, &host, "listen 127.0.0.1:9191").unwrap_err();
    assert!(e.to_string().contains("cannot listen"), "{e}");
    host.udp = true;
    assert!(matches!(
        apply(&mut m, &host, "listen 127.0.0.1:9292"),
        Err(ApplyError::NotSupported(_))
    ));
}

#[test]
fn include_applies_every_line_or_names_the_bad_one() {
    let host = MemHost::with_file(
        "/etc/pen.cfg",
        "# comment\nblacklist 5\n\nweight\nbogus 1\n",
    );
    let mut m = model();
    let e = apply(&mut m, &host, "include /etc/pen.cfg").unwrap_err();
    assert!(e.to_string().starts_with("/etc/pen.cfg:5: "), "{e}");
    let host = MemHost::with_file(
        "/etc/pen.cfg",
        "blacklist 5\nweight\nlog /var/log/pen.log\n",
    );
    let mut m = model();
    let mut pending = Pending::default();
    m.apply(
        &host,
        parse_line("include /etc/pen.cfg").unwrap(),
        &mut pending,
        0,
    )
    .unwrap();
    assert_eq!(m.settings.blacklist_secs, 5);
    assert!(m.settings.weight);
    assert_eq!(pending.log, Some(Some("/var/log/pen.log".to_string())));
    let e = apply(&mut m, &host, "include /missing.cfg").unwrap_err();
    assert!(e.to_string().contains("/missing.cfg"), "{e}");
}

#[test]
fn include_nesting_is_bounded() {
    let host = MemHost::with_file("/self.cfg", "include /self.cfg\n");
    let mut m = model();
    let e = apply(&mut m, &host, "include /self.cfg").unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");
}

/// A reload (SIGHUP, as C pen) applies the file as it is now on top of the running
/// configuration: what the running one has and the file does not set stays. `reload_reset`
/// is the base configuration plus the file: what an older version of the file set and the new
/// one does not is gone. A bad new file yields an error (and the runtime then commits nothing).
#[test]
fn reload_applies_on_top_reset_starts_from_the_base_both_all_or_nothing() {
    let base = model();
    let v1 = MemHost::with_file("/pen.cfg", "hash\nblacklist 9\n");
    let mut running = base.clone();
    apply(&mut running, &v1, "include /pen.cfg").unwrap();
    assert!(running.settings.hash);
    apply(&mut running, &v1, "timeout 9").unwrap(); // by penctl
    let v2 = MemHost::with_file("/pen.cfg", "blacklist 4\n");
    let mut reloaded = running.clone();
    apply(&mut reloaded, &v2, "include /pen.cfg").unwrap();
    assert!(
        reloaded.settings.hash,
        "reload: what the file no longer sets stays"
    );
    assert_eq!(
        reloaded.settings.connect_timeout_secs, 9,
        "so does a penctl change"
    );
    assert_eq!(reloaded.settings.blacklist_secs, 4);
    let mut reset = base.clone();
    apply(&mut reset, &v2, "include /pen.cfg").unwrap();
    assert!(
        !reset.settings.hash,
        "reset: a line removed from the file is undone"
    );
    assert_eq!(
        reset.settings.connect_timeout_secs, 3,
        "and so is a penctl change"
    );
    assert_eq!(reset.settings.blacklist_secs, 4);
    let bad = MemHost::with_file("/pen.cfg", "blacklist 4\nserver 99999 port 1\n");
    let mut failed = running.clone();
    assert!(apply(&mut failed, &bad, "include /pen.cfg").is_err());
}

#[test]
fn ssl_commands_need_tls_and_prepare_asks_the_host() {
    let host = MemHost::default();
    let mut m = model();
    assert!(apply(&mut m, &host, "ssl_ciphers HIGH").is_err());
    m.tls = Some(crate::tls::TlsOptions::new("/cert.pem", None));
    let mut pending = Pending::default();
    m.apply(
        &host,
        parse_line("ssl_ciphers HIGH").unwrap(),
        &mut pending,
        0,
    )
    .unwrap();
    assert!(pending.tls_touched);
    m.prepare(&host, &mut pending).unwrap();
    assert_eq!(
        pending.tls.and_then(|t| t.ciphers),
        Some("HIGH".to_string())
    );
}

#[test]
fn server_blacklist_waits_for_the_commit() {
    let host = MemHost::default();
    let mut m = model();
    let mut pending = Pending::default();
    m.apply(
        &host,
        parse_line("server 1 blacklist 30").unwrap(),
        &mut pending,
        0,
    )
    .unwrap();
    assert_eq!(pending.blacklist, vec![(1, 30)]);
}

#[test]
fn conn_max_is_raised_never_lowered_as_in_c_pen() {
    let host = MemHost::default();
    let mut m = model();
    assert_eq!(apply(&mut m, &host, "conn_max 600").unwrap(), "600\n");
    assert_eq!(apply(&mut m, &host, "conn_max 100").unwrap(), "600\n");
    assert_eq!(m.conn_max, 600);
}

#[test]
fn include_replies_nothing_as_in_c_pen() {
    let host = MemHost::with_file(
        "/etc/pen.cfg",
        "blacklist 5 # five\nidle_timeout 9\nconn_max 700\n",
    );
    let mut m = model();
    assert_eq!(apply(&mut m, &host, "include /etc/pen.cfg").unwrap(), "");
    assert_eq!(
        m.settings.blacklist_secs, 5,
        "a trailing comment is ignored"
    );
    assert_eq!(m.conn_max, 700);
}

#[test]
fn stored_commands_without_effect_reply_as_c_pen() {
    let host = MemHost::default();
    let mut m = model();
    assert_eq!(apply(&mut m, &host, "idlers 2").unwrap(), "Idlers: 0/2\n");
    assert_eq!(
        apply(&mut m, &host, "tarpit_acl 3").unwrap(),
        "tarpit_acl = 3"
    );
    assert_eq!(
        apply(&mut m, &host, "tarpit_acl -1").unwrap(),
        "tarpit_acl = -1"
    );
    assert_eq!(apply(&mut m, &host, "dsr_if eth1").unwrap(), "");
    assert_eq!(m.settings.idlers, 2);
    assert_eq!(m.settings.dsr_if.as_deref(), Some("eth1"));
}

// ---- policies (issue 14) ----

/// `maglev`, `leastconn`, `p2c`, `random`: one on switches the others off; `no X` switches
/// only X off; `maglev_table` takes primes only, naming the token.
#[test]
fn one_policy_at_a_time() {
    use crate::domain::settings::Balance;
    let host = MemHost::default();
    let mut m = model();
    assert_eq!(apply(&mut m, &host, "maglev").unwrap(), "");
    assert_eq!(m.settings.balance, Balance::Maglev);
    apply(&mut m, &host, "p2c").unwrap();
    assert_eq!(m.settings.balance, Balance::P2c);
    apply(&mut m, &host, "no maglev").unwrap();
    assert_eq!(m.settings.balance, Balance::P2c, "no maglev leaves p2c on");
    apply(&mut m, &host, "no p2c").unwrap();
    assert_eq!(m.settings.balance, Balance::Modes);
    assert!(
        !m.settings.hash && !m.settings.weight,
        "C pen's modes untouched"
    );
    assert_eq!(apply(&mut m, &host, "maglev_table 101").unwrap(), "101\n");
    assert_eq!(m.settings.maglev_table, 101);
    let e = apply(&mut m, &host, "maglev_table 100").unwrap_err();
    assert!(
        e.to_string().contains("'100'") && e.to_string().contains("prime"),
        "{e}"
    );
    let e = apply(&mut m, &host, "maglev_table 1048583").unwrap_err();
    assert!(e.to_string().contains("up to 1048573"), "{e}");
    assert_eq!(m.settings.maglev_table, 101);
}
