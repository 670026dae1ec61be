//! What the engine tells Kubernetes, where operators already look:
//! `kubectl describe pod` shows why a pending pod did or did not make a
//! node appear, `kubectl describe node` why its node went away, `kubectl
//! get events` the rest. The Cluster Autoscaler's reasons where the
//! meaning is the same (`TriggeredScaleUp`, `NotTriggerScaleUp`,
//! `ScaleDown`, `ScaleDownFailed`), so dashboards and alerts written for
//! it keep working; our own for what it has no word for.
//!
//! Pure: this says which events a tick, a write or an effect makes. The
//! runtime (`runtime/events/`) aggregates repeats into the API server's
//! series, limits the rate and writes them. A note names a rule, never a
//! time left: the server keeps a note immutable, and a repeat must read
//! the same to bump the same event.

use super::circuit::never_joined_by;
use super::decision::{Action, Decision};
use super::observation::Observation;
use super::operation::{Effect, Intent};
use super::settings::Settings;
use super::sizing;
use crate::ports::events::{EventObject, EventType, NOTE_LIMIT, fit};
use crate::ports::{OpKind, OpPhase, OpRecord, Operation, Pod, Timestamp};

pub const TRIGGERED_SCALE_UP: &str = "TriggeredScaleUp";
pub const NOT_TRIGGER_SCALE_UP: &str = "NotTriggerScaleUp";
pub const SCALE_DOWN: &str = "ScaleDown";
pub const SCALE_DOWN_FAILED: &str = "ScaleDownFailed";
pub const DRAIN_ABORTED: &str = "DrainAborted";
pub const NEVER_JOINED: &str = "NeverJoined";
pub const CIRCUIT_OPEN: &str = "CircuitOpen";

/// One thing to tell, before aggregation gives it a name and a count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub regarding: EventObject,
    pub reason: &'static str,
    /// Machine-readable (`action`): what was done or not done.
    pub action: &'static str,
    pub event_type: EventType,
    pub note: String,
}

impl Occurrence {
    fn new(
        regarding: EventObject,
        reason: &'static str,
        action: &'static str,
        event_type: EventType,
        note: String,
    ) -> Occurrence {
        Occurrence {
            regarding,
            reason,
            action,
            event_type,
            note: fit(&note, NOTE_LIMIT),
        }
    }
}

/// What this tick did about a scale-up, as the engine loop saw it.
#[derive(Clone, Copy, Debug)]
pub enum TickStart<'a> {
    /// This engine started an operation (`op_id`, what it was).
    Started(&'a str, &'a Intent),
    /// The decision is a scale-up an operator has not confirmed
    /// (supervised mode).
    AwaitingConfirmation,
    Nothing,
}

/// The pending pods' events of one tick: `TriggeredScaleUp` on the pods
/// a scale-up this engine just started is for; `NotTriggerScaleUp` on a
/// pod no new worker could take, with why, and on the pods that have
/// waited past `pending_for` while something holds the scale-up back.
/// Nothing when the pods could not be read.
pub fn of_tick(
    settings: &Settings,
    obs: &Observation,
    decision: &Decision,
    start: TickStart<'_>,
    now: Timestamp,
) -> Vec<Occurrence> {
    let Ok(view) = &obs.cluster else {
        return Vec::new();
    };
    let sizing::Pending {
        helpable,
        unhelpable,
        ..
    } = sizing::pending(settings, view);
    let mut out: Vec<Occurrence> = unhelpable
        .iter()
        .map(|(pod, why)| not_triggered(pod, why))
        .collect();
    let waited = |pod: &&&Pod| {
        pod.unschedulable_since
            .is_some_and(|since| now.since(since) > settings.policy.pending_for)
    };
    match start {
        TickStart::Started(op_id, Intent::ScaleUp { count }) => {
            out.extend(helpable.iter().map(|pod| {
                Occurrence::new(
                    pod_object(pod),
                    TRIGGERED_SCALE_UP,
                    "ScaleUp",
                    EventType::Normal,
                    format!("pod triggered scale-up: +{count} worker(s) ({op_id})"),
                )
            }));
        }
        TickStart::AwaitingConfirmation if matches!(decision.action, Action::ScaleUp { .. }) => {
            out.extend(helpable.iter().filter(waited).map(|pod| {
                not_triggered(
                    pod,
                    "a scale-up is suggested; an operator has not confirmed it (supervised mode)",
                )
            }));
        }
        _ => {
            if let Some(held) = &decision.scale_up_held {
                let why = held.note();
                out.extend(
                    helpable
                        .iter()
                        .filter(waited)
                        .map(|pod| not_triggered(pod, &why)),
                );
            }
        }
    }
    out
}

fn pod_object(pod: &Pod) -> EventObject {
    EventObject::pod(&pod.namespace, &pod.name, &pod.uid)
}

fn not_triggered(pod: &Pod, why: &str) -> Occurrence {
    Occurrence::new(
        pod_object(pod),
        NOT_TRIGGER_SCALE_UP,
        "ScaleUp",
        EventType::Normal,
        format!("pod didn't trigger scale-up: {why}"),
    )
}

/// What an accepted write from `before` to `after` tells: a scale-down
/// started (`ScaleDown` on its node), a scale-down ended without removing
/// it (`DrainAborted` when the drain was given up and the node kept,
/// `ScaleDownFailed` otherwise), the circuit breaker opened
/// (`CircuitOpen`, about the cluster).
pub fn of_write(before: &OpRecord, after: &OpRecord) -> Vec<Occurrence> {
    let mut out = Vec::new();
    if let Some(op) = &after.op
        && let OpKind::ScaleDown { node, .. } = &op.kind
    {
        let previous = before.op.as_ref().filter(|b| b.id == op.id);
        if previous.is_none() && op.is_in_flight() {
            out.push(Occurrence::new(
                EventObject::node(node),
                SCALE_DOWN,
                "ScaleDown",
                EventType::Normal,
                format!(
                    "scale-down {}: cordon, drain and terminate this node: {}",
                    op.id,
                    op.reasons.join("; ")
                ),
            ));
        } else if previous.is_some_and(|p| p.is_in_flight()) {
            out.extend(scale_down_end(op, node));
        }
    }
    if let Some(pause) = after.circuit_opened_since(before) {
        out.push(Occurrence::new(
            EventObject::cluster(),
            CIRCUIT_OPEN,
            "Pause",
            EventType::Warning,
            format!(
                "circuit breaker opened, every engine paused until an operator resumes: {}",
                pause.reason
            ),
        ));
    }
    out
}

fn scale_down_end(op: &Operation, node: &str) -> Option<Occurrence> {
    let outcome = op.outcome.as_deref().unwrap_or("");
    let (reason, note) = match op.phase {
        // An abort is the drain given up (its deadline, a pod that cannot
        // leave): the node is uncordoned and kept, as it was.
        OpPhase::Aborted => (
            DRAIN_ABORTED,
            format!("scale-down {} aborted, node kept: {outcome}", op.id),
        ),
        OpPhase::Failed => (
            SCALE_DOWN_FAILED,
            format!("scale-down {} failed: {outcome}", op.id),
        ),
        _ => return None,
    };
    Some(Occurrence::new(
        EventObject::node(node),
        reason,
        "ScaleDown",
        EventType::Warning,
        note,
    ))
}

/// What an effect that was just performed tells: instances terminated
/// because they never became Ready nodes (`NeverJoined`, about the node
/// they would have been: K3s names a worker by its instance id here).
pub fn of_effect(op: &Operation, effect: &Effect, succeeded: bool) -> Vec<Occurrence> {
    never_joined_by(op, effect, succeeded)
        .into_iter()
        .map(|id| {
            Occurrence::new(
                EventObject::node(&id),
                NEVER_JOINED,
                "Terminate",
                EventType::Warning,
                format!(
                    "instance {id} ({}) never became a Ready node: terminated",
                    op.id
                ),
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "events/tests.rs"]
mod tests;
