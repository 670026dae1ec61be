//! How many workers one scale-up adds: enough to bring the projected CPU
//! down to the target *and* to fit every unschedulable pod, capped.

use super::observation::ClusterView;
use super::settings::Settings;
use crate::ports::{Node, Pod, Resources};

#[derive(Clone, Debug, PartialEq)]
pub struct Sizing {
    pub count: u32,
    pub reasons: Vec<String>,
}

/// The view's unschedulable pods split into those a new worker could
/// take and those it could not (`split`), with what a new worker offers.
pub struct Pending<'a> {
    pub helpable: Vec<&'a Pod>,
    pub unhelpable: Vec<(&'a Pod, String)>,
    /// What a new worker offers to application pods: the largest worker's
    /// allocatable less its DaemonSet pods' requests (`largest_worker`).
    pub template: Resources,
}

/// `Pending` for the view, in one pass over its pods: every tick looks at
/// every pod once for the unschedulable ones and once for the DaemonSet
/// pods of the largest worker, and a second pass over 30 000 pods was a
/// sixth of a `hold` at 5 000 workers.
pub fn pending<'a>(settings: &Settings, view: &'a ClusterView) -> Pending<'a> {
    let largest = largest_worker(view);
    let mut unschedulable = Vec::new();
    let mut daemons = Resources::default();
    for p in &view.pods {
        if p.is_unschedulable() {
            unschedulable.push(p);
        } else if let Some(n) = largest
            && is_daemon_on(p, &n.name)
        {
            daemons = daemons.plus(p.requests);
        }
    }
    let template = largest.map_or(settings.fallback_allocatable, |n| {
        n.allocatable.saturating_sub(daemons)
    });
    let (helpable, unhelpable) = split(template, view, &unschedulable);
    Pending {
        helpable,
        unhelpable,
        template,
    }
}

/// `room` is how many more workers `max_workers` allows (at least 1 here);
/// `template` is what a new worker offers (`Pending::template`).
pub fn scale_up_size(
    settings: &Settings,
    cpu_percent: f64,
    view: &ClusterView,
    template: Resources,
    pending: &[&Pod],
    room: u32,
) -> Sizing {
    let policy = &settings.policy;
    let ready = view.ready_workers() as u64;
    let mut reasons = Vec::new();

    // CPU: n workers at c % carry the same work as n' workers at target %
    // when n' = ceil(n * c / target).
    let for_cpu = if cpu_percent > policy.cpu_target_percent && ready > 0 {
        let needed = ((ready as f64) * cpu_percent / policy.cpu_target_percent).ceil() as u64;
        needed.saturating_sub(ready)
    } else if cpu_percent > policy.cpu_target_percent {
        1
    } else {
        0
    };
    if for_cpu > 0 {
        reasons.push(format!(
            "+{for_cpu} to bring CPU {cpu_percent:.0}% to ≤{:.0}% on {} workers",
            policy.cpu_target_percent,
            ready + for_cpu
        ));
    }

    let (for_pods, too_big) = nodes_to_fit(pending, template);
    if for_pods > 0 {
        reasons.push(format!(
            "+{for_pods} to fit {} unschedulable pod(s)",
            pending.len() - too_big.len()
        ));
    }
    for pod in &too_big {
        reasons.push(format!(
            "pod {} requests more than a new worker offers; adding workers will not help it",
            pod.key()
        ));
    }

    let wanted = for_cpu.max(for_pods).max(1);
    let cap = u64::from(policy.max_scale_up_batch.min(room));
    let count = wanted.min(cap);
    if wanted > cap {
        if cap == u64::from(room) && room < policy.max_scale_up_batch {
            reasons.push(format!(
                "capped at +{count} by max_workers ({})",
                policy.max_workers
            ));
        } else {
            reasons.push(format!(
                "capped at max_scale_up_batch ({})",
                policy.max_scale_up_batch
            ));
        }
    }
    Sizing {
        count: count as u32,
        reasons,
    }
}

/// Split pending pods into those a new worker could take and those it could
/// not, with why: a pod larger than a new worker's free capacity, or one
/// whose `nodeSelector` no worker's labels satisfy (a new worker is one of
/// them) or that pins a hostname. Only the first kind may trigger or size
/// a scale-up, or block a scale-down: adding nodes for the rest only
/// costs money, up to `max_workers`.
fn split<'a>(
    capacity: Resources,
    view: &ClusterView,
    pending: &[&'a Pod],
) -> (Vec<&'a Pod>, Vec<(&'a Pod, String)>) {
    let mut helpable = Vec::new();
    let mut not = Vec::new();
    for &pod in pending {
        if !capacity.fits(pod.requests) {
            not.push((pod, "requests more than a new worker offers".to_string()));
            continue;
        }
        // A new worker is like the workers there are: one of them must
        // carry every pair at once (a hostname pin names one machine).
        let pinned = pod.node_selector.contains_key("kubernetes.io/hostname");
        let matched = view.nodes.is_empty()
            || view.nodes.iter().any(|n| {
                pod.node_selector
                    .iter()
                    .all(|(key, value)| n.labels.get(key) == Some(value))
            });
        if pinned || !matched {
            let wanted: Vec<String> = pod
                .node_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            not.push((
                pod,
                format!(
                    "its nodeSelector {} matches no worker a launch would add",
                    wanted.join(",")
                ),
            ));
        } else {
            helpable.push(pod);
        }
    }
    (helpable, not)
}

/// The worker a new one is modelled on: the largest there is. A new
/// worker offers its allocatable minus what its DaemonSet pods take (they
/// land on every node), or the configured fallback in an empty cluster.
fn largest_worker(view: &ClusterView) -> Option<&Node> {
    view.nodes
        .iter()
        .max_by_key(|n| (n.allocatable.cpu_millis, n.allocatable.memory_bytes))
}

/// The owner first: a cheaper test than the node's name, and false for
/// nearly every pod.
fn is_daemon_on(pod: &Pod, node: &str) -> bool {
    pod.owner_kind.as_deref() == Some("DaemonSet") && pod.node_name.as_deref() == Some(node)
}

/// First-fit decreasing onto empty nodes of `capacity`. Returns the node
/// count and the pods that fit on no node at all.
fn nodes_to_fit<'a>(pending: &[&'a Pod], capacity: Resources) -> (u64, Vec<&'a Pod>) {
    let mut sorted: Vec<&Pod> = pending.to_vec();
    sorted.sort_by(|a, b| {
        (b.requests.cpu_millis, b.requests.memory_bytes)
            .cmp(&(a.requests.cpu_millis, a.requests.memory_bytes))
    });
    let mut free: Vec<Resources> = Vec::new();
    let mut too_big = Vec::new();
    for pod in sorted {
        if !capacity.fits(pod.requests) {
            too_big.push(pod);
            continue;
        }
        match free.iter_mut().find(|f| f.fits(pod.requests)) {
            Some(slot) => *slot = slot.saturating_sub(pod.requests),
            None => free.push(capacity.saturating_sub(pod.requests)),
        }
    }
    (free.len() as u64, too_big)
}
