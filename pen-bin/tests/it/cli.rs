//! [ours] The command line: malformed input is one line naming the bad token, exit status 2.

use std::time::Duration;

use super::backends::Backend;
use super::harness::{free_port, is_c_pen, pen_bin, run_bounded_full, PenBuilder};

/// Runs pen with `args` (it must exit by itself); returns (stdout, stderr, status).
fn run(args: &[String]) -> (String, String, i32) {
    run_bounded_full(&pen_bin(), args, Duration::from_secs(5))
}

fn listen() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn expect_usage_error(args: Vec<String>, token: &str) {
    let (out, err, code) = run(&args);
    assert_eq!(
        code, 2,
        "pen {args:?}: exit status (stdout {out:?}, stderr {err:?})"
    );
    let text = format!("{out}{err}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "pen {args:?}: one line, got {text:?}");
    assert!(
        lines[0].contains(token),
        "pen {args:?}: {:?} must name {token:?}",
        lines[0]
    );
}

fn s(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn malformed_number_option() {
    if is_c_pen() {
        return;
    }
    expect_usage_error(s(&["-f", "-b", "abc", &listen(), "127.0.0.1:9"]), "abc");
}

#[test]
fn unknown_option() {
    if is_c_pen() {
        return;
    }
    expect_usage_error(s(&["-f", "-Y", &listen(), "127.0.0.1:9"]), "-Y");
}

#[test]
fn port_out_of_range_in_server_spec() {
    if is_c_pen() {
        return;
    }
    expect_usage_error(s(&["-f", &listen(), "127.0.0.1:99999"]), "99999");
}

#[test]
fn port_out_of_range_in_listen_address() {
    if is_c_pen() {
        return;
    }
    expect_usage_error(s(&["-f", "127.0.0.1:99999", "127.0.0.1:9"]), "99999");
}

#[test]
fn malformed_server_limit() {
    if is_c_pen() {
        return;
    }
    expect_usage_error(s(&["-f", &listen(), "1.2.3.4:80:x"]), "1.2.3.4:80:x");
}

/// [ours] `-N`: hash without remembering the server (C pen 0.34.1 lists `-N` in its usage but
/// prints the usage for it). A client that failed over while its hashed server was down goes
/// back to that server once it is up; under `-h` tracking keeps it on the other one.
#[test]
fn dash_n_hashes_without_remembering_the_server() {
    if is_c_pen() {
        return;
    }
    for (opt, back_home) in [("-N", true), ("-h", false)] {
        let (a, b) = (Backend::name("A"), Backend::name("B"));
        let pen = PenBuilder::new()
            .opts(&[opt])
            .server(a.spec())
            .server(b.spec())
            .start();
        let home = pen.fetch_from(7);
        let (id, other) = if home == "A" { (0, "B") } else { (1, "A") };
        pen.ctl(&format!("server {id} blacklist 60"));
        assert_eq!(
            pen.fetch_from(7),
            other,
            "{opt}: fails over while blacklisted"
        );
        pen.ctl(&format!("server {id} blacklist 0"));
        let want = if back_home { home.as_str() } else { other };
        assert_eq!(pen.fetch_from(7), want, "{opt}: after the server is back");
    }
}

#[test]
fn version_flag_prints_a_version() {
    if is_c_pen() {
        return;
    }
    let (out, err, code) = run(&s(&["-V"]));
    assert_eq!(code, 0, "pen -V: stdout {out:?} stderr {err:?}");
    assert!(
        out.contains(env!("CARGO_PKG_VERSION")),
        "pen -V printed {out:?} (stderr {err:?})"
    );
}
