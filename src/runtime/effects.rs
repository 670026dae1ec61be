//! The effects of operation steps: performed through the ports (the one
//! place a step touches the world), noted in the log and the tick's
//! report, and the crash-recovery failpoints at their boundaries.

use crate::engine::ExecReport;
use crate::engine::operation::{self, Effect, EffectResult};
use crate::ports::{PortError, Ports};
use std::collections::BTreeSet;
use tracing::{info, warn};

pub(super) fn note(
    effect: &Effect,
    result: &EffectResult,
    tried: &mut BTreeSet<String>,
    report: &mut ExecReport,
) {
    use crate::ports::EvictionOutcome as E;
    let outcome = match result {
        EffectResult::Launched(instances) => {
            let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
            format!("ok: {}", ids.join(", "))
        }
        EffectResult::Evicted(E::Evicted) => "evicted".into(),
        EffectResult::Evicted(E::AlreadyGone) => "already gone".into(),
        EffectResult::Evicted(E::Blocked(why)) => format!("blocked, retried later: {why}"),
        EffectResult::Evicted(E::Rejected(why)) => format!("rejected: {why}"),
        EffectResult::Ok => "ok".into(),
        EffectResult::Err(e) => format!("error: {e}"),
    };
    if let Effect::Evict(pod) = effect
        && matches!(
            result,
            EffectResult::Evicted(E::Blocked(_)) | EffectResult::Err(_)
        )
    {
        tried.insert(pod.uid.clone());
    }
    if let Effect::Untaint { nodes } = effect {
        tried.extend(nodes.iter().map(|n| operation::untaint_key(n)));
    }
    if matches!(result, EffectResult::Err(_)) {
        warn!(target: "engine", "{}: {outcome}", effect.describe());
    } else {
        info!(target: "engine", "{}: {outcome}", effect.describe());
    }
    report
        .steps
        .push(format!("{}: {outcome}", effect.describe()));
}

pub(super) async fn perform(p: &Ports, effect: &Effect) -> EffectResult {
    let done = |r: Result<(), PortError>| r.map_or_else(EffectResult::Err, |_| EffectResult::Ok);
    match effect {
        Effect::Launch(request) => p
            .cloud
            .launch(request)
            .await
            .map_or_else(EffectResult::Err, EffectResult::Launched),
        Effect::Cordon { node } => done(p.cluster.set_cordoned(node, true).await),
        Effect::Uncordon { node, .. } => done(p.cluster.set_cordoned(node, false).await),
        Effect::Evict(pod) => p
            .cluster
            .evict(pod)
            .await
            .map_or_else(EffectResult::Err, EffectResult::Evicted),
        Effect::Terminate { ids, .. } => done(p.cloud.terminate(ids).await),
        Effect::DeleteNode { node } => done(p.cluster.delete_node(node).await),
        Effect::Untaint { nodes } => {
            for node in nodes {
                if let Err(e) = p.cluster.remove_startup_taint(node).await {
                    return EffectResult::Err(e);
                }
            }
            EffectResult::Ok
        }
    }
}

/// Crash-recovery failpoints at the step boundaries of docs/architecture.md §3.
pub(super) fn failpoint_after(effect: &Effect, result: &EffectResult) {
    use super::failpoint::{AFTER_LAUNCH, AFTER_TERMINATE, MID_DRAIN, hit};
    match (effect, result) {
        (Effect::Launch(_), EffectResult::Launched(_)) => hit(AFTER_LAUNCH),
        (Effect::Evict(_), EffectResult::Evicted(crate::ports::EvictionOutcome::Evicted)) => {
            hit(MID_DRAIN)
        }
        (Effect::Terminate { .. }, EffectResult::Ok) => hit(AFTER_TERMINATE),
        _ => {}
    }
}
