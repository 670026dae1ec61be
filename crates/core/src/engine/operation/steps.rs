//! The steps of an operation in flight that need more than one look at the
//! world: recording a launch, verifying a join, draining a node.

use super::super::drain_rules::{Disposition, classify};
use super::super::settings::Settings;
use super::{AfterTerminate, Effect, Next, OpView, end, transition};
use crate::ports::{Instance, OpKind, OpPhase, OpRecord, Operation, Timestamp, format_duration};

/// A scale-down whose node is no longer cordoned (an operator uncordoned it,
/// or an earlier attempt aborted and could not record it) does not go on:
/// it ends Aborted. The uncordon is a no-op that makes the outcome explicit.
pub(super) fn uncordoned_node(view: &OpView<'_>, node: &str) -> Option<Next> {
    let n = view.nodes.iter().find(|n| n.name == node)?;
    (!n.cordoned).then(|| {
        Next::Act(Effect::Uncordon {
            node: node.to_string(),
            abort: Some(format!("{node} is no longer cordoned")),
        })
    })
}

/// Before a scale-down's terminate: its node must be *seen* cordoned. A
/// node missing from the list (its worker label removed, a list that came
/// back short) is not evidence that it is still cordoned: an earlier
/// attempt may have uncordoned it and died before recording the abort, and
/// pods may be landing on it. Wait for it to be seen; the intent's expiry
/// (`Settings::intent_ttl`) ends the wait with an uncordon.
pub(super) fn cordon_confirmed(view: &OpView<'_>, node: &str) -> Option<Next> {
    if !view.nodes.iter().any(|n| n.name == node) {
        return Some(Next::Wait(format!(
            "{node} is not in the node list: its cordon cannot be confirmed, not terminated"
        )));
    }
    uncordoned_node(view, node)
}

/// Record the instances of a scale-up and start its join clock.
pub(super) fn launched(
    settings: &Settings,
    record: &OpRecord,
    op: &Operation,
    instances: &[Instance],
    verb: &str,
    fence: u64,
    now: Timestamp,
) -> Next {
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let step = format!("{verb} {}", ids.join(", "));
    // The join clock starts at the launch, not at this record: an engine
    // that adopts the launch after a crash must not extend it.
    let started = instances
        .iter()
        .map(|i| i.launched_at)
        .filter(|t| t.0 > 0)
        .min()
        .map_or(now, |t| t.min(now));
    let deadline = started.plus(settings.join_timeout);
    transition(record, op, OpPhase::Launched, step, fence, now, |o| {
        o.deadline = Some(deadline);
        if let OpKind::ScaleUp { instance_ids, .. } = &mut o.kind {
            *instance_ids = ids;
        }
    })
}

pub(super) fn verify(
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
    // Lost: EC2 says it is shutting down or gone. An instance Describe does
    // not list (yet) is not lost: EC2's reads lag its writes.
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| {
            !joined.contains(id)
                && view
                    .op_instances
                    .iter()
                    .any(|i| &i.id == *id && !i.state.is_live())
        })
        .collect();
    // Verified before (its taint is off), NotReady now: since the taint
    // came off as soon as it was Ready, pods may run on it, so it is a
    // worker in trouble, not a launch that never joined, and this step
    // never terminates it. It is waited for until the deadline, and then
    // kept.
    let serving: Vec<&String> = ids
        .iter()
        .filter(|id| {
            !joined.contains(id)
                && !lost.contains(id)
                && view
                    .nodes
                    .iter()
                    .any(|n| !n.startup_taint && n.instance_id.as_deref() == Some(id.as_str()))
        })
        .collect();
    // Not yet joined: what the deadline terminates.
    let waiting: Vec<String> = ids
        .iter()
        .filter(|id| !joined.contains(id) && !lost.contains(id) && !serving.contains(id))
        .cloned()
        .collect();
    // The joined nodes still under the verifying taint, removed from each
    // as soon as it is Ready, not when the last of the launch is: a Ready
    // node is capacity the pending pods wait for, and one slow boot must
    // not hold back the others. Also before a partial scale-up ends
    // Failed: left tainted, a node that did join would be billed, counted
    // against max_workers and take no pod, for ever.
    let tainted: Vec<String> = view
        .nodes
        .iter()
        .filter(|n| {
            n.startup_taint
                && n.instance_id
                    .as_ref()
                    .is_some_and(|id| joined.contains(&id))
        })
        .map(|n| n.name.clone())
        .collect();
    let past_deadline = op.deadline.is_some_and(|d| now > d);
    if !tainted.is_empty() {
        // Once per node per tick: a removal answered OK that the next list
        // still shows is a list that lags (or something putting the taint
        // back), and sending it again at once would only repeat it up to
        // the executor's step bound, every tick.
        let fresh: Vec<String> = tainted
            .iter()
            .filter(|n| !view.tried.contains(&super::untaint_key(n)))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return Next::Wait(format!(
                "startup taint removal already sent to {} this tick and still listed; looking again next tick",
                tainted.join(", ")
            ));
        }
        return Next::Act(Effect::Untaint { nodes: fresh });
    }
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
    if past_deadline && !waiting.is_empty() {
        // Joined, but under labels the worker selector does not match: a
        // live node, never terminated as "never joined".
        let (elsewhere, waiting): (Vec<String>, Vec<String>) = waiting
            .into_iter()
            .partition(|id| view.joined_anywhere.contains(id));
        if waiting.is_empty() {
            return end(
                record,
                op,
                OpPhase::Failed,
                format!(
                    "{} joined outside the worker selector (check kubernetes.worker_selector and the node labels); not terminated",
                    elsewhere.join(", ")
                ),
                fence,
                now,
            );
        }
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
    if past_deadline && !serving.is_empty() {
        let serving: Vec<&str> = serving.iter().map(|s| s.as_str()).collect();
        return end(
            record,
            op,
            OpPhase::Failed,
            format!(
                "{} turned NotReady after its startup taint was removed (it may run pods); not terminated",
                serving.join(", ")
            ),
            fence,
            now,
        );
    }
    if waiting.is_empty() && serving.is_empty() {
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

pub(super) fn drain(
    settings: &Settings,
    record: &OpRecord,
    op: &Operation,
    node: &str,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    // Evict only from a node seen cordoned: one missing from the list may
    // have been uncordoned by an attempt that died, and pods evicted from
    // it can land on it again. The drain's deadline ends the wait.
    if !view.nodes.iter().any(|n| n.name == node) {
        if op.deadline.is_some_and(|d| now > d) {
            return Next::Act(Effect::Uncordon {
                node: node.to_string(),
                abort: Some(format!(
                    "drain timed out after {}: {node} was not in the node list",
                    format_duration(settings.drain.timeout)
                )),
            });
        }
        return Next::Wait(format!(
            "{node} is not in the node list: its cordon cannot be confirmed, not draining"
        ));
    }
    if let Some(uncordoned) = uncordoned_node(view, node) {
        return uncordoned;
    }
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

/// Why a drained node must not be terminated now (checked again right
/// before the terminate, however long after the drain): a pod that is not
/// ignorable is back on it, or the other Ready workers are too few.
pub(super) fn not_safe_to_terminate(
    settings: &Settings,
    node: &str,
    view: &OpView<'_>,
) -> Option<String> {
    let back: Vec<String> = view
        .node_pods
        .iter()
        .filter(|pod| {
            !pod.terminating
                && !matches!(
                    classify(pod, view.pdbs, &settings.drain),
                    Disposition::Ignore(_)
                )
        })
        .take(3)
        .map(|p| p.key())
        .collect();
    if !back.is_empty() {
        return Some(format!(
            "{node} has pods again since its drain ({}); not terminated",
            back.join(", ")
        ));
    }
    let ready_others = view
        .nodes
        .iter()
        .filter(|n| n.ready && n.name != node)
        .count() as u32;
    (ready_others < settings.policy.min_workers).then(|| {
        format!(
            "removing {node} now would leave {ready_others} Ready workers, below min_workers ({})",
            settings.policy.min_workers
        )
    })
}
