//! One observation of the world through the ports, all sources in parallel.
//! A failed source becomes an Unknown with its reason, never an error that
//! stops the tick.

use crate::engine::cpu_coverage::shortfall;
use crate::engine::{ClusterView, Observation};
use crate::ports::{Ports, Signal, Timestamp};

pub async fn observe(ports: &Ports, now: Timestamp) -> Observation {
    let (cpu, per_node, nodes, pods, pdbs, fleet) = tokio::join!(
        ports.metrics.instant(Signal::WorkerCpu),
        ports.metrics.node_cpu(),
        ports.cluster.nodes(),
        ports.cluster.pods(),
        ports.cluster.pdbs(),
        ports.cloud.managed_instances(),
    );
    let cluster = match (nodes, pods, pdbs) {
        (Ok(nodes), Ok(pods), Ok(pdbs)) => Ok(ClusterView { nodes, pods, pdbs }),
        (Err(e), _, _) => Err(format!("listing nodes: {e}")),
        (_, Err(e), _) => Err(format!("listing pods: {e}")),
        (_, _, Err(e)) => Err(format!("listing PodDisruptionBudgets: {e}")),
    };
    // The average is the fleet's only if every Ready worker is in it.
    let cpu_partial = match &cluster {
        Ok(view) => shortfall(per_node.as_ref().ok(), view, now),
        Err(_) => None,
    };
    Observation {
        at: now,
        cpu,
        cpu_partial,
        cluster,
        fleet: fleet.map_err(|e| format!("describing instances: {e}")),
    }
}
