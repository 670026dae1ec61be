//! The operation state machines of docs/architecture.md §3, as a protocol engine without
//! IO: given the durable record and a fresh view of the world, say the next
//! thing to do; given what happened, say what to record. The executor in
//! `runtime/` performs the effects and the fenced writes.

use super::settings::Settings;
use crate::ports::{
    EvictionOutcome, Instance, LaunchRequest, Node, OpKind, OpPhase, OpRecord, OpStep, Operation,
    Origin, Pdb, Pod, PodRef, PortError, Timestamp,
};
use std::collections::BTreeSet;

/// What an operation is started to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    ScaleUp {
        count: u32,
    },
    ScaleDown {
        node: String,
        instance_id: String,
    },
    Cordon {
        node: String,
        cordon: bool,
    },
    /// Clean-up: terminate managed instances no operation owns (never
    /// joined, or orphaned), if they still have no node when the time comes.
    TerminateStrays {
        instances: Vec<String>,
    },
    /// Clean-up: delete a node object whose instance is gone.
    DeleteGhost {
        node: String,
    },
}

impl Intent {
    pub fn label(&self) -> String {
        match self {
            Intent::ScaleUp { count } => format!("scale-up +{count}"),
            Intent::ScaleDown { node, .. } => format!("scale-down {node}"),
            Intent::Cordon { node, cordon: true } => format!("cordon {node}"),
            Intent::Cordon {
                node,
                cordon: false,
            } => format!("uncordon {node}"),
            Intent::TerminateStrays { instances } => format!("terminate {}", instances.join(", ")),
            Intent::DeleteGhost { node } => format!("delete the ghost node {node}"),
        }
    }
}

/// A fresh view of what the operation touches, read after taking the lock.
#[derive(Clone, Copy, Debug)]
pub struct OpView<'a> {
    pub nodes: &'a [Node],
    /// Instances tagged with the op id (scale-up), any state but terminated.
    pub op_instances: &'a [Instance],
    /// Pods on the node being drained (scale-down).
    pub node_pods: &'a [Pod],
    pub pdbs: &'a [Pdb],
    /// Pods (by uid) whose eviction was refused or failed transiently this
    /// tick, and nodes (by [`untaint_key`]) whose startup taint removal was
    /// sent this tick: not sent again until the next tick (that is the
    /// backoff).
    pub tried: &'a BTreeSet<String>,
    /// The K3s server (a scale-up's plan needs its address).
    pub master: Option<&'a Instance>,
    /// Live managed workers (a scale-up's plan balances subnets over them).
    pub fleet: &'a [Instance],
    /// Of a clean-up's instances, those that do have a node once the worker
    /// selector is ignored: they joined, and are never terminated as strays.
    pub joined_anywhere: &'a [String],
    /// A scale-down at TerminateIntended: `Some(true)` when its instance is
    /// no longer a live managed worker (an earlier attempt's terminate went
    /// out, and its engine died before recording it). `None`: not looked up.
    pub instance_gone: Option<bool>,
    /// The API server's version, read when a launch is planned and no
    /// `ec2.k3s_version` pins one.
    pub server_version: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Launch(LaunchRequest),
    Cordon {
        node: String,
    },
    /// Uncordon; with `abort`, the scale-down then ends Aborted for that reason.
    Uncordon {
        node: String,
        abort: Option<String>,
    },
    Evict(PodRef),
    Terminate {
        ids: Vec<String>,
        then: AfterTerminate,
    },
    DeleteNode {
        node: String,
    },
    /// Remove the startup taint from verified nodes: they take pods now.
    Untaint {
        nodes: Vec<String>,
    },
}

impl Effect {
    /// What cannot be undone: terminating an instance, evicting a pod,
    /// deleting a node object. Each is preceded by a fenced renew.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Effect::Terminate { .. } | Effect::Evict(_) | Effect::DeleteNode { .. }
        )
    }

    /// Undoes a step (uncordon, untaint): what an expired or aborted
    /// intent runs, so no intent age bound applies to it.
    pub fn is_undo(&self) -> bool {
        matches!(self, Effect::Uncordon { .. } | Effect::Untaint { .. })
    }

    /// For logs and the operation panel.
    pub fn describe(&self) -> String {
        match self {
            Effect::Launch(r) => format!("launch {} instance(s) for {}", r.count, r.op_id),
            Effect::Cordon { node } => format!("cordon {node}"),
            Effect::Uncordon { node, .. } => format!("uncordon {node}"),
            Effect::Evict(pod) => format!("evict {pod}"),
            Effect::Terminate { ids, .. } => format!("terminate {}", ids.join(", ")),
            Effect::DeleteNode { node } => format!("delete node {node}"),
            Effect::Untaint { nodes } => {
                format!("remove the startup taint from {}", nodes.join(", "))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterTerminate {
    /// Scale-down: remove the Node object, then Done.
    DeleteNode(String),
    /// Scale-up past its join deadline: Failed with this reason.
    Fail(String),
    /// Clean-up: Done with this note.
    Finish(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum EffectResult {
    Launched(Vec<Instance>),
    Evicted(EvictionOutcome),
    Ok,
    Err(PortError),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Nothing in flight.
    Idle,
    /// Write this record (fenced, conditioned on the current rev), then ask again.
    Write(Box<OpRecord>),
    /// Perform this effect (while the lease allows), then report with [`after`].
    Act(Effect),
    /// Ask again with a fresh view (after an eviction, say).
    Continue,
    /// Nothing more to do this tick.
    Wait(String),
}

/// The `tried` entry of a node whose startup taint removal was sent this
/// tick (pods are entered by uid, which never looks like this).
pub fn untaint_key(node: &str) -> String {
    format!("untaint:{node}")
}

/// Scale-ups in a row that ended Failed, and when the last one ended, as
/// of the operation `last` (the record's last or current one). Every
/// operation carries the row forward, not only scale-ups: a clean-up or
/// an operator's cordon between two failed launches must not reset the
/// back-off. A scale-up that ends Done ends the row, and so does quiet: a
/// row whose last failure is [`BACKOFF_RESET_AFTER`] old is forgotten (the
/// Cluster Autoscaler's back-off reset), so a failure last week does not
/// make today's first one wait thirty minutes.
pub fn failure_streak(last: Option<&Operation>, now: Timestamp) -> (u32, Option<Timestamp>) {
    match streak_of(last) {
        (failures, Some(since)) if now.since(since) < BACKOFF_RESET_AFTER => {
            (failures, Some(since))
        }
        _ => (0, None),
    }
}

/// How long a row of failed scale-ups is remembered after its last failure.
pub const BACKOFF_RESET_AFTER: std::time::Duration = std::time::Duration::from_secs(3 * 3600);

fn streak_of(last: Option<&Operation>) -> (u32, Option<Timestamp>) {
    match last {
        None => (0, None),
        Some(op) if matches!(op.kind, OpKind::ScaleUp { .. }) => match op.phase {
            OpPhase::Failed => (op.failed_before.saturating_add(1), Some(op.updated)),
            OpPhase::Done => (0, None),
            _ => (op.failed_before, op.last_failure),
        },
        Some(op) => (op.failed_before, op.last_failure),
    }
}

/// The record that starts an operation, to be written with the lock held.
pub fn start(
    record: &OpRecord,
    intent: &Intent,
    op_id: &str,
    origin: Origin,
    reasons: Vec<String>,
    fence: u64,
    now: Timestamp,
) -> OpRecord {
    let (kind, phase, step) = match intent {
        Intent::ScaleUp { count } => (
            OpKind::ScaleUp {
                count: *count,
                client_token: format!("k3sa-{op_id}"),
                instance_ids: Vec::new(),
                plan: None,
            },
            OpPhase::LaunchIntended,
            format!("intent: launch {count} worker(s)"),
        ),
        Intent::ScaleDown { node, instance_id } => (
            OpKind::ScaleDown {
                node: node.clone(),
                instance_id: Some(instance_id.clone()),
            },
            OpPhase::CordonIntended,
            format!("intent: drain and remove {node} ({instance_id})"),
        ),
        Intent::Cordon { node, cordon } => (
            OpKind::Cordon {
                node: node.clone(),
                cordon: *cordon,
            },
            OpPhase::CordonIntended,
            format!(
                "intent: {} {node}",
                if *cordon { "cordon" } else { "uncordon" }
            ),
        ),
        Intent::TerminateStrays { instances } => (
            OpKind::TerminateStrays {
                instances: instances.clone(),
                kept: Vec::new(),
            },
            OpPhase::TerminateIntended,
            format!(
                "intent: terminate {} (outside any operation)",
                instances.join(", ")
            ),
        ),
        Intent::DeleteGhost { node } => (
            OpKind::DeleteGhost { node: node.clone() },
            OpPhase::TerminateIntended,
            format!("intent: delete the node object {node} (its instance is gone)"),
        ),
    };
    let streak = failure_streak(record.op.as_ref(), now);
    let op = Operation {
        id: op_id.to_string(),
        kind,
        phase,
        origin,
        reasons,
        started: now,
        updated: now,
        deadline: None,
        steps: vec![OpStep {
            at: now,
            text: step,
        }],
        outcome: None,
        fence,
        failed_before: streak.0,
        last_failure: streak.1,
        // Pruned to the circuit breaker's window when this one ends.
        troubles: record
            .op
            .as_ref()
            .map(|o| o.troubles.clone())
            .unwrap_or_default(),
        pending_since: None,
    };
    OpRecord {
        rev: record.rev + 1,
        op: Some(op),
        ..record.clone()
    }
}

/// The record after moving the current operation to `phase`.
fn transition(
    record: &OpRecord,
    op: &Operation,
    phase: OpPhase,
    step: String,
    fence: u64,
    now: Timestamp,
    edit: impl FnOnce(&mut Operation),
) -> Next {
    let mut next_op = op.clone();
    next_op.phase = phase;
    next_op.updated = now;
    next_op.fence = fence;
    next_op.steps.push(OpStep {
        at: now,
        text: step,
    });
    edit(&mut next_op);
    let mut next = OpRecord {
        rev: record.rev + 1,
        op: None,
        ..record.clone()
    };
    if phase.is_terminal() && !matches!(next_op.kind, OpKind::Cordon { .. }) {
        next.last_scale_end = Some(now);
        if phase == OpPhase::Done && matches!(next_op.kind, OpKind::ScaleUp { .. }) {
            next.last_scale_up = Some(now);
        }
    }
    next.op = Some(next_op);
    Next::Write(Box::new(next))
}

fn end(
    record: &OpRecord,
    op: &Operation,
    phase: OpPhase,
    why: String,
    fence: u64,
    now: Timestamp,
) -> Next {
    let step = match phase {
        OpPhase::Done => format!("done: {why}"),
        other => format!("{}: {why}", other.as_str().to_lowercase()),
    };
    transition(record, op, phase, step, fence, now, |o| {
        o.outcome = Some(why)
    })
}

/// The next thing to do for the operation in flight. A write that ends it
/// also brings the circuit breaker's history up to date, and may open it
/// (engine/circuit.rs).
pub fn next(
    settings: &Settings,
    record: &OpRecord,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    let step = next_step(settings, record, view, fence, now);
    super::circuit::settle(&settings.circuit, record, step, &[], now)
}

fn next_step(
    settings: &Settings,
    record: &OpRecord,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    let Some(op) = record.in_flight() else {
        return Next::Idle;
    };
    if let Some(expired) = expired_intent(settings, record, op, view, fence, now) {
        return expired;
    }
    match (&op.kind, op.phase) {
        (OpKind::ScaleUp { .. }, OpPhase::LaunchIntended) if view.op_instances.is_empty() => {
            launch::plan_or_launch(settings, record, op, view, fence, now)
        }
        // Instances tagged with this op exist: an earlier attempt launched
        // them (and its answer was lost, or its engine died). Adopt them.
        (OpKind::ScaleUp { .. }, OpPhase::LaunchIntended) => launched(
            settings,
            record,
            op,
            view.op_instances,
            "adopted",
            fence,
            now,
        ),
        (OpKind::ScaleUp { .. }, OpPhase::Launched) => transition(
            record,
            op,
            OpPhase::Verifying,
            "verifying: waiting for nodes to be Ready".into(),
            fence,
            now,
            |_| {},
        ),
        (OpKind::ScaleUp { instance_ids, .. }, OpPhase::Verifying) => {
            verify(record, op, instance_ids, view, fence, now)
        }
        (
            OpKind::ScaleDown { node, .. } | OpKind::Cordon { node, cordon: true },
            OpPhase::CordonIntended,
        ) => Next::Act(Effect::Cordon { node: node.clone() }),
        (
            OpKind::Cordon {
                node,
                cordon: false,
            },
            OpPhase::CordonIntended,
        ) => Next::Act(Effect::Uncordon {
            node: node.clone(),
            abort: None,
        }),
        (OpKind::ScaleDown { node, .. }, OpPhase::Draining) => {
            drain(settings, record, op, node, view, fence, now)
        }
        (OpKind::ScaleDown { node, instance_id }, OpPhase::TerminateIntended) => {
            // Terminate only what is still cordoned and still drained, and
            // only while min_workers holds without it: this step may run
            // long after the drain (an engine resuming after a crash).
            // Terminated already (the answer, or the record of it, was
            // lost): what is left is the node object. Never uncordon the
            // node of a machine that is shutting down.
            if view.instance_gone == Some(true) {
                return Next::Act(Effect::DeleteNode { node: node.clone() });
            }
            if let Some(unconfirmed) = cordon_confirmed(view, node) {
                return unconfirmed;
            }
            if let Some(why) = steps::not_safe_to_terminate(settings, node, view) {
                return Next::Act(Effect::Uncordon {
                    node: node.clone(),
                    abort: Some(why),
                });
            }
            match instance_id {
                Some(id) => Next::Act(Effect::Terminate {
                    ids: vec![id.clone()],
                    then: AfterTerminate::DeleteNode(node.clone()),
                }),
                None => Next::Act(Effect::Uncordon {
                    node: node.clone(),
                    abort: Some("no instance id recorded for the node".into()),
                }),
            }
        }
        (OpKind::TerminateStrays { instances, .. }, OpPhase::TerminateIntended) => {
            // Still strays? One that turned into a node since is left alone,
            // and so is one with a node outside the worker selector.
            let mut targets: Vec<String> = instances
                .iter()
                .filter(|id| {
                    view.op_instances
                        .iter()
                        .any(|i| &i.id == *id && i.managed && i.state.is_live())
                        && !view
                            .nodes
                            .iter()
                            .any(|n| n.instance_id.as_deref() == Some(id.as_str()))
                        && !view.joined_anywhere.contains(id)
                })
                .cloned()
                .collect();
            if targets.is_empty() {
                let joined = instances
                    .iter()
                    .filter(|id| view.joined_anywhere.contains(id))
                    .cloned()
                    .collect::<Vec<_>>();
                if joined.is_empty() {
                    let note = "nothing left to terminate".to_string();
                    return end(record, op, OpPhase::Done, note, fence, now);
                }
                let note = format!(
                    "nothing terminated: {} joined (a node outside the worker selector)",
                    joined.join(", ")
                );
                return transition(
                    record,
                    op,
                    OpPhase::Done,
                    format!("done: {note}"),
                    fence,
                    now,
                    |o| {
                        o.outcome = Some(note);
                        if let OpKind::TerminateStrays { kept, .. } = &mut o.kind {
                            *kept = joined;
                        }
                    },
                );
            }
            // Blast radius: one instance per operation, whatever the record
            // asks (the rest are decided again, each on a fresh view).
            targets.truncate(1);
            let note = format!("terminated {}", targets.join(", "));
            Next::Act(Effect::Terminate {
                ids: targets,
                then: AfterTerminate::Finish(note),
            })
        }
        (OpKind::DeleteGhost { node }, OpPhase::TerminateIntended) => {
            let ghost = view.nodes.iter().find(|n| &n.name == node).map(|n| {
                let live = n.instance_id.as_deref().is_some_and(|id| {
                    view.op_instances
                        .iter()
                        .any(|i| i.id == id && i.state.is_live())
                });
                (
                    live,
                    !super::reconcile::not_ready_long_enough(n, now),
                    n.ready,
                )
            });
            match ghost {
                Some((false, false, _)) => Next::Act(Effect::DeleteNode { node: node.clone() }),
                Some((true, _, _)) => end(
                    record,
                    op,
                    OpPhase::Done,
                    format!("{node} has a live instance again; kept"),
                    fence,
                    now,
                ),
                // A Ready node has a kubelet behind it: never deleted; nor
                // one whose Ready condition changed since the ghost was found (a
                // flap: Ready and NotReady again, so NotReady under 5 min).
                Some((false, true, ready)) => end(
                    record,
                    op,
                    OpPhase::Done,
                    if ready {
                        format!("{node} is Ready again; kept")
                    } else {
                        format!(
                            "{node}'s Ready condition changed since it was found a ghost (NotReady under 5 min); kept"
                        )
                    },
                    fence,
                    now,
                ),
                None => end(
                    record,
                    op,
                    OpPhase::Done,
                    format!("{node} is already gone"),
                    fence,
                    now,
                ),
            }
        }
        (kind, phase) => end(
            record,
            op,
            OpPhase::Failed,
            format!("phase {phase} is not valid for a {} operation", kind.name()),
            fence,
            now,
        ),
    }
}

mod after;
pub use after::after;
mod expiry;
pub use expiry::DESCRIBE_LAG;
use expiry::expired_intent;
mod launch;
mod sanity_hold;
pub use launch::is_k3s_version;
pub use sanity_hold::{SanityHold, on_implausible_view};
mod steps;
#[cfg(test)]
mod tests;

/// The process stops between an intent it recorded and the effect it was
/// about to perform: the intent is closed Aborted with the reason, instead
/// of left for the next engine to execute on an old decision. `None` when
/// nothing is in flight, and for a scale-down about to terminate: its node
/// is cordoned and drained, and closing the operation would leave it so
/// for good (no later operation picks a node cordoned outside one). It
/// stays in flight instead: the next holder re-checks everything before
/// the terminate, and the intent's expiry uncordons it.
pub fn abandon(record: &OpRecord, why: &str, fence: u64, now: Timestamp) -> Option<Next> {
    let op = record.in_flight()?;
    if matches!(op.kind, OpKind::ScaleDown { .. }) && op.phase == OpPhase::TerminateIntended {
        return None;
    }
    Some(end(
        record,
        op,
        OpPhase::Aborted,
        format!("stopped before acting: {why}"),
        fence,
        now,
    ))
}

use steps::{cordon_confirmed, drain, launched, verify};

/// An operator closes a scale-up whose instances are all gone (the
/// reconciliation finding): Failed, with the reason, fenced like any write.
pub fn close(
    settings: &Settings,
    record: &OpRecord,
    reason: &str,
    fence: u64,
    now: Timestamp,
) -> Option<Next> {
    let op = record.in_flight()?;
    let ended = end(
        record,
        op,
        OpPhase::Failed,
        format!("closed by the operator: {reason}"),
        fence,
        now,
    );
    Some(super::circuit::settle(
        &settings.circuit,
        record,
        ended,
        &[],
        now,
    ))
}
