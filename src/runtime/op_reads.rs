//! What the executor reads for the operation in flight before each step:
//! the nodes, the operation's instances, the drained node's pods and
//! budgets, and, where a destructive step rests on it, the look-ups that
//! confirm the view (nodes under any labels, whether an instance is still
//! live, the server's K3s release when a launch is planned).

use super::executor::fail;
use crate::engine::operation::OpView;
use crate::engine::{ExecFailure, Settings};
use crate::ports::{
    Instance, InstanceState, Node, OpKind, OpPhase, Operation, Pdb, Pod, PortError, Ports,
};
use std::collections::BTreeSet;
use tracing::debug;

/// Read what the operation touches, fresh.
pub(super) async fn view_for(
    ports: &Ports,
    settings: &Settings,
    op: &Operation,
) -> Result<WorldSlice, ExecFailure> {
    let (kind, op_id) = (&op.kind, op.id.as_str());
    let p = ports;
    // Which backend failed is said where the call is made, not guessed
    // from the words.
    let failed = |backend: &'static str, what: &str, e: PortError| {
        fail(
            backend,
            Some(op_id),
            format!("{what}: {e}; cannot advance the operation this tick"),
        )
    };
    let ec2_err = |what: &str, e: PortError| failed("ec2", what, e);
    let k8s_err = |what: &str, e: PortError| failed("kubernetes", what, e);
    let mut slice = WorldSlice::default();
    if !matches!(kind, OpKind::Cordon { .. }) {
        slice.nodes = p
            .cluster
            .nodes()
            .await
            .map_err(|e| k8s_err("listing nodes", e))?;
        slice.nodes_read = true;
    }
    match kind {
        OpKind::ScaleUp {
            plan, instance_ids, ..
        } => {
            slice.op_instances = p
                .cloud
                .instances_for_op(op_id)
                .await
                .map_err(|e| ec2_err("describing the operation's instances", e))?;
            // Past the join deadline the instances not in the selected
            // list are about to be terminated as "never joined": look
            // for their nodes under any labels first (only then: it is a
            // full node list per instance).
            let now = p.clock.now();
            if op.phase == OpPhase::Verifying && op.deadline.is_some_and(|d| now > d) {
                for id in instance_ids {
                    if slice
                        .nodes
                        .iter()
                        .any(|n| n.instance_id.as_deref() == Some(id))
                    {
                        continue;
                    }
                    if p.cluster
                        .node_of_instance(id)
                        .await
                        .map_err(|e| k8s_err("looking up nodes under any labels", e))?
                        .is_some()
                    {
                        slice.joined_anywhere.push(id.clone());
                    }
                }
            }
            // Planning the launch: the server's address for the join
            // script, the fleet for balancing subnets. Read once, when
            // the plan is made; the plan is what every retry re-sends.
            if plan.is_none()
                && op.phase == OpPhase::LaunchIntended
                && slice.op_instances.is_empty()
            {
                slice.master = p
                    .cloud
                    .master()
                    .await
                    .map_err(|e| ec2_err("describing the K3s server", e))?;
                slice.fleet = p
                    .cloud
                    .managed_instances()
                    .await
                    .map_err(|e| ec2_err("describing the managed workers", e))?;
                if settings.launch.k3s_version.is_none() {
                    slice.server_version = Some(
                        p.cluster
                            .server_version()
                            .await
                            .map_err(|e| k8s_err("reading the K3s server's version", e))?,
                    );
                }
            }
        }
        OpKind::ScaleDown {
            node, instance_id, ..
        } => {
            slice.node_pods = p
                .cluster
                .pods_on(node)
                .await
                .map_err(|e| k8s_err("listing pods", e))?;
            slice.pdbs = p
                .cluster
                .pdbs()
                .await
                .map_err(|e| k8s_err("listing PDBs", e))?;
            // Resuming at TerminateIntended: did the terminate go out
            // already? (Then the node must not be uncordoned.) Asked by
            // id: absence from the tag-filtered list is no proof, and
            // "gone" leads to deleting the node object and past the
            // intent's expiry.
            if op.phase == OpPhase::TerminateIntended
                && let Some(id) = instance_id
            {
                let found = p
                    .cloud
                    .instance(id)
                    .await
                    .map_err(|e| ec2_err("describing the node's instance", e))?;
                slice.instance_gone = Some(found.is_none_or(|i| {
                    matches!(
                        i.state,
                        InstanceState::ShuttingDown | InstanceState::Terminated
                    )
                }));
            }
        }
        OpKind::Cordon { .. } => {}
        OpKind::TerminateStrays { instances, .. } => {
            slice.op_instances = p
                .cloud
                .managed_instances()
                .await
                .map_err(|e| ec2_err("describing instances", e))?;
            // "Never joined" rests on the selected node list; confirm it
            // with a look-up that ignores the selector before anything
            // is terminated (a typo in the selector hides every node).
            if op.phase == OpPhase::TerminateIntended {
                for id in instances {
                    if let Some(node) = p
                        .cluster
                        .node_of_instance(id)
                        .await
                        .map_err(|e| k8s_err("looking up nodes under any labels", e))?
                    {
                        debug!(target: "engine", "{id} has node {node} outside the worker selector");
                        slice.joined_anywhere.push(id.clone());
                    }
                }
            }
        }
        OpKind::DeleteGhost { node } => {
            slice.op_instances = p
                .cloud
                .managed_instances()
                .await
                .map_err(|e| ec2_err("describing instances", e))?;
            // The managed list is tag-filtered: an instance whose tags were
            // edited, or another cluster's, is absent from it and may still
            // run the kubelet of this node (NotReady for a moment). Ask for
            // it by id before its node object is deleted, which would let
            // the pod garbage collector take every pod on a live machine.
            let id = slice
                .nodes
                .iter()
                .find(|n| &n.name == node)
                .and_then(|n| n.instance_id.clone());
            if let Some(id) = id
                && !slice.op_instances.iter().any(|i| i.id == id)
                && let Some(found) = p
                    .cloud
                    .instance(&id)
                    .await
                    .map_err(|e| ec2_err("describing the node's instance", e))?
                && found.state.is_live()
            {
                slice.op_instances.push(found);
            }
        }
    }
    Ok(slice)
}

#[derive(Default)]
pub(super) struct WorldSlice {
    nodes: Vec<Node>,
    nodes_read: bool,
    op_instances: Vec<Instance>,
    node_pods: Vec<Pod>,
    pdbs: Vec<Pdb>,
    master: Option<Instance>,
    fleet: Vec<Instance>,
    joined_anywhere: Vec<String>,
    instance_gone: Option<bool>,
    server_version: Option<String>,
}

impl WorldSlice {
    /// The node list the step was decided on, kept for the sanity check
    /// of the effect it leads to (a later read may see a different world).
    /// `None` when the step was decided without one (a cordon's).
    pub(super) fn take_nodes(&mut self) -> Option<Vec<Node>> {
        self.nodes_read.then(|| std::mem::take(&mut self.nodes))
    }

    pub(super) fn view<'a>(&'a self, tried: &'a BTreeSet<String>) -> OpView<'a> {
        OpView {
            nodes: &self.nodes,
            op_instances: &self.op_instances,
            node_pods: &self.node_pods,
            pdbs: &self.pdbs,
            tried,
            master: self.master.as_ref(),
            fleet: &self.fleet,
            joined_anywhere: &self.joined_anywhere,
            instance_gone: self.instance_gone,
            server_version: self.server_version.as_deref(),
        }
    }
}
