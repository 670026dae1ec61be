//! `--demo --drift`: start the simulated cluster with one of each
//! reconciliation finding, so the console's reconciliation view
//! and `status` have something to show and tests something to detect.
//! Each is what a real cluster accumulates: an instance that booted but
//! never joined, one launched by hand, a node whose instance someone
//! terminated, a node someone cordoned and forgot, and a scale-up whose
//! engine crashed and whose instances were terminated since.

use super::World;
use crate::ports::{InstanceState, OpKind, OpPhase, OpRecord, OpStep, Operation, Origin};
use std::time::Duration;

/// What was injected, for tests to look for.
#[derive(Clone, Debug, Default)]
pub struct Drift {
    pub never_joined: String,
    pub orphan: String,
    pub ghost_node: String,
    pub stray_cordon: String,
    pub gone_op: String,
}

impl World {
    pub fn inject_drift(&mut self) -> Drift {
        let now = self.now;
        let long_ago = now.minus(self.settings.join_timeout + Duration::from_secs(240));
        // Never joined: launched by an earlier operation of ours (its op-id
        // tag: only those are cleaned up without asking) well past the join
        // timeout, no node.
        let never_joined = self.fleet.add_instance(
            &mut self.rng,
            long_ago,
            Some("op-drifted".into()),
            None,
            false,
        );
        // Orphan: launched a minute ago by someone else; it will not join
        // either, so after the join timeout it turns into "never joined".
        let orphan = self.fleet.add_instance(
            &mut self.rng,
            now.minus(Duration::from_secs(60)),
            None,
            None,
            false,
        );
        // Planted, not launched in this run: invariant 7 (a launch joins or
        // is terminated in time) is about the engines' launches.
        self.invariants.late_instances.insert(never_joined.clone());
        for id in [&never_joined, &orphan] {
            if let Some(i) = self.fleet.instances.get_mut(id) {
                i.state = InstanceState::Running;
                i.state_since = i.launched_at.plus(Duration::from_secs(10));
            }
        }
        let mut workers: Vec<(String, String)> = self
            .fleet
            .nodes
            .values()
            .map(|n| (n.name.clone(), n.instance_id.clone()))
            .collect();
        workers.sort();
        // Ghost: the last worker's instance terminated behind our back ten
        // minutes ago, so its node has been NotReady for longer than the
        // five minutes a ghost must be NotReady before it is deleted.
        let (ghost_node, ghost_instance) = workers.pop().unwrap_or_default();
        let ghost_since = now.minus(Duration::from_secs(600));
        if let Some(i) = self.fleet.instances.get_mut(&ghost_instance) {
            i.state = InstanceState::Terminated;
            i.state_since = ghost_since;
        }
        if let Some(n) = self.fleet.nodes.get_mut(&ghost_node) {
            n.set_ready(false, ghost_since);
            n.not_ready_since = Some(ghost_since);
        }
        // Stray cordon: the next one, cordoned by hand.
        let (stray_cordon, _) = workers.pop().unwrap_or_default();
        if let Some(n) = self.fleet.nodes.get_mut(&stray_cordon) {
            n.cordoned = true;
        }
        // A scale-up in Verifying whose two instances are gone.
        let gone_op = format!("op-drift-{:06}", self.rng.below(1_000_000));
        let started = now.minus(Duration::from_secs(180));
        let ids: Vec<String> = (0..2)
            .map(|_| {
                let id = self.fleet.add_instance(
                    &mut self.rng,
                    started,
                    Some(gone_op.clone()),
                    None,
                    false,
                );
                if let Some(i) = self.fleet.instances.get_mut(&id) {
                    i.state = InstanceState::Terminated;
                    i.state_since = now.minus(Duration::from_secs(30));
                }
                id
            })
            .collect();
        let fence = self.table.lock.as_ref().map_or(0, |l| l.fence);
        let previous = self.table.record.clone();
        self.table.record = OpRecord {
            rev: previous.rev + 1,
            op: Some(Operation {
                id: gone_op.clone(),
                kind: OpKind::ScaleUp {
                    count: 2,
                    client_token: gone_op.clone(),
                    instance_ids: ids.clone(),
                    plan: None,
                },
                phase: OpPhase::Verifying,
                origin: Origin::Engine,
                reasons: vec!["injected by --drift".into()],
                started,
                updated: started,
                deadline: Some(started.plus(self.settings.join_timeout)),
                steps: vec![OpStep {
                    at: started,
                    text: format!("launched {}", ids.join(", ")),
                }],
                outcome: None,
                fence,
                failed_before: 0,
                pending_since: None,
                last_failure: None,
                troubles: Vec::new(),
            }),
            ..previous
        };
        Drift {
            never_joined,
            orphan,
            ghost_node,
            stray_cordon,
            gone_op,
        }
    }
}
