//! Parser tests of the `acl` command: IPv4 and IPv6 entries, masks and prefixes, and the errors.

use super::*;

#[test]
fn acl_v4() {
    assert_eq!(
        ok("acl 1 permit 10.0.0.0 255.0.0.0"),
        Command::Acl {
            list: 1,
            entry: v4(AclAction::Permit, [10, 0, 0, 0], [255, 0, 0, 0])
        }
    );
    assert_eq!(
        ok("acl 0 deny 1.2.3.4"),
        Command::Acl {
            list: 0,
            entry: v4(AclAction::Deny, [1, 2, 3, 4], [255; 4])
        }
    );
    // Any dotted quad is taken as a mask, contiguous or not.
    assert_eq!(
        ok("acl 9 deny 1.2.3.4 0.255.0.255"),
        Command::Acl {
            list: 9,
            entry: v4(AclAction::Deny, [1, 2, 3, 4], [0, 255, 0, 255])
        }
    );
}

#[test]
fn acl_v6() {
    let entry = |action, addr: &str, len| AclEntry {
        action,
        pattern: AclPattern::V6 {
            addr: addr.parse().unwrap(),
            len,
        },
    };
    assert_eq!(
        ok("acl 2 permit ::1"),
        Command::Acl {
            list: 2,
            entry: entry(AclAction::Permit, "::1", 128)
        }
    );
    assert_eq!(
        ok("acl 2 deny 2001:db8::/32"),
        Command::Acl {
            list: 2,
            entry: entry(AclAction::Deny, "2001:db8::", 32)
        }
    );
    assert_eq!(
        ok("acl 2 deny ::/0"),
        Command::Acl {
            list: 2,
            entry: entry(AclAction::Deny, "::", 0)
        }
    );
    assert_eq!(
        ok("acl 2 deny ::ffff:10.0.0.1/128"),
        Command::Acl {
            list: 2,
            entry: entry(AclAction::Deny, "::ffff:10.0.0.1", 128)
        }
    );
    const V6: &str = "an IPv6 address with an optional /LEN (0-128)";
    for tok in [
        "::1/129", "::1/", "::1/-1", "::1/+1", "::1/300", ":::1", "::1/1/1", "[::1]",
    ] {
        assert_eq!(err(&format!("acl 2 deny {tok}")), bad(tok, V6));
    }
    assert_eq!(err("acl 2 deny ::1 64"), E::TrailingArgument("64".into()));
}

#[test]
fn acl_errors() {
    assert_eq!(
        err("acl 12 permit 1.2.3.4").to_string(),
        "'12': expected an ACL list number 0-9"
    );
    assert_eq!(err("acl x permit 1.2.3.4"), bad("x", ACL_LIST));
    assert_eq!(
        err("acl 1 allow 1.2.3.4"),
        bad("allow", "'permit' or 'deny'")
    );
    assert!(matches!(err("acl"), E::MissingArgument { ref command, .. } if command == "acl"));
    assert!(matches!(err("acl 1"), E::MissingArgument { .. }));
    assert!(matches!(err("acl 1 permit"), E::MissingArgument { .. }));
    assert!(
        matches!(err("acl 1 permit 1.2.3"), E::BadArgument { ref token, .. } if token == "1.2.3")
    );
    assert!(
        matches!(err("acl 1 permit 1.2.3.4/8"), E::BadArgument { ref token, .. } if token == "1.2.3.4/8")
    );
    assert!(
        matches!(err("acl 1 permit 1.2.3.4 255.0.0"), E::BadArgument { ref token, .. } if token == "255.0.0")
    );
    assert_eq!(
        err("acl 1 permit 1.2.3.4 255.0.0.0 x"),
        E::TrailingArgument("x".into())
    );
    assert!(matches!(
        err("acl 1 permit host.example"),
        E::BadArgument { .. }
    ));
}

#[test]
fn acl_country_is_not_supported() {
    let e = err("acl 1 deny country SE");
    assert_eq!(e, E::CountryAcl("SE".into()));
    assert!(e
        .to_string()
        .contains("GeoIP country ACL entries are not supported"));
    assert!(matches!(
        err("acl 1 deny country"),
        E::MissingArgument { .. }
    ));
}
