//! Access control lists for clients and for the control socket.

use super::backends::Backend;
use super::harness::{control_from, PenBuilder};

#[test]
fn client_acl_denies_a_listed_client() {
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&["-O", "acl 1 deny 127.0.0.2", "-O", "client_acl 1"])
        .server(a.spec())
        .start();
    assert_eq!(pen.fetch_from(2), "", "127.0.0.2 is denied: closed");
    // No entry matches 127.0.0.3: the opposite of the last entry's action (deny) is permit.
    assert_eq!(pen.fetch_from(3), "A");
    assert_eq!(a.accepted(), 1, "the denied client never reached a server");
}

#[test]
fn permit_only_list_denies_everyone_else_and_empty_list_permits_all() {
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    assert_eq!(pen.ctl("acl 2 permit 127.0.0.3"), "");
    assert_eq!(pen.ctl("acl 2 permit 127.0.0.4 255.255.255.255"), "");
    assert_eq!(pen.ctl("client_acl 2"), "2\n");
    assert_eq!(pen.fetch_from(3), "A");
    assert_eq!(pen.fetch_from(4), "A");
    assert_eq!(
        pen.fetch_from(5),
        "",
        "not listed in a permit-only list: denied"
    );
    assert_eq!(pen.ctl("no acl 2"), "");
    assert_eq!(pen.fetch_from(5), "A", "an empty list permits everyone");
}

#[test]
fn acl_mask_matches_a_network() {
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&[
            "-O",
            "acl 1 deny 127.0.0.4 255.255.255.252",
            "-O",
            "acl 1 permit 127.0.0.0 255.0.0.0",
            "-O",
            "client_acl 1",
        ])
        .server(a.spec())
        .start();
    let got: Vec<String> = (2..=8).map(|n| pen.fetch_from(n)).collect();
    // 127.0.0.4-7 are in 127.0.0.4/30.
    assert_eq!(got, ["A", "A", "", "", "", "", "A"], "clients 127.0.0.2..8");
}

#[test]
fn control_acl_denies_control_clients() {
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    assert_eq!(control_from(2, &pen.control, "acl 3 deny 127.0.0.3"), "");
    assert_eq!(control_from(2, &pen.control, "control_acl 3"), "3\n");
    assert_eq!(
        control_from(3, &pen.control, "control_acl 0"),
        "",
        "denied control client gets nothing"
    );
    assert_eq!(
        control_from(2, &pen.control, "control_acl"),
        "3\n",
        "and changed nothing"
    );
    assert_eq!(
        pen.fetch_from(3),
        "A",
        "the control ACL does not apply to clients"
    );
}

/// [ours in detail, C pen's -B] Clients the client ACL denies go to the abuse server, exactly
/// those; `client_acl 0` (an empty list) restores normal service.
#[test]
fn abuse_server_receives_exactly_the_denied_clients() {
    if super::harness::is_c_pen() {
        return;
    }
    let (a, abuse) = (Backend::name("A"), Backend::name("X"));
    let pen = PenBuilder::new()
        .opts(&[
            "-B",
            &abuse.spec(),
            "-O",
            "acl 1 deny 127.0.0.2",
            "-O",
            "client_acl 1",
        ])
        .server(a.spec())
        .start();
    for _ in 0..3 {
        assert_eq!(pen.fetch_from(1), "A", "127.0.0.1 is permitted");
        assert_eq!(pen.fetch_from(2), "X", "127.0.0.2 goes to the abuse server");
    }
    assert_eq!(
        abuse.accepted(),
        3,
        "the abuse server saw exactly the denied clients"
    );
    assert_eq!(a.accepted(), 3);
    assert_eq!(pen.ctl("client_acl 0"), "0\n");
    assert_eq!(
        pen.fetch_from(2),
        "A",
        "client_acl 0 restores normal service"
    );
    assert_eq!(abuse.accepted(), 3);
}

/// `server N acl A`: a client that no server's list admits is closed; others are unaffected.
#[test]
fn server_acl_drops_a_client_no_server_admits() {
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&["-O", "acl 1 permit 127.0.0.1", "-O", "server 0 acl 1"])
        .server(a.spec())
        .start();
    assert_eq!(pen.fetch_from(1), "A");
    assert_eq!(pen.fetch_from(2), "", "no server admits 127.0.0.2: closed");
    assert_eq!(pen.fetch_from(1), "A", "other clients are not affected");
    assert_eq!(a.accepted(), 2);
}
