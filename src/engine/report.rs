//! What one tick saw, decided and did: plain data for logs and the console.

use super::{Decision, Observation};
use crate::ports::{StateSnapshot, Timestamp};

#[derive(Clone, Debug, Default)]
pub struct ExecReport {
    pub lock_taken: bool,
    /// Who held the lock when we could not take it.
    pub busy_holder: Option<String>,
    pub started: Option<String>,
    /// Why the requested start did not happen.
    pub refused: Option<String>,
    /// Steps performed this tick, in order.
    pub steps: Vec<String>,
    /// Why the executor stopped this tick.
    pub stopped: Option<String>,
    pub error: Option<String>,
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
    /// Reconciliation findings (ISSUE 8) on this tick's observation.
    pub findings: Vec<super::reconcile::Finding>,
}
