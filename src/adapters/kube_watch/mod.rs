//! Watch caches for what a tick observes: worker nodes, pods and
//! PodDisruptionBudgets, each listed once and then followed by a watch
//! (`stream.rs`) into a store (`store.rs`), instead of three LISTs of the
//! whole cluster every tick. A change that a decision waits on — a pod
//! turning unschedulable, a node turning Ready or NotReady, a pod leaving
//! a cordoned node — wakes the engine (`Watches::wakes`).
//!
//! What the caches may not do: be read as current when they are not. A
//! store that has not finished its list, whose stream failed, or that has
//! not heard from the server within `store::STALE_AFTER`, answers an
//! error, and the tick sees the cluster as Unknown, as for a LIST that
//! failed. The reads a destructive step rests on are not served from here
//! (`ClusterApi::observed`).

pub mod store;
pub mod stream;

use crate::ports::{Node, ObservedCluster, Pdb, Pod};
use ::kube::Client;
use ::kube::api::Api;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use stream::Source;
use tokio::sync::Notify;

/// Each watch asks the server to end it after this (`timeoutSeconds`),
/// and the next starts from the last version seen: a watch is never
/// silent longer, so silence beyond it is a stalled connection.
pub const WATCH_SECONDS: u32 = 30;

/// A watch that says nothing for this long has stalled.
pub const IDLE_LIMIT: Duration = store::STALE_AFTER;

/// What the watches notify when they see what a decision waits on.
#[derive(Clone, Default)]
pub struct Wakes {
    /// A pod turned unschedulable, a drain's pod gone, a list that changed
    /// the cache: a burst (a flash sale's pods) is to be decided on once,
    /// so the engine waits for the rest of it.
    pub soon: Arc<Notify>,
    /// A worker node added, gone, or its Ready condition flipped: rare
    /// (a few per boot), and a Ready node under the verifying taint is
    /// capacity held back until the engine looks, so it looks at once.
    pub now: Arc<Notify>,
}

pub struct Watches {
    nodes: Arc<Store<Node>>,
    pods: Arc<Store<Pod>>,
    pdbs: Arc<Store<Pdb>>,
    wakes: Wakes,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A node added or gone, or its Ready condition flipped.
fn node_wakes(old: Option<&Node>, new: Option<&Node>) -> bool {
    match (old, new) {
        (Some(a), Some(b)) => a.ready != b.ready,
        (None, None) => false,
        _ => true,
    }
}

impl Watches {
    /// Starts the three watches (on the current tokio runtime). `client`
    /// reads the lists; `watch_client` is the same connection settings
    /// without a read timeout.
    pub fn start(client: &Client, watch_client: &Client, selector: &str) -> Watches {
        let nodes: Arc<Store<Node>> = Arc::new(Store::new("nodes"));
        let pods: Arc<Store<Pod>> = Arc::new(Store::new("pods"));
        let pdbs: Arc<Store<Pdb>> = Arc::new(Store::new("PodDisruptionBudgets"));
        let wakes = Wakes::default();
        let node_source = Source {
            what: "nodes",
            api: Api::<core::Node>::all(client.clone()),
            watch_client: watch_client.clone(),
            labels: Some(selector.to_string()),
            convert: super::kube_convert::node,
            wakes: Box::new(node_wakes),
            share: false,
        };
        // A pod the scheduler gave up on, or one leaving a cordoned node
        // (a drain's eviction done): what a scale-up or a drain waits for.
        let cordoned = nodes.clone();
        let pod_source = Source {
            what: "pods",
            api: Api::<core::Pod>::all(client.clone()),
            watch_client: watch_client.clone(),
            labels: None,
            convert: super::kube_convert::pod,
            share: true,
            wakes: Box::new(move |old: Option<&Pod>, new: Option<&Pod>| {
                let newly_unschedulable = new.is_some_and(Pod::is_unschedulable)
                    && !old.is_some_and(Pod::is_unschedulable);
                let left_cordoned = new.is_none()
                    && old
                        .and_then(|p| p.node_name.as_deref())
                        .is_some_and(|n| cordoned.is_cordoned(n));
                newly_unschedulable || left_cordoned
            }),
        };
        let pdb_source = Source {
            what: "PodDisruptionBudgets",
            api: Api::<PodDisruptionBudget>::all(client.clone()),
            watch_client: watch_client.clone(),
            labels: None,
            convert: super::kube_convert::pdb,
            wakes: Box::new(|_: Option<&Pdb>, _: Option<&Pdb>| false),
            share: false,
        };
        let tasks = vec![
            tokio::spawn(stream::run(node_source, nodes.clone(), wakes.now.clone())).abort_handle(),
            tokio::spawn(stream::run(pod_source, pods.clone(), wakes.soon.clone())).abort_handle(),
            tokio::spawn(stream::run(pdb_source, pdbs.clone(), wakes.soon.clone())).abort_handle(),
        ];
        Watches {
            nodes,
            pods,
            pdbs,
            wakes,
            tasks,
        }
    }

    /// `pod`, or the pods cache's equal copy (`Store::shared`).
    pub fn shared_pod(&self, pod: Pod) -> Pod {
        self.pods.shared(&pod.key(), pod)
    }

    /// Notified when a watch saw what a decision waits on.
    pub fn wakes(&self) -> Wakes {
        self.wakes.clone()
    }

    /// Why a kind cannot be watched, if the server refused one: the
    /// cluster is then read by lists (`KubeCluster::observed`).
    pub fn refused(&self) -> Option<String> {
        [
            ("nodes", self.nodes.refused()),
            ("pods", self.pods.refused()),
            ("PodDisruptionBudgets", self.pdbs.refused()),
        ]
        .into_iter()
        .find_map(|(what, why)| why.map(|w| format!("{what}: {w}")))
    }

    pub fn observed(&self) -> ObservedCluster {
        let ages = [self.nodes.age(), self.pods.age(), self.pdbs.age()];
        let live = self.nodes.is_live() && self.pods.is_live() && self.pdbs.is_live();
        let source = match ages.iter().copied().collect::<Option<Vec<_>>>() {
            Some(ages) if live => {
                let oldest = ages.into_iter().max().unwrap_or_default();
                format!("watch · {} s", oldest.as_secs())
            }
            _ => "watch · not in step".to_string(),
        };
        ObservedCluster {
            nodes: self.nodes.read(),
            pods: self.pods.read(),
            pdbs: self.pdbs.read(),
            source: Some(source),
        }
    }
}

impl Store<Node> {
    fn is_cordoned(&self, name: &str) -> bool {
        self.any(|n| n.name == name && n.cordoned)
    }
}
