//! Which worker a scale-down removes (docs/architecture.md §2, rule 5): the most recently
//! launched among the least loaded, never one with a blocking pod, never
//! one whose pods would not fit on the workers that remain.

use super::decision::Standing;
use super::drain_rules::{Disposition, classify};
use super::id_map::IdMap;
use super::observation::{ClusterView, NodeIndex};
use super::settings::Settings;
use crate::ports::{Instance, Node, Pod, Resources};
use std::collections::BTreeMap;

/// At most this many blocked nodes are named in a decision's reasons; the
/// rest are counted (a 1 000-worker cluster would print a page per tick).
const BLOCKED_NAMED: usize = 5;

/// The managed instances by id.
fn managed_by_id(fleet: &[Instance]) -> IdMap<'_, &Instance> {
    fleet
        .iter()
        .filter(|i| i.managed)
        .map(|i| (i.id.as_str(), i))
        .collect()
}

/// Nodes whose load is within this many percentage points of the least
/// loaded count as "least loaded"; among them the newest goes first.
const LOAD_BAND_PERCENT: f64 = 10.0;

#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub node: String,
    pub instance_id: String,
    pub load_percent: f64,
}

/// The chosen node, or why no node can go (one line per node).
/// `held_back`: nodes not to try now, each with why (a recent scale-down of
/// it that did not finish).
pub fn choose(
    settings: &Settings,
    view: &ClusterView,
    fleet: &[Instance],
    held_back: &BTreeMap<String, String>,
) -> Result<Candidate, Vec<String>> {
    let (chosen, outcomes) = assess(settings, view, fleet, held_back);
    if let Some(candidate) = chosen {
        return Ok(candidate);
    }
    let mut blocked = Blocked::default();
    for (name, outcome) in &outcomes {
        match outcome {
            Outcome::Blocked(why) => blocked.push(|| format!("{name}: {why}")),
            Outcome::NoFit => blocked.push(|| format!("{name}: {NO_FIT}")),
            Outcome::Chosen(_) | Outcome::Eligible(_) => {}
        }
    }
    Err(blocked.lines("no worker is eligible"))
}

const NO_FIT: &str = "its pods would not fit on the remaining workers";

/// What the choice found for one node.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Something about the node itself rules it out (the choice's words).
    Blocked(String),
    /// Tried, and its pods would not fit on the remaining workers.
    NoFit,
    /// The one to remove, with its requested share.
    Chosen(f64),
    /// May go, not tried this time: outside the least-loaded band, or
    /// another node went first.
    Eligible(f64),
}

impl Outcome {
    /// In the operator's words; `chosen` is the node that goes, if any.
    pub fn describe(&self, chosen: Option<&str>) -> Standing {
        match (self, chosen) {
            (Outcome::Blocked(why), _) => Standing::blocked(why),
            (Outcome::NoFit, _) => Standing::blocked(NO_FIT),
            (Outcome::Chosen(load), _) => {
                Standing::next_to_go(format!("next to go · {load:.0} % requested"))
            }
            (Outcome::Eligible(load), Some(first)) => {
                Standing::eligible(format!("after {first} · {load:.0} %"))
            }
            (Outcome::Eligible(load), None) => Standing::eligible(format!(
                "eligible · {load:.0} %, not among the least loaded"
            )),
        }
    }
}

/// The choice, with every node's outcome: those ruled out in node order,
/// then the ones tried (least loaded, newest first) until one fits, then
/// the rest that may go.
pub fn assess(
    settings: &Settings,
    view: &ClusterView,
    fleet: &[Instance],
    held_back: &BTreeMap<String, String>,
) -> (Option<Candidate>, Vec<(String, Outcome)>) {
    let index = view.index();
    let managed = managed_by_id(fleet);
    let mut outcomes = Vec::with_capacity(view.nodes.len());
    let mut eligible: Vec<(usize, &Node, &str, f64)> = Vec::new();
    for (n, node) in view.nodes.iter().enumerate() {
        if let Some(why) = held_back.get(&node.name) {
            outcomes.push((node.name.clone(), Outcome::Blocked(why.clone())));
            continue;
        }
        let (pods, requested) = (index.pods_at(n), index.requested_at(n));
        match check(settings, view, pods, requested, &managed, node) {
            Ok((instance_id, load)) => eligible.push((n, node, instance_id, load)),
            Err(why) => outcomes.push((node.name.clone(), Outcome::Blocked(why))),
        }
    }
    let Some(min_load) = eligible.iter().map(|(_, _, _, l)| *l).reduce(f64::min) else {
        return (None, outcomes);
    };
    let mut band: Vec<&(usize, &Node, &str, f64)> = eligible
        .iter()
        .filter(|(_, _, _, l)| *l <= min_load + LOAD_BAND_PERCENT)
        .collect();
    // Newest first; name breaks ties so the choice is deterministic.
    band.sort_by(|a, b| {
        b.1.created
            .cmp(&a.1.created)
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    let mut chosen = None;
    let mut tried = std::collections::BTreeSet::new();
    for (n, node, instance_id, load) in band {
        tried.insert(*n);
        if pods_fit_elsewhere(view, &index, *n) {
            outcomes.push((node.name.clone(), Outcome::Chosen(*load)));
            chosen = Some(Candidate {
                node: node.name.clone(),
                instance_id: instance_id.to_string(),
                load_percent: *load,
            });
            break;
        }
        outcomes.push((node.name.clone(), Outcome::NoFit));
    }
    for (n, node, _, load) in &eligible {
        if !tried.contains(n) {
            outcomes.push((node.name.clone(), Outcome::Eligible(*load)));
        }
    }
    (chosen, outcomes)
}

/// Each worker's own standing for a scale-down, whatever the cluster-wide
/// gates (idle window, cooldown, min_workers) say: its requested share
/// when nothing about the node itself stands in the way, or why not (the
/// same rules and words as `choose`). Whether its pods fit elsewhere is
/// `choose`'s to find out, for the few it tries.
pub fn each_node(
    settings: &Settings,
    view: &ClusterView,
    fleet: &[Instance],
    held_back: &BTreeMap<String, String>,
) -> Vec<(String, Result<f64, String>)> {
    let index = view.index();
    let managed = managed_by_id(fleet);
    view.nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let standing = match held_back.get(&node.name) {
                Some(why) => Err(why.clone()),
                None => check(
                    settings,
                    view,
                    index.pods_at(n),
                    index.requested_at(n),
                    &managed,
                    node,
                )
                .map(|(_, load)| load),
            };
            (node.name.clone(), standing)
        })
        .collect()
}

/// Why nodes were passed over: the first few named, the rest counted.
#[derive(Default)]
struct Blocked {
    named: Vec<String>,
    more: usize,
}

impl Blocked {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.named.len() < BLOCKED_NAMED {
            self.named.push(line());
        } else {
            self.more += 1;
        }
    }

    fn lines(mut self, if_none: &str) -> Vec<String> {
        if self.named.is_empty() {
            self.named.push(if_none.into());
        }
        if self.more > 0 {
            self.named
                .push(format!("…and {} more node(s) not eligible", self.more));
        }
        self.named
    }
}

/// Whether `node` may be removed at all, with its instance id and load.
pub fn eligibility<'a>(
    settings: &Settings,
    view: &ClusterView,
    fleet: &'a [Instance],
    node: &Node,
) -> Result<(&'a str, f64), String> {
    let index = view.index();
    let (pods, requested) = (index.pods_on(&node.name), index.requested_on(&node.name));
    check(settings, view, pods, requested, &managed_by_id(fleet), node)
}

fn check<'a>(
    settings: &Settings,
    view: &ClusterView,
    pods: &[&Pod],
    requested: Resources,
    managed: &IdMap<'_, &'a Instance>,
    node: &Node,
) -> Result<(&'a str, f64), String> {
    if !node.ready {
        return Err("not Ready".into());
    }
    if node.cordoned {
        return Err("cordoned outside an operation (left for the operator)".into());
    }
    if let Some(key) = node.scale_down_opt_out() {
        return Err(format!("opted out ({key}: \"true\")"));
    }
    let Some(instance) = node
        .instance_id
        .as_deref()
        .and_then(|id| managed.get(id).copied())
    else {
        return Err("not backed by a managed EC2 instance".into());
    };
    if let Some(why) =
        pods.iter()
            .find_map(|pod| match classify(pod, &view.pdbs, &settings.drain) {
                Disposition::Block(why) => Some(why),
                _ => None,
            })
    {
        return Err(why);
    }
    Ok((instance.id.as_str(), load_percent(requested, node)))
}

/// Requested CPU as a share of allocatable: how Cluster Autoscaler judges load.
fn load_percent(requested: Resources, node: &Node) -> f64 {
    if node.allocatable.cpu_millis == 0 {
        return 100.0;
    }
    100.0 * requested.cpu_millis as f64 / node.allocatable.cpu_millis as f64
}

/// First-fit of the node's evictable pods onto the other Ready, uncordoned
/// workers' free capacity: removing the node must not create pending pods.
fn pods_fit_elsewhere(view: &ClusterView, index: &NodeIndex<'_>, node: usize) -> bool {
    let mut free: Vec<Resources> = view
        .nodes
        .iter()
        .enumerate()
        .filter(|(m, n)| *m != node && n.ready && !n.cordoned)
        .map(|(m, n)| n.allocatable.saturating_sub(index.requested_at(m)))
        .collect();
    let mut moving: Vec<&Pod> = index
        .pods_at(node)
        .iter()
        .copied()
        .filter(|p| {
            !p.is_finished()
                && !p.is_mirror()
                && !p.terminating
                && p.owner_kind.as_deref() != Some("DaemonSet")
        })
        .collect();
    moving.sort_by_key(|p| std::cmp::Reverse(p.requests.cpu_millis));
    moving
        .iter()
        .all(|pod| match free.iter_mut().find(|f| f.fits(pod.requests)) {
            Some(slot) => {
                *slot = slot.saturating_sub(pod.requests);
                true
            }
            None => false,
        })
}
