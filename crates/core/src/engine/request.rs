//! An operator's request (the console's keys, a reconciliation fix) and
//! the safety rules it is checked against before it becomes an operation;
//! and the operation an engine decision starts.

use super::candidates;
use super::decision::{Action, Refusal};
use super::observation::Observation;
use super::operation::Intent;
use super::policy::pause_reason;
use super::settings::Settings;
use crate::ports::OpRecord;

/// An operator's request in the console, before it becomes an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Act on the engine's current suggestion.
    Suggested(Action),
    /// `+`: one more worker.
    AddWorker,
    /// Drain and remove this node.
    RemoveNode(String),
    Cordon(String),
    Uncordon(String),
    /// Reconciliation fix: terminate an instance outside any operation.
    TerminateStray(String),
    /// Reconciliation fix: delete a node object whose instance is gone.
    DeleteGhost(String),
    /// Reconciliation fix: close the in-flight scale-up whose instances are gone.
    CloseOperation(String),
}

impl Request {
    /// Terminating instances outside any operation: what an open circuit
    /// still lets run (engine/circuit.rs).
    pub fn is_clean_up(&self) -> bool {
        matches!(
            self,
            Request::Suggested(Action::TerminateStrays { .. }) | Request::TerminateStray(_)
        )
    }
}

/// Safety rules an operator cannot override: bounds, blocking pods, one
/// operation at a time, no action on Unknown data. Cooldowns are policy, not
/// safety: an operator may act inside one.
pub fn validate_request(
    settings: &Settings,
    obs: &Observation,
    record: &OpRecord,
    request: &Request,
) -> Result<Intent, Refusal> {
    let p = &settings.policy;
    if let Some(pause) = record.pause_stopping(obs.at, request.is_clean_up()) {
        return Err(Refusal(pause_reason(pause, obs.at)));
    }
    if let Some(op) = record.in_flight() {
        return Err(Refusal(format!(
            "{} {} is in flight ({}); one operation at a time",
            op.kind.name(),
            op.id,
            op.phase
        )));
    }
    let view = obs.cluster.as_ref().map_err(|r| {
        Refusal(format!(
            "Kubernetes is Unknown ({r}); refusing to act blind"
        ))
    })?;
    let fleet = obs
        .fleet
        .as_ref()
        .map_err(|r| Refusal(format!("EC2 is Unknown ({r}); refusing to act blind")))?;
    let destructive = matches!(
        request,
        Request::Suggested(Action::TerminateStrays { .. } | Action::ScaleDown { .. })
            | Request::RemoveNode(_)
            | Request::TerminateStray(_)
            | Request::DeleteGhost(_)
    );
    if destructive
        && let Some(why) = super::sanity::implausible(settings, view, fleet, None, obs.at)
    {
        return Err(Refusal(format!(
            "sanity stop: {why}; nothing destructive runs until the view is plausible again"
        )));
    }
    let add = |count: u32| {
        let managed = fleet.len() as u32;
        if managed + count > p.max_workers {
            Err(Refusal(format!(
                "would exceed max_workers ({}): {managed} managed workers already",
                p.max_workers
            )))
        } else {
            Ok(Intent::ScaleUp { count })
        }
    };
    let remove = |node: &str| {
        let target = view
            .node(node)
            .ok_or_else(|| Refusal(format!("node {node} is not a known worker")))?;
        let ready_after = view.ready_workers() - usize::from(target.ready);
        if (ready_after as u32) < p.min_workers {
            return Err(Refusal(format!(
                "would drop below min_workers ({}): {} Ready workers",
                p.min_workers,
                view.ready_workers()
            )));
        }
        let (instance_id, _) = candidates::eligibility(settings, view, fleet, target)
            .map_err(|why| Refusal(format!("cannot remove {node}: {why}")))?;
        Ok(Intent::ScaleDown {
            node: node.to_string(),
            instance_id: instance_id.to_string(),
        })
    };
    match request {
        Request::Suggested(Action::Hold) => Err(Refusal("the suggestion is to hold".into())),
        Request::Suggested(Action::TerminateStrays { instances }) => {
            let findings = super::reconcile::reconcile(settings, obs, record, obs.at);
            let still: Vec<String> = instances
                .iter()
                .filter(|id| {
                    findings.iter().any(|f| matches!(f, super::reconcile::Finding::NeverJoined { instance, .. } if &instance == id))
                })
                .cloned()
                .collect();
            if still.is_empty() {
                Err(Refusal("those instances are no longer strays".into()))
            } else {
                Ok(Intent::TerminateStrays { instances: still })
            }
        }
        Request::Suggested(Action::ScaleUp { count }) => add(*count),
        Request::Suggested(Action::ScaleDown { node, .. }) | Request::RemoveNode(node) => {
            remove(node)
        }
        Request::AddWorker => add(1),
        Request::TerminateStray(id) => {
            let findings = super::reconcile::reconcile(settings, obs, record, obs.at);
            findings
                .iter()
                .any(|f| {
                    matches!(f, super::reconcile::Finding::NeverJoined { instance, .. }
                        | super::reconcile::Finding::OrphanInstance { instance, .. } if instance == id)
                })
                .then(|| Intent::TerminateStrays { instances: vec![id.clone()] })
                .ok_or_else(|| Refusal(format!("{id} is not (or no longer) an instance outside any operation")))
        }
        Request::DeleteGhost(node) => {
            let findings = super::reconcile::reconcile(settings, obs, record, obs.at);
            findings
                .iter()
                .any(|f| matches!(f, super::reconcile::Finding::GhostNode { node: n, .. } if n == node))
                .then(|| Intent::DeleteGhost { node: node.clone() })
                .ok_or_else(|| Refusal(format!("{node} is not (or no longer) a ghost node")))
        }
        Request::CloseOperation(id) => Err(Refusal(format!(
            "{id} can only be closed while it is in flight and its instances are gone"
        ))),
        Request::Cordon(node) | Request::Uncordon(node) => {
            let target = view
                .node(node)
                .ok_or_else(|| Refusal(format!("node {node} is not a known worker")))?;
            let cordon = matches!(request, Request::Cordon(_));
            if target.cordoned == cordon {
                return Err(Refusal(format!(
                    "{node} is already {}",
                    if cordon { "cordoned" } else { "schedulable" }
                )));
            }
            Ok(Intent::Cordon {
                node: node.clone(),
                cordon,
            })
        }
    }
}

/// The operation an engine decision starts, if any.
pub fn intent_of(action: &Action) -> Option<Intent> {
    match action {
        Action::Hold => None,
        Action::ScaleUp { count } => Some(Intent::ScaleUp { count: *count }),
        Action::ScaleDown { node, instance_id } => Some(Intent::ScaleDown {
            node: node.clone(),
            instance_id: instance_id.clone(),
        }),
        Action::TerminateStrays { instances } => Some(Intent::TerminateStrays {
            instances: instances.clone(),
        }),
    }
}
