//! The oracle's hands (`--compare oracle`, `harness/oracle.rs`): a fleet
//! run with perfect foresight of the demand. It knows the scenario's
//! demand at any time and what the controllers ask for at that demand,
//! launches each worker so that it joins when it is first needed, and
//! removes a worker as soon as its pods fit on the others. No lock, no
//! operation, no drain, no failed boot: it is the physical limit a policy
//! is measured against, not a policy, so it bypasses the ports (and the
//! invariant checks that watch them).

use super::World;
use crate::ports::{InstanceState, Resources, Timestamp};
use crate::sim::fleet::{NODE_ALLOCATABLE, PENDING_FOR};
use crate::sim::workload::{Replicas, Workload};
use std::time::Duration;

impl World {
    /// Workers the pods wanted at `t` need, packed first-fit decreasing
    /// onto empty workers, within `min_workers` and `max_workers` (so the
    /// oracle too leaves pods pending where `max_workers` binds). Pods no
    /// worker could hold are left out: no fleet places them.
    pub fn workers_needed_at(&self, t: Timestamp) -> u32 {
        let (pods, per_node) = wanted_at(&self.workload, self.scenario.demand(t));
        let capacity = NODE_ALLOCATABLE.saturating_sub(per_node);
        let packed = workers_to_fit(&pods, capacity);
        packed.clamp(self.settings.min_workers, self.settings.max_workers.max(1))
    }

    /// How long before it is needed a worker must be launched: until its
    /// instance runs and its kubelet registers.
    pub fn join_lead(&self) -> Duration {
        self.settings.boot_delay.max(PENDING_FOR)
    }

    /// Launch `count` workers that join after exactly the boot delay,
    /// untainted (nothing verifies them). One scale-up.
    pub fn foresight_launch(&mut self, count: u32) {
        if count == 0 {
            return;
        }
        let now = self.now;
        let join_at = now.plus(self.join_lead());
        for _ in 0..count {
            self.fleet
                .add_instance(&mut self.rng, now, None, Some(join_at), false);
        }
        self.accounting.scale_ups += 1;
    }

    /// Remove the worker whose pods fit on the other Ready workers, the one
    /// with the least requested first; pods move at once (their node is
    /// gone, their controllers recreate them, the scheduler places them on
    /// the next step). A worker still booting goes first: it holds no pod.
    /// `false` when no worker can go, or a pod is pending (it needs the
    /// room). One scale-down.
    pub fn foresight_remove_one(&mut self) -> bool {
        if self.workload.unschedulable_count() > 0 {
            return false;
        }
        let booting = self
            .fleet
            .instances
            .values()
            .filter(|i| i.managed && i.state.is_live() && !self.fleet.nodes.contains_key(&i.id))
            .map(|i| i.id.clone())
            .min();
        let victim = booting.or_else(|| self.emptiest_movable_worker());
        let Some(id) = victim else {
            return false;
        };
        if let Some(i) = self.fleet.instances.get_mut(&id) {
            i.state = InstanceState::ShuttingDown;
            i.state_since = self.now;
        }
        self.fleet.nodes.remove(&id);
        self.accounting.scale_downs += 1;
        true
    }

    /// The Ready worker with the least requested whose movable pods (all
    /// but the per-node ones) fit, first-fit decreasing, into what the
    /// other Ready workers have free.
    fn emptiest_movable_worker(&self) -> Option<String> {
        let used = self.workload.requested_by_node();
        let ready: Vec<&str> = self
            .fleet
            .nodes
            .values()
            .filter(|n| {
                n.ready
                    && !n.cordoned
                    && self
                        .fleet
                        .instances
                        .get(&n.instance_id)
                        .is_some_and(|i| i.managed)
            })
            .map(|n| n.name.as_str())
            .collect();
        let mut by_load: Vec<(Resources, &str)> = ready
            .iter()
            .map(|n| (used.get(n).copied().unwrap_or_default(), *n))
            .collect();
        by_load.sort_by_key(|(r, n)| (r.cpu_millis, r.memory_bytes, *n));
        by_load
            .into_iter()
            .map(|(_, n)| n)
            .find(|&candidate| {
                let mut moving: Vec<Resources> = self
                    .workload
                    .pods
                    .values()
                    .filter(|p| p.node.as_deref() == Some(candidate) && p.deleting_at.is_none())
                    .filter(|p| p.owner_kind != "DaemonSet")
                    .map(|p| p.requests)
                    .collect();
                moving.sort_by_key(|r| std::cmp::Reverse((r.cpu_millis, r.memory_bytes)));
                let mut free: Vec<Resources> = ready
                    .iter()
                    .filter(|n| **n != candidate)
                    .map(|n| {
                        NODE_ALLOCATABLE.saturating_sub(used.get(n).copied().unwrap_or_default())
                    })
                    .collect();
                moving
                    .iter()
                    .all(|pod| match free.iter_mut().find(|f| f.fits(*pod)) {
                        Some(slot) => {
                            *slot = slot.saturating_sub(*pod);
                            true
                        }
                        None => false,
                    })
            })
            .map(str::to_string)
    }
}

/// What the controllers would ask for at `demand`: the requests of every
/// pod a scheduler must place (gated pods are left out: nothing places
/// them), and what the per-node pods (DaemonSets) take on every node.
fn wanted_at(workload: &Workload, demand: f64) -> (Vec<Resources>, Resources) {
    let mut pods = Vec::new();
    let mut per_node = Resources::default();
    for c in &workload.controllers {
        if c.replicas == Replicas::PerNode {
            per_node = per_node.plus(c.requests);
        } else if c.scheduling_gates.is_empty() {
            let n = workload.desired(c, demand, 0);
            pods.extend(std::iter::repeat_n(c.requests, n as usize));
        }
    }
    (pods, per_node)
}

/// First-fit decreasing of `pods` onto empty workers of `capacity`: how
/// many it takes. A pod larger than a worker is left out.
fn workers_to_fit(pods: &[Resources], capacity: Resources) -> u32 {
    let mut sorted: Vec<Resources> = pods.iter().copied().filter(|p| capacity.fits(*p)).collect();
    sorted.sort_by_key(|r| std::cmp::Reverse((r.cpu_millis, r.memory_bytes)));
    let mut free: Vec<Resources> = Vec::new();
    for pod in sorted {
        match free.iter_mut().find(|f| f.fits(pod)) {
            Some(slot) => *slot = slot.saturating_sub(pod),
            None => free.push(capacity.saturating_sub(pod)),
        }
    }
    free.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_counts_workers_first_fit_decreasing_and_leaves_out_what_fits_nowhere() {
        let cap = Resources::new(1_000, 1 << 30);
        let pods = [
            Resources::new(600, 1),
            Resources::new(400, 1),
            Resources::new(500, 1),
            Resources::new(500, 1),
            Resources::new(2_000, 1),
        ];
        assert_eq!(workers_to_fit(&pods, cap), 2, "600+400, 500+500");
        assert_eq!(workers_to_fit(&[], cap), 0);
        assert_eq!(workers_to_fit(&[Resources::new(10, 2 << 30)], cap), 0);
    }
}
