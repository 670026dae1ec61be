//! How often open watches may render a kind to find the world's changes.
//!
//! The simulated world has no change feed: a watch finds what changed by
//! rendering every object of its kind and comparing (`watch_cache.rs`).
//! At 150 000 pods one render is most of a second, done under the world's
//! lock, so every watch of the kind rendering every 200 ms would hold the
//! lock for ever and starve lists, writes and the other kinds. One look
//! serves every watch of the kind, and the next waits for four times as
//! long as the last took: the watches fall behind the world by that much,
//! as a loaded API server's do, and a write through the API is still its
//! own event at once (it records its kind itself).

use super::field_selector::Kind;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest gap between two looks at a kind (an open watch's poll).
pub const MIN_GAP: Duration = Duration::from_millis(200);

/// The gap is this many times the last look's duration.
const GAP_PER_COST: u32 = 4;

#[derive(Default)]
pub struct LookPace {
    /// Per kind: when the last look began and how long it took.
    last: Mutex<[Option<(Instant, Duration)>; 4]>,
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Node => 0,
        Kind::Pod => 1,
        Kind::PodDisruptionBudget => 2,
        Kind::Event => 3,
    }
}

impl LookPace {
    /// Whether a look at `kind` is due at `now`; a look that is due is
    /// taken by this caller (marked begun), so the other watches of the
    /// kind wait for its end instead of rendering beside it.
    pub fn due(&self, kind: Kind, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = match last[slot(kind)] {
            None => true,
            Some((began, took)) => now.duration_since(began) >= MIN_GAP.max(took * GAP_PER_COST),
        };
        if due {
            // Until `looked` says how long it took: as if it took for
            // ever, capped so that a look that never reports (a panic)
            // holds the kind back a minute, not for good.
            last[slot(kind)] = Some((now, Duration::from_secs(15)));
        }
        due
    }

    /// A look at `kind` began at `began` and took `took`.
    pub fn looked(&self, kind: Kind, began: Instant, took: Duration) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last[slot(kind)] = Some((began, took));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_costly_look_spaces_the_next_and_a_cheap_one_keeps_the_poll() {
        let pace = LookPace::default();
        let t0 = Instant::now();
        assert!(pace.due(Kind::Pod, t0));
        // Taken: a second watch does not look while the first does.
        assert!(!pace.due(Kind::Pod, t0 + Duration::from_millis(300)));
        pace.looked(Kind::Pod, t0, Duration::from_millis(500));
        assert!(!pace.due(Kind::Pod, t0 + Duration::from_millis(1_999)));
        assert!(pace.due(Kind::Pod, t0 + Duration::from_secs(2)));
        // Other kinds are paced on their own.
        assert!(pace.due(Kind::Node, t0));
        pace.looked(Kind::Node, t0, Duration::from_millis(1));
        assert!(!pace.due(Kind::Node, t0 + Duration::from_millis(199)));
        assert!(pace.due(Kind::Node, t0 + MIN_GAP));
    }
}
