//! What an operation records after one of its effects, given the result:
//! the next phase, a retry next tick, or the end of the step (a refusal
//! that retrying cannot change ends it instead of wedging every engine).

use super::super::settings::Settings;
use super::*;

/// What to do after an effect, given its result. A write that ends the
/// operation also brings the circuit breaker's history up to date, with
/// the instances this terminate removed for never joining, and may open
/// it (engine/circuit.rs).
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
    // Gone already counts as terminated, as below.
    let terminated = matches!(
        result,
        EffectResult::Ok | EffectResult::Err(PortError::NotFound(_))
    );
    let never_joined = super::super::circuit::never_joined_by(op, effect, terminated);
    let step = after_step(settings, record, op, effect, result, fence, now);
    super::super::circuit::settle(&settings.circuit, record, step, &never_joined, now)
}

fn after_step(
    settings: &Settings,
    record: &OpRecord,
    op: &Operation,
    effect: &Effect,
    result: EffectResult,
    fence: u64,
    now: Timestamp,
) -> Next {
    match (effect, result) {
        (Effect::Launch(_), EffectResult::Launched(instances)) => {
            launched(settings, record, op, &instances, "launched", fence, now)
        }
        (Effect::Launch(_), EffectResult::Err(e)) => launch::after_error(record, op, e, fence, now),
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
        // A refusal that will not change by retrying (a Kubernetes 4xx other
        // than 404, 409 and 429; an unauthorised or malformed call) ends the
        // step instead of wedging every engine on it.
        (Effect::Cordon { node }, EffectResult::Err(e)) if e.is_permanent() => match op.kind {
            OpKind::ScaleDown { .. } => Next::Act(Effect::Uncordon {
                node: node.clone(),
                abort: Some(format!("cordon refused: {e}")),
            }),
            _ => end(
                record,
                op,
                OpPhase::Failed,
                format!("cordon of {node} refused: {e}"),
                fence,
                now,
            ),
        },
        (Effect::Uncordon { node, abort }, EffectResult::Err(e)) if e.is_permanent() => {
            let phase = if matches!(op.kind, OpKind::ScaleDown { .. }) {
                OpPhase::Aborted
            } else {
                OpPhase::Failed
            };
            let why = match abort {
                Some(why) => format!("{why}; uncordon refused ({e}): {node} left cordoned"),
                None => format!("uncordon of {node} refused: {e}"),
            };
            end(record, op, phase, why, fence, now)
        }
        (Effect::Untaint { nodes }, EffectResult::Err(e)) if e.is_permanent() => end(
            record,
            op,
            OpPhase::Failed,
            format!(
                "{} Ready, but removing the startup taint was refused: {e}",
                nodes.join(", ")
            ),
            fence,
            now,
        ),
        (
            Effect::Terminate {
                then: AfterTerminate::Fail(why) | AfterTerminate::Finish(why),
                ..
            },
            EffectResult::Err(e),
        ) if e.is_permanent() => end(
            record,
            op,
            OpPhase::Failed,
            format!("{why}; but terminate was refused: {e}"),
            fence,
            now,
        ),
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
