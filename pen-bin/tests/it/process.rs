//! Process-level behaviour: pid file, signals, dual-stack listener, Unix control socket.

use std::time::Duration;

use super::backends::Backend;
use super::harness::{
    connect, ipv6_available, penctl_bin, read_to_eof, run_bounded, wait_for, ListenKind,
    PenBuilder, WAIT,
};

#[test]
fn pid_file_and_sigterm() {
    let a = Backend::name("A");
    let mut pen = PenBuilder::new().pid_file().server(a.spec()).start();
    let path = pen.pid_path();
    // The listener is up a moment before the pid file is written: wait for it.
    let text = wait_for(WAIT, "pid file", || std::fs::read_to_string(&path).ok());
    assert_eq!(text.trim(), pen.pid.to_string(), "pid file content");
    assert_eq!(pen.fetch(), "A");
    pen.signal("TERM");
    let st = pen.wait_exit(WAIT).expect("pen exits on SIGTERM");
    assert_eq!(st.code(), Some(0), "SIGTERM is a clean exit: {st}");
    assert!(!path.exists(), "pid file removed on SIGTERM");
}

#[test]
fn exit_command_removes_the_pid_file() {
    let a = Backend::name("A");
    let mut pen = PenBuilder::new()
        .pid_file()
        .opts(&["-X"])
        .server(a.spec())
        .start();
    let path = pen.pid_path();
    wait_for(WAIT, "pid file", || path.exists().then_some(()));
    pen.ctl("exit");
    let st = pen.wait_exit(WAIT).expect("pen exits on `exit`");
    assert_eq!(st.code(), Some(0));
    assert!(!path.exists(), "pid file removed on exit");
}

#[test]
fn dual_stack_listener_serves_ipv4_and_ipv6_clients() {
    if !ipv6_available() {
        eprintln!("skipped: ::1 unavailable");
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .listen(ListenKind::AnyV6)
        .server(a.spec())
        .start();
    assert_eq!(pen.fetch(), "A", "IPv4 client");
    let port = pen.addr().rsplit(':').next().expect("port").to_string();
    let mut c = connect(&format!("[::1]:{port}"));
    assert_eq!(read_to_eof(&mut c), "A", "IPv6 client");
}

#[test]
fn unix_control_socket_with_penctl() {
    let a = Backend::name("A");
    let pen = PenBuilder::new().control_unix().server(a.spec()).start();
    assert_eq!(pen.ctl("pid"), format!("{}\n", pen.pid));
    let (out, code) = pen.penctl(&["timeout", "7"]);
    assert_eq!((out.as_str(), code), ("7\n", 0));
    assert_eq!(pen.ctl("timeout"), "7\n");
    assert_eq!(pen.fetch(), "A");
}

#[test]
fn penctl_cannot_connect_is_an_error() {
    let port = super::harness::free_port();
    let (_out, code) = run_bounded(
        &penctl_bin(),
        &[format!("127.0.0.1:{port}"), "pid".to_string()],
        Duration::from_secs(15),
    );
    assert_ne!(code, 0, "penctl to a closed port must fail");
}
