//! The executor's look at the view a destructive step rests on: the
//! sanity stop judged on the list the step was decided on and on a fresh
//! one, and how long this engine has held a step on an implausible view.

use super::{Executor, fail};
use crate::engine::ExecFailure;
use crate::ports::Node;
use std::collections::BTreeSet;

impl Executor {
    /// When this engine first held a step of `op_id` on an implausible
    /// view (`None`, and now remembered, the first time).
    pub(super) fn held_since(
        &self,
        op_id: Option<&str>,
        now: crate::ports::Timestamp,
    ) -> Option<crate::ports::Timestamp> {
        let op_id = op_id?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match &*held {
            Some((id, since)) if id == op_id => Some(*since),
            _ => {
                *held = Some((op_id.to_string(), now));
                None
            }
        }
    }

    /// The sanity stop on the node list a step was decided on and on a
    /// fresh one, with a fresh fleet. `judged`: the instances the step
    /// would terminate (no evidence against the view in the unready share,
    /// `sanity::implausible_judging`).
    pub(super) async fn judge_view(
        &self,
        op_id: Option<&str>,
        decided_on: Option<&[Node]>,
        judged: &[String],
    ) -> Result<ViewVerdict, ExecFailure> {
        let nodes = self.ports.cluster.nodes().await.map_err(|e| {
            fail(
                "kubernetes",
                op_id,
                format!("listing nodes for the sanity check: {e}; cannot advance the operation this tick"),
            )
        })?;
        let fleet = self.ports.cloud.managed_instances().await.map_err(|e| {
            fail(
                "ec2",
                op_id,
                format!("describing instances for the sanity check: {e}; cannot advance the operation this tick"),
            )
        })?;
        let now = self.ports.clock.now();
        let judged: BTreeSet<&str> = judged.iter().map(String::as_str).collect();
        let judge = |nodes: Vec<Node>| {
            let view = crate::engine::ClusterView {
                nodes,
                ..Default::default()
            };
            crate::engine::sanity::implausible_judging(
                &self.settings,
                &view,
                &fleet,
                None,
                now,
                &judged,
            )
        };
        let decided = decided_on.and_then(|nodes| judge(nodes.to_vec()));
        Ok(match (judge(nodes), decided) {
            (Some(why), _) => ViewVerdict::Implausible(why),
            (None, Some(why)) => ViewVerdict::DecidedOnImplausible(why),
            (None, None) => ViewVerdict::Plausible,
        })
    }
}

/// What the sanity check says of the views a destructive step rests on.
pub(super) enum ViewVerdict {
    Plausible,
    /// The list the step was decided on was implausible, a fresh one is not.
    DecidedOnImplausible(String),
    /// The fresh list is implausible.
    Implausible(String),
}
