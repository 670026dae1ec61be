//! The sanity stop: a view of the cluster that cannot be true is not acted
//! on destructively.
//!
//! Every destructive decision (terminate a never-joined instance, delete a
//! ghost node, scale down) rests on the node list. A misspelled
//! `worker_selector`, a kubeconfig context for another cluster, a label
//! removed by hand or an API server answering an empty list all look, to a
//! naive engine, like "every worker vanished": it would terminate every
//! running instance as "never joined". The Cluster Autoscaler stops scaling
//! when more than 45 % of its nodes are unready; we hold every destructive
//! step on the same kind of evidence and say why. Scale-up for real pending
//! pods may go on: adding capacity is never what destroys a cluster.
//!
//! Pure: the caller passes `now`, the view and the previous tick's count.

use super::observation::{ClusterView, FleetMatch};
use super::settings::Settings;
use crate::ports::{Instance, Timestamp};
use std::collections::BTreeSet;

/// The settings the sanity stop needs, in engine terms.
#[derive(Clone, Debug, PartialEq)]
pub struct SanityRules {
    /// Above this share of old-enough running managed instances without a
    /// Ready node, the view is implausible (the Cluster Autoscaler's
    /// `max-total-unready-percentage` is 45).
    pub max_unready_percent: f64,
    /// …and only when more than this many are without one (the Cluster
    /// Autoscaler's `ok-total-unready-count`, 3): on a small cluster one
    /// real stray is 50 % and must not stop the clean-up that removes it.
    pub ok_unready_count: usize,
    /// Shown in the reason: the selector the node list was taken with.
    pub worker_selector: String,
}

impl Default for SanityRules {
    fn default() -> Self {
        SanityRules {
            max_unready_percent: 45.0,
            ok_unready_count: 3,
            worker_selector: "k3s-autoscaler/role=worker".into(),
        }
    }
}

/// Why the view is implausible, or `None` when it may be acted on.
/// `previous_nodes` is the node count of the previous tick that saw the
/// cluster (a list that halves in one tick is a broken view far more
/// often than a real loss).
pub fn implausible(
    settings: &Settings,
    view: &ClusterView,
    fleet: &[Instance],
    previous_nodes: Option<usize>,
    now: Timestamp,
) -> Option<String> {
    implausible_judging(settings, view, fleet, previous_nodes, now, &BTreeSet::new())
}

/// As `implausible`, with the view matched to `fleet` by the caller,
/// once for this tick.
pub fn implausible_matched(
    settings: &Settings,
    view: &ClusterView,
    matched: &FleetMatch<'_>,
    fleet: &[Instance],
    previous_nodes: Option<usize>,
    now: Timestamp,
) -> Option<String> {
    judge(
        settings,
        view,
        matched,
        fleet,
        previous_nodes,
        now,
        &BTreeSet::new(),
    )
}

/// As `implausible`, for the operation in flight's own terminate of
/// `judged` (its launches that never joined, or its drained node): their
/// missing nodes are the claim under test, each already confirmed by a
/// look-up under any labels, so they are no evidence against the view in
/// the unready share (a launch of four that never joined beside four Ready
/// workers is a broken launch, not a broken view). The other rules count
/// them as before: another cluster's list would confirm them all. The
/// policy's clean-up does not use this: its candidates are not looked up
/// until it runs, and labels removed from half the fleet would make every
/// one of them a candidate.
pub fn implausible_judging(
    settings: &Settings,
    view: &ClusterView,
    fleet: &[Instance],
    previous_nodes: Option<usize>,
    now: Timestamp,
    judged: &BTreeSet<&str>,
) -> Option<String> {
    judge(
        settings,
        view,
        &FleetMatch::new(view, fleet),
        fleet,
        previous_nodes,
        now,
        judged,
    )
}

fn judge(
    settings: &Settings,
    view: &ClusterView,
    matched: &FleetMatch<'_>,
    fleet: &[Instance],
    previous_nodes: Option<usize>,
    now: Timestamp,
    judged: &BTreeSet<&str>,
) -> Option<String> {
    let rules = &settings.sanity;
    // Only instances old enough to have joined say anything about the view:
    // a fresh launch has no node yet on any healthy cluster.
    // Each with its node, matched once for the tick (a scan of the nodes
    // per instance was 5 000 × 5 000 comparisons a tick at 5 000 workers:
    // 106 ms of a `hold`).
    let (settled, settled_node): (Vec<&Instance>, Vec<Option<&crate::ports::Node>>) = fleet
        .iter()
        .enumerate()
        .filter(|(_, i)| i.managed && i.state.is_live())
        .filter(|(_, i)| now.since(i.launched_at) > settings.join_timeout)
        .map(|(at, i)| (i, matched.node_of_fleet(at).map(|n| &view.nodes[n])))
        .unzip();
    if view.nodes.is_empty() && !settled.is_empty() {
        return Some(format!(
            "kubernetes.worker_selector \"{}\" matches no node while {} managed instance(s) run",
            rules.worker_selector,
            settled.len()
        ));
    }
    if view.ready_workers() == 0 && !settled.is_empty() {
        return Some(format!(
            "no Ready worker while {} managed instance(s) run",
            settled.len()
        ));
    }
    // A worker node that maps to no instance (a providerID like
    // `k3s://ip-10-0-1-5` and a hostname for a name: a user-data template
    // without our `--node-name` and `provider-id`) makes every instance
    // look node-less: "never joined" cannot be told from joined.
    if let Some(n) = view.nodes.iter().find(|n| n.instance_id.is_none()) {
        return Some(format!(
            "node {} maps to no EC2 instance (its providerID is not aws:///zone/i-… and its name is not an instance id): a joined worker could not be told from one that never joined",
            n.name
        ));
    }
    if let Some(before) = previous_nodes
        && before >= 2
        && view.nodes.len() * 2 < before
    {
        return Some(format!(
            "the node list shrank from {before} to {} in one tick",
            view.nodes.len()
        ));
    }
    // Ready workers, not one of them on an instance of ours, while some of
    // ours have run past the join timeout with no node: the list is
    // another fleet's (a kubeconfig context, a DNS name or a load balancer
    // pointing at another cluster). Its answers would confirm "never
    // joined" for every instance of ours, however small the fleet (the
    // percentage rule below lets three through).
    let nodeless = settled_node.iter().filter(|n| n.is_none()).count();
    let ready: Vec<&crate::ports::Node> = view.nodes.iter().filter(|n| n.ready).collect();
    // Built only when some instance is node-less: the common tick has none.
    let foreign = nodeless > 0 && {
        let ours: super::id_map::IdSet = fleet
            .iter()
            .filter(|i| i.managed && i.state.is_live())
            .map(|i| i.id.as_str())
            .collect();
        ready
            .iter()
            .all(|n| n.instance_id.as_deref().is_none_or(|id| !ours.contains(id)))
    };
    if foreign {
        return Some(format!(
            "none of the {} Ready worker node(s) runs on a managed instance of this cluster while {nodeless} managed instance(s) have run past engine.join_timeout with no node: either the node list is another cluster's (a kubeconfig context or API endpoint?) or those instances failed to join",
            ready.len()
        ));
    }
    let counted: Vec<Option<&crate::ports::Node>> = settled
        .iter()
        .zip(&settled_node)
        .filter(|(i, _)| !judged.contains(i.id.as_str()))
        .map(|(_, n)| *n)
        .collect();
    if !counted.is_empty() {
        let unready = counted
            .iter()
            .filter(|n| !n.is_some_and(|n| n.ready))
            .count();
        let percent = 100.0 * unready as f64 / counted.len() as f64;
        if unready > rules.ok_unready_count && percent > rules.max_unready_percent {
            return Some(format!(
                "{unready} of {} running managed instances ({percent:.0} %) have no Ready node (more than engine.max_unready_percent {:.0} %)",
                counted.len(),
                rules.max_unready_percent
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{at, instance, node};
    use std::time::Duration;

    #[test]
    fn a_node_that_maps_to_no_instance_stops_destructive_steps() {
        let now = at(10_000);
        let mut view = ClusterView::default();
        view.nodes.push(node("i-0", 0));
        let mut hostname = node("ip-10-0-1-5", 0);
        hostname.instance_id = None;
        view.nodes.push(hostname);
        let fleet = old_fleet(2, now);
        let why = implausible(&settings(), &view, &fleet, None, now).expect("a stop");
        assert!(
            why.contains("ip-10-0-1-5") && why.contains("maps to no EC2 instance"),
            "{why}"
        );
        view.nodes.pop();
        view.nodes.push(node("i-1", 0));
        assert_eq!(implausible(&settings(), &view, &fleet, None, now), None);
    }

    /// Another cluster's API server: Ready workers on instances that are
    /// not ours, and ours (three: under the percentage rule's count) with
    /// no node. One worker of ours among them makes the view plausible.
    #[test]
    fn a_node_list_of_another_fleet_stops_destructive_steps() {
        let now = at(10_000);
        let fleet = old_fleet(3, now);
        let mut view = ClusterView::default();
        for i in 0..3 {
            let mut other = node(&format!("i-0other{i}"), 0);
            other.name = format!("other-worker-{i}");
            view.nodes.push(other);
        }
        let why = implausible(&settings(), &view, &fleet, None, now).expect("a stop");
        assert!(
            why.contains("none of the 3 Ready worker node(s) runs on a managed instance"),
            "{why}"
        );
        view.nodes.push(node(&fleet[0].id, 0));
        assert_eq!(implausible(&settings(), &view, &fleet, None, now), None);
    }

    fn settings() -> Settings {
        Settings {
            join_timeout: Duration::from_secs(600),
            ..Settings::default()
        }
    }

    fn old_fleet(n: usize, now: Timestamp) -> Vec<Instance> {
        (0..n)
            .map(|k| {
                let mut i = instance(&format!("i-{k}"));
                i.launched_at = now.minus(Duration::from_secs(3600));
                i
            })
            .collect()
    }

    fn view_of(ids: &[&str], ready: bool) -> ClusterView {
        ClusterView {
            nodes: ids
                .iter()
                .map(|id| {
                    let mut n = node(id, 0);
                    n.ready = ready;
                    n
                })
                .collect(),
            ..ClusterView::default()
        }
    }

    #[test]
    fn an_empty_node_list_beside_running_workers_names_the_selector() {
        let now = at(7200);
        let why = implausible(
            &settings(),
            &ClusterView::default(),
            &old_fleet(3, now),
            None,
            now,
        )
        .expect("implausible");
        assert!(why.contains("k3s-autoscaler/role=worker"), "{why}");
        assert!(why.contains("3 managed"), "{why}");
    }

    #[test]
    fn fresh_launches_without_nodes_are_normal() {
        let now = at(7200);
        let mut fleet = old_fleet(2, now);
        for i in &mut fleet {
            i.launched_at = now.minus(Duration::from_secs(30));
        }
        assert_eq!(
            implausible(&settings(), &ClusterView::default(), &fleet, None, now),
            None
        );
    }

    #[test]
    fn an_operations_own_never_joined_launches_are_no_evidence_in_the_unready_share() {
        let now = at(7200);
        // Four Ready workers and the four launches of one operation that
        // never joined: 50 %, a stop for anything else…
        let fleet = old_fleet(8, now);
        let half = view_of(&["i-0", "i-1", "i-2", "i-3"], true);
        assert!(implausible(&settings(), &half, &fleet, None, now).is_some());
        // …but not for that operation's terminate of those four.
        let judged: BTreeSet<&str> = ["i-4", "i-5", "i-6", "i-7"].into();
        assert_eq!(
            implausible_judging(&settings(), &half, &fleet, None, now, &judged),
            None
        );
        // Judging two of them leaves 2 of 6 other unready: still fine;
        // judging instances that have nodes changes nothing.
        let two: BTreeSet<&str> = ["i-4", "i-5"].into();
        assert_eq!(
            implausible_judging(&settings(), &half, &fleet, None, now, &two),
            None
        );
        let with_nodes: BTreeSet<&str> = ["i-0", "i-1"].into();
        assert!(implausible_judging(&settings(), &half, &fleet, None, now, &with_nodes).is_some());
        // The other rules still count them: an empty list, or another
        // fleet's, confirms every "never joined".
        let empty = ClusterView::default();
        assert!(implausible_judging(&settings(), &empty, &fleet, None, now, &judged).is_some());
        let foreign = view_of(&["x-0", "x-1", "x-2", "x-3"], true);
        let why = implausible_judging(&settings(), &foreign, &fleet, None, now, &judged)
            .expect("another fleet's list");
        assert!(why.contains("another cluster"), "{why}");
    }

    #[test]
    fn no_ready_worker_and_too_many_unready_are_implausible() {
        let now = at(7200);
        let fleet = old_fleet(4, now);
        let none_ready = view_of(&["i-0", "i-1", "i-2", "i-3"], false);
        assert!(
            implausible(&settings(), &none_ready, &fleet, None, now)
                .is_some_and(|w| w.contains("no Ready worker"))
        );
        // 4 of 8 (50 %) without a node: above 45 % and above 3.
        let fleet = old_fleet(8, now);
        let half = view_of(&["i-0", "i-1", "i-2", "i-3"], true);
        let why = implausible(&settings(), &half, &fleet, None, now).expect("implausible");
        assert!(why.contains("4 of 8"), "{why}");
        // 2 of 8 (25 %): real strays, not a broken view.
        let two = view_of(&["i-0", "i-1", "i-2", "i-3", "i-4", "i-5"], true);
        assert_eq!(implausible(&settings(), &two, &fleet, None, now), None);
        // 2 of 4 (50 %) on a small cluster: two strays are not a broken
        // view either (the clean-up must be able to remove them).
        let small = old_fleet(4, now);
        let half_small = view_of(&["i-0", "i-1"], true);
        assert_eq!(
            implausible(&settings(), &half_small, &small, None, now),
            None
        );
    }

    #[test]
    fn a_node_list_that_halves_in_one_tick_is_implausible() {
        let now = at(7200);
        let view = view_of(&["i-0", "i-1"], true);
        let fleet = old_fleet(2, now);
        assert!(
            implausible(&settings(), &view, &fleet, Some(6), now)
                .is_some_and(|w| w.contains("from 6 to 2"))
        );
        assert_eq!(implausible(&settings(), &view, &fleet, Some(4), now), None);
    }
}
