//! Behaviours an operator relies on when replacing C pen, checked against both binaries.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::backends::Backend;
use super::harness::{free_port, pen_bin, read_to_eof, wait_for};

/// A pen process started directly (not through the harness: both must share one port).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(listen: &str, server: &str) -> Proc {
    let child = Command::new(pen_bin())
        .args(["-f", listen, server])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pen");
    Proc(child)
}

/// What the "name" backend behind `addr` says, or `None` if nothing accepts there (yet).
fn fetch(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let got = read_to_eof(&mut s);
    (!got.is_empty()).then_some(got)
}

/// C pen sets SO_REUSEPORT on its listener, so a second pen on the same port starts and the
/// kernel spreads new connections over both: "start the new one, then stop the old one"
/// upgrades without refusing a connection.
#[test]
fn a_second_pen_on_the_same_port_shares_it() {
    let (a, b) = (Backend::name("old"), Backend::name("new"));
    let addr = format!("127.0.0.1:{}", free_port());
    let mut old = start(&addr, &a.spec());
    wait_for(Duration::from_secs(10), "the first pen", || fetch(&addr));
    let mut new = start(&addr, &b.spec());
    // Both answer: the second did not fail with "address in use".
    let mut seen = std::collections::HashSet::new();
    wait_for(Duration::from_secs(10), "both pens answering", || {
        seen.extend(fetch(&addr));
        (seen.len() == 2).then_some(())
    });
    assert!(new.0.try_wait().unwrap().is_none(), "the second pen exited");
    // Stop the old one: every new connection goes to the new one.
    let _ = old.0.kill();
    let _ = old.0.wait();
    for _ in 0..20 {
        assert_eq!(fetch(&addr).as_deref(), Some("new"));
    }
    let _ = new.0.kill();
}
