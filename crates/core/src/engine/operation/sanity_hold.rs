//! What a step that rests on the node list does when a fresh read finds
//! the view implausible (the sanity stop): wait, for a while, then give up
//! without the destructive call. A hold that never ended would keep the
//! operation in flight, and with it every later operation, for as long as
//! the view stays wrong, and the instances that make it wrong (a launch
//! that never joined) may be the very ones the step would remove.

use super::Effect;
use crate::engine::Settings;
use crate::ports::{OpKind, OpPhase, OpRecord, PortError, Timestamp};

/// The step's fate on an implausible view.
#[derive(Debug, PartialEq)]
pub enum SanityHold {
    /// Not now: retried next tick.
    Wait(String),
    /// Not at all: handed to `after` as this refusal, which ends the step
    /// (an operation whose terminate was refused ends Failed or Aborted,
    /// a node object not deleted is reported and left as a ghost).
    Refuse(PortError),
}

/// `why` is the sanity stop's reason. A node deletion is never held (the
/// node object can wait; its operation must not); a terminate waits for
/// `intent_ttl` past the time it became due (the join deadline for a
/// scale-up, the intent's own write otherwise) *and* past `held_since`,
/// when this engine first held it (`None`: now, the first time), then is
/// given up and its instances are left for the clean-up, which waits for a
/// plausible view. So one wrong read never gives up a step whose due time
/// other faults (a lost renew, a slow store) already used up.
pub fn on_implausible_view(
    settings: &Settings,
    record: &OpRecord,
    effect: &Effect,
    why: &str,
    held_since: Option<Timestamp>,
    now: Timestamp,
) -> Option<SanityHold> {
    let op = record.in_flight()?;
    match effect {
        Effect::DeleteNode { node } => Some(SanityHold::Refuse(PortError::Refused(format!(
            "{node} not deleted while the view is implausible ({why})"
        )))),
        Effect::Terminate { ids, .. } => {
            let due = match (&op.kind, op.phase, op.deadline) {
                (OpKind::ScaleUp { .. }, OpPhase::Verifying, Some(deadline)) => deadline,
                _ => op.updated,
            };
            let due = due.max(held_since.unwrap_or(now));
            if now.since(due) > settings.intent_ttl() {
                Some(SanityHold::Refuse(PortError::Refused(format!(
                    "not terminated: sanity stop ({why}) since it was due; {} left running for the clean-up",
                    ids.join(", ")
                ))))
            } else {
                Some(SanityHold::Wait(format!(
                    "sanity stop: {why}; {} held",
                    effect.describe()
                )))
            }
        }
        // "No such node" for an uncordon, on a view that cannot be true, says
        // nothing of the node: reported as refused (the node may be left
        // cordoned, which the operator is told) instead of "gone".
        Effect::Uncordon { node, .. } => Some(SanityHold::Refuse(PortError::Refused(format!(
            "404 for {node} while the view is implausible ({why})"
        )))),
        _ => None,
    }
}
