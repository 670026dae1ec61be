//! What one tick saw, decided and did: plain data for logs and the console.

use super::{Decision, Observation};
use crate::ports::{StateSnapshot, Timestamp};

/// Why an attempt to start or advance an operation failed: which backend
/// refused, which operation it was for, and the service's own words. Never
/// silent: the executor logs it at WARN, `/metrics` counts it, the console
/// shows it, and enough of them in a row make `/healthz` unhealthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecFailure {
    /// `dynamodb`, `ec2` or `kubernetes` (the `backend` label of
    /// `k3s_autoscaler_backend_errors_total`), or `engine` for a guard.
    pub backend: &'static str,
    pub op_id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ExecFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op_id {
            Some(op) => write!(f, "{op}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ExecReport {
    pub lock_taken: bool,
    /// Who held the lock when we could not take it.
    pub busy_holder: Option<String>,
    pub started: Option<String>,
    /// What it started, with `started`.
    pub started_intent: Option<super::Intent>,
    /// Why the requested start did not happen.
    pub refused: Option<String>,
    /// Steps performed this tick, in order.
    pub steps: Vec<String>,
    /// Why the executor stopped this tick.
    pub stopped: Option<String>,
    pub error: Option<ExecFailure>,
}

/// The one thing a tick's execution says first, for a one-line notice.
/// A start is news over everything else, then a start refused, then a
/// backend's refusal; a tick that did none of these has no headline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecHeadline<'a> {
    Started(&'a str),
    Refused(&'a str),
    Failed(&'a ExecFailure),
}

impl ExecReport {
    pub fn headline(&self) -> Option<ExecHeadline<'_>> {
        if let Some(id) = &self.started {
            return Some(ExecHeadline::Started(id));
        }
        if let Some(why) = &self.refused {
            return Some(ExecHeadline::Refused(why));
        }
        self.error.as_ref().map(ExecHeadline::Failed)
    }
}

/// One tick: the observation, the decision, the state read, and what the
/// executor did (if it ran).
#[derive(Clone, Debug)]
pub struct TickReport {
    pub at: Timestamp,
    pub observation: Observation,
    pub decision: Decision,
    pub state: Result<StateSnapshot, String>,
    pub exec: Option<ExecReport>,
    /// Reconciliation findings on this tick's observation.
    pub findings: Vec<super::reconcile::Finding>,
    /// Launches booting now and the last ones verified (`engine/boot.rs`),
    /// and the percentiles of every step, as this process watched them.
    pub boot: Vec<super::boot::BootTimeline>,
    pub boot_stats: Vec<super::boot::BootStats>,
    /// How the cluster was read when not by lists read this tick
    /// (`ObservedCluster::source`: `watch · 3 s`).
    pub cluster_source: Option<String>,
    /// This process's recent scale-up and verify latencies.
    pub latency: super::latency::LatencySummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_outranks_a_refusal_which_outranks_a_backend_failure() {
        let failure = ExecFailure {
            backend: "dynamodb",
            op_id: None,
            message: "throttled".into(),
        };
        let mut report = ExecReport {
            started: Some("op-1".into()),
            refused: Some("busy".into()),
            error: Some(failure.clone()),
            ..ExecReport::default()
        };
        assert_eq!(report.headline(), Some(ExecHeadline::Started("op-1")));
        report.started = None;
        assert_eq!(report.headline(), Some(ExecHeadline::Refused("busy")));
        report.refused = None;
        assert_eq!(report.headline(), Some(ExecHeadline::Failed(&failure)));
        report.error = None;
        report.steps.push("cordon n1".into());
        assert_eq!(report.headline(), None, "steps alone are not a headline");
    }
}
