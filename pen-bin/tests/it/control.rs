//! The control protocol, directly and through penctl: replies per PEN-SPEC section 4 and the
//! captured C pen replies.

use super::backends::Backend;
use super::harness::{
    connect, fd_count, is_c_pen, peek, poll_until, read_to_eof, wait_for, wait_until, Peek, Pen,
    PenBuilder, WAIT,
};
use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

fn two_server_pen(a: &Backend, b: &Backend, opts: &[&str]) -> Pen {
    PenBuilder::new()
        .opts(opts)
        .server(a.spec())
        .server(format!("{}:10:20", b.spec()))
        .start()
}

/// Asserts the reply to `line`, both directly and through penctl (exit status 0).
fn expect(pen: &Pen, line: &str, want: &str) {
    assert_eq!(pen.ctl(line), want, "direct reply to {line:?}");
}

fn expect_penctl(pen: &Pen, line: &str, want: &str) {
    let words: Vec<&str> = line.split(' ').collect();
    let (out, code) = pen.penctl(&words);
    assert_eq!((out.as_str(), code), (want, 0), "penctl reply to {line:?}");
}

#[test]
fn settings_replies() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    expect(&pen, "blacklist", "30\n");
    expect_penctl(&pen, "blacklist 20", "20\n");
    expect(&pen, "blacklist", "20\n");
    expect(&pen, "client_acl", "0\n");
    expect(&pen, "control_acl", "0\n");
    expect(&pen, "clients_max", "2048\n");
    expect_penctl(&pen, "clients_max 4096", "4096\n");
    expect(&pen, "clients_max", "4096\n");
    expect(&pen, "conn_max", "500\n");
    expect_penctl(&pen, "conn_max 600", "600\n");
    expect(&pen, "conn_max", "600\n");
    expect(&pen, "debug", "0\n");
    expect(&pen, "debug 0", "0\n");
    expect(&pen, "idle_timeout", "Idle timeout: 0 seconds\n");
    expect_penctl(&pen, "idle_timeout 5", "Idle timeout: 5 seconds\n");
    expect(&pen, "idle_timeout", "Idle timeout: 5 seconds\n");
    expect(&pen, "timeout", "3\n");
    expect_penctl(&pen, "timeout 5", "5\n");
    expect(&pen, "timeout", "5\n");
    expect(&pen, "tracking", "0\n");
    expect_penctl(&pen, "tracking 10", "10\n");
    expect(&pen, "tracking", "10\n");
    expect(&pen, "tcp_fastclose both", "");
    expect(&pen, "tcp_fastclose off", "");
    expect(&pen, "tcp_nodelay", "");
    expect(&pen, "no tcp_nodelay", "");
}

#[test]
fn acl_selectors_take_a_list_number() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    expect(&pen, "client_acl 3", "3\n");
    expect(&pen, "client_acl", "3\n");
    expect(&pen, "control_acl 0", "0\n");
    expect(&pen, "client_acl 0", "0\n");
    assert_eq!(pen.fetch(), pen.fetch(), "clients still served");
}

#[test]
fn mode_follows_selection_commands() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    expect(
        &pen,
        "mode",
        "no hash no roundrobin no stubborn no weight no prio\n",
    );
    expect(&pen, "hash", "");
    expect_penctl(
        &pen,
        "mode",
        "hash no roundrobin no stubborn no weight no prio\n",
    );
    expect(&pen, "no hash", "");
    expect(
        &pen,
        "mode",
        "no hash no roundrobin no stubborn no weight no prio\n",
    );
    expect(&pen, "prio", "");
    expect(&pen, "weight", "");
    expect(
        &pen,
        "mode",
        "no hash no roundrobin no stubborn weight prio\n",
    );
    expect(&pen, "no prio", "");
    expect(&pen, "no weight", "");
    expect(&pen, "roundrobin", "");
    expect(&pen, "stubborn", "");
    expect(
        &pen,
        "mode",
        "no hash roundrobin stubborn no weight no prio\n",
    );
    expect(&pen, "no roundrobin", "");
    expect(&pen, "no stubborn", "");
    expect(
        &pen,
        "mode",
        "no hash no roundrobin no stubborn no weight no prio\n",
    );
}

#[test]
fn pid_control_and_listen_addresses() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    expect(&pen, "pid", &format!("{}\n", pen.pid));
    expect_penctl(&pen, "pid", &format!("{}\n", pen.pid));
    expect(&pen, "control", &format!("{}\n", pen.control));
    expect(&pen, "listen", &format!("{}\n", pen.addr()));
}

#[test]
fn connection_close_and_socket_replies() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    expect(&pen, "close 3", "Forcibly closing connection 3\n");
    expect_penctl(&pen, "close 999999", "Connection 999999 out of range\n");
    let conn = pen.ctl("connection 0");
    assert!(
        conn.starts_with("Connection 0:\n"),
        "connection 0 -> {conn:?}"
    );
    assert!(conn.lines().count() >= 2, "a few lines: {conn:?}");
    let sock = pen.ctl("socket 3");
    let rest = sock
        .strip_prefix("Socket 3 belongs to connection ")
        .unwrap_or_else(|| panic!("socket 3 -> {sock:?}"));
    assert!(
        rest.strip_suffix('\n')
            .is_some_and(|n| n.parse::<i64>().is_ok()),
        "socket 3 -> {sock:?}"
    );
}

/// An idle server's `servers` line (no connections, no bytes yet).
fn server_line(n: usize, port: u16, max: u64, hard: u64) -> String {
    format!("{n} addr 127.0.0.1 port {port} conn 0 max {max} hard {hard} weight 0 prio 0 sx 0 rx 0")
}

#[test]
fn servers_and_server_command() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    let (pa, pb) = (a.addr.port(), b.addr.port());
    assert_eq!(
        pen.servers(),
        vec![server_line(0, pa, 0, 0), server_line(1, pb, 10, 20)]
    );
    expect_penctl(&pen, "server 3 address 127.0.0.1 port 80", "");
    let lines = pen.servers();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], server_line(0, pa, 0, 0));
    assert_eq!(lines[1], server_line(1, pb, 10, 20));
    assert!(lines[2].starts_with("2 addr "), "{lines:?}");
    assert_eq!(lines[3], server_line(3, 80, 0, 0));
    // Traffic shows in the byte counters: a name server sends 1 byte ("A" or "B").
    let name = pen.fetch();
    let n = if name == "A" { 0 } else { 1 };
    wait_for(WAIT, "rx 1 on the chosen server", || {
        pen.servers()[n].ends_with(" sx 0 rx 1").then_some(())
    });
}

#[test]
fn recent_after_traffic() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    expect(&pen, "recent", "");
    for _ in 0..2 {
        let mut c = pen.connect();
        c.write_all(b"hello").expect("write");
        c.shutdown(Shutdown::Write).expect("shutdown");
        assert_eq!(read_to_eof(&mut c), "hello");
    }
    wait_for(WAIT, "recent to show the traffic", || {
        let r = pen.ctl("recent");
        (r == "127.0.0.1 connects 2 sx 10 rx 10\n").then_some(())
    });
}

#[test]
fn exit_needs_dash_x() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    expect(&pen, "exit", "Exit is not enabled; restart with -X flag\n");
    assert_eq!(
        pen.pid,
        pen.ctl("pid").trim().parse::<u32>().expect("pid"),
        "still running"
    );
}

#[test]
fn exit_with_dash_x_ends_the_process() {
    let echo = Backend::echo();
    let mut pen = PenBuilder::new().opts(&["-X"]).server(echo.spec()).start();
    let (_out, code) = pen.penctl(&["exit"]);
    assert_eq!(code, 0, "penctl exit");
    let st = pen.wait_exit(WAIT).expect("pen exits after `exit`");
    assert_eq!(st.code(), Some(0), "exit status");
}

/// [ours] error replies: one line `error: ...` naming the token; nothing changes.
#[test]
fn errors_name_the_bad_token_and_change_nothing() {
    if is_c_pen() {
        return;
    }
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = two_server_pen(&a, &b, &[]);
    let servers_before = pen.servers();
    let check = |line: &str, token: &str| {
        let r = pen.ctl(line);
        assert!(
            r.starts_with("error: ") && r.contains(token),
            "{line:?} -> {r:?}"
        );
        assert_eq!(r.lines().count(), 1, "{line:?} -> one line, got {r:?}");
        assert!(r.ends_with('\n'), "{line:?} -> {r:?}");
    };
    check("bogus", "bogus");
    check("bogus cmd", "bogus");
    check("blacklist abc", "abc");
    check("server 0 port 99999", "99999");
    check("timeout -1", "-1");
    check("tcp_fastclose sideways", "sideways");
    let (out, code) = pen.penctl(&["bogus"]);
    assert_eq!(code, 1, "penctl exit status for an error reply ({out:?})");
    assert!(
        out.starts_with("error: ") || out.is_empty(),
        "penctl prints the error: {out:?}"
    );
    expect(&pen, "blacklist", "30\n");
    expect(&pen, "timeout", "3\n");
    assert_eq!(
        pen.servers(),
        servers_before,
        "state unchanged after errors"
    );
}

/// [ours] a control client that says nothing does not stall relayed traffic.
#[test]
fn idle_control_client_does_not_stall_traffic() {
    if is_c_pen() {
        return; // C pen blocks on the control read
    }
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    let idle = connect(&pen.control);
    for i in 0..3 {
        let mut c = pen.connect();
        c.write_all(b"ping").expect("write");
        assert_eq!(
            peek(&mut c, WAIT),
            Peek::Data(b"ping".to_vec()),
            "connection {i} while control idle"
        );
    }
    expect(&pen, "timeout", "3\n");
    drop(idle);
}

/// [ours] With the control socket's client table full (64 idle clients), a queued client
/// is served as soon as one of them leaves, not only when another connection arrives.
#[test]
fn control_client_queued_behind_full_table_is_served() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    let fds = fd_count(pen.pid);
    let mut idle: Vec<_> = (0..64).map(|_| connect(&pen.control)).collect();
    // Make sure pen has taken all 64 before the queued one arrives.
    wait_until(WAIT, "pen to accept the 64 idle control clients", || {
        fd_count(pen.pid) >= fds + 64
    });
    let mut queued = connect(&pen.control);
    queued.write_all(b"timeout\n").expect("write");
    drop(idle.pop());
    queued
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(read_to_eof(&mut queued), "3\n");
}

/// `source IP` sets the local address of connections to servers.
#[test]
fn source_sets_the_address_servers_see() {
    let backend = TcpListener::bind("127.0.0.1:0").expect("bind");
    let spec = backend.local_addr().expect("addr").to_string();
    let pen = PenBuilder::new().server(spec).start();
    assert_eq!(pen.ctl("source 127.0.0.2"), "");
    let _client = pen.connect();
    backend.set_nonblocking(true).expect("nonblocking");
    let (_conn, peer) = wait_for(WAIT, "pen's connection to the server", || {
        backend.accept().ok()
    });
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
}

#[test]
fn listen_moves_the_listener() {
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    let new_port = super::harness::free_port();
    let new_addr = format!("127.0.0.1:{new_port}");
    let r = pen.ctl(&format!("listen {new_addr}"));
    assert!(
        r == format!("{new_addr}\n") || r.is_empty(),
        "listen reply {r:?}"
    );
    expect(&pen, "listen", &format!("{new_addr}\n"));
    let mut c = connect(&new_addr);
    assert_eq!(read_to_eof(&mut c), "A");
    // The old address no longer accepts (every listener moved, not just one).
    for i in 0..8 {
        let old: std::net::SocketAddr = pen.addr().parse().expect("addr");
        let r = std::net::TcpStream::connect_timeout(&old, WAIT);
        assert!(
            r.is_err(),
            "connect {i} to the old address {old} still accepted"
        );
    }
}

/// [ours] a bad `listen` address is an error and the old listener keeps serving.
#[test]
fn listen_to_a_bad_address_keeps_the_old_listener() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    let r = pen.ctl("listen 256.1.1.1:80");
    assert!(r.starts_with("error: "), "listen 256.1.1.1:80 -> {r:?}");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let r = pen.ctl(&format!("listen {taken_addr}"));
    assert!(
        r.starts_with("error: "),
        "listen {taken_addr} (in use) -> {r:?}"
    );
    expect(&pen, "listen", &format!("{}\n", pen.addr()));
    assert_eq!(pen.fetch(), "A", "old listener still serves");
    drop(taken);
}

#[test]
fn close_forcibly_closes_a_live_connection() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    let mut c = pen.connect();
    c.write_all(b"abc").expect("write");
    assert_eq!(peek(&mut c, WAIT), Peek::Data(b"abc".to_vec()));
    // Connection numbers are pen's own (ours interleaves worker threads): find the live one.
    let n = (0..16)
        .find(|n| {
            let r = pen.ctl(&format!("connection {n}"));
            r.contains("downfd = ") && !r.contains("downfd = -1")
        })
        .expect("a live connection among `connection 0..16`");
    expect(
        &pen,
        &format!("close {n}"),
        &format!("Forcibly closing connection {n}\n"),
    );
    assert_eq!(peek(&mut c, WAIT), Peek::Closed, "client sees the close");
}

#[test]
fn server_address_changes_apply_to_new_connections() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new().server(a.spec()).start();
    assert_eq!(pen.fetch(), "A");
    expect(
        &pen,
        &format!("server 0 address 127.0.0.1 port {}", b.addr.port()),
        "",
    );
    assert_eq!(pen.fetch(), "B", "server 0 now points at B");
    let line = &pen.servers()[0];
    let want = format!("0 addr 127.0.0.1 port {} ", b.addr.port());
    assert!(line.starts_with(&want), "{line:?}");
}

#[test]
fn conn_max_grows_the_limit_live() {
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-x", "2"])
        .server(echo.spec())
        .start();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = pen.connect();
        c.write_all(b"p").expect("write");
        assert_eq!(peek(&mut c, WAIT), Peek::Data(b"p".to_vec()));
        held.push(c);
    }
    let mut c3 = pen.connect();
    c3.write_all(b"third").expect("write");
    assert_eq!(
        peek(&mut c3, Duration::from_millis(300)),
        Peek::Quiet,
        "waits at -x 2"
    );
    expect(&pen, "conn_max 3", "3\n");
    assert_eq!(
        peek(&mut c3, WAIT),
        Peek::Data(b"third".to_vec()),
        "served after conn_max 3"
    );
}

#[test]
fn idle_timeout_set_live() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    expect_penctl(&pen, "idle_timeout 1", "Idle timeout: 1 seconds\n");
    let mut c = pen.connect();
    c.write_all(b"hi").expect("write");
    assert_eq!(peek(&mut c, WAIT), Peek::Data(b"hi".to_vec()));
    assert_eq!(peek(&mut c, WAIT), Peek::Closed, "closed after 1 s idle");
}

#[test]
fn server_blacklist_command_takes_a_server_out() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-r"])
        .server(a.spec())
        .server(b.spec())
        .start();
    expect(&pen, "server 1 blacklist 30", "");
    for _ in 0..4 {
        assert_eq!(pen.fetch(), "A", "server 1 blacklisted");
    }
    if !is_c_pen() {
        let l = &pen.servers()[1];
        let secs: u64 = l
            .split_once(" blacklisted ")
            .and_then(|(_, s)| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no blacklist in {l:?}"));
        assert!((28..=30).contains(&secs), "{l:?}");
    }
    expect(&pen, "server 1 blacklist 0", "");
    let got: Vec<String> = (0..4).map(|_| pen.fetch()).collect();
    assert!(got.contains(&"B".to_string()), "server 1 back: {got:?}");
}

#[test]
fn recent_lists_each_client() {
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    pen.fetch_from(2);
    pen.fetch_from(3);
    pen.fetch_from(3);
    // As in C pen: sx counts bytes sent to that client, rx bytes received from it (the same
    // point of view as `servers`, where sx = bytes pen sent to that server).
    let want = [
        "127.0.0.2 connects 1 sx 1 rx 0",
        "127.0.0.3 connects 2 sx 2 rx 0",
    ];
    let mut lines: Vec<String> = Vec::new();
    poll_until(WAIT, || {
        lines = pen.ctl("recent").lines().map(str::to_string).collect();
        lines.sort();
        (lines == want).then_some(())
    });
    assert_eq!(
        lines, want,
        "recent after 127.0.0.2 x1 and 127.0.0.3 x2 (1 byte from the server each)"
    );
}

/// [ours] `status` works without `-w`.
#[test]
fn status_returns_html() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    let page = pen.ctl("status");
    assert!(
        page.to_ascii_lowercase().contains("<html"),
        "status -> {page:?}"
    );
}
