//! A scale-up's launch as one recorded plan: every (instance type, subnet)
//! target in the order it will be tried, written fenced before the first
//! `RunInstances`; each attempt re-sent exactly, with its own token, until
//! EC2 answers; a refusal for capacity moves to the next target.

use super::super::settings::Settings;
use super::{Effect, Next, OpView, end, transition};
use crate::ports::{
    Instance, LaunchPlan, LaunchRequest, LaunchTarget, OpKind, OpPhase, OpRecord, Operation,
    PortError, Timestamp,
};

/// The targets in the order they are tried: the subnets from the one with
/// the fewest live managed workers (balancing the zones), then the same for
/// the next instance type. No subnets configured: the account's default.
pub(super) fn targets(settings: &Settings, fleet: &[Instance]) -> Vec<LaunchTarget> {
    let mut subnets: Vec<(usize, usize, &String)> = settings
        .launch
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let live = fleet
                .iter()
                .filter(|x| x.managed && x.state.is_live() && x.subnet.as_ref() == Some(s))
                .count();
            (live, i, s)
        })
        .collect();
    subnets.sort();
    let subnets: Vec<Option<String>> = if subnets.is_empty() {
        vec![None]
    } else {
        subnets
            .into_iter()
            .map(|(_, _, s)| Some(s.clone()))
            .collect()
    };
    settings
        .launch
        .instance_types
        .iter()
        .flat_map(|t| {
            subnets.iter().map(move |subnet| LaunchTarget {
                instance_type: t.clone(),
                subnet: subnet.clone(),
            })
        })
        .collect()
}

/// A K3s release as `INSTALL_K3S_VERSION` takes it: `v1.33.1+k3s1`
/// (and nothing a shell would interpret).
pub fn is_k3s_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((semver, build)) = rest.split_once("+k3s") else {
        return false;
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = semver.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| numeric(p)) && numeric(build)
}

/// LaunchIntended: record the plan first, then send its current attempt.
pub(super) fn plan_or_launch(
    settings: &Settings,
    record: &OpRecord,
    op: &Operation,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Next {
    let OpKind::ScaleUp {
        count,
        client_token,
        plan,
        ..
    } = &op.kind
    else {
        return Next::Idle;
    };
    let Some(plan) = plan else {
        let master = match view.master {
            Some(m) => m,
            None => {
                return end(
                    record,
                    op,
                    OpPhase::Failed,
                    "no running K3s server found by its tag (ec2.master_tag): nothing to join"
                        .into(),
                    fence,
                    now,
                );
            }
        };
        let Some(address) = master.private_ip.clone() else {
            return end(
                record,
                op,
                OpPhase::Failed,
                format!("the K3s server {} has no private address", master.id),
                fence,
                now,
            );
        };
        // Pin the K3s release: workers newer than the server are an
        // unsupported skew, and "whatever get.k3s.io has today" changes
        // under a running cluster.
        let wanted = settings
            .launch
            .k3s_version
            .as_deref()
            .or(view.server_version);
        let k3s_version = match wanted {
            Some(v) if is_k3s_version(v) => v.to_string(),
            other => {
                return end(
                    record,
                    op,
                    OpPhase::Failed,
                    format!(
                        "cannot pin the K3s release: the server reports {}; set ec2.k3s_version (like \"v1.33.1+k3s1\")",
                        other.map_or("no version".to_string(), |v| format!("\"{v}\""))
                    ),
                    fence,
                    now,
                );
            }
        };
        let targets = targets(settings, view.fleet);
        let Some(first) = targets.first() else {
            return end(
                record,
                op,
                OpPhase::Failed,
                "no instance type configured (ec2.instance_types)".into(),
                fence,
                now,
            );
        };
        let step = format!(
            "plan: {count} × {first}, {} fallback target(s); server {address}, K3s {k3s_version}",
            targets.len() - 1
        );
        let plan = LaunchPlan {
            targets,
            attempt: 0,
            master_address: address,
            refusals: Vec::new(),
            k3s_version,
        };
        return transition(record, op, OpPhase::LaunchIntended, step, fence, now, |o| {
            set_plan(o, plan)
        });
    };
    match plan.current() {
        Some(target) => Next::Act(Effect::Launch(LaunchRequest {
            op_id: op.id.clone(),
            client_token: plan.token(client_token),
            count: *count,
            instance_type: target.instance_type.clone(),
            subnet: target.subnet.clone(),
            master_address: plan.master_address.clone(),
            k3s_version: plan.k3s_version.clone(),
        })),
        None => exhausted(record, op, plan, fence, now),
    }
}

fn set_plan(op: &mut Operation, plan: LaunchPlan) {
    if let OpKind::ScaleUp { plan: slot, .. } = &mut op.kind {
        *slot = Some(plan);
    }
}

fn exhausted(
    record: &OpRecord,
    op: &Operation,
    plan: &LaunchPlan,
    fence: u64,
    now: Timestamp,
) -> Next {
    end(
        record,
        op,
        OpPhase::Failed,
        format!(
            "launch failed: no capacity for any instance type and subnet ({})",
            plan.refusals.join("; ")
        ),
        fence,
        now,
    )
}

/// A launch that EC2 refused or did not confirm.
pub(super) fn after_error(
    record: &OpRecord,
    op: &Operation,
    error: PortError,
    fence: u64,
    now: Timestamp,
) -> Next {
    let plan = match &op.kind {
        OpKind::ScaleUp { plan: Some(p), .. } => p,
        _ => {
            return end(
                record,
                op,
                OpPhase::Failed,
                format!("launch failed: {error}"),
                fence,
                now,
            );
        }
    };
    match error {
        // Not sent, or sent and unanswered: the same attempt again, with
        // the same token, next tick.
        e if e.is_transient() => {
            Next::Wait(format!("launch not confirmed ({e}); retrying next tick"))
        }
        PortError::InsufficientCapacity(why) => {
            let target = plan.current().map(|t| t.to_string()).unwrap_or_default();
            let mut next_plan = plan.clone();
            next_plan.refusals.push(format!("{target}: {why}"));
            next_plan.attempt += 1;
            match next_plan.current().cloned() {
                Some(next_target) => transition(
                    record,
                    op,
                    OpPhase::LaunchIntended,
                    format!("{target} refused ({why}); next: {next_target}"),
                    fence,
                    now,
                    |o| set_plan(o, next_plan),
                ),
                None => exhausted(record, op, &next_plan, fence, now),
            }
        }
        // The token already launched something, with other parameters:
        // what it launched carries the op-id tag and is adopted once EC2
        // lists it; an intent that never sees it expires.
        PortError::TokenReused(why) => Next::Wait(format!(
            "EC2 says the launch token was used before ({why}); adopting the instances tagged {} once they are listed",
            op.id
        )),
        e => end(
            record,
            op,
            OpPhase::Failed,
            format!("launch failed: {e}"),
            fence,
            now,
        ),
    }
}
