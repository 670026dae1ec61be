//! What the engine knows about the world at one instant. Each source is
//! either known or carries the reason it is not; the engine never fills a
//! gap with a guess.

use crate::ports::{Instance, Node, Pdb, Pod, Reading, Resources, Timestamp};

#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub at: Timestamp,
    /// Average worker CPU in percent.
    pub cpu: Reading,
    pub cluster: Result<ClusterView, String>,
    /// Managed workers (pending + running).
    pub fleet: Result<Vec<Instance>, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub pdbs: Vec<Pdb>,
}

impl ClusterView {
    pub fn ready_workers(&self) -> usize {
        self.nodes.iter().filter(|n| n.ready).count()
    }

    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods
            .iter()
            .filter(move |p| p.node_name.as_deref() == Some(node))
    }

    /// Pods the scheduler could not place (PodScheduled=False/Unschedulable).
    pub fn unschedulable(&self) -> Vec<&Pod> {
        self.pods.iter().filter(|p| p.is_unschedulable()).collect()
    }

    /// Sum of requests of pods that occupy `node` (finished pods free theirs).
    pub fn requested_on(&self, node: &str) -> Resources {
        self.pods_on(node)
            .filter(|p| !p.is_finished())
            .fold(Resources::default(), |acc, p| acc.plus(p.requests))
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_for_instance(&self, instance_id: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.instance_id.as_deref() == Some(instance_id))
    }
}
