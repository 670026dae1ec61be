//! One kind's watch cache: the objects a watch has delivered, converted
//! to the engine's terms, and whether they can be vouched for.
//!
//! A read answers the objects only while the cache is in step with the
//! server: listed, watching, and heard from within `STALE_AFTER`. Before
//! that, after a stream failed, and while it re-lists, a read is an error
//! with the reason, so the tick sees Unknown — never an old list
//! presented as today's. An object that did not convert makes the whole
//! kind Invalid, exactly as one odd object in a LIST does.

use crate::ports::{PortError, PortResult};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Silence after which a cache is stale. A healthy watch is never silent
/// that long: the server ends each watch after `super::WATCH_SECONDS`,
/// and the next begins at once.
pub const STALE_AFTER: Duration = Duration::from_secs(super::WATCH_SECONDS as u64 + 15);

enum Phase {
    /// Not in step: before the first list, or since `since`, for `why`.
    Syncing {
        since: Instant,
        why: Option<String>,
    },
    Live,
    /// The server will not let this client watch (RBAC without `watch`):
    /// the kind is listed each tick instead (`Watches::observed`).
    Refused(String),
}

struct Inner<D> {
    items: BTreeMap<String, D>,
    /// Objects the cache holds but cannot read: key → why.
    bad: BTreeMap<String, String>,
    phase: Phase,
    /// The last word from the server: a list, a watch begun or ended, an
    /// event, a bookmark.
    contact: Option<Instant>,
}

pub struct Store<D> {
    /// `nodes`, `pods`, `PodDisruptionBudgets`: for messages.
    what: &'static str,
    /// `STALE_AFTER`; shorter in tests.
    stale_after: Duration,
    inner: Mutex<Inner<D>>,
}

impl<D: Clone + PartialEq> Store<D> {
    pub fn new(what: &'static str) -> Store<D> {
        Store::with_stale_after(what, STALE_AFTER)
    }

    pub fn with_stale_after(what: &'static str, stale_after: Duration) -> Store<D> {
        Store {
            what,
            stale_after,
            inner: Mutex::new(Inner {
                items: BTreeMap::new(),
                bad: BTreeMap::new(),
                phase: Phase::Syncing {
                    since: Instant::now(),
                    why: None,
                },
                contact: None,
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner<D>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A whole list: the cache is this, and in step. Whether anything
    /// changed from what it held.
    pub fn replace(&self, listed: Vec<(String, Result<D, String>)>) -> bool {
        let mut items = BTreeMap::new();
        let mut bad = BTreeMap::new();
        for (key, converted) in listed {
            match converted {
                Ok(d) => {
                    items.insert(key, d);
                }
                Err(why) => {
                    bad.insert(key, why);
                }
            }
        }
        let mut inner = self.inner();
        let changed = inner.items != items || inner.bad != bad;
        inner.items = items;
        inner.bad = bad;
        inner.phase = Phase::Live;
        inner.contact = Some(Instant::now());
        changed
    }

    /// An object added or modified: what it was and what it is now (each
    /// `None` where it was absent or unreadable), and whether it was
    /// readable before (to warn once per object gone bad).
    pub fn apply(&self, key: String, converted: Result<D, String>) -> Applied<D> {
        let mut inner = self.inner();
        inner.contact = Some(Instant::now());
        let was_bad = inner.bad.remove(&key).is_some();
        let old = inner.items.remove(&key);
        let new = match converted {
            Ok(d) => {
                inner.items.insert(key, d.clone());
                Some(d)
            }
            Err(why) => {
                inner.bad.insert(key, why);
                None
            }
        };
        Applied { old, new, was_bad }
    }

    /// An object deleted: what it was.
    pub fn remove(&self, key: &str) -> Option<D> {
        let mut inner = self.inner();
        inner.contact = Some(Instant::now());
        inner.bad.remove(key);
        inner.items.remove(key)
    }

    /// A word from the server that changes no object (a bookmark, a
    /// watch begun or ended cleanly).
    pub fn contact(&self) {
        self.inner().contact = Some(Instant::now());
    }

    /// Out of step, for `why`, until the next list.
    pub fn failed(&self, why: String) {
        let mut inner = self.inner();
        let since = match inner.phase {
            Phase::Syncing { since, .. } => since,
            Phase::Live | Phase::Refused(_) => Instant::now(),
        };
        inner.phase = Phase::Syncing {
            since,
            why: Some(why),
        };
    }

    /// The server refuses the watch itself (a 403/404/405 when it
    /// starts): not a failure to wait out, a setting to fix.
    pub fn refuse(&self, why: String) {
        self.inner().phase = Phase::Refused(why);
    }

    pub fn refused(&self) -> Option<String> {
        match &self.inner().phase {
            Phase::Refused(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// How long since the server was last heard from; `None` when never.
    pub fn age(&self) -> Option<Duration> {
        self.inner().contact.map(|c| c.elapsed())
    }

    pub fn is_live(&self) -> bool {
        let inner = self.inner();
        matches!(inner.phase, Phase::Live)
            && inner
                .contact
                .is_some_and(|c| c.elapsed() < self.stale_after)
    }

    /// `d`, or the cache's copy of it where the two are equal: one shared
    /// allocation instead of two (`Pod` clones share), whatever the
    /// cache's state — equal is equal.
    pub fn shared(&self, key: &str, d: D) -> D {
        match self.inner().items.get(key) {
            Some(held) if *held == d => held.clone(),
            _ => d,
        }
    }

    /// Whether any object held is so (in step or not: for wake rules).
    pub fn any(&self, pred: impl Fn(&D) -> bool) -> bool {
        self.inner().items.values().any(pred)
    }

    /// The objects, if the cache can vouch for them.
    pub fn read(&self) -> PortResult<Vec<D>> {
        let inner = self.inner();
        let what = self.what;
        match &inner.phase {
            Phase::Syncing { since, why } => {
                let secs = since.elapsed().as_secs();
                return Err(PortError::Unavailable(match why {
                    None => format!("{what} watch: first list not finished ({secs} s)"),
                    Some(why) => format!("{what} watch re-syncing for {secs} s after: {why}"),
                }));
            }
            Phase::Refused(why) => {
                return Err(PortError::Refused(format!("{what} watch refused: {why}")));
            }
            Phase::Live => {}
        }
        let silent = inner.contact.map_or(Duration::MAX, |c| c.elapsed());
        if silent >= self.stale_after {
            return Err(PortError::Unavailable(format!(
                "{what} watch: no word from the server for {} s (stalled); not read as current",
                silent.as_secs()
            )));
        }
        if let Some((key, why)) = inner.bad.iter().next() {
            return Err(PortError::Invalid(format!("{what} {key}: {why}")));
        }
        Ok(inner.items.values().cloned().collect())
    }
}

/// What `Store::apply` changed.
pub struct Applied<D> {
    pub old: Option<D>,
    pub new: Option<D>,
    pub was_bad: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_answers_only_while_in_step_and_heard_from() {
        let bound = Duration::from_millis(30);
        let store: Store<u32> = Store::with_stale_after("pods", bound);
        assert!(store.read().unwrap_err().to_string().contains("first list"));
        assert!(store.replace(vec![("a".into(), Ok(1)), ("b".into(), Ok(2))]));
        assert_eq!(store.read().unwrap(), vec![1, 2]);
        // The same list again changes nothing.
        assert!(!store.replace(vec![("a".into(), Ok(1)), ("b".into(), Ok(2))]));
        // Silence past the bound: stale, whatever it holds.
        std::thread::sleep(bound);
        assert!(store.read().unwrap_err().to_string().contains("stalled"));
        store.contact();
        assert_eq!(store.read().unwrap(), vec![1, 2]);
        // One unreadable object: the kind is Invalid, and readable again
        // once it is replaced or gone.
        let applied = store.apply("c".into(), Err("does not decode".into()));
        assert!(applied.new.is_none() && !applied.was_bad);
        let err = store.read().unwrap_err();
        assert!(matches!(err, PortError::Invalid(_)) && err.to_string().contains("pods c"));
        assert!(store.apply("c".into(), Ok(3)).was_bad);
        assert_eq!(store.read().unwrap(), vec![1, 2, 3]);
        assert_eq!(store.remove("a"), Some(1));
        // A failed stream: Unknown with the reason until the next list.
        store.failed("watch stream failed: reset".into());
        let err = store.read().unwrap_err().to_string();
        assert!(err.contains("re-syncing") && err.contains("reset"), "{err}");
        store.replace(vec![("b".into(), Ok(2))]);
        assert_eq!(store.read().unwrap(), vec![2]);
    }

    #[test]
    fn a_pod_equal_to_the_cached_one_is_the_cached_one() {
        use crate::engine::testkit::pod;
        let store: Store<crate::ports::Pod> = Store::new("pods");
        let held = pod("web-1", Some("n1"), 100, Some("ReplicaSet"));
        store.replace(vec![(held.key(), Ok(held.clone()))]);
        let listed = pod("web-1", Some("n1"), 100, Some("ReplicaSet"));
        assert!(!listed.shares(&held));
        assert!(store.shared(&held.key(), listed).shares(&held));
        // Changed since: its own.
        let moved = pod("web-1", Some("n2"), 100, Some("ReplicaSet"));
        let kept = store.shared(&held.key(), moved.clone());
        assert!(kept.shares(&moved) && !kept.shares(&held));
        // A change to a shared pod is the changer's alone.
        let mut copy = store.read().unwrap().remove(0);
        copy.node_name = None;
        assert_eq!(store.read().unwrap()[0].node_name.as_deref(), Some("n1"));
    }
}
