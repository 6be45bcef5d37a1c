//! The slot scheme both engines use: connections (TCP) and flows (UDP) live in a [`Slab`] of
//! numbered slots, each with a generation that changes when the slot is freed, and the
//! poller's key for a socket packs slot, generation and side ([`key`]), so a stale event for a
//! reused slot is recognised and ignored. [`LISTENER_KEY`] is the listening socket's key.

/// The listening socket's poller key (no slot packs to it).
pub(crate) const LISTENER_KEY: usize = usize::MAX - 1;
/// Bits of the generation kept in a key.
const GEN_BITS: u32 = 24;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// The poller key for `slot`'s socket of generation `gen` on the server (`true`) or client side.
pub(crate) fn key(slot: usize, gen: u32, server_side: bool) -> usize {
    (slot << (GEN_BITS + 1)) | (((gen & GEN_MASK) as usize) << 1) | usize::from(server_side)
}

/// (slot, generation, server side) from a key made by [`key`].
pub(crate) fn unkey(k: usize) -> (usize, u32, bool) {
    (
        k >> (GEN_BITS + 1),
        ((k >> 1) as u32) & GEN_MASK,
        k & 1 == 1,
    )
}

struct Entry<T> {
    gen: u32,
    item: Option<T>,
}

/// Numbered slots with generations; freed slots are reused.
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `item` in a free slot; returns the slot and its generation.
    pub(crate) fn insert(&mut self, item: T) -> (usize, u32) {
        if let Some(slot) = self.free.pop() {
            if let Some(e) = self.entries.get_mut(slot) {
                e.item = Some(item);
                return (slot, e.gen);
            }
        }
        self.entries.push(Entry {
            gen: 0,
            item: Some(item),
        });
        (self.entries.len() - 1, 0)
    }

    /// Takes the item out of `slot`, freeing the slot under a new generation.
    pub(crate) fn remove(&mut self, slot: usize) -> Option<T> {
        let e = self.entries.get_mut(slot)?;
        let item = e.item.take()?;
        e.gen = (e.gen + 1) & GEN_MASK;
        self.free.push(slot);
        Some(item)
    }

    /// The item in `slot`.
    pub(crate) fn get(&self, slot: usize) -> Option<&T> {
        self.entries.get(slot)?.item.as_ref()
    }

    /// The item in `slot`, mutably.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.entries.get_mut(slot)?.item.as_mut()
    }

    /// The generation of `slot` (of its current item, or of the next one if it is free).
    pub(crate) fn gen(&self, slot: usize) -> Option<u32> {
        self.entries.get(slot).map(|e| e.gen)
    }

    /// Whether `slot` holds an item of generation `gen` (as packed in a key).
    pub(crate) fn is_live(&self, slot: usize, gen: u32) -> bool {
        self.entries
            .get(slot)
            .is_some_and(|e| e.gen == gen & GEN_MASK && e.item.is_some())
    }

    /// Number of slots (used or free): slot numbers are below it.
    pub(crate) fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The occupied slots and their items.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        (self.entries.iter().enumerate()).filter_map(|(i, e)| e.item.as_ref().map(|t| (i, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_hit_the_listener_key() {
        for (slot, gen, side) in [(0, 0, false), (5, 7, true), (1 << 20, GEN_MASK, true)] {
            let k = key(slot, gen, side);
            assert_eq!(unkey(k), (slot, gen, side));
            assert_ne!(k, LISTENER_KEY);
        }
    }

    #[test]
    fn a_freed_slot_is_reused_under_a_new_generation() {
        let mut s = Slab::default();
        let (a, ga) = s.insert("a");
        let (b, _) = s.insert("b");
        assert_ne!(a, b);
        assert_eq!(s.remove(a), Some("a"));
        assert!(!s.is_live(a, ga));
        assert_eq!(s.remove(a), None, "removing twice frees once");
        let (c, gc) = s.insert("c");
        assert_eq!(c, a);
        assert_ne!(gc, ga);
        assert!(s.is_live(c, gc));
        assert_eq!(
            s.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            vec!["c", "b"]
        );
    }
}
