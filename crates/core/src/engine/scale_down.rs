//! Scale-down: whether the cluster may lose a node now (the gate), which
//! node goes (`candidates::choose`), and each worker's standing in the
//! operator's words (the console's SCALE-DOWN column): "next to go · 12 %
//! requested", "not now: idle for 4m of 10m · 12 %", "after w5 · 20 %",
//! "blocked: pod shop/db-0 is owned by a StatefulSet …".

use super::candidates;
use super::decision::{Action, Standing};
use super::policy::{Known, PolicyMemory, cooldown_left};
use super::settings::Settings;
use crate::ports::{OpRecord, Timestamp, format_duration};
use std::collections::BTreeMap;

/// How a scale-down reason starts (and how a node's own line is found in
/// the decision's reasons).
const BLOCKED: &str = "scale-down blocked: ";

/// The node a scale-down removes now, or why none (the decision's
/// reasons): first the cluster-wide gate, then the choice.
pub(super) fn scale_down(
    settings: &Settings,
    memory: &PolicyMemory,
    k: &Known<'_>,
    record: &OpRecord,
    now: Timestamp,
) -> Result<candidates::Candidate, Vec<String>> {
    gate(settings, memory, k, record, now)?;
    candidates::choose(settings, k.view, k.fleet, &memory.held_back(now)).map_err(|nodes| {
        nodes
            .into_iter()
            .map(|line| format!("{BLOCKED}{line}"))
            .collect()
    })
}

/// Whether the cluster as a whole may lose a node now: CPU below
/// `cpu_down_percent` over a complete average, nothing pending for
/// `idle_for`, above `min_workers`, past the cooldown. An empty `Err` is
/// CPU not low (the CPU reason already says so).
fn gate(
    settings: &Settings,
    memory: &PolicyMemory,
    k: &Known<'_>,
    record: &OpRecord,
    now: Timestamp,
) -> Result<(), Vec<String>> {
    let p = &settings.policy;
    if k.cpu >= p.cpu_down_percent {
        return Err(vec![]);
    }
    if let Some(why) = &k.obs.cpu_partial {
        return Err(vec![format!("{BLOCKED}{why}")]);
    }
    let Some(idle_since) = memory.idle_since else {
        return Err(vec![format!("{BLOCKED}pods are pending")]);
    };
    let idle_for = now.since(idle_since);
    if idle_for < p.idle_for {
        return Err(vec![format!(
            "{BLOCKED}idle for {} of {}",
            format_duration(idle_for),
            format_duration(p.idle_for)
        )]);
    }
    if k.view.ready_workers() as u32 <= p.min_workers {
        return Err(vec![format!("{BLOCKED}at min_workers ({})", p.min_workers)]);
    }
    if let Some(left) = cooldown_left(record.last_scale_end, p.scale_down_cooldown, now) {
        return Err(vec![format!(
            "{BLOCKED}cooldown, {} left of {}",
            format_duration(left),
            format_duration(p.scale_down_cooldown)
        )]);
    }
    Ok(())
}

/// When only time holds the cluster back (the idle window still running,
/// or the cooldown): how long until a scale-down may go, if the cluster
/// stays as it is. `None` when something else does (CPU, pending pods, a
/// partial average, `min_workers`), which no wait undoes.
fn removable_in(
    settings: &Settings,
    memory: &PolicyMemory,
    k: &Known<'_>,
    record: &OpRecord,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let p = &settings.policy;
    if k.cpu >= p.cpu_down_percent || k.obs.cpu_partial.is_some() {
        return None;
    }
    let idle_for = now.since(memory.idle_since?);
    if k.view.ready_workers() as u32 <= p.min_workers {
        return None;
    }
    let idle_left = p.idle_for.saturating_sub(idle_for);
    let cooldown =
        cooldown_left(record.last_scale_end, p.scale_down_cooldown, now).unwrap_or_default();
    Some(idle_left.max(cooldown)).filter(|left| !left.is_zero())
}

/// Each worker's standing for a scale-down, by node name, on the view and
/// memory the decision (`action`) was just made on. When the cluster may
/// lose a node, the choice's own outcome for each (`candidates::assess`:
/// next to go, its pods would not fit, after the chosen one, not among
/// the least loaded, blocked and why); when it may not, every eligible
/// node says what holds it. `held`: what holds every scale-down that the
/// decision knew and the nodes cannot (the sanity stop, the forecast's
/// coming peak).
pub(super) fn standing(
    settings: &Settings,
    memory: &PolicyMemory,
    k: &Known<'_>,
    record: &OpRecord,
    now: Timestamp,
    held: Option<&str>,
    action: &Action,
) -> BTreeMap<String, Standing> {
    // Only time stands in the way: each eligible node says when it may go.
    let mut waiting = None;
    // In the order the decision looks at them.
    let not_now = if let Some(pause) = record.paused_at(now) {
        Some(if pause.circuit {
            "the circuit breaker is open".to_string()
        } else {
            "the cluster is paused".to_string()
        })
    } else if let Some(op) = record.in_flight() {
        Some(format!("{} {} in flight", op.kind.name(), op.id))
    } else if let Some(why) = held {
        // The sanity stop, or the forecast's coming peak.
        Some(why.to_string())
    } else if matches!(
        action,
        Action::ScaleUp { .. } | Action::TerminateStrays { .. }
    ) {
        Some(format!("{} first", action.label()))
    } else if let Some(left) = removable_in(settings, memory, k, record, now) {
        waiting = Some(left);
        None
    } else {
        match gate(settings, memory, k, record, now) {
            Ok(()) => None,
            Err(lines) => Some(lines.first().map_or_else(
                || {
                    format!(
                        "CPU {:.0}% ≥ {:.0}%",
                        k.cpu, settings.policy.cpu_down_percent
                    )
                },
                |l| l.trim_start_matches(BLOCKED).to_string(),
            )),
        }
    };
    let held_back = memory.held_back(now);
    if let Some(left) = waiting {
        return candidates::each_node(settings, k.view, k.fleet, &held_back)
            .into_iter()
            .map(|(name, standing)| {
                let standing = match standing {
                    Err(why) => Standing::blocked(&why),
                    Ok(load) => Standing::eligible(format!(
                        "removable in {} · {load:.0} %",
                        format_duration(left)
                    )),
                };
                (name, standing)
            })
            .collect();
    }
    let Some(not_now) = not_now else {
        // The cluster may lose a node: the choice's own outcomes.
        let (chosen, outcomes) = candidates::assess(settings, k.view, k.fleet, &held_back);
        let first = chosen.as_ref().map(|c| c.node.as_str());
        return outcomes
            .into_iter()
            .map(|(name, outcome)| {
                let standing = outcome.describe(first);
                (name, standing)
            })
            .collect();
    };
    candidates::each_node(settings, k.view, k.fleet, &held_back)
        .into_iter()
        .map(|(name, standing)| {
            // The cause first: a table column cuts the end off.
            let standing = match standing {
                Err(why) => Standing::blocked(&why),
                Ok(load) => Standing::eligible(format!("not now: {not_now} · {load:.0} %")),
            };
            (name, standing)
        })
        .collect()
}

/// Each worker's own standing, without a running engine's history
/// (`status`: no idle window or cooldown is known outside one): "blocked:
/// why" as in the choice, or "eligible · N % requested".
pub fn node_standing(
    settings: &Settings,
    view: &super::observation::ClusterView,
    fleet: &[crate::ports::Instance],
    record: &OpRecord,
    now: Timestamp,
) -> BTreeMap<String, Standing> {
    // The one piece of history the record itself carries: a node whose
    // last scale-down did not finish is passed over for a while.
    let mut memory = PolicyMemory::default();
    memory.note_unfinished_drain(record, now);
    candidates::each_node(settings, view, fleet, &memory.held_back(now))
        .into_iter()
        .map(|(name, standing)| {
            let standing = match standing {
                Err(why) => Standing::blocked(&why),
                Ok(load) => Standing::eligible(format!("eligible · {load:.0} % requested")),
            };
            (name, standing)
        })
        .collect()
}
