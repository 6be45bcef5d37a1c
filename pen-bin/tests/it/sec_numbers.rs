//! Issue 11, numbers and tables: every time and count argument has a maximum (a huge
//! `timeout` used to wrap the connect deadline and blacklist healthy servers), and a flood of
//! UDP sources does not move a live client's flow.

use super::backends::Backend;
use super::harness::{is_c_pen, Pen, PenBuilder};

/// Whether `servers` shows any server blacklisted.
fn any_blacklisted(pen: &Pen) -> bool {
    pen.servers().iter().any(|l| l.contains(" blacklisted "))
}

/// `timeout 18446744073709551615` is refused, naming the token and the maximum; the setting
/// stays, and healthy servers keep serving, never blacklisted.
#[test]
fn huge_timeout_is_refused_and_servers_keep_serving() {
    if is_c_pen() {
        return; // C pen reads the number with atoi: -1
    }
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-r"])
        .server(a.spec())
        .server(b.spec())
        .start();
    let before = pen.ctl("timeout");
    let huge = pen.ctl("timeout 18446744073709551615");
    // Whatever the reply, healthy servers must serve and never be blacklisted (on the code
    // before the maxima, the wrapped connect deadline fired at once and blacklisted them).
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(pen.fetch());
    }
    assert!(!any_blacklisted(&pen), "{huge:?}: {:?}", pen.servers());
    assert!(
        seen.iter().any(|s| s == "A") && seen.iter().any(|s| s == "B"),
        "{seen:?}"
    );
    let refused = |token: &str| {
        format!(
            "error: '{token}': out of range, expected a number of seconds up to 31536000 \
             (one year)\n"
        )
    };
    assert_eq!(huge, refused("18446744073709551615"));
    assert_eq!(pen.ctl("timeout 31536001"), refused("31536001"));
    assert_eq!(pen.ctl("timeout"), before, "a refused value is not kept");
    for cmd in [
        "blacklist",
        "tracking",
        "idle_timeout",
        "recent",
        "handshake_timeout",
    ] {
        let reply = pen.ctl(&format!("{cmd} 18446744073709551615"));
        assert!(reply.contains("up to 31536000"), "{cmd}: {reply:?}");
    }
    // The largest accepted value is a working timeout.
    assert_eq!(pen.ctl("timeout 31536000"), "31536000\n");
    assert!(["A", "B"].contains(&pen.fetch().as_str()));
    assert!(!any_blacklisted(&pen), "{:?}", pen.servers());
}
