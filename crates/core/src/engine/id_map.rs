//! Maps keyed by node names and instance ids, with a hasher fit for them.
//! The std hasher (SipHash) resists hash flooding by untrusted keys; these
//! keys come from our own cloud account and cluster, and hashing them was
//! most of the cost of a decision on a 1 000-worker cluster. This is the
//! multiply-rotate hash rustc used for its own tables ("FxHash"), with a
//! final mix.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// A final mix: the multiply only carries bits upwards, and the table
    /// picks its bucket from the low bits, so ids that differ only in
    /// their last characters would otherwise share buckets.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

pub type IdMap<'a, V> = HashMap<&'a str, V, BuildHasherDefault<IdHasher>>;
pub type IdSet<'a> = HashSet<&'a str, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_differ_only_at_the_end_spread_over_the_low_bits() {
        let low = |i: usize| {
            let mut h = IdHasher::default();
            std::hash::Hash::hash(format!("i-{i:017x}").as_str(), &mut h);
            h.finish() & 1023
        };
        let distinct: std::collections::BTreeSet<u64> = (0..1000).map(low).collect();
        assert!(
            distinct.len() > 550,
            "{} of 1000 buckets used",
            distinct.len()
        );
    }

    #[test]
    fn ids_that_differ_in_any_byte_hash_apart() {
        let hash = |s: &str| {
            let mut h = IdHasher::default();
            std::hash::Hash::hash(s, &mut h);
            h.finish()
        };
        let ids = [
            "i-0123456789abcdef0",
            "i-0123456789abcdef1",
            "i-1123456789abcdef0",
            "i-0123456789abcdef",
            "",
        ];
        for (n, a) in ids.iter().enumerate() {
            for b in &ids[n + 1..] {
                assert_ne!(hash(a), hash(b), "{a} vs {b}");
            }
        }
        let mut set = IdSet::default();
        set.extend(ids);
        assert_eq!(set.len(), ids.len());
        assert!(set.contains("i-0123456789abcdef1"));
    }
}
