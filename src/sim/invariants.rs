//! the invariants of docs/architecture.md §4, checked by the simulator on every call that
//! changes the world and on every step. A breach is recorded (and logged by
//! the runtime), never silently ignored.

use crate::ports::{OpKind, OpRecord, Timestamp};
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub at: Timestamp,
    /// Number of the invariant in docs/architecture.md §4.
    pub invariant: u8,
    pub text: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {} violated at {}: {}",
            self.invariant, self.at, self.text
        )
    }
}

#[derive(Debug, Default)]
pub struct Invariants {
    pub violations: Vec<Violation>,
    /// Highest fence seen on a successful write or acquire.
    pub highest_fence: u64,
    /// Instances already reported for invariant 7 (report once).
    pub late_instances: std::collections::BTreeSet<String>,
    /// Count of every scale-up ever recorded, by op id (invariant 3).
    pub op_counts: std::collections::BTreeMap<String, u32>,
    /// Nodes an engine cordoned for a scale-down and has not uncordoned,
    /// each with the operation it was cordoned for (invariant 2: one node
    /// at a time, across operations: a scale-down that ends with its node
    /// still cordoned leaves a second node out of service once the next
    /// one starts). An operator's cordon is not one; nor is a node whose
    /// operation ended saying it was left cordoned because the API server
    /// refused the uncordon for good (reported, and the operator's to fix).
    pub drain_cordons: std::collections::BTreeMap<String, String>,
    /// Spans during which an injected fault kept an engine from acting (it
    /// was suspended or paused, or its tick failed on a refused call).
    /// Invariant 7's deadline counts only the time outside them: it bounds
    /// a *live* engine, and no engine can beat an outage it cannot see past.
    pub lost: Vec<(Timestamp, Timestamp)>,
}

impl Invariants {
    /// Record that injected faults kept an engine from acting over
    /// `from..to`.
    pub fn note_lost(&mut self, from: Timestamp, to: Timestamp) {
        if to > from {
            self.lost.push((from, to));
        }
    }

    /// How much of `from..to` lies inside the recorded lost spans, each
    /// instant counted once however many spans (engines) cover it.
    pub fn lost_between(&self, from: Timestamp, to: Timestamp) -> Duration {
        let mut spans: Vec<(Timestamp, Timestamp)> = self
            .lost
            .iter()
            .map(|&(a, b)| (a.max(from), b.min(to)))
            .filter(|(a, b)| b > a)
            .collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut reach: Option<Timestamp> = None;
        for (a, b) in spans {
            let start = reach.map_or(a, |r| r.max(a));
            if b > start {
                total += b.since(start);
                reach = Some(b);
            }
        }
        total
    }

    pub fn breach(&mut self, at: Timestamp, invariant: u8, text: impl Into<String>) {
        self.violations.push(Violation {
            at,
            invariant,
            text: text.into(),
        });
    }

    /// Invariant 11: a pause in force is honoured. No accepted write
    /// starts or moves an operation while one is in force, except that the
    /// circuit breaker's lets the clean-up of instances that never joined
    /// start and advance. Writes that leave the operation as it was (the
    /// pause set, extended or lifted) are what a pause is made of.
    fn check_pause_honoured(&mut self, at: Timestamp, old: &OpRecord, new: &OpRecord) {
        let Some(pause) = old.paused_at(at) else {
            return;
        };
        let Some(op) = new.op.as_ref().filter(|_| new.op != old.op) else {
            return;
        };
        if pause.circuit && matches!(op.kind, OpKind::TerminateStrays { .. }) {
            return;
        }
        let started = old.op.as_ref().is_none_or(|o| o.id != op.id);
        let verb = if started { "started" } else { "moved to" };
        let phase = if started {
            String::new()
        } else {
            format!(" {}", op.phase)
        };
        self.breach(
            at,
            11,
            format!(
                "{} {} {verb}{phase} under the pause by {}",
                op.kind.name(),
                op.id,
                pause.by
            ),
        );
    }

    /// Invariant 1: fences strictly increase across acquisitions.
    pub fn on_acquire(&mut self, at: Timestamp, fence: u64) {
        if fence <= self.highest_fence {
            self.breach(
                at,
                1,
                format!(
                    "fence {fence} granted after fence {} was seen",
                    self.highest_fence
                ),
            );
        }
        self.highest_fence = self.highest_fence.max(fence);
    }

    /// Invariants 1 and 2 on an operation write that the table accepted.
    pub fn on_op_write(&mut self, at: Timestamp, lock_fence: u64, old: &OpRecord, new: &OpRecord) {
        if lock_fence < self.highest_fence {
            self.breach(
                at,
                1,
                format!(
                    "write with fence {lock_fence} after fence {}",
                    self.highest_fence
                ),
            );
        }
        if let (Some(old_op), Some(new_op)) = (old.in_flight(), new.op.as_ref())
            && old_op.id != new_op.id
        {
            self.breach(
                at,
                2,
                format!(
                    "operation {} started while {} was in flight",
                    new_op.id, old_op.id
                ),
            );
        }
        if new.rev <= old.rev {
            self.breach(
                at,
                1,
                format!("record revision went from {} to {}", old.rev, new.rev),
            );
        }
        self.check_pause_honoured(at, old, new);
        if let Some(op) = new.op.as_ref()
            && let OpKind::ScaleDown { node, .. } = &op.kind
            && op.phase.is_terminal()
            && op
                .outcome
                .as_deref()
                .is_some_and(|o| o.contains("left cordoned"))
        {
            self.drain_cordons.remove(node);
        }
        if let Some(op) = new.op.as_ref()
            && let OpKind::ScaleUp { count, .. } = op.kind
        {
            self.op_counts.insert(op.id.clone(), count);
        }
        if let Some(OpKind::ScaleUp {
            count,
            instance_ids,
            ..
        }) = new.op.as_ref().map(|o| &o.kind)
            && instance_ids.len() > *count as usize
        {
            self.breach(
                at,
                3,
                format!(
                    "{} instances recorded for a scale-up of {count}",
                    instance_ids.len()
                ),
            );
        }
    }
}
