//! Micro-benchmarks of [`AclSet::permits`]: the check `client_acl` runs on every accept (and
//! `server N acl` on every selection), for lists of 1, 10, 100 and 1,000 entries and an empty
//! list.
//!
//! Lists mix IPv4 address/netmask entries (even positions, /16 to /32 masks) and IPv6 prefixes
//! (odd positions, /48 to /128), none of which covers the benchmark clients. For the `early`
//! and `late` cases the first or the last entry is replaced by one of the client's family that
//! covers it, so `permits` stops after one entry or scans all of them; `none` scans the whole
//! list and falls to the default (the opposite of the last entry). Clients: IPv4, IPv6 and
//! IPv4-mapped IPv6 (checked as IPv4, so it matches the IPv4 entries).

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pen_core::acl::AclSet;
use pen_core::control::command::{AclAction, AclEntry, AclPattern};

/// List lengths measured.
const SIZES: [usize; 4] = [1, 10, 100, 1_000];

/// The list the benchmarks fill (any of the ten would do).
const LIST: u8 = 3;

/// The IPv4 client (and, mapped, the IPv4-mapped IPv6 client).
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

/// The IPv6 client.
const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x77);

/// Entry `i` of a list that covers none of the clients: IPv4 `10.h.l.0`-ish networks at even
/// positions, IPv6 `2001:db8:i::/len` prefixes at odd ones, with varied mask lengths.
fn filler(i: usize) -> AclEntry {
    let action = if i % 3 == 0 {
        AclAction::Permit
    } else {
        AclAction::Deny
    };
    let pattern = if i % 2 == 0 {
        let bits = 16 + (i % 17) as u32; // /16 ..= /32
        AclPattern::V4 {
            addr: Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 1),
            mask: Ipv4Addr::from(u32::MAX << (32 - bits)),
        }
    } else {
        AclPattern::V6 {
            addr: Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 1),
            len: 48 + (i % 81) as u8, // /48 ..= /128
        }
    };
    AclEntry { action, pattern }
}

/// An entry of the client's family that covers it (a /24 or a /64).
fn covering(client: IpAddr) -> AclEntry {
    let pattern = match client {
        IpAddr::V4(_) => AclPattern::V4 {
            addr: Ipv4Addr::new(192, 0, 2, 0),
            mask: Ipv4Addr::new(255, 255, 255, 0),
        },
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => AclPattern::V4 {
            addr: Ipv4Addr::new(192, 0, 2, 0),
            mask: Ipv4Addr::new(255, 255, 255, 0),
        },
        IpAddr::V6(_) => AclPattern::V6 {
            addr: Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0),
            len: 64,
        },
    };
    AclEntry {
        action: AclAction::Permit,
        pattern,
    }
}

/// Where the client's matching entry sits.
#[derive(Clone, Copy)]
enum Position {
    /// The first entry matches.
    Early,
    /// Only the last entry matches.
    Late,
    /// Nothing matches: the default decides.
    None,
}

impl Position {
    fn name(self) -> &'static str {
        match self {
            Position::Early => "early",
            Position::Late => "late",
            Position::None => "none",
        }
    }
}

/// An [`AclSet`] whose list [`LIST`] has `n` entries, matching `client` at `pos`.
fn set(n: usize, client: IpAddr, pos: Position) -> AclSet {
    let mut entries: Vec<AclEntry> = (0..n).map(filler).collect();
    match pos {
        Position::Early => {
            if let Some(e) = entries.first_mut() {
                *e = covering(client);
            }
        }
        Position::Late => {
            if let Some(e) = entries.last_mut() {
                *e = covering(client);
            }
        }
        Position::None => {}
    }
    let mut acls = AclSet::default();
    for e in entries {
        acls.push(LIST, e);
    }
    acls
}

/// Registers `acl/permits/<client>_<position>/<entries>` and `acl/permits/empty`.
fn permits(c: &mut Criterion) {
    let clients = [
        ("v4", IpAddr::V4(CLIENT_V4)),
        ("v6", IpAddr::V6(CLIENT_V6)),
        ("mapped", IpAddr::V6(CLIENT_V4.to_ipv6_mapped())),
    ];
    let mut group = c.benchmark_group("acl/permits");
    let empty = AclSet::default();
    group.bench_function("empty", |b| {
        b.iter(|| black_box(empty.permits(black_box(LIST), black_box(clients[0].1))));
    });
    for (family, client) in clients {
        for pos in [Position::Early, Position::Late, Position::None] {
            for &n in &SIZES {
                let acls = set(n, client, pos);
                // The case is what it claims: a match permits, the fillers never match.
                let expect = match pos {
                    Position::None => {
                        acls.list(LIST).last().map(|e| e.action) != Some(AclAction::Permit)
                    }
                    _ => true,
                };
                assert_eq!(
                    acls.permits(LIST, client),
                    expect,
                    "{family} {} {n}",
                    pos.name()
                );
                let id = BenchmarkId::new(format!("{family}_{}", pos.name()), n);
                group.bench_with_input(id, &n, |b, _| {
                    b.iter(|| black_box(acls.permits(black_box(LIST), black_box(client))));
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = permits
}
criterion_main!(benches);
