//! Active health checks (issue 13, docs/health-checks.md): a server that accepts but never
//! answers, or that died, is marked down by its check before any client finds out, and takes
//! no client afterwards; an agent's reply shows in `servers`.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use super::backends::Backend;
use super::harness::{is_c_pen, wait_until, Pen, PenBuilder, ScratchDir, WAIT};

/// Fast checks: every 100 ms, 150 ms to answer, down after 2 failures, up after 1 success.
const FAST: [&str; 8] = [
    "-O",
    "check_interval 100",
    "-O",
    "check_timeout 150",
    "-O",
    "check_fall 2",
    "-O",
    "check_rise 1",
];

/// One request through pen: what the server sent before closing, or `None` if nothing came
/// within 2 s (the blackhole server never answers).
fn request(pen: &Pen) -> Option<String> {
    let mut s = TcpStream::connect(pen.addr()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

fn server_line(pen: &Pen, n: usize) -> String {
    let prefix = format!("{n} addr ");
    pen.servers()
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_default()
}

/// Starts pen (round robin) over a healthy server and a blackhole with `check` on both, waits
/// until the blackhole is marked down (bounded by [`WAIT`], far above fall x interval), then
/// sends 40 requests: all must be answered by the healthy one.
fn blackhole_gets_no_client(healthy: Backend, reply: &str, check: &str) {
    let blackhole = Backend::hold();
    let c0 = format!("server 0 check {check}");
    let c1 = format!("server 1 check {check}");
    let mut opts: Vec<&str> = vec!["-r"];
    opts.extend(FAST);
    opts.extend(["-O", &c0, "-O", &c1]);
    let pen = PenBuilder::new()
        .opts(&opts)
        .server(healthy.spec())
        .server(blackhole.spec())
        .start();
    wait_until(WAIT, "the blackhole marked down by its check", || {
        server_line(&pen, 1).contains(" check down")
    });
    assert!(
        server_line(&pen, 0).contains(" check up last ok"),
        "{:?}",
        pen.servers()
    );
    let answered = (0..40)
        .filter(|_| request(&pen).as_deref() == Some(reply))
        .count();
    assert_eq!(answered, 40, "servers: {:?}", pen.servers());
}

#[test]
fn send_expect_check_marks_a_blackhole_down_and_40_of_40_succeed() {
    if is_c_pen() {
        return; // [ours]
    }
    blackhole_gets_no_client(
        Backend::name("+PONG"),
        "+PONG",
        "send PING\\r\\n expect +PONG",
    );
}

#[test]
fn http_check_marks_a_blackhole_down_and_40_of_40_succeed() {
    if is_c_pen() {
        return; // [ours]
    }
    let page = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    blackhole_gets_no_client(Backend::name(page), page, "http /health 200");
}

#[test]
fn a_killed_server_is_marked_down_with_no_client_failure() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let b = Backend::name("B");
    let mut opts: Vec<&str> = vec!["-r", "-b", "30"];
    opts.extend(FAST);
    opts.extend([
        "-O",
        "server 0 check connect",
        "-O",
        "server 1 check connect",
    ]);
    let pen = PenBuilder::new()
        .opts(&opts)
        .server(a.spec())
        .server(b.spec())
        .start();
    wait_until(WAIT, "both servers up by their checks", || {
        server_line(&pen, 0).contains(" check up") && server_line(&pen, 1).contains(" check up")
    });
    drop(b);
    wait_until(WAIT, "the killed server marked down", || {
        server_line(&pen, 1).contains(" check down")
    });
    for i in 0..20 {
        assert_eq!(request(&pen).as_deref(), Some("A"), "request {i}");
    }
    // No client tried it: a failed client connect would have blacklisted it.
    let line = server_line(&pen, 1);
    assert!(!line.contains("blacklisted"), "{line}");
    assert!(line.contains(" last failed"), "{line}");
    // The metrics and the status page say so too.
    assert_eq!(pen.metric("pen_server_up{server=\"0\"}"), Some(1.0));
    assert_eq!(pen.metric("pen_server_up{server=\"1\"}"), Some(0.0));
    assert_eq!(
        pen.metric("pen_server_state_transitions_total{server=\"1\"}"),
        Some(2.0),
        "unchecked -> up -> down"
    );
    assert!(pen
        .metric("pen_server_check_duration_seconds_count{server=\"1\"}")
        .is_some_and(|n| n >= 2.0));
    let page = pen.ctl("status");
    assert!(page.contains("check down, last failed"), "{page}");
}

#[test]
fn agent_drain_and_weight_share_show_in_servers() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let agent = Backend::name("drain 50%\n");
    let port = agent
        .spec()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let check = format!("server 0 check agent {port}");
    let mut opts: Vec<&str> = Vec::new();
    opts.extend(FAST);
    opts.extend(["-O", &check]);
    let pen = PenBuilder::new().opts(&opts).server(a.spec()).start();
    wait_until(WAIT, "the agent's reply in servers", || {
        let l = server_line(&pen, 0);
        l.contains(" state drain check up") && l.ends_with(" agent 50%")
    });
    // C pen's fields come first, unchanged.
    assert!(server_line(&pen, 0).starts_with("0 addr 127.0.0.1 port "));
    // `check off` ends the check; the verdict is forgotten.
    pen.ctl("server 0 check off");
    wait_until(WAIT, "the check removed", || {
        !server_line(&pen, 0).contains(" check up")
    });
}

#[test]
fn check_commands_round_trip_through_write() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&[
            "-O",
            "check_interval 500",
            "-O",
            "server 0 check send GET\\s/\\r\\n expect_re ^HTTP/1\\.[01]\\x20200",
        ])
        .server(a.spec())
        .start();
    assert_eq!(pen.ctl("check_interval"), "500\n");
    assert_eq!(pen.ctl("check_fall"), "3\n");
    let dir = ScratchDir::new("checks");
    let file = dir.0.join("pen.cfg");
    pen.ctl(&format!("write {}", file.display()));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(text.contains("\ncheck_interval 500\n"), "{text}");
    assert!(
        text.contains("\nserver 0 check send GET\\s/\\r\\n expect_re ^HTTP/1\\.[01]\\x20200\n"),
        "{text}"
    );
}

#[test]
fn tls_check_passes_a_private_ca_server_and_fails_a_plain_one() {
    if is_c_pen() {
        return; // [ours]
    }
    use super::tls_util::{put, Ca};
    let dir = ScratchDir::new("check-tls");
    // A private CA and a name that matches nothing: the check does not verify the certificate.
    let leaf = Ca::root("private CA").server(&["unrelated.test"]);
    let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
    let key = put(&dir.0, "key.pem", leaf.key_pem());
    let inner = Backend::name("T");
    let tls_server = PenBuilder::new()
        .opts(&["-E", &cert, "-K", &key])
        .server(inner.spec())
        .start();
    let plain = Backend::name("P");
    let mut opts: Vec<&str> = Vec::new();
    opts.extend(FAST);
    opts.extend(["-O", "server 0 check tls", "-O", "server 1 check tls"]);
    let pen = PenBuilder::new()
        .opts(&opts)
        .server(tls_server.addr())
        .server(plain.spec())
        .start();
    wait_until(WAIT, "the TLS server up and the plain one down", || {
        server_line(&pen, 0).contains(" check up last ok")
            && server_line(&pen, 1).contains(" check down")
    });
}

#[test]
fn with_debug_a_verdict_change_is_logged_once() {
    if is_c_pen() {
        return; // [ours]
    }
    let b = Backend::name("B");
    let mut opts: Vec<&str> = vec!["-d"];
    opts.extend(FAST);
    opts.extend(["-O", "server 0 check connect"]);
    let pen = PenBuilder::new().opts(&opts).server(b.spec()).start();
    wait_until(WAIT, "the server up by its check", || {
        server_line(&pen, 0).contains(" check up")
    });
    drop(b);
    let line = "server 0 is down by its check: failed";
    wait_until(WAIT, "the verdict change in the log", || {
        pen.log_text().contains(line)
    });
    assert_eq!(
        pen.log_text().matches(line).count(),
        1,
        "{}",
        pen.log_text()
    );
}

/// The names of the threads of process `pid` (/proc/PID/task/*/comm).
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn the_checker_thread_exists_only_while_a_check_is_configured() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().opts(&FAST).server(a.spec()).start();
    // Started and serving, no check configured: no checker thread (as C pen: no extra thread).
    assert_eq!(pen.fetch(), "A");
    let has_checker = || thread_names(pen.pid).iter().any(|n| n == "pen-checker");
    assert!(!has_checker(), "{:?}", thread_names(pen.pid));
    pen.ctl("server 0 check connect");
    wait_until(WAIT, "a pen-checker thread", has_checker);
    wait_until(WAIT, "the check's verdict", || {
        server_line(&pen, 0).contains(" check up")
    });
    // The last check removed: the thread ends.
    pen.ctl("server 0 check off");
    wait_until(WAIT, "the pen-checker thread gone", || !has_checker());
    // And comes back with the next check.
    pen.ctl("server 0 check connect");
    wait_until(WAIT, "a pen-checker thread again", has_checker);
}

/// A virtual-hosted server: 200 for `Host: api.example.com`, 404 for any other host.
fn vhost_backend() -> Backend {
    Backend::custom(|mut s| {
        use std::io::Write;
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = if text.contains("\r\nhost: api.example.com\r\n") {
            "200 OK"
        } else {
            "404 Not Found"
        };
        let _ = write!(s, "HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n");
    })
}

#[test]
fn http_check_sends_the_configured_host() {
    if is_c_pen() {
        return; // [ours]
    }
    let named = vhost_backend();
    let plain = vhost_backend();
    let pen = PenBuilder::new()
        .opts(&FAST)
        .server(named.spec())
        .server(plain.spec())
        .start();
    let reply = pen.ctl("server 0 check http /hz 200 host api.example.com");
    assert_eq!(reply, "", "{reply}");
    pen.ctl("server 1 check http /hz 200");
    wait_until(WAIT, "both verdicts", || {
        server_line(&pen, 0).contains(" check up") && server_line(&pen, 1).contains(" check down")
    });
    // `write` keeps the host.
    let dir = ScratchDir::new("checkhost");
    let file = dir.0.join("pen.cfg");
    pen.ctl(&format!("write {}", file.display()));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(
        text.contains("\nserver 0 check http /hz 200 host api.example.com\n"),
        "{text}"
    );
}

#[test]
fn a_servers_own_check_timing_overrides_the_global_one() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let b = Backend::name("B");
    // The global timing: a check a minute. Server 1's own: every 100 ms, 150 ms to answer,
    // down after 2 failures.
    let pen = PenBuilder::new()
        .opts(&[
            "-r",
            "-O",
            "check_interval 60000",
            "-O",
            "server 0 check connect",
            "-O",
            "server 1 check connect interval 100 timeout 150 fall 2",
        ])
        .server(a.spec())
        .server(b.spec())
        .start();
    wait_until(WAIT, "server 1 up by its check", || {
        server_line(&pen, 1).contains(" check up")
    });
    drop(b);
    // Within its own 2 x 100 ms (bounded by WAIT), not the global minute.
    wait_until(WAIT, "server 1 down by its own faster checks", || {
        server_line(&pen, 1).contains(" check down")
    });
    let count = |n: usize| {
        pen.metric(&format!(
            "pen_server_check_duration_seconds_count{{server=\"{n}\"}}"
        ))
        .unwrap_or(0.0)
    };
    // Server 0 keeps the global minute: checked once, at start.
    assert_eq!(count(0), 1.0, "server 0's checks");
    assert!(count(1) >= 3.0, "server 1's checks: {}", count(1));
    // `write` keeps the server's own timing on its check line.
    let dir = ScratchDir::new("check-timing");
    let file = dir.0.join("pen.cfg");
    pen.ctl(&format!("write {}", file.display()));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(
        text.contains("\nserver 1 check connect interval 100 timeout 150 fall 2\n"),
        "{text}"
    );
    assert!(text.contains("\nserver 0 check connect\n"), "{text}");
}

#[test]
fn an_emergency_server_checked_down_is_not_used_and_back_up_it_is() {
    if is_c_pen() {
        return; // [ours]
    }
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // The emergency server says whether it is healthy; its check expects `up`.
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&healthy);
    let emergency = Backend::custom(move |mut s: TcpStream| {
        let word: &[u8] = if flag.load(Ordering::Relaxed) {
            b"E up"
        } else {
            b"E down"
        };
        let _ = s.write_all(word);
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let a = Backend::name("A");
    let e = emergency.spec();
    let pen = PenBuilder::new()
        .opts(&[
            "-e",
            &e,
            // The only regular server is in maintenance: clients go to the emergency server.
            "-O",
            "server 0 maint",
            "-O",
            "emergency_check expect up interval 100 timeout 150 rise 1 fall 1",
        ])
        .server(a.spec())
        .start();
    assert_eq!(request(&pen).as_deref(), Some("E up"));
    assert_eq!(
        pen.ctl("emergency_check"),
        "expect up interval 100 timeout 150 rise 1 fall 1\n"
    );
    // Checked down: no client goes to it (pen has no server for them and closes them).
    healthy.store(false, Ordering::Relaxed);
    wait_until(WAIT, "the emergency server out of use", || {
        request(&pen).is_none()
    });
    for i in 0..5 {
        assert_eq!(request(&pen), None, "request {i} while it is down");
    }
    // Back up: used again.
    healthy.store(true, Ordering::Relaxed);
    wait_until(WAIT, "the emergency server back in use", || {
        request(&pen).as_deref() == Some("E up")
    });
    // `write` keeps the check; `abuse_check` is off.
    assert_eq!(pen.ctl("abuse_check"), "off\n");
    let dir = ScratchDir::new("emergency-check");
    let file = dir.0.join("pen.cfg");
    pen.ctl(&format!("write {}", file.display()));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(
        text.contains("\nemergency_check expect up interval 100 timeout 150 rise 1 fall 1\n"),
        "{text}"
    );
}
