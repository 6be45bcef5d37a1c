//! Fuzzes ACL entries from text to decision: `acl N permit|deny ADDR [MASK]` / `ADDR[/LEN]` and
//! `no acl N` lines are parsed (`parse_line`) and pushed into an `AclSet` (compiled to integer
//! rules), then arbitrary client addresses are checked against every list.
//!
//! The reference is written from the documented behaviour only: each line is also read by a
//! naive word-by-word reader built on the standard library's address parsers, and entries are
//! matched bit by bit (IPv4: every bit the mask selects agrees, any mask, contiguous or not;
//! IPv6: the first LEN bits agree; an IPv4-mapped IPv6 client counts as its IPv4 address;
//! families never match each other); the first matching entry decides, no match gives the
//! opposite of the last entry, an empty list permits. Checked: `parse_line` accepts an `acl`
//! line exactly when the naive reader does, with the same entry; the entry's text form parses
//! back to it; `AclSet::permits` == the reference for every client and list.
//!
//! Input: text lines, then a NUL byte, then clients: a tag byte (even: IPv4, 4 bytes; odd:
//! IPv6, 16 bytes, mapped when the tag is 1 mod 4).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use pen_core::acl::{AclSet, ACL_LISTS};
use pen_core::control::command::{AclAction, AclEntry, AclPattern};
use pen_core::control::{parse_line, Command};

/// What the naive reader makes of a line starting with `acl`: `Some(Ok((list, entry)))`,
/// `Some(Err(()))` for a line that must be refused, `None` when the line is not an `acl` line.
fn naive(line: &str) -> Option<Result<(u8, AclEntry), ()>> {
    // A word starting with `#` starts a comment that runs to the end of the line (as C pen).
    let w: Vec<&str> = line
        .split_ascii_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect();
    if w.first() != Some(&"acl") {
        return None;
    }
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let list = match w.get(1) {
        Some(s) if decimal(s) => match s.parse::<u8>() {
            Ok(n) if usize::from(n) < ACL_LISTS => n,
            _ => return Some(Err(())),
        },
        _ => return Some(Err(())),
    };
    let action = match w.get(2) {
        Some(&"permit") => AclAction::Permit,
        Some(&"deny") => AclAction::Deny,
        _ => return Some(Err(())),
    };
    let Some(target) = w.get(3) else {
        return Some(Err(()));
    };
    let pattern = if target.contains(':') {
        if w.len() != 4 {
            return Some(Err(()));
        }
        let (a, len) = match target.split_once('/') {
            Some((a, l)) if decimal(l) && l.parse::<u8>().is_ok_and(|n| n <= 128) => {
                (a, l.parse::<u8>().unwrap())
            }
            Some(_) => return Some(Err(())),
            None => (*target, 128),
        };
        match a.parse::<Ipv6Addr>() {
            Ok(addr) => AclPattern::V6 { addr, len },
            Err(_) => return Some(Err(())),
        }
    } else {
        if w.len() > 5 {
            return Some(Err(()));
        }
        let Ok(addr) = target.parse::<Ipv4Addr>() else {
            return Some(Err(()));
        };
        let mask = match w.get(4) {
            None => Ipv4Addr::BROADCAST,
            Some(m) => match m.parse::<Ipv4Addr>() {
                Ok(m) => m,
                Err(_) => return Some(Err(())),
            },
        };
        AclPattern::V4 { addr, mask }
    };
    Some(Ok((list, AclEntry { action, pattern })))
}

fn matches(e: &AclEntry, client: IpAddr) -> bool {
    let client = match client {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    match (&e.pattern, client) {
        (AclPattern::V4 { addr, mask }, IpAddr::V4(c)) => {
            let (a, m, c) = (addr.octets(), mask.octets(), c.octets());
            (0..32).all(|i| {
                let bit = |x: &[u8; 4]| (x[i / 8] >> (7 - i % 8)) & 1;
                bit(&m) == 0 || bit(&a) == bit(&c)
            })
        }
        (AclPattern::V6 { addr, len }, IpAddr::V6(c)) => {
            let (a, c) = (addr.octets(), c.octets());
            (0..usize::from(*len)).all(|i| (a[i / 8] ^ c[i / 8]) & (0x80 >> (i % 8)) == 0)
        }
        _ => false,
    }
}

fn permits(list: &[AclEntry], client: IpAddr) -> bool {
    match list.iter().find(|e| matches(e, client)) {
        Some(e) => e.action == AclAction::Permit,
        None => list.last().is_none_or(|e| e.action == AclAction::Deny),
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, clients) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let mut set = AclSet::default();
    let mut lists: Vec<Vec<AclEntry>> = vec![Vec::new(); ACL_LISTS];
    for line in text.lines().take(64) {
        let parsed = parse_line(line);
        match (naive(line), parsed) {
            (Some(Ok((list, entry))), Ok(Command::Acl { list: l, entry: e })) => {
                assert_eq!((l, &e), (list, &entry), "{line:?}");
                let again = parse_line(&format!("acl {l} {e}"));
                assert_eq!(
                    again,
                    Ok(Command::Acl {
                        list: l,
                        entry: e.clone()
                    }),
                    "text form of {line:?}"
                );
                set.push(l, e);
                lists[usize::from(l)].push(entry);
            }
            (Some(Ok(_)), other) => panic!("{line:?} refused: {other:?}"),
            (Some(Err(())), Ok(cmd)) => panic!("{line:?} accepted as {cmd:?}"),
            (Some(Err(())), Err(_)) => {}
            (None, Ok(Command::NoAcl(l))) => {
                set.clear(l);
                lists[usize::from(l)].clear();
            }
            (None, Ok(Command::Acl { .. })) => panic!("{line:?}: an acl line?"),
            (None, _) => {}
        }
    }
    for (n, list) in lists.iter().enumerate() {
        assert_eq!(set.list(n as u8), &list[..], "list {n}");
    }
    let mut rest = clients;
    let mut checked = 0;
    while let Some((&tag, r)) = rest.split_first() {
        let client = if tag % 2 == 0 {
            let Some((b, r)) = r.split_first_chunk::<4>() else {
                break;
            };
            rest = r;
            IpAddr::V4(Ipv4Addr::from(*b))
        } else if tag % 4 == 1 && r.len() >= 4 {
            let (b, r) = r.split_first_chunk::<4>().unwrap();
            rest = r;
            IpAddr::V6(Ipv4Addr::from(*b).to_ipv6_mapped())
        } else {
            let Some((b, r)) = r.split_first_chunk::<16>() else {
                break;
            };
            rest = r;
            IpAddr::V6(Ipv6Addr::from(*b))
        };
        for (n, list) in lists.iter().enumerate() {
            assert_eq!(
                set.permits(n as u8, client),
                permits(list, client),
                "list {n} client {client}"
            );
        }
        checked += 1;
        if checked == 32 {
            break;
        }
    }
    // Clients taken from the entries themselves, so matches are likely even for random bytes.
    for list in &lists {
        for e in list {
            let c = match e.pattern {
                AclPattern::V4 { addr, .. } => IpAddr::V4(addr),
                AclPattern::V6 { addr, .. } => IpAddr::V6(addr),
            };
            for (n, l) in lists.iter().enumerate() {
                assert_eq!(set.permits(n as u8, c), permits(l, c), "list {n} {c}");
            }
        }
    }
});
