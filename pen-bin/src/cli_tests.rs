//! Unit tests for the command line: every option, each refusal and each error line.

use super::*;
use pen_core::addr::ListenAddr;
use proptest::prelude::*;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn run(s: &str) -> Run {
    match parse_args(&args(s)) {
        Ok(Cli::Run(r)) => *r,
        other => panic!("{s}: {other:?}"),
    }
}

fn error(s: &str) -> String {
    match parse_args(&args(s)) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("{s}: parsed as {other:?}"),
    }
}

fn inet(s: &str) -> ListenAddr {
    ListenAddr::Inet(s.parse().unwrap())
}

#[test]
fn minimal_and_defaults() {
    let r = run("8080 127.0.0.1:81 127.0.0.1");
    let c = &r.config;
    assert_eq!(c.listen, inet("0.0.0.0:8080"));
    assert_eq!(c.servers.len(), 2);
    assert_eq!(c.servers[0].addr, "127.0.0.1:81".parse().unwrap());
    assert_eq!(
        c.servers[1].addr,
        "127.0.0.1:8080".parse().unwrap(),
        "missing port = listen port"
    );
    let mut defaults = pen_core::Settings::default();
    // Kept as written for the `listen` query (C pen echoes `8080`).
    defaults.listen_text = Some("8080".to_string());
    assert_eq!(c.settings, defaults);
    assert_eq!(
        (
            c.clients_max,
            c.conn_max,
            c.backlog,
            c.accept_batch,
            c.workers
        ),
        (2048, 500, 500, 100, 0)
    );
    assert!(c.control.is_none() && c.emergency.is_none() && c.pid_file.is_none());
    assert!(!c.exit_enabled && r.user.is_none() && !r.foreground);
}

#[test]
fn every_value_option() {
    let r = run(
        "-b 7 -c 9 -C 127.0.0.1:10080 -e 127.0.0.1:99 -m 5 -O prio -o hash -p /tmp/p.pid -q 64 \
         -t 4 -T 60 -u nobody -x 33 --workers 3 127.0.0.1:8080 127.0.0.1:81",
    );
    let c = &r.config;
    assert_eq!(c.settings.blacklist_secs, 7);
    assert_eq!(c.clients_max, 9);
    assert_eq!(c.control, Some(inet("127.0.0.1:10080")));
    assert_eq!(
        c.emergency.as_ref().unwrap().addr,
        "127.0.0.1:99".parse().unwrap()
    );
    assert_eq!(c.accept_batch, 5);
    assert_eq!(c.commands, vec!["prio".to_string(), "hash".to_string()]);
    assert_eq!(c.pid_file, Some(PathBuf::from("/tmp/p.pid")));
    assert_eq!(c.backlog, 64);
    assert_eq!(c.settings.connect_timeout_secs, 4);
    assert_eq!(c.settings.tracking_secs, 60);
    assert_eq!(r.user.as_deref(), Some("nobody"));
    assert_eq!(c.conn_max, 33);
    assert_eq!(c.workers, 3);
}

#[test]
fn every_flag_and_bundling() {
    let r = run("-fhrsWXa -dd -d 8080 127.0.0.1");
    let s = &r.config.settings;
    assert!(r.foreground && s.hash && s.roundrobin && s.stubborn && s.weight && s.ascii);
    assert!(r.config.exit_enabled);
    assert_eq!(s.debug, 3);
    let r = run("-fC8888 -x12 8080 127.0.0.1");
    // A bare control port is loopback only (C pen: every address; docs/compatibility.md 8.1).
    assert_eq!(r.config.control, Some(inet("127.0.0.1:8888")));
    assert_eq!(r.config.conn_max, 12);
    assert!(r.foreground);
}

#[test]
fn commands_keep_order_and_spaces() {
    let a: Vec<String> = [
        "-O",
        "acl 1 permit 10.0.0.0 255.0.0.0",
        "-oprio",
        "80",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let Ok(Cli::Run(r)) = parse_args(&a) else {
        panic!()
    };
    assert_eq!(
        r.config.commands,
        vec!["acl 1 permit 10.0.0.0 255.0.0.0".to_string(), "prio".into()]
    );
}

#[test]
fn options_after_operands_and_double_dash() {
    let r = run("8080 -f 127.0.0.1 -x 7");
    assert!(r.foreground);
    assert_eq!(r.config.conn_max, 7);
    assert_eq!(r.config.servers.len(), 1);
    let r = run("-- 8080 127.0.0.1");
    assert_eq!(r.config.listen, inet("0.0.0.0:8080"));
}

#[test]
fn ignored_options() {
    let r = run("-P -Q -D -n -S 10 -PQDn -S5 8080 127.0.0.1");
    assert_eq!(r.config.servers.len(), 1);
}

#[test]
fn dash_n_is_hash_without_tracking() {
    let r = run("-fN 8080 127.0.0.1");
    assert!(r.config.settings.hash);
    assert!(r.config.settings.no_tracking);
    let r = run("-h 8080 127.0.0.1");
    assert!(r.config.settings.hash && !r.config.settings.no_tracking);
}

#[test]
fn tls_options() {
    let r = run("-E c.pem -K k.pem -G ca.pem -A cadir -R -L tls1.3 -Z 8443 127.0.0.1:80");
    let t = r.config.tls.unwrap();
    assert_eq!(t.cert, PathBuf::from("c.pem"));
    assert_eq!(t.key, Some(PathBuf::from("k.pem")));
    assert_eq!(t.ca_file, Some(PathBuf::from("ca.pem")));
    assert_eq!(t.ca_dir, Some(PathBuf::from("cadir")));
    assert!(t.require_client_cert);
    assert!(!t.versions.tls12 && t.versions.tls13);
    assert!(run("-E both.pem 8443 127.0.0.1:80")
        .config
        .tls
        .unwrap()
        .key
        .is_none());
    assert!(run("-Z 8080 127.0.0.1").config.tls.is_none());
    for o in ["-K k", "-G g", "-A a", "-R", "-L tls1.2"] {
        let c = o.chars().nth(1).unwrap();
        assert_eq!(
            error(&format!("{o} 8080 127.0.0.1")),
            format!("option -{c}: TLS options need the certificate: expected -E certfile")
        );
    }
    let e = error("-E c.pem -L ssl3 8443 127.0.0.1:80");
    assert!(
        e.starts_with("option -L: 'ssl3': rustls does not speak"),
        "{e}"
    );
    assert_eq!(
        error("-E"),
        "option -E: expected an argument (certificate file (PEM))"
    );
}

#[test]
fn abuse_server_option() {
    let r = run("-B 127.0.0.1:9 8080 127.0.0.1");
    assert_eq!(
        r.config.abuse.map(|s| s.addr.to_string()),
        Some("127.0.0.1:9".to_string())
    );
    // A missing port means the listen port, as for every server spec.
    let r = run("-B127.0.0.1 8080 127.0.0.1");
    assert_eq!(r.config.abuse.map(|s| s.addr.port()), Some(8080));
    assert!(error("-B nope:x 8080 127.0.0.1").contains("option -B"));
}

#[test]
fn http_mode_option() {
    assert!(run("-H 8080 127.0.0.1").config.settings.http);
    assert!(run("-fH 8080 127.0.0.1").config.settings.http);
    assert!(!run("8080 127.0.0.1").config.settings.http);
}

#[test]
fn udp_option() {
    let r = run("-U -r 53 127.0.0.1:5353 [::1]:5353");
    assert!(r.config.udp);
    assert!(r.config.settings.roundrobin);
    assert_eq!(r.config.servers.len(), 2);
    assert!(!run("8080 127.0.0.1").config.udp);
    assert_eq!(
        error("-U /tmp/pen.sock 127.0.0.1:53"),
        "option -U: '/tmp/pen.sock': expected [host:]port to listen on (UDP cannot use a Unix socket)"
    );
}

#[test]
fn config_file_option() {
    let r = run("-F /etc/pen/pen.conf 8080 127.0.0.1");
    assert_eq!(
        r.config.config_file,
        Some(PathBuf::from("/etc/pen/pen.conf"))
    );
    let r = run("-fFpen.conf 8080 127.0.0.1");
    assert_eq!(r.config.config_file, Some(PathBuf::from("pen.conf")));
    assert!(run("8080 127.0.0.1").config.config_file.is_none());
    assert_eq!(
        error("8080 127.0.0.1 -F"),
        "option -F: expected an argument (config file)"
    );
}

#[test]
fn log_option_file_or_host_port() {
    let r = run("-l /var/log/pen.log 8080 127.0.0.1");
    assert_eq!(r.config.settings.log.as_deref(), Some("/var/log/pen.log"));
    let r = run("-l 10.0.0.5:514 8080 127.0.0.1");
    assert_eq!(r.config.settings.log.as_deref(), Some("10.0.0.5:514"));
    assert_eq!(
        error("8080 127.0.0.1 -l"),
        "option -l: expected an argument (log file or host:port)"
    );
}

#[test]
fn web_stats_option() {
    let r = run("-w /var/www/pen.html 8080 127.0.0.1");
    assert_eq!(
        r.config.settings.web_stats.as_deref(),
        Some("/var/www/pen.html")
    );
    assert_eq!(
        error("8080 127.0.0.1 -w"),
        "option -w: expected an argument (status file)"
    );
}

#[test]
fn chroot_option() {
    let r = run("-j /var/empty 8080 127.0.0.1");
    assert_eq!(r.chroot, Some(PathBuf::from("/var/empty")));
    assert!(run("8080 127.0.0.1").chroot.is_none());
    assert_eq!(
        error("8080 127.0.0.1 -j"),
        "option -j: expected an argument (chroot directory)"
    );
}

#[test]
fn empty_file_names_are_refused() {
    for (o, expected) in [
        ("-F", "a file name"),
        ("-l", "a file name or host:port"),
        ("-w", "a file name"),
        ("-j", "a directory"),
    ] {
        let a: Vec<String> = [o, "", "8080", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parse_args(&a).unwrap_err().to_string(),
            format!("option {o}: '': expected {expected}")
        );
    }
}

#[test]
fn metrics_option() {
    let r = run("--metrics 127.0.0.1:9410 8080 127.0.0.1");
    assert_eq!(r.config.metrics, Some(inet("127.0.0.1:9410")));
    let r = run("--metrics=9410 8080 127.0.0.1");
    assert_eq!(r.config.metrics, Some(inet("127.0.0.1:9410")));
    let r = run("--metrics 0.0.0.0:9410 8080 127.0.0.1");
    assert_eq!(r.config.metrics, Some(inet("0.0.0.0:9410")));
    let r = run("--metrics [::1]:9410 8080 127.0.0.1");
    assert_eq!(r.config.metrics, Some(inet("[::1]:9410")));
    assert!(run("8080 127.0.0.1").config.metrics.is_none());
    assert_eq!(
        error("8080 127.0.0.1 --metrics"),
        "option --metrics: expected an argument (metrics listen address)"
    );
    assert_eq!(
        error("--metrics 70000 8080 127.0.0.1"),
        "option --metrics: '70000': expected a port number or service name"
    );
}

#[test]
fn every_usage_option_is_in_the_man_page() {
    let man_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../man/pen.1");
    let man = std::fs::read_to_string(man_path).expect("read man/pen.1");
    let mut seen = Vec::new();
    for word in USAGE.split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '(') {
        let word = word.trim_end_matches(')');
        let opt = if let Some(long) = word.strip_prefix("--") {
            match long.split(['=', ' ']).next() {
                Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase()) => {
                    format!("\\-\\-{l}")
                }
                _ => continue,
            }
        } else if let Some(rest) = word.strip_prefix('-') {
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() || c == '?' => format!("\\-{c}"),
                _ => continue,
            }
        } else {
            continue;
        };
        assert!(man.contains(&opt), "man/pen.1 lacks {opt}");
        seen.push(opt);
    }
    // The extraction itself works: options from each part of the usage text were found.
    for o in ["\\-C", "\\-F", "\\-P", "\\-Z", "\\-?", "\\-\\-metrics"] {
        assert!(seen.iter().any(|s| s == o), "{o} not extracted from USAGE");
    }
}

#[test]
fn help_and_version() {
    assert!(matches!(parse_args(&args("--help")), Ok(Cli::Help)));
    assert!(matches!(parse_args(&args("-?")), Ok(Cli::Help)));
    assert!(matches!(parse_args(&args("-f? 80")), Ok(Cli::Help)));
    assert!(matches!(parse_args(&args("-V")), Ok(Cli::Version)));
    assert!(matches!(parse_args(&args("--version")), Ok(Cli::Version)));
    for word in [
        "--workers",
        "PEN_WORKERS",
        "-f",
        "daemon",
        "exit status",
        "-u user",
        "-C [host:]port|path",
        "-e host:port",
        "-B host:port",
        "-O option",
        "-E certfile",
        "-K keyfile",
        "-G cacertfile",
        "-A cacertdir",
        "-L protocol",
        "[-UHPWadfhrs]",
        "-F file",
        "-l file",
        "-w file",
        "-j dir",
        "--metrics addr",
        "SIGHUP",
    ] {
        assert!(USAGE.contains(word), "usage lacks {word}");
    }
}

#[test]
fn workers_from_env_and_flag() {
    let a = args("80 127.0.0.1");
    let Ok(Cli::Run(r)) = parse_args_env(&a, Some("4")) else {
        panic!()
    };
    assert_eq!(r.config.workers, 4);
    let a = args("--workers=2 80 127.0.0.1");
    let Ok(Cli::Run(r)) = parse_args_env(&a, Some("4")) else {
        panic!()
    };
    assert_eq!(r.config.workers, 2, "the flag wins over the environment");
    let e = parse_args_env(&args("80 127.0.0.1"), Some("many")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option PEN_WORKERS: 'many': expected a number (worker threads, 0 = one per CPU)"
    );
}

#[test]
fn error_lines() {
    let cases = [
        ("-k 80 127.0.0.1", "unknown option '-k': expected one listed by 'pen --help'"),
        ("--bogus 80 127.0.0.1", "unknown option '--bogus': expected one listed by 'pen --help'"),
        ("80 127.0.0.1 -C", "option -C: expected an argument (control address)"),
        ("--workers", "option --workers: expected an argument (worker threads)"),
        ("80 127.0.0.1 -x", "option -x: expected an argument (max connections)"),
        ("-x abc 80 127.0.0.1", "option -x: 'abc': expected a positive number (max connections)"),
        ("-x 0 80 127.0.0.1", "option -x: '0': expected a positive number (max connections)"),
        ("-b -1 80 127.0.0.1", "option -b: '-1': expected a number of seconds"),
        ("-T 1s 80 127.0.0.1", "option -T: '1s': expected a number of seconds"),
        ("-t 0 80 127.0.0.1", "option -t: '0': expected a positive number of seconds"),
        ("-b 31536001 80 127.0.0.1", "option -b: '31536001': expected a number of seconds up to 31536000 (one year)"),
        ("-T 18446744073709551615 80 127.0.0.1", "option -T: '18446744073709551615': expected a number of seconds up to 31536000 (one year)"),
        ("-t 18446744073709551615 80 127.0.0.1", "option -t: '18446744073709551615': expected a number of seconds up to 31536000 (one year)"),
        ("-x 1048577 80 127.0.0.1", "option -x: '1048577': expected a number of connections up to 1048576"),
        ("-m 1048577 80 127.0.0.1", "option -m: '1048577': expected a number of connections up to 1048576"),
        ("-c 4294967295 80 127.0.0.1", "option -c: '4294967295': expected a number of client slots up to 4294967294"),
        ("--workers 1025 80 127.0.0.1", "option --workers: '1025': expected a number of worker threads up to 1024 (0 = one per CPU)"),
        ("-e 127.0.0.1:80:1048577 80 127.0.0.1", "option -e: '1048577' in '127.0.0.1:80:1048577': expected a number of connections up to 1048576"),
        ("-c 99999999999999999999999 80 127.0.0.1", "option -c: '99999999999999999999999': expected a positive number (client table slots)"),
        ("-q 3000000000 80 127.0.0.1", "option -q: '3000000000': expected a positive number (listen backlog)"),
        ("-m +5 80 127.0.0.1", "option -m: '+5': expected a positive number (connections per accept)"),
        ("--workers x 80 127.0.0.1", "option --workers: 'x': expected a number (worker threads, 0 = one per CPU)"),
        ("-C 70000 80 127.0.0.1", "option -C: '70000': expected a port number or service name"),
        ("-e 127.0.0.1:80:x 80 127.0.0.1", "option -e: 'x' in '127.0.0.1:80:x': expected a number (max connections)"),
        ("70000 127.0.0.1", "'70000': expected a port number or service name"),
        ("80 127.0.0.1:80:x", "'x' in '127.0.0.1:80:x': expected a number (max connections)"),
        ("", "no listen address: expected [host:]port|/path server [server ...]"),
        ("-f", "no listen address: expected [host:]port|/path server [server ...]"),
        ("/tmp/pen.sock 127.0.0.1", "'127.0.0.1': expected host:port (the listen address is a Unix socket, so no default port)"),
    ];
    for (line, msg) in cases {
        assert_eq!(error(line), msg, "{line}");
    }
}

#[test]
fn unix_listen_with_ported_server() {
    let r = run("/tmp/pen.sock 127.0.0.1:80 -C /tmp/ctl.sock");
    assert_eq!(r.config.listen, ListenAddr::Unix("/tmp/pen.sock".into()));
    assert_eq!(
        r.config.control,
        Some(ListenAddr::Unix("/tmp/ctl.sock".into()))
    );
}

#[test]
fn root_without_user_runs_without_control() {
    // C pen: as root, -C without -u is dropped with a warning; pen keeps balancing.
    let mut r = run("-C 9000 80 127.0.0.1");
    assert!(drop_root_control(&mut r, 0));
    assert!(r.config.control.is_none());
    let mut r = run("-C 9000 80 127.0.0.1");
    assert!(!drop_root_control(&mut r, 1000), "not root: kept");
    assert!(r.config.control.is_some());
    let mut r = run("-u root -C 9000 80 127.0.0.1");
    assert!(!drop_root_control(&mut r, 0), "-u root: kept");
    assert!(r.config.control.is_some());
    assert!(!drop_root_control(&mut run("80 127.0.0.1"), 0));
}

#[test]
fn no_server_is_an_empty_server_table() {
    // C pen starts with no server: -F, -O or penctl fill the table later.
    let r = run("-F pen.conf 8080");
    assert!(r.config.servers.is_empty());
    assert_eq!(r.config.config_file, Some(PathBuf::from("pen.conf")));
    assert!(run("-f 127.0.0.1:8080").config.servers.is_empty());
    assert!(run("/tmp/pen.sock").config.servers.is_empty());
}

proptest! {
    #[test]
    // Letters only inside option bundles, never `-e`: operands and values stay numeric, so no
    // host name ever reaches the resolver.
    fn arbitrary_arguments_never_panic(
        a in proptest::collection::vec("-[a-df-zA-Z?]{1,3}[0-9]{0,3}|-?-?[0-9.:=\\[\\]/]{0,8}", 0..6)
    ) {
        let _ = parse_args(&a);
    }
}

#[test]
fn splice_modes() {
    let run = |extra: &str| match parse_args(&args(&format!("{extra} always 8080 127.0.0.1:80"))) {
        Ok(Cli::Run(r)) => r.config.splice,
        other => panic!("{other:?}"),
    };
    assert_eq!(run("--splice"), pen_core::Splice::Always);
    let err = parse_args(&args("--splice sometimes 8080 127.0.0.1:80")).unwrap_err();
    assert!(err.to_string().contains("'sometimes'"), "{err}");
}

#[test]
fn control_endpoint_options() {
    // Bare port: loopback, and `control` still echoes the text as given.
    let r = run("-C 10080 8080 127.0.0.1");
    assert_eq!(r.config.control, Some(inet("127.0.0.1:10080")));
    assert_eq!(r.config.settings.control_text.as_deref(), Some("10080"));
    assert_eq!(
        run("-C 0.0.0.0:10080 8080 127.0.0.1").config.control,
        Some(inet("0.0.0.0:10080"))
    );
    assert_eq!(
        run("-C :::10080 8080 127.0.0.1").config.control,
        Some(inet("[::]:10080"))
    );
    assert_eq!(run("8080 127.0.0.1").config.control_level, None);
    for (word, level) in [
        ("read", pen_core::control::Level::Read),
        ("operate", pen_core::control::Level::Operate),
        ("admin", pen_core::control::Level::Admin),
    ] {
        let r = run(&format!("--control-level {word} -C 10080 8080 127.0.0.1"));
        assert_eq!(r.config.control_level, Some(level));
    }
    assert_eq!(
        error("--control-level=root -C 1 8080 127.0.0.1"),
        "option --control-level: 'root': expected read, operate or admin"
    );
    assert_eq!(
        error("8080 127.0.0.1 --control-level"),
        "option --control-level: expected an argument (read, operate or admin)"
    );
    assert_eq!(
        run("--control-group root 8080 127.0.0.1")
            .config
            .control_group,
        Some(0)
    );
    assert_eq!(
        run("--control-group=4242 8080 127.0.0.1")
            .config
            .control_group,
        Some(4242)
    );
    assert_eq!(
        error("--control-group no-such-group-x 8080 127.0.0.1"),
        "option --control-group: 'no-such-group-x': expected an existing group name or a group number"
    );
}

/// Each time and count option takes its maximum (`pen_core::control::limits`).
#[test]
fn maxima_are_accepted() {
    let r = run(
        "-b 31536000 -T 31536000 -t 31536000 -x 1048576 -c 4294967294 --workers 1024 80 127.0.0.1",
    );
    let st = &r.config.settings;
    assert_eq!(
        (st.blacklist_secs, st.tracking_secs, st.connect_timeout_secs),
        (31_536_000, 31_536_000, 31_536_000)
    );
    assert_eq!(
        (r.config.conn_max, r.config.clients_max, r.config.workers),
        (1_048_576, 4_294_967_294, 1024)
    );
}

/// Issue 14: a server named on the command line keeps its name through a first
/// `server N address NAME` command (before the `-O` ones); an address literal adds nothing.
#[test]
fn named_servers_become_commands() {
    let r = run("-O prio 8080 127.0.0.1:81 localhost:82");
    assert_eq!(
        r.config.commands,
        vec!["server 1 address localhost".to_string(), "prio".into()]
    );
}
