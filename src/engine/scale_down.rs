//! Scale-down: whether the cluster may lose a node now (the gate), which
//! node goes (`candidates::choose`), and each worker's standing in the
//! operator's words (the console's SCALE-DOWN column): "next to go · 12 %
//! requested", "not now: idle for 4m of 10m · 12 %", "after w5 · 20 %",
//! "blocked: pod shop/db-0 is owned by a StatefulSet …".

use super::candidates;
use super::decision::{Action, Decision};
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

/// Each worker's standing for a scale-down, by node name. `decision` is
/// the one just made on the same view and memory: the
/// chosen node is "next to go", a node the choice passed over says why
/// (its pods would not fit elsewhere), and when the cluster may not lose a
/// node now, every eligible one says what holds it.
pub(super) fn standing(
    settings: &Settings,
    memory: &PolicyMemory,
    k: &Known<'_>,
    record: &OpRecord,
    now: Timestamp,
    sanity: Option<&str>,
    decision: &Decision,
) -> BTreeMap<String, String> {
    let (action, reasons) = (&decision.action, &decision.reasons);
    let chosen = match action {
        Action::ScaleDown { node, .. } => Some(node.as_str()),
        _ => None,
    };
    let not_now = if let Some(op) = record.in_flight() {
        Some(format!("{} {} in flight", op.kind.name(), op.id))
    } else if record.paused_at(now).is_some() {
        Some("the cluster is paused".to_string())
    } else if sanity.is_some() {
        Some("sanity stop".to_string())
    } else if matches!(
        action,
        Action::ScaleUp { .. } | Action::TerminateStrays { .. }
    ) {
        Some(format!("{} first", action.label()))
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
    candidates::each_node(settings, k.view, k.fleet, &memory.held_back(now))
        .into_iter()
        .map(|(name, standing)| {
            let passed_over = || {
                let own = format!("{BLOCKED}{name}: ");
                reasons
                    .iter()
                    .find_map(|r| r.strip_prefix(&own).map(String::from))
            };
            // The cause first: a table column cuts the end off.
            let text = match standing {
                Err(why) => format!("blocked: {why}"),
                Ok(load) if chosen == Some(name.as_str()) => {
                    format!("next to go · {load:.0} % requested")
                }
                Ok(load) => match (&not_now, chosen, passed_over()) {
                    (Some(why), _, _) => format!("not now: {why} · {load:.0} %"),
                    (None, Some(first), _) => format!("after {first} · {load:.0} %"),
                    (None, None, Some(why)) => format!("blocked: {why}"),
                    (None, None, None) => format!("eligible · {load:.0} % requested"),
                },
            };
            (name, text)
        })
        .collect()
}

/// Each worker's own standing, without the engine's history (`status`: no
/// idle window or cooldown is known outside a running engine): "blocked:
/// why" as in the choice, or "eligible · N % requested".
pub fn node_standing(
    settings: &Settings,
    view: &super::observation::ClusterView,
    fleet: &[crate::ports::Instance],
) -> BTreeMap<String, String> {
    candidates::each_node(settings, view, fleet, &BTreeMap::new())
        .into_iter()
        .map(|(name, standing)| {
            let text = match standing {
                Err(why) => format!("blocked: {why}"),
                Ok(load) => format!("eligible · {load:.0} % requested"),
            };
            (name, text)
        })
        .collect()
}
