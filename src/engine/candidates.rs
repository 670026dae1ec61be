//! Which worker a scale-down removes (DESIGN §3 step 1): the most recently
//! launched among the least loaded, never one with a blocking pod, never
//! one whose pods would not fit on the workers that remain.

use super::drain_rules::{Disposition, classify};
use super::observation::ClusterView;
use super::settings::Settings;
use crate::ports::{Instance, Node, Pod, Resources};

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
pub fn choose(
    settings: &Settings,
    view: &ClusterView,
    fleet: &[Instance],
) -> Result<Candidate, Vec<String>> {
    let mut blocked = Vec::new();
    let mut eligible: Vec<(&Node, &str, f64)> = Vec::new();
    for node in &view.nodes {
        match eligibility(settings, view, fleet, node) {
            Ok((instance_id, load)) => eligible.push((node, instance_id, load)),
            Err(why) => blocked.push(format!("{}: {why}", node.name)),
        }
    }
    let Some(min_load) = eligible.iter().map(|(_, _, l)| *l).reduce(f64::min) else {
        if blocked.is_empty() {
            blocked.push("no worker is eligible".into());
        }
        return Err(blocked);
    };
    let mut band: Vec<&(&Node, &str, f64)> = eligible
        .iter()
        .filter(|(_, _, l)| *l <= min_load + LOAD_BAND_PERCENT)
        .collect();
    // Newest first; name breaks ties so the choice is deterministic.
    band.sort_by(|a, b| {
        b.0.created
            .cmp(&a.0.created)
            .then_with(|| a.0.name.cmp(&b.0.name))
    });
    for (node, instance_id, load) in band {
        if pods_fit_elsewhere(view, node) {
            return Ok(Candidate {
                node: node.name.clone(),
                instance_id: instance_id.to_string(),
                load_percent: *load,
            });
        }
        blocked.push(format!(
            "{}: its pods would not fit on the remaining workers",
            node.name
        ));
    }
    Err(blocked)
}

/// Whether `node` may be removed at all, with its instance id and load.
pub fn eligibility<'a>(
    settings: &Settings,
    view: &ClusterView,
    fleet: &'a [Instance],
    node: &Node,
) -> Result<(&'a str, f64), String> {
    if !node.ready {
        return Err("not Ready".into());
    }
    if node.cordoned {
        return Err("cordoned outside an operation (left for the operator)".into());
    }
    if node.scale_down_disabled() {
        return Err("annotated scale-down-disabled".into());
    }
    let Some(instance) = node
        .instance_id
        .as_deref()
        .and_then(|id| fleet.iter().find(|i| i.id == id && i.managed))
    else {
        return Err("not backed by a managed EC2 instance".into());
    };
    if let Some(why) = first_blocking_pod(settings, view, &node.name) {
        return Err(why);
    }
    Ok((instance.id.as_str(), load_percent(view, node)))
}

pub fn first_blocking_pod(settings: &Settings, view: &ClusterView, node: &str) -> Option<String> {
    view.pods_on(node)
        .find_map(|pod| match classify(pod, &view.pdbs, &settings.drain) {
            Disposition::Block(why) => Some(why),
            _ => None,
        })
}

/// Requested CPU as a share of allocatable: how Cluster Autoscaler judges load.
pub fn load_percent(view: &ClusterView, node: &Node) -> f64 {
    if node.allocatable.cpu_millis == 0 {
        return 100.0;
    }
    100.0 * view.requested_on(&node.name).cpu_millis as f64 / node.allocatable.cpu_millis as f64
}

/// First-fit of the node's evictable pods onto the other Ready, uncordoned
/// workers' free capacity: removing the node must not create pending pods.
fn pods_fit_elsewhere(view: &ClusterView, node: &Node) -> bool {
    let mut free: Vec<Resources> = view
        .nodes
        .iter()
        .filter(|n| n.name != node.name && n.ready && !n.cordoned)
        .map(|n| n.allocatable.saturating_sub(view.requested_on(&n.name)))
        .collect();
    let mut moving: Vec<&Pod> = view
        .pods_on(&node.name)
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
