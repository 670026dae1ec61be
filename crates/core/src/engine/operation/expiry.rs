//! When an intent recorded but not acted on has gone stale, and what is
//! safe to conclude from the world's silence about it.

use super::{Effect, Next, end};
use crate::engine::lock::EFFECT_CALL_CEILING;
use crate::engine::settings::Settings;
use crate::ports::{OpKind, OpPhase, OpRecord, Operation, Timestamp, format_duration};
use std::time::Duration;

use super::OpView;

/// How long a launched instance may stay missing from `DescribeInstances`
/// (filtered by tag or asked for by id): EC2's reads are eventually
/// consistent with its writes, and "a few seconds" is the usual, not a
/// bound. Until this has passed since a launch could have landed, not
/// seeing its instances proves nothing. The chaos harness hides new
/// instances for exactly this long.
pub const DESCRIBE_LAG: Duration = Duration::from_secs(60);

/// An intent (launch, cordon, terminate) not acted on within
/// `Settings::intent_ttl` of being recorded was decided on a world that has
/// moved on: it is aborted (a scale-down's node uncordoned, in case the
/// cordon went out) and the engine decides again. A launch whose instances
/// EC2 lists is not an intent any more: it is adopted.
pub(super) fn expired_intent(
    settings: &Settings,
    record: &OpRecord,
    op: &Operation,
    view: &OpView<'_>,
    fence: u64,
    now: Timestamp,
) -> Option<Next> {
    // The intent was stamped on its writer's clock and is judged on ours:
    // either may be off by up to the skew margin, so an intent young
    // enough by our clock could already be past its bound by the world's
    // (found by chaos, seed 29084 of commit dccd284: a cordon 110 s after
    // its intent, with a bound of 110 s). Expire it a margin early.
    let age = now.since(op.updated);
    if age + settings.lease.skew_margin <= settings.intent_ttl() {
        return None;
    }
    let why = format!(
        "intent expired: recorded {} ago (longer than {}), not acted on; decided again",
        format_duration(age),
        format_duration(settings.intent_ttl())
    );
    match (&op.kind, op.phase) {
        // Planned, so its launch may have gone out just inside the bound,
        // landed up to one call ceiling later, and still be invisible to
        // Describe: closing it now would leave those instances uncounted
        // and the next scale-up past max_workers (found by chaos, seed
        // 25767 of f278c34). Hold the operation open, acting on nothing,
        // until a launch sent in time would be listed.
        (OpKind::ScaleUp { plan: Some(_), .. }, OpPhase::LaunchIntended)
            if view.op_instances.is_empty() && age < unseen_launch_bound(settings) =>
        {
            Some(Next::Wait(format!(
                "launch intent expired (recorded {} ago); not launching, and waiting until {} after it for EC2 to list anything an earlier attempt launched before closing it",
                format_duration(age),
                format_duration(unseen_launch_bound(settings))
            )))
        }
        // Never planned, so never sent; or past the bound, so EC2 would
        // list what it launched.
        (OpKind::ScaleUp { .. }, OpPhase::LaunchIntended) if view.op_instances.is_empty() => {
            Some(end(record, op, OpPhase::Aborted, why, fence, now))
        }
        // Its terminate went out already: finish (delete the node object).
        (OpKind::ScaleDown { .. }, OpPhase::TerminateIntended)
            if view.instance_gone == Some(true) =>
        {
            None
        }
        (OpKind::ScaleDown { node, .. }, OpPhase::CordonIntended | OpPhase::TerminateIntended) => {
            Some(Next::Act(Effect::Uncordon {
                node: node.clone(),
                abort: Some(why),
            }))
        }
        (OpKind::Cordon { .. }, OpPhase::CordonIntended)
        | (
            OpKind::TerminateStrays { .. } | OpKind::DeleteGhost { .. },
            OpPhase::TerminateIntended,
        ) => Some(end(record, op, OpPhase::Aborted, why, fence, now)),
        _ => None,
    }
}

/// The age (by our clock) past which a planned launch intent with no
/// instance listed cannot have launched anything: the last launch it
/// allowed was sent inside the intent's bound, landed within one call
/// ceiling, and is listed within the Describe lag; the writer's clock and
/// ours may differ by the skew margin.
fn unseen_launch_bound(settings: &Settings) -> Duration {
    settings.intent_ttl() + EFFECT_CALL_CEILING + DESCRIBE_LAG + settings.lease.skew_margin
}
