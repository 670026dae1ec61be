//! Faults from a world wider than the model, on the engine's view only:
//! a worker's CPU series missing (its scrape failing) and the Kubernetes
//! API answering for another cluster. Each keeps its own random stream
//! (`FaultPlan`), so its own draws shift no other; what the engines do
//! differently while one lasts (fewer calls, other calls) does, so a seed
//! recorded before they existed replays differently.

use super::faulty::FaultyPorts;
use crate::ports::{Clock, Node, PortError};
use crate::sim::ports::lock;
use std::time::Duration;

impl FaultyPorts {
    /// The worker whose node-exporter scrape is failing now, if any: a gap
    /// lasts one to five minutes and, when one starts, hits the busiest
    /// worker (the one whose scrape times out first).
    pub(super) fn scrape_gap(&self) -> Option<String> {
        let now = self.shared.clock.now();
        {
            let mut plan = self.shared.plan();
            if let Some((node, until)) = &plan.scrape_gap
                && now < *until
            {
                return Some(node.clone());
            }
            plan.scrape_gap = None;
            let p = plan.rates.scrape_gap;
            if !(plan.active && plan.scrape_rng.chance(p)) {
                return None;
            }
        }
        // Never the world while holding the plan: the harness holds the
        // world and then takes the plan (mod.rs), so the other order could
        // deadlock.
        let busiest = lock(&self.shared.world)
            .workload
            .node_cpu
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(node, _)| node.clone())?;
        let mut plan = self.shared.plan();
        plan.count("cpu_series_missing");
        let lasts = Duration::from_secs(60 + plan.scrape_rng.below(240));
        plan.scrape_gap = Some((busiest.clone(), now.plus(lasts)));
        Some(busiest)
    }

    /// Whether the API server answers for another cluster now: a spell
    /// lasts one to five minutes, rolled on node listings.
    pub(super) fn other_cluster(&self, may_start: bool) -> bool {
        let now = self.shared.clock.now();
        let mut plan = self.shared.plan();
        if plan.other_cluster_until.is_some_and(|until| now < until) {
            return true;
        }
        plan.other_cluster_until = None;
        let p = plan.rates.other_cluster;
        if !(may_start && plan.active && plan.other_rng.chance(p)) {
            return false;
        }
        plan.count("other_cluster");
        let lasts = Duration::from_secs(60 + plan.other_rng.below(240));
        plan.other_cluster_until = Some(now.plus(lasts));
        drop(plan);
        // Every engine holds while it sees another fleet: invariant 7's
        // deadline (a launch joins or is terminated in time) discounts it.
        lock(&self.shared.world)
            .invariants
            .note_lost(now, now.plus(lasts));
        true
    }

    /// The other cluster's workers: as many as ours, Ready, on instances
    /// that are not ours, under the same worker label.
    pub(super) fn foreign_nodes(ours: &[Node]) -> Vec<Node> {
        ours.iter()
            .enumerate()
            .map(|(i, n)| {
                let mut other = n.clone();
                other.name = format!("other-worker-{i}");
                other.instance_id = Some(format!("i-0other{i:011}"));
                other.ready = true;
                other.cordoned = false;
                other.startup_taint = false;
                other
            })
            .collect()
    }

    pub(super) fn not_in_other_cluster(what: &str) -> PortError {
        PortError::NotFound(format!(
            "{what} not found (the API server answers for another cluster, injected)"
        ))
    }
}
