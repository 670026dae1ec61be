//! The operation state machines of DESIGN §3, as a protocol engine without
//! IO: given the durable record and a fresh view of the world, say the next
//! thing to do; given what happened, say what to record. The executor in
//! `runtime/` performs the effects and the fenced writes.

use super::drain_rules::{Disposition, classify};
use super::settings::Settings;
use crate::ports::{
    EvictionOutcome, Instance, LaunchRequest, Node, OpKind, OpPhase, OpRecord, OpStep, Operation,
    Origin, Pdb, Pod, PodRef, PortError, Timestamp, format_duration,
};
use std::collections::BTreeSet;

/// What an operation is started to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    ScaleUp { count: u32 },
    ScaleDown { node: String, instance_id: String },
    Cordon { node: String, cordon: bool },
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
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterTerminate {
    /// Scale-down: remove the Node object, then Done.
    DeleteNode(String),
    /// Scale-up past its join deadline: Failed with this reason.
    Fail(String),
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
        last_scale_up: record.last_scale_up,
        last_scale_end: record.last_scale_end,
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
        last_scale_up: record.last_scale_up,
        last_scale_end: record.last_scale_end,
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
        ) => Next::Act(Effect::Launch(LaunchRequest {
            op_id: op.id.clone(),
            client_token: client_token.clone(),
            count: *count,
        })),
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

fn verify(
    record: &OpRecord,
    op: &Operation,
    ids: &[String],
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    let joined: Vec<&String> = ids
        .iter()
        .filter(|id| {
            view.nodes
                .iter()
                .any(|n| n.ready && n.instance_id.as_deref() == Some(id.as_str()))
        })
        .collect();
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| {
            !joined.contains(id)
                && !view
                    .op_instances
                    .iter()
                    .any(|i| &i.id == *id && i.state.is_live())
        })
        .collect();
    let waiting: Vec<String> = ids
        .iter()
        .filter(|id| !joined.contains(id) && !lost.contains(id))
        .cloned()
        .collect();
    if joined.len() == ids.len() {
        return end(
            record,
            op,
            OpPhase::Done,
            format!("{} node(s) Ready", ids.len()),
            fence,
            now,
        );
    }
    let past_deadline = op.deadline.is_some_and(|d| now > d);
    if past_deadline && !waiting.is_empty() {
        let why = format!(
            "{} of {} instance(s) never joined within {}: {}; terminated",
            waiting.len(),
            ids.len(),
            op.deadline
                .map(|d| format_duration(d.since(op.started)))
                .unwrap_or_default(),
            waiting.join(", ")
        );
        return Next::Act(Effect::Terminate {
            ids: waiting,
            then: AfterTerminate::Fail(why),
        });
    }
    if waiting.is_empty() {
        let lost: Vec<&str> = lost.iter().map(|s| s.as_str()).collect();
        return end(
            record,
            op,
            OpPhase::Failed,
            format!("instance(s) {} disappeared before joining", lost.join(", ")),
            fence,
            now,
        );
    }
    let left = op
        .deadline
        .map(|d| format_duration(d.since(now)))
        .unwrap_or_default();
    Next::Wait(format!(
        "verifying: {} of {} node(s) Ready, join deadline in {left}",
        joined.len(),
        ids.len()
    ))
}

fn drain(
    settings: &Settings,
    record: &OpRecord,
    op: &Operation,
    node: &str,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    let mut remaining = Vec::new();
    let mut blocked_by = None;
    for pod in view.node_pods {
        match classify(pod, view.pdbs, &settings.drain) {
            Disposition::Ignore("terminating") => remaining.push(pod),
            Disposition::Ignore(_) => {}
            Disposition::Evict => remaining.push(pod),
            Disposition::Block(why) => {
                blocked_by.get_or_insert(why);
            }
        }
    }
    if let Some(why) = blocked_by {
        return Next::Act(Effect::Uncordon {
            node: node.to_string(),
            abort: Some(format!("drain found a blocking pod: {why}")),
        });
    }
    if remaining.is_empty() {
        let ready_others = view
            .nodes
            .iter()
            .filter(|n| n.ready && n.name != node)
            .count() as u32;
        if ready_others < settings.policy.min_workers {
            return Next::Act(Effect::Uncordon {
                node: node.to_string(),
                abort: Some(format!(
                    "removing {node} would leave {ready_others} Ready workers, below min_workers ({})",
                    settings.policy.min_workers
                )),
            });
        }
        return transition(
            record,
            op,
            OpPhase::TerminateIntended,
            format!("drained {node}; {ready_others} other Ready workers ≥ min_workers"),
            fence,
            now,
            |_| {},
        );
    }
    if op.deadline.is_some_and(|d| now > d) {
        let stuck: Vec<String> = remaining.iter().take(3).map(|p| p.key()).collect();
        return Next::Act(Effect::Uncordon {
            node: node.to_string(),
            abort: Some(format!(
                "drain timed out after {} with {} pod(s) left ({})",
                format_duration(settings.drain.timeout),
                remaining.len(),
                stuck.join(", ")
            )),
        });
    }
    match remaining
        .iter()
        .find(|p| !p.terminating && !view.tried.contains(&p.uid))
    {
        Some(pod) => Next::Act(Effect::Evict(pod.reference())),
        None => {
            let terminating = remaining.iter().filter(|p| p.terminating).count();
            let refused = remaining.len() - terminating;
            Next::Wait(format!(
                "draining {node}: {terminating} pod(s) terminating, {refused} refused (retry next tick)"
            ))
        }
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
            let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
            let step = format!("launched {}", ids.join(", "));
            let deadline = now.plus(settings.join_timeout);
            transition(record, op, OpPhase::Launched, step, fence, now, |o| {
                o.deadline = Some(deadline);
                if let OpKind::ScaleUp { instance_ids, .. } = &mut o.kind {
                    *instance_ids = ids;
                }
            })
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
        (
            Effect::Terminate {
                then: AfterTerminate::Fail(why),
                ..
            },
            EffectResult::Ok,
        ) => end(record, op, OpPhase::Failed, why.clone(), fence, now),
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

#[cfg(test)]
mod tests;
