//! The scaling policy of docs/architecture.md §2: from one observation (and a little memory
//! of the previous ones) to a decision with its reasons. Pure: `now` is an
//! argument and nothing here performs IO.

use super::decision::{Action, Decision, Reason, ScaleUpHeld};
use super::forecast;
use super::observation::{ClusterView, FleetMatch, Observation};
use super::settings::Settings;
use super::sizing;
use crate::ports::{Instance, OpKind, OpPhase, OpRecord, Reading, Timestamp, format_duration};
use std::collections::BTreeMap;

pub use super::policy_memory::{DRAIN_RETRY_AFTER, PolicyMemory};

// An operator's requests live beside the policy they are checked against.
pub use super::request::{Request, intent_of, validate_request};

/// The facts a decision was made on, checked and ready to use.
pub(super) struct Known<'a> {
    pub(super) obs: &'a Observation,
    pub(super) cpu: f64,
    pub(super) view: &'a ClusterView,
    pub(super) fleet: &'a [Instance],
    /// The view's nodes matched to the fleet, once for every rule of the
    /// tick that asks.
    pub(super) matched: FleetMatch<'a>,
}

fn known<'a>(
    settings: &Settings,
    obs: &'a Observation,
    now: Timestamp,
) -> Result<Known<'a>, (Vec<Reason>, ScaleUpHeld)> {
    let mut unknown = Vec::new();
    let mut names = Vec::new();
    let cpu = match obs.cpu.checked(now, settings.max_staleness) {
        // A percentage outside 0–100 is not one: a query that returns a
        // 0–1 fraction times 100 twice, a counter instead of a rate, a
        // sum where an average was meant. Never scale on it.
        Reading::Known { value, .. } if !(0.0..=100.0).contains(&value) => {
            unknown.push(Reason::concern(format!(
                "CPU Unknown ({value} is not a percentage from 0 to 100: check prometheus.cpu_query)"
            )));
            names.push("CPU".to_string());
            None
        }
        Reading::Known { value, .. } => Some(value),
        Reading::Unknown { reason } => {
            unknown.push(Reason::concern(format!("CPU Unknown ({reason})")));
            names.push("CPU".to_string());
            None
        }
    };
    if let Err(reason) = &obs.cluster {
        unknown.push(Reason::concern(format!("Kubernetes Unknown ({reason})")));
        names.push("Kubernetes".to_string());
    }
    if let Err(reason) = &obs.fleet {
        unknown.push(Reason::concern(format!("EC2 Unknown ({reason})")));
        names.push("EC2".to_string());
    }
    match (cpu, &obs.cluster, &obs.fleet) {
        (Some(cpu), Ok(view), Ok(fleet)) => Ok(Known {
            obs,
            cpu,
            view,
            fleet,
            matched: FleetMatch::new(view, fleet),
        }),
        _ => {
            unknown.push(Reason::concern("Unknown never scales".into()));
            Err((unknown, ScaleUpHeld::Unknown(names)))
        }
    }
}

/// Decide for this tick. `memory` is updated with this observation.
pub fn decide(
    settings: &Settings,
    memory: &mut PolicyMemory,
    obs: &Observation,
    record: &OpRecord,
    now: Timestamp,
) -> Decision {
    let k = match known(settings, obs, now) {
        Ok(k) => k,
        Err((reasons, held)) => {
            // Blind ticks break both streaks: we cannot claim CPU stayed
            // high or idle. What happened to nodes still did.
            memory.after_blind_tick();
            memory.note_unfinished_drain(record, now);
            return Decision::hold(now, reasons).held(Some(held));
        }
    };
    memory.note_unfinished_drain(record, now);
    let sanity = super::sanity::implausible_matched(
        settings,
        k.view,
        &k.matched,
        k.fleet,
        memory.last_nodes,
        now,
    );
    memory.last_nodes = Some(k.view.nodes.len());
    let decision = decide_known(settings, memory, &k, record, now, sanity.as_deref());
    decision.with_sanity(sanity)
}

/// Each worker's standing for a scale-down (`engine/scale_down.rs`), on
/// the observation and memory `decision` was just made with. Apart from
/// `decide`, which the executor calls again on fresh data and whose cost
/// is a benchmark's: the console's column is the engine loop's to fill,
/// once a tick. Empty when the observation is not known.
pub fn standing(
    settings: &Settings,
    memory: &PolicyMemory,
    obs: &Observation,
    record: &OpRecord,
    now: Timestamp,
    decision: &Decision,
) -> BTreeMap<String, super::decision::Standing> {
    match known(settings, obs, now) {
        Ok(k) => super::scale_down::standing(
            settings,
            memory,
            &k,
            record,
            now,
            decision
                .sanity_stop
                .as_ref()
                .map(|_| "sanity stop")
                .or(decision.scale_down_held.as_deref()),
            &decision.action,
        ),
        Err(_) => BTreeMap::new(),
    }
}

fn decide_known(
    settings: &Settings,
    memory: &mut PolicyMemory,
    k: &Known<'_>,
    record: &OpRecord,
    now: Timestamp,
    sanity: Option<&str>,
) -> Decision {
    let p = &settings.policy;
    let sizing::Pending {
        helpable: pending,
        unhelpable,
        template,
    } = sizing::pending(settings, k.view);
    let oldest_pending = pending
        .iter()
        .filter_map(|pod| pod.unschedulable_since)
        .min()
        .map(|since| now.since(since));

    let high = k.cpu > p.cpu_up_percent;
    memory.cpu_high_since = if high {
        Some(memory.cpu_high_since.unwrap_or(now))
    } else {
        None
    };
    // A partial average cannot show the fleet idle (cpu_coverage.rs).
    let idle = k.cpu < p.cpu_down_percent && pending.is_empty() && k.obs.cpu_partial.is_none();
    memory.idle_since = if idle {
        Some(memory.idle_since.unwrap_or(now))
    } else {
        None
    };

    let mut reasons: Vec<Reason> = vec![
        cpu_reason(settings, k.cpu).into(),
        pending_reason(settings, pending.len(), oldest_pending).into(),
    ];
    if let Some((pod, why)) = unhelpable.first() {
        reasons.push(
            format!(
                "{} pending pod(s) no new worker can help, left out (e.g. {}: {why})",
                unhelpable.len(),
                pod.key()
            )
            .into(),
        );
    }
    let ready = k.view.ready_workers() as u32;
    let managed = k.fleet.len() as u32;
    reasons.push(format!("{ready} Ready / {managed} managed workers").into());
    // Recorded on every tick the cluster is seen, whatever is decided, so
    // the history has no holes where an operation was in flight; but not
    // from a view the sanity stop rejects (the pods of nodes it cannot see
    // would come back a period later as a peak no one had).
    let lead = pre_warm_lead(settings, memory);
    let forecast = if p.predictive {
        let need = forecast::needed(settings, k.view, k.cpu, template, &pending);
        if sanity.is_none() {
            memory.demand.record(now, need);
        }
        let f = memory
            .demand
            .forecast(now, lead, pre_warm_horizon(settings, lead));
        reasons.push(forecast::reason(f.as_ref(), need, now).into());
        f
    } else {
        None
    };
    if let Some(why) = sanity {
        reasons.push(Reason::concern(format!(
            "sanity stop: {why}; nothing destructive runs"
        )));
    }

    // A person's pause holds everything. The circuit breaker's lets the
    // clean-up below go on (engine/circuit.rs) and nothing else.
    let circuit_open = match record.paused_at(now) {
        Some(p) if p.circuit => {
            reasons.push(Reason::concern(pause_reason(p, now)));
            true
        }
        Some(p) => {
            reasons.push(pause_reason(p, now).into());
            return Decision::hold(now, reasons)
                .held(Some(ScaleUpHeld::Paused { by: p.by.clone() }));
        }
        None => false,
    };
    if let Some(op) = record.in_flight() {
        reasons.push(format!("{} {} in flight ({})", op.kind.name(), op.id, op.phase).into());
        // A scale-up in flight is what the pods wait for: it holds nothing.
        let held = match &op.kind {
            OpKind::ScaleUp { .. } => None,
            other => Some(ScaleUpHeld::InFlight {
                kind: other.name().to_string(),
            }),
        };
        return Decision::hold(now, reasons).held(held);
    }
    // Clean-up: a stranded instance costs money and holds a slot under
    // max_workers. Never on an implausible view (a broken node list makes
    // every worker look like one that never joined), only instances this
    // tool launched (the op-id tag), never one the last clean-up found
    // under other labels, and one per operation: whatever the view, one
    // decision can cost at most one instance.
    let stray = if sanity.is_none() {
        super::reconcile::reconcile_matched(settings, k.obs, &k.matched, record, now)
            .into_iter()
            .filter_map(|f| match f {
                super::reconcile::Finding::NeverJoined {
                    instance,
                    age,
                    op_id: Some(_),
                    outside_selector: false,
                    ..
                } => Some((instance, age)),
                _ => None,
            })
            .max_by_key(|(_, age)| *age)
    } else {
        None
    };
    // The clean-up comes before a scale-up (the Cluster Autoscaler, too,
    // removes long-unregistered nodes before it scales up): it takes one
    // tick, frees a slot under max_workers, and a launch that never joined
    // is billed for as long as it waits behind another scale-up's join
    // timeout. Unless the last operation was a clean-up of this same
    // instance that tried and removed nothing (it failed, or found the
    // node under other labels): a stray that is not going away must not
    // starve the pods. An aborted clean-up did not try: its intent expired
    // or its engine stopped before acting (a lost lease, a suspended
    // host), which says nothing about the stray, and a scale-up put first
    // keeps the stray waiting through a whole join timeout (chaos seed
    // 94811 of afa4b29). A clean-up of another instance says nothing about
    // this one either (an aborted one may even have terminated its
    // instance: a crash between the call and the record), so this one
    // still goes first.
    let clean_up_failed_on = |id: &str| {
        record.op.as_ref().is_some_and(|o| match &o.kind {
            OpKind::TerminateStrays { instances, kept } => {
                (!kept.is_empty() || o.phase == OpPhase::Failed)
                    && instances.iter().any(|i| i == id)
            }
            _ => false,
        })
    };
    let stray_first = stray
        .as_ref()
        .is_some_and(|(instance, _)| !clean_up_failed_on(instance));
    let clean_up = |mut reasons: Vec<Reason>, (instance, age): (String, std::time::Duration)| {
        reasons.push(
            format!(
                "clean-up: {instance} launched {} ago never joined",
                format_duration(age)
            )
            .into(),
        );
        Decision {
            at: now,
            action: Action::TerminateStrays {
                instances: vec![instance],
            },
            reasons,
            sanity_stop: None,
            standing: BTreeMap::new(),
            scale_up_held: None,
            scale_down_held: None,
        }
    };

    if circuit_open {
        let held = Some(ScaleUpHeld::CircuitOpen);
        return match stray {
            Some(stray) => clean_up(reasons, stray).held(held),
            None => Decision::hold(now, reasons).held(held),
        };
    }

    let cpu_trigger = high
        && memory
            .cpu_high_since
            .is_some_and(|since| now.since(since) >= p.cpu_up_for);
    if high && !cpu_trigger {
        let since = memory
            .cpu_high_since
            .map(|s| now.since(s))
            .unwrap_or_default();
        reasons.push(
            format!(
                "CPU high for {} of {}",
                format_duration(since),
                format_duration(p.cpu_up_for)
            )
            .into(),
        );
    }
    let pending_trigger = oldest_pending.is_some_and(|age| age > p.pending_for);
    // On an implausible view only pods that really wait may add capacity:
    // CPU averaged over nodes the view may not even see is no evidence. And
    // when no worker is Ready in the view at all (the selector matches
    // nothing, or the kubeconfig is another cluster's), nothing is added:
    // a launch would join where the view cannot see it, for pods that may
    // not even be this cluster's.
    let cpu_trigger = cpu_trigger && sanity.is_none();
    // The need counts every worker in view, and so does what meets it: a
    // static worker the selector also matches is capacity no launch adds
    // (against the managed count alone, the forecast would launch for it,
    // and the scale-down take it back, every cooldown).
    let unmanaged = forecast.as_ref().map_or(0, |_| unmanaged_ready(k));
    let there = managed + unmanaged;
    // A forecast is no more evidence than CPU on an implausible view.
    let ahead = forecast
        .as_ref()
        .filter(|_| sanity.is_none())
        .and_then(|f| {
            let limits = (p.max_scale_up_batch, p.max_workers + unmanaged);
            f.due(now, there, limits, lead, pre_warm_cycle(settings, lead))
        });
    let blind = sanity.is_some() && k.view.ready_workers() == 0;
    let wanted = cpu_trigger || pending_trigger || ahead.is_some();
    if wanted && blind {
        reasons.push(Reason::concern(
            "scale-up held: no Ready worker in view".into(),
        ));
    }
    let blind_held = (wanted && blind).then_some(ScaleUpHeld::NoReadyWorker);
    if stray_first && let Some(stray) = stray.clone() {
        if wanted && !blind {
            reasons.push("scale-up after the clean-up of a launch that never joined".into());
            return clean_up(reasons, stray).held(Some(ScaleUpHeld::CleanUpFirst));
        }
        return clean_up(reasons, stray).held(blind_held);
    }
    if wanted && !blind {
        let blocked = if managed >= p.max_workers {
            Some((
                format!("scale-up blocked: at max_workers ({})", p.max_workers),
                ScaleUpHeld::MaxWorkers(p.max_workers),
            ))
        } else if let Some(left) = cooldown_left(record.last_scale_up, p.scale_up_cooldown, now) {
            Some((
                format!(
                    "scale-up blocked: cooldown, {} left of {}",
                    format_duration(left),
                    format_duration(p.scale_up_cooldown)
                ),
                ScaleUpHeld::Cooldown(p.scale_up_cooldown),
            ))
        } else if let Some((failures, backoff, since)) = failure_backoff(record, now)
            && let Some(left) = cooldown_left(Some(since), backoff, now)
        {
            Some((
                format!(
                    "scale-up blocked: backing off after {failures} failed scale-up(s), {} left of {}",
                    format_duration(left),
                    format_duration(backoff)
                ),
                ScaleUpHeld::Backoff { failures },
            ))
        } else {
            None
        };
        if let Some((why, held)) = blocked {
            reasons.push(Reason::concern(why));
            return match stray {
                Some(stray) => clean_up(reasons, stray).held(Some(held)),
                None => Decision::hold(now, reasons).held(Some(held)),
            };
        }
        let room = p.max_workers - managed;
        let mut count = 0;
        if cpu_trigger || pending_trigger {
            let size = sizing::scale_up_size(settings, k.cpu, k.view, template, &pending, room);
            reasons.extend(size.reasons.into_iter().map(Reason::from));
            count = size.count;
        }
        if let Some((need, at)) = ahead {
            let more = need.saturating_sub(there).min(p.max_scale_up_batch);
            if more > count {
                reasons.push(pre_warm_reason(need, at, more, there, now).into());
                count = more;
            }
        }
        return Decision {
            at: now,
            action: Action::ScaleUp { count },
            reasons,
            sanity_stop: None,
            standing: BTreeMap::new(),
            scale_up_held: None,
            scale_down_held: None,
        };
    }
    if let Some(stray) = stray {
        return clean_up(reasons, stray).held(blind_held);
    }
    if sanity.is_some() {
        return Decision::hold(now, reasons).held(blind_held);
    }

    if let Some(f) = &forecast
        && f.workers >= ready
    {
        let why = format!(
            "the forecast needs {} worker(s) in {}",
            f.workers,
            format_duration(f.at.since(now))
        );
        reasons.push(format!("scale-down held: {why}").into());
        return Decision::hold(now, reasons).holding_scale_down(why);
    }
    match super::scale_down::scale_down(settings, memory, k, record, now) {
        Ok(candidate) => {
            reasons.push(
                format!(
                    "remove {} (instance {}, {:.0}% requested)",
                    candidate.node, candidate.instance_id, candidate.load_percent
                )
                .into(),
            );
            Decision {
                at: now,
                action: Action::ScaleDown {
                    node: candidate.node,
                    instance_id: candidate.instance_id,
                },
                reasons,
                sanity_stop: None,
                standing: BTreeMap::new(),
                scale_up_held: None,
                scale_down_held: None,
            }
        }
        Err(why) => {
            // Every line of a refused scale-down says what blocks it.
            reasons.extend(why.into_iter().map(Reason::concern));
            Decision::hold(now, reasons)
        }
    }
}

/// Why a scale-up launches ahead of the demand.
fn pre_warm_reason(need: u32, at: Timestamp, count: u32, there: u32, now: Timestamp) -> String {
    format!(
        "+{count} ahead of the forecast: {need} worker(s) needed in {}, {there} there",
        format_duration(at.since(now))
    )
}

/// Ready workers in view that no managed instance backs (a static worker
/// the selector also matches, or one of another tool's).
fn unmanaged_ready(k: &Known<'_>) -> u32 {
    let mut backed = vec![false; k.view.nodes.len()];
    for i in 0..k.fleet.len() {
        if let Some(n) = k.matched.node_of_fleet(i) {
            backed[n] = true;
        }
    }
    k.view
        .nodes
        .iter()
        .enumerate()
        .filter(|(n, node)| {
            node.ready
                && !k
                    .matched
                    .first_with_instance_of(*n)
                    .is_some_and(|first| backed[first])
        })
        .count() as u32
}

/// A launch decided now joins after the boot time measured here, and the
/// next tick could decide it one interval later.
fn pre_warm_lead(settings: &Settings, memory: &PolicyMemory) -> std::time::Duration {
    memory.boot_lead.unwrap_or(forecast::DEFAULT_LEAD) + settings.interval
}

/// One scale-up after another: a launch, the cooldown, the next tick.
fn pre_warm_cycle(settings: &Settings, lead: std::time::Duration) -> std::time::Duration {
    lead + settings.policy.scale_up_cooldown + settings.interval
}

/// Far enough to see a peak that takes every batch up to `max_workers`.
fn pre_warm_horizon(settings: &Settings, lead: std::time::Duration) -> std::time::Duration {
    let p = &settings.policy;
    let batches = p.max_workers.div_ceil(p.max_scale_up_batch.max(1));
    lead + pre_warm_cycle(settings, lead) * batches
}

/// `paused by ops@bastion for 25m left: "database migration"`.
pub fn pause_reason(p: &crate::ports::Pause, now: Timestamp) -> String {
    format!(
        "cluster paused by {} ({} left): \"{}\"",
        p.by,
        format_duration(p.until.since(now)),
        p.reason
    )
}

/// After a failed scale-up, wait before the next one: 3 minutes, doubling
/// with each failure in a row, at most 30 minutes (the Cluster
/// Autoscaler's back-off). A launch that fails for a reason that does not
/// change (no capacity anywhere, a refused AMI) must not be retried every
/// cooldown, nor after any operation that came between.
/// `(failures in a row, back-off, when the last failure ended)`.
pub fn failure_backoff(
    record: &OpRecord,
    now: Timestamp,
) -> Option<(u32, std::time::Duration, Timestamp)> {
    let (failures, since) = super::operation::failure_streak(record.op.as_ref(), now);
    let since = since.filter(|_| failures > 0)?;
    let base = std::time::Duration::from_secs(180);
    let backoff = base
        .saturating_mul(1u32 << (failures - 1).min(4))
        .min(std::time::Duration::from_secs(1800));
    Some((failures, backoff, since))
}

pub(super) fn cooldown_left(
    last: Option<Timestamp>,
    cooldown: std::time::Duration,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let until = last?.plus(cooldown);
    (until > now).then(|| until.since(now))
}

fn cpu_reason(settings: &Settings, cpu: f64) -> String {
    let p = &settings.policy;
    if cpu > p.cpu_up_percent {
        format!("CPU {cpu:.0}% > {:.0}%", p.cpu_up_percent)
    } else if cpu < p.cpu_down_percent {
        format!("CPU {cpu:.0}% < {:.0}%", p.cpu_down_percent)
    } else {
        format!(
            "CPU {cpu:.0}% within {:.0}–{:.0}%",
            p.cpu_down_percent, p.cpu_up_percent
        )
    }
}

fn pending_reason(
    settings: &Settings,
    count: usize,
    oldest: Option<std::time::Duration>,
) -> String {
    match oldest {
        None => "0 pending".into(),
        Some(age) => {
            let cmp = if age > settings.policy.pending_for {
                ">"
            } else {
                "≤"
            };
            format!(
                "{count} pending, oldest {} {cmp} {}",
                format_duration(age),
                format_duration(settings.policy.pending_for)
            )
        }
    }
}
