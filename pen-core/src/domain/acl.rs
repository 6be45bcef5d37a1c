//! The ten access lists (PEN-SPEC 7): first match decides; no match gives the opposite of the
//! last entry's action; an empty list permits everyone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Permit or deny, for ACL entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AclAction {
    /// Let the client through.
    Permit,
    /// Turn the client away.
    Deny,
}

/// What an ACL entry matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AclPattern {
    /// IPv4 address and netmask (`acl N permit 10.0.0.0 255.0.0.0`).
    V4 {
        /// Address.
        addr: Ipv4Addr,
        /// Netmask (default 255.255.255.255).
        mask: Ipv4Addr,
    },
    /// IPv6 address and prefix length (`acl N deny ::1/128`).
    V6 {
        /// Address.
        addr: Ipv6Addr,
        /// Prefix length 0..=128 (default 128).
        len: u8,
    },
}

/// One ACL entry: action and pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// Permit or deny.
    pub action: AclAction,
    /// What it matches.
    pub pattern: AclPattern,
}

/// Number of ACL lists.
pub const ACL_LISTS: usize = 10;

/// The ten lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclSet {
    lists: [Vec<AclEntry>; ACL_LISTS],
    /// The same entries as integers (network and mask), so a check per accept does no
    /// conversions: kept in step with `lists` by `push` and `clear`.
    compiled: [Vec<Rule>; ACL_LISTS],
}

/// An entry ready for matching: `client & mask == net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    V4 { net: u32, mask: u32, permit: bool },
    V6 { net: u128, mask: u128, permit: bool },
}

impl Rule {
    fn compile(e: &AclEntry) -> Rule {
        let permit = e.action == AclAction::Permit;
        match e.pattern {
            AclPattern::V4 { addr, mask } => {
                let mask = u32::from(mask);
                Rule::V4 {
                    net: u32::from(addr) & mask,
                    mask,
                    permit,
                }
            }
            AclPattern::V6 { addr, len } => {
                // A length over 128 cannot come from the parser; treat it as 128.
                let shift = 128 - u32::from(len.min(128));
                // `checked_shl(128)` is None: a /0 prefix has an all-zero mask.
                let mask = u128::MAX.checked_shl(shift).unwrap_or(0);
                Rule::V6 {
                    net: u128::from(addr) & mask,
                    mask,
                    permit,
                }
            }
        }
    }

    /// `Some(permit)` if the rule covers the client; rules of the other family never do.
    fn decide(&self, client: Client) -> Option<bool> {
        match (*self, client) {
            (Rule::V4 { net, mask, permit }, Client::V4(c)) => (c & mask == net).then_some(permit),
            (Rule::V6 { net, mask, permit }, Client::V6(c)) => (c & mask == net).then_some(permit),
            _ => None,
        }
    }

    fn permits(&self) -> bool {
        match *self {
            Rule::V4 { permit, .. } | Rule::V6 { permit, .. } => permit,
        }
    }
}

/// A client address as an integer, converted once per check.
#[derive(Clone, Copy)]
enum Client {
    V4(u32),
    V6(u128),
}

impl AclSet {
    /// Appends an entry to list `n` (ignored if `n` >= 10; the parser rejects that earlier).
    pub fn push(&mut self, n: u8, entry: AclEntry) {
        let i = usize::from(n);
        if let (Some(l), Some(c)) = (self.lists.get_mut(i), self.compiled.get_mut(i)) {
            c.push(Rule::compile(&entry));
            l.push(entry);
        }
    }
    /// Empties list `n`.
    pub fn clear(&mut self, n: u8) {
        let i = usize::from(n);
        if let (Some(l), Some(c)) = (self.lists.get_mut(i), self.compiled.get_mut(i)) {
            l.clear();
            c.clear();
        }
    }
    /// The entries of list `n`.
    pub fn list(&self, n: u8) -> &[AclEntry] {
        self.lists
            .get(usize::from(n))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    /// Whether list `n` permits `ip`: the first matching entry decides; if none matches, the
    /// opposite of the last entry's action; an empty (or out-of-range) list permits everyone.
    /// An IPv4-mapped IPv6 client (`::ffff:a.b.c.d`) is checked as the IPv4 client it is.
    pub fn permits(&self, n: u8, ip: IpAddr) -> bool {
        let Some(rules) = self.compiled.get(usize::from(n)) else {
            return true;
        };
        // Dual-stack listeners report IPv4 clients as mapped addresses; operators write v4 rules.
        let client = match ip {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6(u128::from(v6)),
            },
        };
        match rules.iter().find_map(|r| r.decide(client)) {
            Some(permit) => permit,
            None => rules.last().is_none_or(|r| !r.permits()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn v4(action: AclAction, addr: [u8; 4], mask: [u8; 4]) -> AclEntry {
        AclEntry {
            action,
            pattern: AclPattern::V4 {
                addr: addr.into(),
                mask: mask.into(),
            },
        }
    }

    fn v6(action: AclAction, addr: &str, len: u8) -> AclEntry {
        AclEntry {
            action,
            pattern: AclPattern::V6 {
                addr: addr.parse().unwrap(),
                len,
            },
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    use AclAction::{Deny, Permit};

    #[test]
    fn empty_list_permits_all() {
        let acls = AclSet::default();
        assert!(acls.permits(0, ip("1.2.3.4")));
        assert!(acls.permits(9, ip("::1")));
        // Out-of-range lists are empty.
        assert!(acls.permits(200, ip("::1")));
    }

    #[test]
    fn first_match_decides_else_opposite_of_last() {
        let mut acls = AclSet::default();
        acls.push(1, v4(Deny, [10, 1, 0, 0], [255, 255, 0, 0]));
        acls.push(1, v4(Permit, [10, 0, 0, 0], [255, 0, 0, 0]));
        assert!(!acls.permits(1, ip("10.1.2.3")));
        assert!(acls.permits(1, ip("10.2.2.3")));
        // No match; the last entry permits, so everyone else is denied.
        assert!(!acls.permits(1, ip("192.168.0.1")));
        assert!(acls.permits(2, ip("192.168.0.1")));

        acls.push(3, v4(Deny, [1, 2, 3, 4], [255; 4]));
        assert!(!acls.permits(3, ip("1.2.3.4")));
        assert!(acls.permits(3, ip("1.2.3.5")));
        acls.clear(3);
        assert!(acls.permits(3, ip("1.2.3.4")));
    }

    #[test]
    fn families_do_not_mix_but_mapped_is_v4() {
        let mut acls = AclSet::default();
        acls.push(0, v4(Permit, [0, 0, 0, 0], [0, 0, 0, 0]));
        assert!(acls.permits(0, ip("8.8.8.8")));
        assert!(acls.permits(0, ip("::ffff:8.8.8.8")));
        // An IPv6 client matches no v4 entry: opposite of the last (permit) = deny.
        assert!(!acls.permits(0, ip("2001:db8::1")));

        acls.push(4, v6(Deny, "::", 0));
        assert!(!acls.permits(4, ip("2001:db8::1")));
        assert!(acls.permits(4, ip("10.0.0.1")));
        assert!(acls.permits(4, ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn v6_prefixes() {
        let mut acls = AclSet::default();
        acls.push(5, v6(Permit, "2001:db8::", 32));
        assert!(acls.permits(5, ip("2001:db8:ffff::1")));
        assert!(!acls.permits(5, ip("2001:db9::1")));
        acls.push(6, v6(Permit, "::1", 128));
        assert!(acls.permits(6, ip("::1")));
        assert!(!acls.permits(6, ip("::2")));
        // /127: the last bit is free.
        acls.push(7, v6(Permit, "::2", 127));
        assert!(acls.permits(7, ip("::3")));
        assert!(!acls.permits(7, ip("::4")));
    }

    /// Bit-by-bit reference: an entry matches when every bit the mask selects agrees.
    fn model_match(e: &AclEntry, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => ip,
            },
            v4 => v4,
        };
        match (&e.pattern, ip) {
            (AclPattern::V4 { addr, mask }, IpAddr::V4(c)) => (0..32).all(|i| {
                let bit = |x: Ipv4Addr| (u32::from(x) >> i) & 1;
                bit(*mask) == 0 || bit(*addr) == bit(c)
            }),
            (AclPattern::V6 { addr, len }, IpAddr::V6(c)) => {
                let (a, c) = (addr.octets(), c.octets());
                (0..usize::from(*len)).all(|i| (a[i / 8] ^ c[i / 8]) & (0x80 >> (i % 8)) == 0)
            }
            _ => false,
        }
    }

    fn model_permits(list: &[AclEntry], ip: IpAddr) -> bool {
        for e in list {
            if model_match(e, ip) {
                return e.action == Permit;
            }
        }
        match list.last() {
            None => true,
            Some(e) => e.action == Deny,
        }
    }

    /// Small address pools so random clients often hit random entries.
    fn v4_addr() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            (0u8..4, 0u8..4).prop_map(|(a, b)| Ipv4Addr::new(10, a, 0, b)),
            any::<u32>().prop_map(Ipv4Addr::from),
        ]
    }

    fn v6_addr() -> impl Strategy<Value = Ipv6Addr> {
        prop_oneof![
            (0u16..4, 0u16..4).prop_map(|(a, b)| Ipv6Addr::new(0x2001, 0xdb8, a, 0, 0, 0, 0, b)),
            any::<u128>().prop_map(Ipv6Addr::from),
        ]
    }

    fn entry() -> impl Strategy<Value = AclEntry> {
        let action = prop_oneof![Just(Permit), Just(Deny)];
        let mask = prop_oneof![
            (0u32..=32).prop_map(|n| Ipv4Addr::from(u32::MAX.checked_shl(32 - n).unwrap_or(0))),
            any::<u32>().prop_map(Ipv4Addr::from),
        ];
        let pattern = prop_oneof![
            (v4_addr(), mask).prop_map(|(addr, mask)| AclPattern::V4 { addr, mask }),
            (v6_addr(), 0u8..=128).prop_map(|(addr, len)| AclPattern::V6 { addr, len }),
        ];
        (action, pattern).prop_map(|(action, pattern)| AclEntry { action, pattern })
    }

    fn client() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            v4_addr().prop_map(IpAddr::V4),
            v6_addr().prop_map(IpAddr::V6),
            v4_addr().prop_map(|a| IpAddr::V6(a.to_ipv6_mapped())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn permits_agrees_with_model(
            n in 0u8..10,
            list in proptest::collection::vec(entry(), 0..8),
            clients in proptest::collection::vec(client(), 1..16),
        ) {
            let mut acls = AclSet::default();
            for e in &list {
                acls.push(n, e.clone());
            }
            for c in clients {
                prop_assert_eq!(acls.permits(n, c), model_permits(&list, c), "client {}", c);
                // Other lists stay empty and permit everyone.
                prop_assert!(acls.permits((n + 1) % 10, c));
            }
        }
    }
}
