//! One observation of the world through the ports, all sources in parallel.
//! A failed source becomes an Unknown with its reason, never an error that
//! stops the tick.

use crate::engine::cpu_coverage::shortfall;
use crate::engine::{ClusterView, Observation};
use crate::ports::{ObservedCluster, Ports, Signal, Timestamp};

/// A tick's observation, the cluster as `ClusterApi::observed` keeps it
/// (watch caches where the adapter has them), and how it was read.
pub async fn observe(ports: &Ports, now: Timestamp) -> (Observation, Option<String>) {
    let (cpu, per_node, observed, fleet) = tokio::join!(
        ports.metrics.instant(Signal::WorkerCpu),
        ports.metrics.node_cpu(),
        ports.cluster.observed(),
        ports.cloud.managed_instances(),
    );
    let source = observed.source.clone();
    (assemble(observed, cpu, per_node, fleet, now), source)
}

/// An observation read now from the server, whatever caches the adapter
/// keeps: the executor decides again on it before an operation starts,
/// so no launch or scale-down rests on a cache's view alone.
pub async fn observe_fresh(ports: &Ports, now: Timestamp) -> Observation {
    let (cpu, per_node, nodes, pods, pdbs, fleet) = tokio::join!(
        ports.metrics.instant(Signal::WorkerCpu),
        ports.metrics.node_cpu(),
        ports.cluster.nodes(),
        ports.cluster.pods(),
        ports.cluster.pdbs(),
        ports.cloud.managed_instances(),
    );
    let observed = ObservedCluster {
        nodes,
        pods,
        pdbs,
        source: None,
    };
    assemble(observed, cpu, per_node, fleet, now)
}

fn assemble(
    observed: ObservedCluster,
    cpu: crate::ports::Reading,
    per_node: crate::ports::PortResult<std::collections::BTreeMap<String, f64>>,
    fleet: crate::ports::PortResult<Vec<crate::ports::Instance>>,
    now: Timestamp,
) -> Observation {
    let cluster = match (observed.nodes, observed.pods, observed.pdbs) {
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
