//! The façade's watch cache: what kube-apiserver's watch cache is to etcd.
//!
//! The simulated world has no versions of its own: it is a model that
//! changes as its clock advances. The cache renders a kind's objects,
//! compares each with what it last served, and gives every change the next
//! `resourceVersion` of one counter shared by all kinds, as etcd's
//! revision is. A LIST answers at the cache's version of its kind, and a
//! watch from that version replays exactly the changes since, so a client
//! that lists then watches misses nothing and sees nothing twice.
//!
//! Each kind keeps its last `LOG_CAPACITY` changes. A watch from a version
//! older than that is `410 Gone` ("too old resource version"), as after a
//! compaction on the real server, and the client must list again;
//! `compact` forces that for a test.

use super::field_selector::Kind;
use super::paging::key as object_key;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// Changes kept per kind (kube-apiserver keeps 100 per resource by default
/// and sizes it up under load; a few thousand covers a 5 000-node cluster's
/// minute).
pub const LOG_CAPACITY: usize = 4096;

/// One object's change at `rv`: what it was and what it is (`None` when
/// absent: `prev` for a creation, `cur` for a deletion). Both carry their
/// `resourceVersion`; a deleted object carries the deletion's.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub prev: Option<Arc<Value>>,
    pub cur: Option<Arc<Value>>,
}

struct Stored {
    /// Of the object as rendered, before its version is set.
    hash: u64,
    object: Arc<Value>,
}

#[derive(Default)]
struct KindLog {
    /// Filled once: the first render of a kind is the cache's start, not a
    /// burst of creations.
    started: bool,
    objects: HashMap<String, Stored>,
    log: VecDeque<Change>,
    /// A watch from below this version cannot be served (its changes were
    /// dropped from the log).
    oldest_servable: u64,
}

#[derive(Default)]
struct State {
    rv: u64,
    kinds: HashMap<&'static str, KindLog>,
}

/// What a watch from a version gets.
pub enum Since {
    /// The changes after it, oldest first, up to the version now.
    Changes(Vec<Change>, u64),
    /// Too old: the log no longer reaches back to it.
    Gone { oldest: u64 },
}

#[derive(Default)]
pub struct WatchCache {
    state: Mutex<State>,
}

fn key_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Pod => "pods",
        Kind::Node => "nodes",
        Kind::PodDisruptionBudget => "poddisruptionbudgets",
        Kind::Event => "events",
    }
}

fn content_hash(item: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    item.to_string().hash(&mut h);
    h.finish()
}

fn with_version(mut item: Value, rv: u64) -> Value {
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    item
}

impl WatchCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `items` (every object of `kind` as the world renders it now)
    /// into the cache, and answer them as they are served: each with its
    /// `resourceVersion`, and the version of the whole (what a LIST says
    /// in `metadata.resourceVersion`). Called under the world's lock, so
    /// the version names exactly this state of the world.
    pub fn refresh(&self, kind: Kind, items: Vec<Value>) -> (Vec<Value>, u64) {
        self.take_in(kind, items, true)
    }

    /// `refresh` for a caller that only needs the changes recorded (a
    /// watch's look, a write's own event): no copy of the kind is served.
    pub fn note(&self, kind: Kind, items: Vec<Value>) -> u64 {
        self.take_in(kind, items, false).1
    }

    fn take_in(&self, kind: Kind, items: Vec<Value>, serve: bool) -> (Vec<Value>, u64) {
        let mut guard = self.state();
        let state = &mut *guard;
        let log = state.kinds.entry(key_of(kind)).or_default();
        let first = !log.started;
        log.started = true;
        let mut seen: HashMap<String, ()> = HashMap::with_capacity(items.len());
        let mut served = Vec::with_capacity(if serve { items.len() } else { 0 });
        for item in items {
            let key = object_key(&item);
            let hash = content_hash(&item);
            seen.insert(key.clone(), ());
            match log.objects.get(&key) {
                Some(stored) if stored.hash == hash => {
                    if serve {
                        served.push(stored.object.as_ref().clone());
                    }
                }
                prev => {
                    state.rv += 1;
                    let object = Arc::new(with_version(item, state.rv));
                    let prev = prev.map(|p| p.object.clone());
                    if !first {
                        log.log.push_back(Change {
                            rv: state.rv,
                            prev,
                            cur: Some(object.clone()),
                        });
                    }
                    if serve {
                        served.push(object.as_ref().clone());
                    }
                    log.objects.insert(key, Stored { hash, object });
                }
            }
        }
        let gone: Vec<String> = log
            .objects
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(stored) = log.objects.remove(&key) {
                state.rv += 1;
                let last = with_version(stored.object.as_ref().clone(), state.rv);
                log.log.push_back(Change {
                    rv: state.rv,
                    prev: Some(Arc::new(last)),
                    cur: None,
                });
            }
        }
        if first {
            log.oldest_servable = state.rv;
        }
        while log.log.len() > LOG_CAPACITY {
            if let Some(dropped) = log.log.pop_front() {
                log.oldest_servable = dropped.rv;
            }
        }
        (served, state.rv)
    }

    /// The changes of `kind` after version `from`.
    pub fn since(&self, kind: Kind, from: u64) -> Since {
        let state = self.state();
        let now = state.rv;
        let Some(log) = state.kinds.get(key_of(kind)) else {
            return Since::Changes(Vec::new(), now);
        };
        if from < log.oldest_servable {
            return Since::Gone {
                oldest: log.oldest_servable,
            };
        }
        let changes = log.log.iter().filter(|c| c.rv > from).cloned().collect();
        Since::Changes(changes, now)
    }

    /// The current objects of `kind`, as served, and the version: what a
    /// watch without a version starts with (as `ADDED` events).
    pub fn current(&self, kind: Kind) -> (Vec<Arc<Value>>, u64) {
        let state = self.state();
        let objects = state
            .kinds
            .get(key_of(kind))
            .map(|l| l.objects.values().map(|s| s.object.clone()).collect())
            .unwrap_or_default();
        (objects, state.rv)
    }

    /// Forget every kind's log, as a compaction does: every watch from a
    /// version before now must list again.
    pub fn compact(&self) {
        let mut state = self.state();
        let now = state.rv;
        for log in state.kinds.values_mut() {
            log.log.clear();
            log.oldest_servable = now;
        }
    }

    /// The version now.
    pub fn version(&self) -> u64 {
        self.state().rv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": "1"}, "status": {"phase": phase}})
    }

    #[test]
    fn a_change_gets_the_next_version_and_a_watch_from_a_list_sees_only_what_followed() {
        let cache = WatchCache::default();
        let (listed, at) = cache.refresh(Kind::Pod, vec![pod("a", "Pending"), pod("b", "Running")]);
        assert_eq!(at, 2);
        assert_eq!(listed[0]["metadata"]["resourceVersion"], "1");
        // Unchanged objects keep their versions; nothing to replay.
        let (_, again) = cache.refresh(Kind::Pod, vec![pod("a", "Pending"), pod("b", "Running")]);
        assert_eq!(again, 2);
        let Since::Changes(none, _) = cache.since(Kind::Pod, at) else {
            panic!("servable")
        };
        assert!(none.is_empty());
        // a starts running, b goes away, c comes.
        let (_, now) = cache.refresh(Kind::Pod, vec![pod("a", "Running"), pod("c", "Pending")]);
        assert_eq!(now, 5);
        let Since::Changes(changes, _) = cache.since(Kind::Pod, at) else {
            panic!("servable")
        };
        let kinds: Vec<(u64, bool, bool)> = changes
            .iter()
            .map(|c| (c.rv, c.prev.is_some(), c.cur.is_some()))
            .collect();
        assert_eq!(
            kinds,
            vec![(3, true, true), (4, false, true), (5, true, false)]
        );
        let deleted = changes[2].prev.as_ref().unwrap();
        assert_eq!(deleted["metadata"]["resourceVersion"], "5");
        assert_eq!(deleted["metadata"]["name"], "b");
    }

    #[test]
    fn a_watch_from_before_the_log_is_gone() {
        let cache = WatchCache::default();
        let (_, at) = cache.refresh(Kind::Node, vec![json!({"metadata": {"name": "n1"}})]);
        for i in 0..(LOG_CAPACITY + 1) {
            cache.refresh(
                Kind::Node,
                vec![json!({"metadata": {"name": "n1"}, "i": i})],
            );
        }
        assert!(matches!(cache.since(Kind::Node, at), Since::Gone { .. }));
        let now = cache.version();
        assert!(matches!(cache.since(Kind::Node, now), Since::Changes(..)));
        cache.compact();
        assert!(matches!(
            cache.since(Kind::Node, now - 1),
            Since::Gone { .. }
        ));
        assert!(matches!(cache.since(Kind::Node, now), Since::Changes(..)));
    }
}
