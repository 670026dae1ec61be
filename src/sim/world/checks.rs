//! The invariants the world checks on every call: who may change it
//! (1, 6, 8), one node at a time (2), what a termination may remove (4, 5,
//! 10), that launches join or go (7), and the fleet's bounds (3).

use super::World;
use std::time::Duration;

/// What a mutating call does to the world, for the invariants that tell a
/// step forward from the undoing of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideEffect {
    /// Launch, cordon, evict, terminate, delete a node.
    Forward,
    /// Uncordon, untaint: what an aborted or expired intent runs.
    Undo,
}

impl World {
    /// Invariants 6 and 8: a side effect must come from the current lock
    /// holder, before its lease ran out, and never from a read-only engine.
    /// An event is no side effect of an operation (every engine tells its
    /// pending pods why they wait, lock or not), but it is a write: a
    /// read-only engine makes none (invariant 8).
    pub fn check_event_write(&mut self, engine: usize, what: &str) {
        let now = self.now;
        if self.engines.get(engine).is_some_and(|t| t.read_only) {
            self.invariants.breach(
                now,
                8,
                format!("read-only engine made a mutating call: {what}"),
            );
        }
    }

    pub fn check_side_effect(&mut self, engine: usize, what: &str, kind: SideEffect) {
        let now = self.now;
        let Some(track) = self.engines.get_mut(engine) else {
            return;
        };
        track.mutating_calls += 1;
        let read_only = track.read_only;
        let lease_until = track.lease_until;
        if read_only {
            self.invariants.breach(
                now,
                8,
                format!("read-only engine made a mutating call: {what}"),
            );
        }
        // Invariant 6 is about the holder's own lease: a break-glass that
        // bumps the fence mid-lease fences its *writes* (invariant 1); its
        // idempotent effects may finish within the lease it was granted.
        if lease_until.is_none_or(|until| now > until) {
            self.invariants.breach(
                now,
                6,
                format!("{what} by engine {engine} outside any lease it was granted"),
            );
        }
        // …and never on an intent decided too long ago: the first effect of
        // an intent must come within its bound (plus one call's length).
        if kind == SideEffect::Forward
            && let Some(op) = self.table.record.in_flight()
            && op.phase.is_intent()
        {
            let age = now.since(op.updated);
            let bound = self.settings.intent_ttl + crate::engine::lock::EFFECT_CALL_CEILING;
            if age > bound {
                self.invariants.breach(
                    now,
                    6,
                    format!(
                        "{what} by engine {engine} on the intent of {} recorded {}s ago (bound {}s)",
                        op.id,
                        age.as_secs(),
                        bound.as_secs()
                    ),
                );
            }
        }
    }

    /// Invariant 1 on what an engine *sends*: an operation write must carry
    /// the lease this engine was last granted. The table would refuse a
    /// forged or stale fence anyway, so a check on accepted writes alone
    /// could only ever catch a bug in the table, never one in an engine.
    pub fn check_lease_sent(&mut self, engine: usize, lease: &crate::ports::Lease) {
        let now = self.now;
        let Some(track) = self.engines.get(engine) else {
            return;
        };
        let sent = (lease.lease_id.as_str(), lease.fence);
        let text = match &track.granted {
            Some((id, fence)) if (id.as_str(), *fence) == sent => return,
            Some((id, fence)) => format!(
                "engine {engine} sent an operation write with lease {} fence {}; it was last granted lease {id} fence {fence}",
                lease.lease_id, lease.fence
            ),
            None => format!(
                "engine {engine} sent an operation write with lease {} fence {} but was never granted a lease",
                lease.lease_id, lease.fence
            ),
        };
        self.invariants.breach(now, 1, text);
    }

    /// Invariant 2's second half: a scale-down drains one node at a time,
    /// so no node is cordoned for one while a node cordoned for another
    /// is still cordoned and running. (An operator's cordon, an operation
    /// of its own, is neither.)
    pub fn check_one_node_at_a_time(&mut self, node: &str) {
        let Some(op_id) = self
            .table
            .record
            .in_flight()
            .filter(|op| matches!(op.kind, crate::ports::OpKind::ScaleDown { .. }))
            .map(|op| op.id.clone())
        else {
            return;
        };
        let others: Vec<String> = self
            .invariants
            .drain_cordons
            .iter()
            .filter(|(name, _)| name.as_str() != node)
            .map(|(name, _)| name)
            .filter(|name| self.fleet.nodes.get(*name).is_some_and(|n| n.cordoned))
            .filter(|name| {
                self.fleet
                    .nodes
                    .get(*name)
                    .and_then(|n| self.fleet.instances.get(&n.instance_id))
                    .is_some_and(|i| i.state.is_live())
            })
            .cloned()
            .collect();
        self.invariants
            .drain_cordons
            .insert(node.to_string(), op_id);
        if !others.is_empty() {
            let now = self.now;
            self.invariants.breach(
                now,
                2,
                format!(
                    "cordon of {node} for a scale-down while {} is still cordoned for one",
                    others.join(", ")
                ),
            );
        }
    }

    /// Invariants 4 and 5 at the moment of termination.
    pub(super) fn check_terminations(&mut self, ids: &[String]) {
        let now = self.now;
        let ready_after = self
            .fleet
            .nodes
            .values()
            .filter(|n| n.ready && !ids.contains(&n.instance_id))
            .count() as u32;
        let removes_ready = ids
            .iter()
            .any(|id| self.fleet.nodes.get(id).is_some_and(|n| n.ready));
        if removes_ready && ready_after < self.settings.min_workers {
            self.invariants.breach(
                now,
                4,
                format!(
                    "terminating {} leaves {ready_after} Ready workers, below min {}",
                    ids.join(","),
                    self.settings.min_workers
                ),
            );
        }
        for id in ids {
            let Some(node) = self.fleet.nodes.get(id) else {
                continue;
            };
            let undrained: Vec<String> = self
                .workload
                .pods
                .values()
                .filter(|p| p.node.as_deref() == Some(id))
                .filter(|p| p.owner_kind != "DaemonSet" && p.deleting_at.is_none())
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect();
            // A node still carrying the startup taint never had a pod scheduled.
            let fenced = node.cordoned || node.startup_taint;
            if node.ready && !undrained.is_empty() {
                self.invariants.breach(
                    now,
                    5,
                    format!(
                        "terminated node {id} with {} pod(s) left on it: {} (cordoned: {})",
                        undrained.len(),
                        undrained.join(", "),
                        node.cordoned
                    ),
                );
            } else if node.ready && !fenced {
                self.invariants.breach(
                    now,
                    5,
                    format!("terminated node {id}, Ready and neither cordoned nor tainted"),
                );
            }
        }
    }

    /// Invariant 10 (blast radius): a clean-up or a scale-down terminates
    /// one instance per operation, whatever view it was decided on.
    pub(super) fn check_blast_radius(&mut self, ids: &[String]) {
        if ids.len() > 1
            && self.table.record.in_flight().is_some_and(|op| {
                matches!(
                    op.kind,
                    crate::ports::OpKind::TerminateStrays { .. }
                        | crate::ports::OpKind::ScaleDown { .. }
                )
            })
        {
            self.invariants.breach(
                self.now,
                10,
                format!(
                    "{} instances terminated by one operation: {}",
                    ids.len(),
                    ids.join(",")
                ),
            );
        }
    }

    /// Invariant 7: a launched instance is a Ready node or terminated within
    /// join_timeout + one tick, not counting the time injected faults kept
    /// every engine from acting (`Invariants::lost`).
    pub(super) fn check_join_deadlines(&mut self) {
        let limit = self.settings.join_timeout + self.settings.tick + Duration::from_secs(1);
        let now = self.now;
        let invariants = &self.invariants;
        let late: Vec<String> = self
            .fleet
            .instances
            .values()
            .filter(|i| {
                i.op_id.is_some()
                    && i.state.is_live()
                    && now.since(i.launched_at)
                        > limit + invariants.lost_between(i.launched_at, now)
            })
            .filter(|i| !self.fleet.nodes.contains_key(&i.id))
            .filter(|i| !self.invariants.late_instances.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        for id in late {
            self.invariants.late_instances.insert(id.clone());
            self.invariants.breach(
                now,
                7,
                format!(
                    "instance {id} neither joined nor was terminated within join_timeout + one tick"
                ),
            );
        }
    }

    /// Invariant 3 over the whole fleet, checked after every tick.
    pub fn check_fleet(&mut self) {
        let live = self.fleet.live_managed() as u32;
        if live > self.settings.max_workers {
            let now = self.now;
            self.invariants.breach(
                now,
                3,
                format!(
                    "{live} managed workers exceed max_workers {}",
                    self.settings.max_workers
                ),
            );
        }
        let mut per_op: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
        for i in self.fleet.instances.values() {
            if let Some(op) = &i.op_id {
                *per_op.entry(op.as_str()).or_default() += 1;
            }
        }
        let now = self.now;
        for (op, launched) in per_op {
            let allowed = self.invariants.op_counts.get(op).copied().unwrap_or(0);
            if launched > allowed {
                self.invariants.breach(
                    now,
                    3,
                    format!("double launch: {launched} instances tagged {op} (count {allowed})"),
                );
                // Report each double launch once.
                self.invariants.op_counts.insert(op.to_string(), launched);
            }
        }
    }
}
