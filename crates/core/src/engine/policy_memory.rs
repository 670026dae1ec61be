//! What the policy remembers between ticks (`policy.rs`): streaks of high
//! CPU and idleness, the last node count, drains that did not finish, and
//! the demand history of the predictive pre-warm.

use super::forecast::DemandHistory;
use crate::ports::{OpRecord, Timestamp, format_duration};
use std::collections::BTreeMap;

/// What the policy remembers between ticks: since when CPU has been above
/// the up threshold, and since when the cluster has been idle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyMemory {
    pub cpu_high_since: Option<Timestamp>,
    pub idle_since: Option<Timestamp>,
    /// The node count of the last tick that saw the cluster, for the
    /// sanity stop's "the list halved in one tick".
    pub last_nodes: Option<usize>,
    /// Nodes whose scale-down ended without removing them (a drain that
    /// reached its deadline on a pod that would not go, an abort), and
    /// when: not chosen again for [`DRAIN_RETRY_AFTER`], so a node whose
    /// pods cannot leave (a namespace stuck Terminating, a budget at 0)
    /// does not take a drain deadline of capacity every cooldown.
    pub unfinished_drains: BTreeMap<String, Timestamp>,
    /// The need per minute and the forecasts made from it (predictive
    /// pre-warm, `engine/forecast.rs`); kept through blind ticks.
    pub demand: DemandHistory,
    /// How long a launch takes to join here (the 95th percentile of this
    /// process's timed boots), for the forecast's lead; `None`: none timed.
    pub boot_lead: Option<std::time::Duration>,
}

impl PolicyMemory {
    /// What a blind tick leaves: sustained conditions restart, but what
    /// was learnt of nodes, drains, demand and boots stays.
    pub fn after_blind_tick(&mut self) {
        *self = PolicyMemory {
            last_nodes: self.last_nodes,
            unfinished_drains: std::mem::take(&mut self.unfinished_drains),
            demand: std::mem::take(&mut self.demand),
            boot_lead: self.boot_lead,
            ..PolicyMemory::default()
        };
    }
}

/// How long a node whose scale-down did not finish is passed over. With
/// the default drain timeout (5 min) and scale-down cooldown (10 min), a
/// node whose pods never leave would otherwise spend a third of its time
/// cordoned under a drain that cannot end; passed over, other idle nodes go
/// first, and it is tried again at most every 45 minutes.
pub const DRAIN_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1800);

impl PolicyMemory {
    /// Remember the record's last operation if it is a scale-down that
    /// ended without its node removed; forget what is past the retry time.
    /// Fed from the shared record every tick, so an engine that took over
    /// (or restarted) knows the last one too.
    pub(super) fn note_unfinished_drain(&mut self, record: &OpRecord, now: Timestamp) {
        use crate::ports::{OpKind, OpPhase};
        if let Some(op) = &record.op
            && let OpKind::ScaleDown { node, .. } = &op.kind
            && matches!(op.phase, OpPhase::Aborted | OpPhase::Failed)
            && now.since(op.updated) < DRAIN_RETRY_AFTER
        {
            let at = self
                .unfinished_drains
                .entry(node.clone())
                .or_insert(op.updated);
            *at = (*at).max(op.updated);
        }
        self.unfinished_drains
            .retain(|_, at| now.since(*at) < DRAIN_RETRY_AFTER);
    }

    pub(super) fn held_back(&self, now: Timestamp) -> BTreeMap<String, String> {
        self.unfinished_drains
            .iter()
            .map(|(node, at)| {
                (
                    node.clone(),
                    format!(
                        "its scale-down did not finish {} ago; passed over for {} more",
                        format_duration(now.since(*at)),
                        format_duration(DRAIN_RETRY_AFTER.saturating_sub(now.since(*at)))
                    ),
                )
            })
            .collect()
    }
}
