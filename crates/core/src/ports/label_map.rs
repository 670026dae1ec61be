//! `LabelMap`: a pod's labels, annotations or node selector, as a sorted
//! list of pairs rather than a `BTreeMap`.
//!
//! Why not the map: a `BTreeMap<String, String>` allocates a node for
//! eleven pairs as soon as it holds one, about 540 bytes, and a pod
//! usually carries one to five. A watch cache holds every pod of the
//! cluster (150 000 at 5 000 workers), so the maps alone were most of the
//! cache's memory. Look-ups over a handful of sorted pairs are as fast.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// String keys to string values, each key once, sorted by key.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelMap(Vec<(String, String)>);

impl LabelMap {
    pub fn new() -> LabelMap {
        LabelMap(Vec::new())
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for LabelMap {
    /// A later pair for the same key wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> LabelMap {
        let mut map = LabelMap::new();
        for (k, v) in pairs {
            map.insert(k, v);
        }
        map.0.shrink_to_fit();
        map
    }
}

impl From<BTreeMap<String, String>> for LabelMap {
    fn from(map: BTreeMap<String, String>) -> LabelMap {
        // Already sorted and unique.
        LabelMap(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for LabelMap {
    fn from(pairs: [(String, String); N]) -> LabelMap {
        pairs.into_iter().collect()
    }
}

impl std::fmt::Debug for LabelMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As a map (`{"app": "web"}`), the way the `BTreeMap` it replaces was.
impl Serialize for LabelMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for LabelMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LabelMap, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(LabelMap::from)
    }
}

/// What a label selector reads: a value by key.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for LabelMap {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_map_behaves_as_the_map_it_replaces() {
        let mut map: LabelMap = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "3".to_string()),
        ]
        .into();
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("b").map(String::as_str), Some("3"));
        assert!(map.contains_key("a") && !map.contains_key("c"));
        assert_eq!(map.insert("c".into(), "4".into()), None);
        assert_eq!(map.insert("a".into(), "5".into()), Some("1".into()));
        assert_eq!(map.remove("b"), Some("3".into()));
        let keys: Vec<&String> = map.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c"]);
        let reference = BTreeMap::from([
            ("a".to_string(), "5".to_string()),
            ("c".to_string(), "4".to_string()),
        ]);
        assert_eq!(format!("{map:?}"), format!("{reference:?}"));
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, serde_json::to_string(&reference).unwrap());
        assert_eq!(serde_json::from_str::<LabelMap>(&json).unwrap(), map);
        assert_eq!(LabelMap::from(reference), map);
    }
}
