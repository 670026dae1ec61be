//! The operation state machines of DESIGN §3, as a protocol engine without
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
    /// Pods whose eviction was refused or failed transiently this tick: not
    /// retried until the next tick (that is the backoff).
    pub tried: &'a BTreeSet<String>,
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

/// The next thing to do for the operation in flight.
pub fn next(
    settings: &Settings,
    record: &OpRecord,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    let Some(op) = record.in_flight() else {
        return Next::Idle;
    };
    match (&op.kind, op.phase) {
        (
            OpKind::ScaleUp {
                count,
                client_token,
                ..
            },
            OpPhase::LaunchIntended,
        ) if view.op_instances.is_empty() => Next::Act(Effect::Launch(LaunchRequest {
            op_id: op.id.clone(),
            client_token: client_token.clone(),
            count: *count,
        })),
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
            // Terminate only what is still cordoned: an uncordoned node may
            // have taken pods since it was drained.
            if let Some(uncordoned) = uncordoned_node(view, node) {
                return uncordoned;
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
        (OpKind::TerminateStrays { instances }, OpPhase::TerminateIntended) => {
            // Still strays? One that turned into a node since is left alone.
            let targets: Vec<String> = instances
                .iter()
                .filter(|id| {
                    view.op_instances
                        .iter()
                        .any(|i| &i.id == *id && i.managed && i.state.is_live())
                        && !view
                            .nodes
                            .iter()
                            .any(|n| n.instance_id.as_deref() == Some(id.as_str()))
                })
                .cloned()
                .collect();
            if targets.is_empty() {
                return end(
                    record,
                    op,
                    OpPhase::Done,
                    "nothing left to terminate".into(),
                    fence,
                    now,
                );
            }
            let note = format!("terminated {}", targets.join(", "));
            Next::Act(Effect::Terminate {
                ids: targets,
                then: AfterTerminate::Finish(note),
            })
        }
        (OpKind::DeleteGhost { node }, OpPhase::TerminateIntended) => {
            let ghost = view.nodes.iter().find(|n| &n.name == node).map(|n| {
                !n.instance_id.as_deref().is_some_and(|id| {
                    view.op_instances
                        .iter()
                        .any(|i| i.id == id && i.state.is_live())
                })
            });
            match ghost {
                Some(true) => Next::Act(Effect::DeleteNode { node: node.clone() }),
                Some(false) => end(
                    record,
                    op,
                    OpPhase::Done,
                    format!("{node} has a live instance again; kept"),
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

/// What to do after an effect, given its result.
pub fn after(
    settings: &Settings,
    record: &OpRecord,
    effect: &Effect,
    result: EffectResult,
    fence: u64,
    now: Timestamp,
) -> Next {
    let Some(op) = record.in_flight() else {
        return Next::Idle;
    };
    match (effect, result) {
        (Effect::Launch(_), EffectResult::Launched(instances)) => {
            launched(settings, record, op, &instances, "launched", fence, now)
        }
        (Effect::Launch(_), EffectResult::Err(e)) if e.is_transient() => {
            Next::Wait(format!("launch not confirmed ({e}); retrying next tick"))
        }
        (Effect::Launch(_), EffectResult::Err(e)) => end(
            record,
            op,
            OpPhase::Failed,
            format!("launch failed: {e}"),
            fence,
            now,
        ),
        (Effect::Cordon { node }, EffectResult::Ok) => match op.kind {
            OpKind::ScaleDown { .. } => {
                let deadline = now.plus(settings.drain.timeout);
                transition(
                    record,
                    op,
                    OpPhase::Draining,
                    format!("cordoned {node}; draining"),
                    fence,
                    now,
                    |o| o.deadline = Some(deadline),
                )
            }
            _ => end(
                record,
                op,
                OpPhase::Done,
                format!("cordoned {node}"),
                fence,
                now,
            ),
        },
        (
            Effect::Uncordon {
                node,
                abort: Some(why),
            },
            EffectResult::Ok,
        ) => end(
            record,
            op,
            OpPhase::Aborted,
            format!("{why}; {node} uncordoned"),
            fence,
            now,
        ),
        (Effect::Uncordon { node, abort: None }, EffectResult::Ok) => end(
            record,
            op,
            OpPhase::Done,
            format!("uncordoned {node}"),
            fence,
            now,
        ),
        (
            Effect::Cordon { node } | Effect::Uncordon { node, .. },
            EffectResult::Err(PortError::NotFound(_)),
        ) => {
            let phase = if matches!(op.kind, OpKind::ScaleDown { .. }) {
                OpPhase::Aborted
            } else {
                OpPhase::Failed
            };
            end(
                record,
                op,
                phase,
                format!("node {node} no longer exists"),
                fence,
                now,
            )
        }
        (Effect::Evict(pod), EffectResult::Evicted(EvictionOutcome::Rejected(why))) => {
            let node = match &op.kind {
                OpKind::ScaleDown { node, .. } => node.clone(),
                _ => String::new(),
            };
            Next::Act(Effect::Uncordon {
                node,
                abort: Some(format!("eviction of {pod} failed: {why}")),
            })
        }
        (Effect::Evict(_), _) => Next::Continue,
        (
            Effect::Terminate {
                then: AfterTerminate::DeleteNode(node),
                ..
            },
            EffectResult::Ok,
        ) => Next::Act(Effect::DeleteNode { node: node.clone() }),
        // Gone already counts as terminated.
        (
            Effect::Terminate {
                then: AfterTerminate::Fail(why),
                ..
            },
            EffectResult::Ok | EffectResult::Err(PortError::NotFound(_)),
        ) => end(record, op, OpPhase::Failed, why.clone(), fence, now),
        (
            Effect::Terminate {
                then: AfterTerminate::Finish(note),
                ..
            },
            EffectResult::Ok | EffectResult::Err(PortError::NotFound(_)),
        ) => end(record, op, OpPhase::Done, note.clone(), fence, now),
        (
            Effect::Terminate {
                then: AfterTerminate::DeleteNode(node),
                ..
            },
            EffectResult::Err(e),
        ) if !e.is_transient() => Next::Act(Effect::Uncordon {
            node: node.clone(),
            abort: Some(format!("terminate refused: {e}")),
        }),
        (Effect::Untaint { .. }, EffectResult::Ok) => Next::Continue,
        (Effect::DeleteNode { node }, result) => {
            let note = match result {
                EffectResult::Err(e) => format!("{node} removed (node object not deleted: {e})"),
                _ => format!("{node} removed"),
            };
            end(record, op, OpPhase::Done, note, fence, now)
        }
        (effect, EffectResult::Err(e)) => Next::Wait(format!(
            "{} failed ({e}); retrying next tick",
            effect.describe()
        )),
        (effect, result) => Next::Wait(format!(
            "unexpected result {result:?} for {}; retrying next tick",
            effect.describe()
        )),
    }
}

mod steps;
#[cfg(test)]
mod tests;

use steps::{drain, launched, uncordoned_node, verify};

/// An operator closes a scale-up whose instances are all gone (the
/// reconciliation finding): Failed, with the reason, fenced like any write.
pub fn close(record: &OpRecord, reason: &str, fence: u64, now: Timestamp) -> Option<Next> {
    let op = record.in_flight()?;
    Some(end(
        record,
        op,
        OpPhase::Failed,
        format!("closed by the operator: {reason}"),
        fence,
        now,
    ))
}
