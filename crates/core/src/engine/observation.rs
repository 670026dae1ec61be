//! What the engine knows about the world at one instant. Each source is
//! either known or carries the reason it is not; the engine never fills a
//! gap with a guess.

use super::id_map::IdMap;
use crate::ports::{Instance, Node, Pdb, Pod, Reading, Resources, Timestamp};

#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub at: Timestamp,
    /// Average worker CPU in percent.
    pub cpu: Reading,
    /// Why that average may not be the whole fleet's (some Ready workers
    /// have no per-node CPU): it then cannot show the fleet idle, so no
    /// scale-down rests on it; everything else still may.
    pub cpu_partial: Option<String>,
    pub cluster: Result<ClusterView, String>,
    /// Managed workers (pending + running).
    pub fleet: Result<Vec<Instance>, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub pdbs: Vec<Pdb>,
}

impl ClusterView {
    pub fn ready_workers(&self) -> usize {
        self.nodes.iter().filter(|n| n.ready).count()
    }

    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods
            .iter()
            .filter(move |p| p.node_name.as_deref() == Some(node))
    }

    /// Pods the scheduler could not place (PodScheduled=False/Unschedulable).
    pub fn unschedulable(&self) -> Vec<&Pod> {
        self.pods.iter().filter(|p| p.is_unschedulable()).collect()
    }

    /// Sum of requests of pods that occupy `node` (finished pods free theirs).
    pub fn requested_on(&self, node: &str) -> Resources {
        self.pods_on(node)
            .filter(|p| !p.is_finished())
            .fold(Resources::default(), |acc, p| acc.plus(p.requests))
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The pods of every node at once, for work that visits every node
    /// (choosing a scale-down candidate on a 1 000-worker cluster would
    /// otherwise scan every pod once per node).
    pub fn index(&self) -> NodeIndex<'_> {
        let mut slot: IdMap<usize> = IdMap::default();
        slot.reserve(self.nodes.len());
        for (n, node) in self.nodes.iter().enumerate() {
            slot.entry(node.name.as_str()).or_insert(n);
        }
        let mut pods: Vec<Vec<&Pod>> = vec![Vec::new(); self.nodes.len()];
        let mut requested = vec![Resources::default(); self.nodes.len()];
        // Listings often group a node's pods: remember the last one found.
        let mut last: Option<(&str, usize)> = None;
        for pod in &self.pods {
            let Some(name) = pod.node_name.as_deref() else {
                continue;
            };
            let n = match last {
                Some((l, n)) if l == name => n,
                _ => match slot.get(name) {
                    Some(&n) => {
                        last = Some((name, n));
                        n
                    }
                    // A pod on a node that is not a worker (the server).
                    None => continue,
                },
            };
            pods[n].push(pod);
            if !pod.is_finished() {
                requested[n] = requested[n].plus(pod.requests);
            }
        }
        NodeIndex {
            slot,
            pods,
            requested,
        }
    }
}

/// `ClusterView::pods_on` and `requested_on` for every worker node, built
/// in one pass over the pods; by name, or by position in `nodes`. Lookups
/// only: nothing iterates the map, so its order never reaches a decision.
pub struct NodeIndex<'a> {
    slot: IdMap<'a, usize>,
    pods: Vec<Vec<&'a Pod>>,
    requested: Vec<Resources>,
}

impl<'a> NodeIndex<'a> {
    pub fn pods_on(&self, node: &str) -> &[&'a Pod] {
        self.slot
            .get(node)
            .map_or(&[], |&n| self.pods[n].as_slice())
    }

    pub fn requested_on(&self, node: &str) -> Resources {
        self.slot
            .get(node)
            .map_or(Resources::default(), |&n| self.requested[n])
    }

    /// The same for the `n`th of `ClusterView::nodes`.
    pub fn pods_at(&self, n: usize) -> &[&'a Pod] {
        self.pods.get(n).map_or(&[], Vec::as_slice)
    }

    pub fn requested_at(&self, n: usize) -> Resources {
        self.requested.get(n).copied().unwrap_or_default()
    }
}

/// The view's nodes matched to the fleet's instances by instance id,
/// once per tick for every rule that asks (the sanity stop and the
/// reconcile each built a map and looked every instance up, two thirds of
/// a `hold` at 5 000 workers). Two nodes may claim one instance (a
/// re-registered kubelet): the first in the list is the instance's node.
/// Lookups only: nothing iterates the map, so its order never reaches a
/// decision.
pub struct FleetMatch<'a> {
    slot: Slots<'a>,
    first: Vec<Option<usize>>,
    of_fleet: Vec<Option<usize>>,
}

/// Instance ids to node positions. EC2's ids (`i-` and 8 or 17 lowercase
/// hex digits) are keyed by their number, the rest by their text: a key
/// held in the table is compared without following a pointer to the
/// string, which was a third of the match at 5 000 workers.
#[derive(Default)]
struct Slots<'a> {
    by_number: std::collections::HashMap<u128, usize, IdBuildHasher>,
    by_text: IdMap<'a, usize>,
}

type IdBuildHasher = std::hash::BuildHasherDefault<super::id_map::IdHasher>;

/// `i-` and 1 to 17 lowercase hex digits as one number that also carries
/// the digit count (so `i-0a` and `i-a` stay apart); `None` otherwise.
fn id_number(id: &str) -> Option<u128> {
    let digits = id.strip_prefix("i-")?.as_bytes();
    if digits.is_empty() || digits.len() > 17 {
        return None;
    }
    let mut value: u128 = 0;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(d);
    }
    Some(((digits.len() as u128) << 100) | value)
}

impl<'a> Slots<'a> {
    fn with_capacity(n: usize) -> Self {
        let mut slots = Slots::default();
        slots.by_number.reserve(n);
        slots
    }

    /// The first position given for `id`.
    fn first(&mut self, id: &'a str, n: usize) -> usize {
        match id_number(id) {
            Some(k) => *self.by_number.entry(k).or_insert(n),
            None => *self.by_text.entry(id).or_insert(n),
        }
    }

    fn get(&self, id: &str) -> Option<usize> {
        match id_number(id) {
            Some(k) => self.by_number.get(&k).copied(),
            None => self.by_text.get(id).copied(),
        }
    }
}

impl<'a> FleetMatch<'a> {
    pub fn new(view: &'a ClusterView, fleet: &[Instance]) -> Self {
        let mut slot = Slots::with_capacity(view.nodes.len());
        let first = view
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| Some(slot.first(node.instance_id.as_deref()?, n)))
            .collect();
        let of_fleet = fleet.iter().map(|i| slot.get(&i.id)).collect();
        FleetMatch {
            slot,
            first,
            of_fleet,
        }
    }

    /// The position in `nodes` of the instance's (first) node.
    pub fn node_of(&self, instance: &str) -> Option<usize> {
        self.slot.get(instance)
    }

    /// The same for the `i`th instance of the fleet it was built with.
    pub fn node_of_fleet(&self, i: usize) -> Option<usize> {
        self.of_fleet.get(i).copied().flatten()
    }

    /// For the `n`th node: the position of the first node with its
    /// instance id (itself unless it is a duplicate), `None` for a node
    /// that maps to no instance.
    pub fn first_with_instance_of(&self, n: usize) -> Option<usize> {
        self.first.get(n).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{instance, node};

    #[test]
    fn a_fleet_match_finds_each_instances_first_node_and_marks_duplicates() {
        let mut dup = node("i-b-again", 0);
        dup.instance_id = Some("i-b".into());
        let mut unmapped = node("ip-10-0-1-5", 0);
        unmapped.instance_id = None;
        let view = ClusterView {
            nodes: vec![node("i-a", 0), node("i-b", 0), dup, unmapped],
            ..ClusterView::default()
        };
        let fleet = [instance("i-b"), instance("i-gone"), instance("i-a")];
        let m = FleetMatch::new(&view, &fleet);
        assert_eq!(
            (0..3).map(|i| m.node_of_fleet(i)).collect::<Vec<_>>(),
            [Some(1), None, Some(0)]
        );
        assert_eq!(m.node_of_fleet(3), None, "past the fleet");
        assert_eq!(m.node_of("i-b"), Some(1));
        assert_eq!(m.node_of("i-gone"), None);
        // EC2's ids by number: a leading zero, the length and the case
        // still tell ids apart.
        let ec2 = ClusterView {
            nodes: vec![
                node("i-0abc", 0),
                node("i-abc", 0),
                node("i-0123456789abcdef0", 0),
                node("i-ABC", 0),
            ],
            ..ClusterView::default()
        };
        let fleet = [
            instance("i-abc"),
            instance("i-0abc"),
            instance("i-0123456789abcdef0"),
            instance("i-00123456789abcdef0"),
            instance("i-ABC"),
            instance("i-abc0"),
        ];
        let by_number = FleetMatch::new(&ec2, &fleet);
        assert_eq!(
            (0..6)
                .map(|i| by_number.node_of_fleet(i))
                .collect::<Vec<_>>(),
            [Some(1), Some(0), Some(2), None, Some(3), None]
        );
        assert_eq!(id_number("i-"), None);
        assert_eq!(id_number("i-0123456789abcdef01"), None, "18 digits");
        assert_eq!(id_number("node-1"), None);
        assert_eq!(
            (0..4)
                .map(|n| m.first_with_instance_of(n))
                .collect::<Vec<_>>(),
            [Some(0), Some(1), Some(1), None]
        );
    }
}
