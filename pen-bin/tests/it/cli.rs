//! [ours] The command line: malformed input is one line naming the bad token, exit status 2.

use std::time::Duration;

use super::harness::{free_port, is_c_pen, pen_bin, run_bounded_full};

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

#[test]
fn refused_option_is_not_supported_yet() {
    if is_c_pen() {
        return;
    }
    let args = s(&["-f", "-N", &listen(), "127.0.0.1:9"]);
    let (out, err, code) = run(&args);
    assert_eq!(code, 2, "pen -N: stdout {out:?} stderr {err:?}");
    assert!(
        format!("{out}{err}").contains("not supported yet"),
        "pen -N: {out:?} {err:?}"
    );
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
