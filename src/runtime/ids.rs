//! Identifiers: operation ids, lease ids and the owner's unique part.
//! Seeded in simulations (so a run replays exactly), random otherwise.

use crate::rng::Rng;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub enum IdSource {
    Seeded(Mutex<Rng>),
    Random(AtomicU64),
}

impl IdSource {
    pub fn seeded(seed: u64) -> Self {
        IdSource::Seeded(Mutex::new(Rng::new(seed ^ 0x1D5)))
    }

    pub fn random() -> Self {
        IdSource::Random(AtomicU64::new(0))
    }

    fn next_u64(&self) -> u64 {
        match self {
            IdSource::Seeded(rng) => rng.lock().unwrap_or_else(|p| p.into_inner()).next_u64(),
            IdSource::Random(counter) => {
                // RandomState is seeded from the OS per process; mixing in a
                // counter and the time makes each id distinct. Not for secrets.
                let mut h = RandomState::new().build_hasher();
                h.write_u64(counter.fetch_add(1, Ordering::Relaxed));
                h.write_u128(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0),
                );
                h.finish()
            }
        }
    }

    /// A UUID-shaped (v4 layout) identifier.
    pub fn uuid(&self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFF,
            0x8000 | (b >> 48) & 0x3FFF,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    /// Short operation id, e.g. `op-3f9a1c2b`.
    pub fn op_id(&self) -> String {
        format!("op-{:08x}", self.next_u64() >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_random_ids_differ() {
        assert_eq!(IdSource::seeded(1).uuid(), IdSource::seeded(1).uuid());
        let r = IdSource::random();
        assert_ne!(r.uuid(), r.uuid());
        assert_eq!(IdSource::seeded(2).uuid().len(), 36);
    }
}
