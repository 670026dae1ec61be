//! The circuit breaker: when launches keep never joining, or operations
//! keep failing, the engine stops itself and says so, rather than go on
//! paying for instances that will not work (a bad AMI, a join token that
//! rotated, a security group that blocks the server) or churning the
//! cluster with drains that cannot finish.
//!
//! The history lives in the operation record (`Operation::troubles`),
//! carried from each operation to the next like the failure row, so every
//! engine counts the same events and one that takes over after a crash
//! knows them. The circuit opens in the same fenced write that ends the
//! operation which crossed a threshold: it sets the cluster-wide pause
//! (`Pause::circuit`), which every engine on every host honours, and clears
//! the history, so that a resumed cluster needs fresh failures to open it
//! again. Under it, the clean-up of launches that never joined goes on
//! (they are what opened it, and billed while they wait); nothing else
//! starts until the operator resumes (`k3s-autoscaler resume`, `P` in the
//! console) or `open_for` runs out.
//!
//! Pure: `now` is an argument.

use super::operation::{AfterTerminate, Effect, Next};
use crate::ports::{
    OpKind, OpPhase, OpRecord, OpStep, Operation, Origin, Pause, Timestamp, Trouble, TroubleKind,
    format_duration,
};
use std::time::Duration;

/// Who the circuit breaker's pause is by, as the console and `status`
/// show it.
pub const CIRCUIT_BREAKER: &str = "the circuit breaker";

/// At most this many troubles of each count (never joined; failed or
/// aborted) are kept, the newest: the record is one DynamoDB item
/// (400 KB), and the config refuses a threshold above it.
pub const KEPT_PER_COUNT: usize = 32;

#[derive(Clone, Debug, PartialEq)]
pub struct CircuitRules {
    pub enabled: bool,
    /// Open after this many launched instances never joined within
    /// `window` (0: never on this count).
    pub never_joined: u32,
    /// Open after this many operations ended Failed or Aborted within
    /// `window` (0: never on this count).
    pub failed_operations: u32,
    pub window: Duration,
    /// How long the pause lasts if nobody resumes it: long enough that a
    /// person looks, short enough that a tool nobody watches comes back.
    pub open_for: Duration,
}

impl Default for CircuitRules {
    fn default() -> Self {
        CircuitRules {
            enabled: true,
            never_joined: 3,
            failed_operations: 5,
            window: Duration::from_secs(3600),
            open_for: Duration::from_secs(24 * 3600),
        }
    }
}

/// The history as it stands at `now`: what the record's last operation
/// carries, less what has left the window (for the console and `status`).
pub fn recent(rules: &CircuitRules, record: &OpRecord, now: Timestamp) -> Vec<Trouble> {
    let mut troubles = record
        .op
        .as_ref()
        .map(|o| o.troubles.clone())
        .unwrap_or_default();
    troubles.retain(|t| in_window(rules, t, now));
    troubles
}

fn in_window(rules: &CircuitRules, t: &Trouble, now: Timestamp) -> bool {
    now.since(t.at) < rules.window
}

/// What an operation that just ended adds to the history, given what it
/// already holds: the instances its last step terminated because they
/// never joined (a scale-up past its join deadline, the engine's
/// clean-up), each once however often it is terminated again (an EC2
/// listing that still shows a terminated instance makes it a stray
/// twice); and the operation itself if it failed, or was aborted for
/// anything but a drain that did not finish. That one is a budget or a
/// pod doing its job: the node is passed over for half an hour
/// (`policy::DRAIN_RETRY_AFTER`), and a cluster with a strict budget
/// would otherwise open the circuit every few scale-downs.
fn troubles_of(
    op: &Operation,
    never_joined: &[String],
    held: &[Trouble],
    now: Timestamp,
) -> Vec<Trouble> {
    let mark = |kind, subject: &str| Trouble {
        at: now,
        kind,
        subject: subject.to_string(),
    };
    let mut troubles: Vec<Trouble> = never_joined
        .iter()
        .filter(|i| {
            !held
                .iter()
                .any(|t| t.kind == TroubleKind::NeverJoined && &t.subject == *i)
        })
        .map(|i| mark(TroubleKind::NeverJoined, i))
        .collect();
    match (op.phase, &op.kind) {
        (OpPhase::Failed, _) => troubles.push(mark(TroubleKind::Failed, &op.id)),
        (OpPhase::Aborted, OpKind::ScaleDown { .. }) => {}
        (OpPhase::Aborted, _) => troubles.push(mark(TroubleKind::Aborted, &op.id)),
        _ => {}
    }
    troubles
}

/// The instances a terminate that just succeeded removed because they
/// never joined: a scale-up's own, past its join deadline, or the
/// engine's clean-up's (an operator's choice of strays says nothing about
/// launches).
pub fn never_joined_by(op: &Operation, effect: &Effect, succeeded: bool) -> Vec<String> {
    match (effect, &op.kind) {
        (
            Effect::Terminate {
                ids,
                then: AfterTerminate::Fail(_),
            },
            OpKind::ScaleUp { .. },
        ) if succeeded => ids.clone(),
        (
            Effect::Terminate {
                ids,
                then: AfterTerminate::Finish(_),
            },
            OpKind::TerminateStrays { .. },
        ) if succeeded && op.origin == Origin::Engine => ids.clone(),
        _ => Vec::new(),
    }
}

/// The newest [`KEPT_PER_COUNT`] of each count, in their order.
fn keep_newest(troubles: &mut Vec<Trouble>) {
    let count = |never: bool| {
        troubles
            .iter()
            .filter(|t| (t.kind == TroubleKind::NeverJoined) == never)
            .count()
    };
    let mut excess = [count(false), count(true)].map(|n| n.saturating_sub(KEPT_PER_COUNT));
    troubles.retain(|t| {
        let slot = &mut excess[usize::from(t.kind == TroubleKind::NeverJoined)];
        if *slot > 0 {
            *slot -= 1;
            false
        } else {
            true
        }
    });
}

/// Why the circuit opens on this history, if it does.
pub fn tripped(rules: &CircuitRules, troubles: &[Trouble]) -> Option<String> {
    if !rules.enabled {
        return None;
    }
    let never: Vec<&str> = troubles
        .iter()
        .filter(|t| t.kind == TroubleKind::NeverJoined)
        .map(|t| t.subject.as_str())
        .collect();
    let failed: Vec<&str> = troubles
        .iter()
        .filter(|t| t.kind != TroubleKind::NeverJoined)
        .map(|t| t.subject.as_str())
        .collect();
    let window = format_duration(rules.window);
    if rules.never_joined > 0 && never.len() >= rules.never_joined as usize {
        Some(format!(
            "{} launched instances never joined within {window} ({}): check the AMI, the join token and the security groups, then resume",
            never.len(),
            named(&never)
        ))
    } else if rules.failed_operations > 0 && failed.len() >= rules.failed_operations as usize {
        Some(format!(
            "{} operations failed or were aborted within {window} ({}): read their outcomes, then resume",
            failed.len(),
            named(&failed)
        ))
    } else {
        None
    }
}

fn named(subjects: &[&str]) -> String {
    const NAMED: usize = 4;
    let mut text = subjects
        .iter()
        .take(NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if subjects.len() > NAMED {
        text.push_str(&format!(" and {} more", subjects.len() - NAMED));
    }
    text
}

/// The write that ends an operation, with the history brought up to date
/// and, when it crosses a threshold, the circuit opened in the same write.
/// `never_joined`: what the step that ends it terminated for never joining.
/// Anything else passes through untouched.
pub(crate) fn settle(
    rules: &CircuitRules,
    before: &OpRecord,
    next: Next,
    never_joined: &[String],
    now: Timestamp,
) -> Next {
    let Next::Write(mut record) = next else {
        return next;
    };
    let Some(was) = before.in_flight() else {
        return Next::Write(record);
    };
    let paused = record.paused_at(now).is_some();
    let Some(op) = record
        .op
        .as_mut()
        .filter(|o| o.id == was.id && !o.is_in_flight())
    else {
        return Next::Write(record);
    };
    op.troubles.retain(|t| in_window(rules, t, now));
    // Already paused (the circuit is open and this is a clean-up under
    // it, or a person paused mid-operation): what happens now belongs to
    // the incident someone is already looking at, and a resumed cluster
    // must need fresh failures to open the circuit again.
    if paused {
        return Next::Write(record);
    }
    let added = troubles_of(op, never_joined, &op.troubles, now);
    op.troubles.extend(added);
    keep_newest(&mut op.troubles);
    if let Some(why) = tripped(rules, &op.troubles) {
        op.troubles.clear();
        op.steps.push(OpStep {
            at: now,
            text: format!("circuit breaker opened: {why}"),
        });
        record.pause = Some(Pause {
            by: CIRCUIT_BREAKER.into(),
            reason: why,
            since: now,
            until: now.plus(rules.open_for),
            circuit: true,
        });
    }
    Next::Write(record)
}

#[cfg(test)]
mod tests;
