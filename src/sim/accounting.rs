//! What a simulated run cost and delivered: the summary of the headless demo.

use super::invariants::Violation;
use crate::ports::{OpKind, OpPhase, OpRecord, Timestamp};
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Accounting {
    pub start: Timestamp,
    pub now: Timestamp,
    /// Integral of live managed instances over time, in instance-milliseconds.
    pub worker_ms: f64,
    /// Integral of unschedulable pods over time, in pod-milliseconds.
    pub pending_pod_ms: f64,
    pub peak_workers: usize,
    pub scale_ups: u32,
    pub scale_downs: u32,
    pub failed: u32,
    pub aborted: u32,
    /// Writes that opened the circuit breaker.
    pub circuit_opened: u32,
    /// When the last scale-up was done, and the scale-downs that started
    /// within `FLAP_WINDOW` of one: a fleet that grew only to shrink again.
    pub last_scale_up_done: Option<Timestamp>,
    pub flaps: u32,
}

/// A scale-down this soon after a scale-up counts as flapping.
pub const FLAP_WINDOW: Duration = Duration::from_secs(10 * 60);

impl Accounting {
    pub fn integrate(&mut self, dt: Duration, live_workers: usize, pending_pods: usize) {
        let ms = dt.as_millis() as f64;
        self.worker_ms += ms * live_workers as f64;
        self.pending_pod_ms += ms * pending_pods as f64;
        self.peak_workers = self.peak_workers.max(live_workers);
    }

    /// Count an operation when a write moves it to a terminal phase.
    pub fn on_op_write(&mut self, old: &OpRecord, new: &OpRecord) {
        if new.circuit_opened_since(old).is_some() {
            self.circuit_opened += 1;
        }
        let Some(op) = new.op.as_ref() else { return };
        let was_in_flight = old
            .op
            .as_ref()
            .is_some_and(|o| o.id == op.id && o.is_in_flight());
        if !was_in_flight || !op.phase.is_terminal() {
            return;
        }
        match (op.phase, &op.kind) {
            (OpPhase::Done, OpKind::ScaleUp { .. }) => {
                self.scale_ups += 1;
                self.last_scale_up_done = Some(op.updated);
            }
            (OpPhase::Done, OpKind::ScaleDown { .. }) => {
                self.scale_downs += 1;
                if self
                    .last_scale_up_done
                    .is_some_and(|up| op.started >= up && op.started.since(up) < FLAP_WINDOW)
                {
                    self.flaps += 1;
                }
            }
            (OpPhase::Failed, _) => self.failed += 1,
            (OpPhase::Aborted, _) => self.aborted += 1,
            _ => {}
        }
    }
}

/// The headless run's last line (`{"summary": {...}}`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub simulated_hours: f64,
    pub worker_hours: f64,
    pub peak_workers: usize,
    pub pending_pod_minutes: f64,
    /// Pod unschedulable → running, 95th percentile, in seconds.
    pub p95_unschedulable_seconds: f64,
    pub scale_ups: u32,
    pub scale_downs: u32,
    /// Scale-downs started within 10 min of a scale-up's end.
    pub flapping: u32,
    pub failed_operations: u32,
    pub aborted_operations: u32,
    pub invariant_violations: usize,
    #[serde(skip)]
    pub violations: Vec<Violation>,
}

pub fn p95_seconds(waits: &[Duration]) -> f64 {
    if waits.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<Duration> = waits.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64) * 0.95).ceil() as usize;
    sorted[index.clamp(1, sorted.len()) - 1].as_secs_f64()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Accounting {
    pub fn summary(&self, waits: &[Duration], violations: &[Violation]) -> Summary {
        Summary {
            simulated_hours: round2(self.now.since(self.start).as_secs_f64() / 3600.0),
            worker_hours: round2(self.worker_ms / 3_600_000.0),
            peak_workers: self.peak_workers,
            pending_pod_minutes: round2(self.pending_pod_ms / 60_000.0),
            p95_unschedulable_seconds: round2(p95_seconds(waits)),
            scale_ups: self.scale_ups,
            scale_downs: self.scale_downs,
            flapping: self.flaps,
            failed_operations: self.failed,
            aborted_operations: self.aborted,
            invariant_violations: violations.len(),
            violations: violations.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ports::{OpKind, Operation, Origin};

    fn op(kind: OpKind, phase: OpPhase, started: i64, updated: i64) -> OpRecord {
        OpRecord {
            op: Some(Operation {
                id: format!("op-{started}"),
                kind,
                phase,
                origin: Origin::Engine,
                reasons: vec![],
                started: Timestamp(started),
                updated: Timestamp(updated),
                deadline: None,
                steps: vec![],
                outcome: None,
                fence: 1,
                failed_before: 0,
                pending_since: None,
                last_failure: None,
                troubles: vec![],
            }),
            ..OpRecord::default()
        }
    }

    /// A scale-down that starts within 10 minutes of a scale-up's end is
    /// flapping; one that starts later is not.
    #[test]
    fn scale_downs_soon_after_a_scale_up_count_as_flapping() {
        let up = || OpKind::ScaleUp {
            count: 1,
            client_token: "t".into(),
            instance_ids: vec![],
            plan: None,
        };
        let down = || OpKind::ScaleDown {
            node: "n".into(),
            instance_id: None,
        };
        let minute = 60_000;
        let mut a = Accounting::default();
        let mut end = |kind: fn() -> OpKind, started: i64, done: i64| {
            let before = op(kind(), OpPhase::Launched, started, started);
            let after = op(kind(), OpPhase::Done, started, done);
            a.on_op_write(&before, &after);
        };
        end(up, 0, minute);
        end(down, 9 * minute, 12 * minute);
        end(down, 12 * minute, 14 * minute);
        assert_eq!((a.scale_ups, a.scale_downs, a.flaps), (1, 2, 1));
    }

    #[test]
    fn p95_of_waits() {
        let waits: Vec<Duration> = (1..=100).map(Duration::from_secs).collect();
        assert_eq!(p95_seconds(&waits), 95.0);
        assert_eq!(p95_seconds(&[]), 0.0);
        assert_eq!(p95_seconds(&[Duration::from_secs(7)]), 7.0);
    }
}
