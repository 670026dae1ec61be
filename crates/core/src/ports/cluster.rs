//! `ClusterApi`: what the engine needs from the Kubernetes API, in domain terms.

use super::error::PortResult;
use super::label_map::{LabelMap, Labels};
use super::time::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// CPU in millicores and memory in bytes, as Kubernetes requests and allocatable are.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Resources {
    pub const fn new(cpu_millis: u64, memory_bytes: u64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
        }
    }

    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
        }
    }

    /// Each resource's larger value (the scheduler's `max` of two lists).
    pub fn max_each(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
        }
    }

    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    /// Whether `need` fits into `self` in both dimensions.
    pub fn fits(self, need: Resources) -> bool {
        need.cpu_millis <= self.cpu_millis && need.memory_bytes <= self.memory_bytes
    }
}

pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// A node annotated `"true"` with any of these is never chosen for a
/// scale-down: ours, and the Cluster Autoscaler's and Karpenter's, so a
/// cluster migrating from either keeps its markings.
pub const ANNOTATION_OURS_SCALE_DOWN_DISABLED: &str = "k3s-autoscaler/scale-down-disabled";
pub const ANNOTATION_SCALE_DOWN_DISABLED: &str =
    "cluster-autoscaler.kubernetes.io/scale-down-disabled";
pub const NODE_OPT_OUTS: [&str; 3] = [
    ANNOTATION_OURS_SCALE_DOWN_DISABLED,
    ANNOTATION_SCALE_DOWN_DISABLED,
    ANNOTATION_DO_NOT_DISRUPT,
];
pub const ANNOTATION_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
pub const ANNOTATION_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
pub const ANNOTATION_MIRROR: &str = "kubernetes.io/config.mirror";
/// Every pod annotation the engine reads: the adapters keep these and drop
/// the rest (`PodFields::annotations`).
pub const POD_ANNOTATIONS_READ: [&str; 3] = [
    ANNOTATION_SAFE_TO_EVICT,
    ANNOTATION_DO_NOT_DISRUPT,
    ANNOTATION_MIRROR,
];
/// New workers register with this NoSchedule taint (user data); the engine
/// removes it once it has verified the node. Until then nothing is
/// scheduled there, so a node that turns Ready just as its join deadline
/// passes can be terminated without killing a pod.
pub const TAINT_VERIFYING: &str = "k3s-autoscaler/verifying";

/// A worker node as the engine needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// EC2 instance id from `spec.providerID` (`aws:///zone/i-…`) or the node name.
    pub instance_id: Option<String>,
    pub ready: bool,
    /// `spec.unschedulable`: cordoned.
    pub cordoned: bool,
    /// Carries the `k3s-autoscaler/verifying` NoSchedule taint.
    pub startup_taint: bool,
    pub allocatable: Resources,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub created: Timestamp,
    /// When the Ready condition last changed (its `lastTransitionTime`;
    /// the creation time when the server gives none): how long the node
    /// has been Ready, or NotReady.
    pub ready_since: Timestamp,
}

impl Node {
    pub fn zone(&self) -> Option<&str> {
        self.labels.get(LABEL_ZONE).map(String::as_str)
    }

    pub fn instance_type(&self) -> Option<&str> {
        self.labels.get(LABEL_INSTANCE_TYPE).map(String::as_str)
    }

    /// The opt-out annotation that keeps this node from any scale-down,
    /// if one is set to `"true"` (`NODE_OPT_OUTS`).
    pub fn scale_down_opt_out(&self) -> Option<&'static str> {
        NODE_OPT_OUTS.into_iter().find(|key| {
            self.annotations
                .get(*key)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeKind {
    EmptyDir,
    HostPath,
    Other,
}

impl VolumeKind {
    /// Node-local storage that an eviction destroys.
    pub fn is_local(self) -> bool {
        matches!(self, VolumeKind::EmptyDir | VolumeKind::HostPath)
    }
}

/// A pod as the drain rules and the scheduler model need it: its fields
/// (`PodFields`, read through `Deref`) behind one shared allocation.
///
/// Why shared: a watch cache holds every pod of the cluster, and every
/// look hands the engine all of them; at 150 000 pods a copy of each per
/// look was as large as the cache itself. A clone is a reference count;
/// a change (`DerefMut`) copies only the pod it changes.
#[derive(Clone, PartialEq, Eq)]
pub struct Pod(Arc<PodFields>);

/// `Eq`, so that comparing two `Pod`s that share an allocation is a
/// pointer comparison (`Arc`'s), not a walk over every field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodFields {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node_name: Option<String>,
    pub phase: PodPhase,
    /// Kind of the controlling owner reference (`ReplicaSet`, `StatefulSet`, …).
    pub owner_kind: Option<String>,
    pub labels: LabelMap,
    /// Those the engine reads (`POD_ANNOTATIONS_READ`, through
    /// `Pod::annotation`); an adapter may drop the others.
    pub annotations: LabelMap,
    pub priority_class: Option<String>,
    pub volumes: Vec<VolumeKind>,
    pub requests: Resources,
    /// Set when PodScheduled=False with reason Unschedulable: the time it became so.
    pub unschedulable_since: Option<Timestamp>,
    /// `metadata.deletionTimestamp` is set: the pod is going away.
    pub terminating: bool,
    /// `spec.nodeSelector`: labels a node must carry to take the pod.
    #[serde(default)]
    pub node_selector: LabelMap,
    /// `spec.schedulingGates` by name: while any is left the scheduler
    /// does not consider the pod (PodScheduled False, reason
    /// `SchedulingGated`), so it waits for whoever removes the gate, not
    /// for capacity, and no new worker can help it.
    #[serde(default)]
    pub scheduling_gates: Vec<String>,
}

impl Pod {
    /// An annotation's value. Only those in `POD_ANNOTATIONS_READ` are
    /// kept by the adapters, so reading another would see nothing on a
    /// real cluster while every test built by hand passed: a debug build
    /// says so here.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        debug_assert!(
            POD_ANNOTATIONS_READ.contains(&key),
            "pod annotation {key} is read but not in POD_ANNOTATIONS_READ"
        );
        self.annotations.get(key).map(String::as_str)
    }

    /// Whether the two are one allocation (a clone of the other), not
    /// merely equal.
    pub fn shares(&self, other: &Pod) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<PodFields> for Pod {
    fn from(fields: PodFields) -> Pod {
        Pod(Arc::new(fields))
    }
}

impl std::ops::Deref for Pod {
    type Target = PodFields;
    fn deref(&self) -> &PodFields {
        &self.0
    }
}

impl std::ops::DerefMut for Pod {
    fn deref_mut(&mut self) -> &mut PodFields {
        Arc::make_mut(&mut self.0)
    }
}

impl std::fmt::Debug for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Pod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Pod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pod, D::Error> {
        PodFields::deserialize(d).map(Pod::from)
    }
}

impl Pod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn reference(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    pub fn is_mirror(&self) -> bool {
        self.annotation(ANNOTATION_MIRROR).is_some()
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// Waiting for capacity: the scheduler tried and found no node. A
    /// gated pod is not (the scheduler has not tried), even if a status out
    /// of step with it says Unschedulable (gates are set at creation and
    /// only ever removed).
    pub fn is_unschedulable(&self) -> bool {
        self.node_name.is_none()
            && self.unschedulable_since.is_some()
            && !self.terminating
            && self.scheduling_gates.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorRequirement {
    pub key: String,
    pub op: SelectorOp,
    pub values: Vec<String>,
}

/// A Kubernetes label selector (`matchLabels` + `matchExpressions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// What a *null* selector is in Kubernetes (`labels.Nothing()`): it
    /// selects no object. Written as a requirement no label satisfies
    /// (`In` an empty set), so that `matches` needs no special case.
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![SelectorRequirement {
                key: "k3s-autoscaler/null-selector".into(),
                op: SelectorOp::In,
                values: Vec::new(),
            }],
        }
    }

    /// Whether this is the null selector (`nothing()`).
    pub fn is_nothing(&self) -> bool {
        *self == LabelSelector::nothing()
    }

    /// No term at all (`{}`): the disruption controller counts every pod
    /// of the namespace under it, but the eviction subresource skips such
    /// a budget, as it skips a null one ("it should match nothing, not
    /// everything", `eviction.go`).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Kubernetes semantics: every term must hold. A PDB with an empty
    /// selector matches every pod in its namespace (policy/v1 behaviour);
    /// one with a null selector matches none ([`LabelSelector::nothing`]).
    pub fn matches(&self, labels: &impl Labels) -> bool {
        let listed = |values: &[String], v: &str| values.iter().any(|w| w == v);
        self.match_labels
            .iter()
            .all(|(k, v)| labels.label(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| {
                let value = labels.label(&r.key);
                match r.op {
                    SelectorOp::In => value.is_some_and(|v| listed(&r.values, v)),
                    SelectorOp::NotIn => value.is_none_or(|v| !listed(&r.values, v)),
                    SelectorOp::Exists => value.is_some(),
                    SelectorOp::DoesNotExist => value.is_none(),
                }
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pdb {
    pub namespace: String,
    pub name: String,
    pub selector: LabelSelector,
    pub disruptions_allowed: i32,
}

impl Pdb {
    pub fn covers(&self, pod: &Pod) -> bool {
        self.namespace == pod.namespace && self.selector.matches(&pod.labels)
    }

    /// Whether the Eviction API checks this budget for `pod`: it covers it
    /// and its selector is not empty (`eviction.go` skips a `{}` budget,
    /// which the disruption controller counts over every pod: it guards
    /// nothing at an eviction).
    pub fn guards(&self, pod: &Pod) -> bool {
        !self.selector.is_empty() && self.covers(pod)
    }
}

/// What the Eviction API answered, as data the drain logic decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvictionOutcome {
    /// 201: the pod is being deleted; wait for it to be gone.
    Evicted,
    /// 404: already gone.
    AlreadyGone,
    /// 429: a PodDisruptionBudget refuses it now; retry with backoff.
    Blocked(String),
    /// 500 or another refusal: the drain aborts.
    Rejected(String),
}

/// The Kubernetes side of the cluster. Reads list workers (by the configured
/// selector; the master is not a worker), pods and PDBs; writes cordon,
/// evict and delete node objects, and Events.
/// One observation of the cluster (`ClusterApi::observed`).
#[derive(Clone, Debug)]
pub struct ObservedCluster {
    pub nodes: PortResult<Vec<Node>>,
    pub pods: PortResult<Vec<Pod>>,
    pub pdbs: PortResult<Vec<Pdb>>,
    /// How it was read, when not by lists read now: `watch · 3 s` (the
    /// oldest cache's last word from the server).
    pub source: Option<String>,
}

#[async_trait]
pub trait ClusterApi: Send + Sync {
    /// The cluster as a tick observes it: workers, pods and budgets. By
    /// default the three lists below, read now. An adapter that keeps
    /// watch caches answers from them instead, and says how old they are;
    /// a cache that is not in step with the server answers each list it
    /// cannot vouch for as an error, never a stale list. The reads a
    /// destructive step rests on (`nodes`, `pods_on`) stay direct reads.
    async fn observed(&self) -> ObservedCluster {
        ObservedCluster {
            nodes: self.nodes().await,
            pods: self.pods().await,
            pdbs: self.pdbs().await,
            source: None,
        }
    }
    async fn nodes(&self) -> PortResult<Vec<Node>>;
    /// Every pod the engine cares about: scheduled on workers or unschedulable.
    async fn pods(&self) -> PortResult<Vec<Pod>>;
    async fn pods_on(&self, node: &str) -> PortResult<Vec<Pod>>;
    async fn pdbs(&self) -> PortResult<Vec<Pdb>>;

    async fn set_cordoned(&self, node: &str, cordoned: bool) -> PortResult<()>;
    /// Remove the `k3s-autoscaler/verifying` taint: the node is verified.
    async fn remove_startup_taint(&self, node: &str) -> PortResult<()>;
    async fn evict(&self, pod: &PodRef) -> PortResult<EvictionOutcome>;
    /// Remove the Node object once its instance is terminated. Absent is fine.
    async fn delete_node(&self, node: &str) -> PortResult<()>;
    /// The node of this instance under *any* labels (by providerID, or by
    /// name = instance id), ignoring the worker selector: the look-up that
    /// confirms a launch never joined before it is terminated. A selector
    /// that matches nothing must not make every worker look like a stray.
    async fn node_of_instance(&self, instance_id: &str) -> PortResult<Option<String>>;
    /// The API server's version (`gitVersion`, `v1.33.1+k3s1` on K3s): the
    /// release new workers are pinned to.
    async fn server_version(&self) -> PortResult<String>;
    /// Create an `events.k8s.io/v1` Event.
    async fn create_event(&self, event: &super::events::ClusterEvent) -> PortResult<()>;
    /// Set an event's series (the only field the API server lets change).
    /// `Ok(false)`: the event is gone (events live an hour by default).
    async fn bump_event(
        &self,
        namespace: &str,
        name: &str,
        series: super::events::EventSeries,
    ) -> PortResult<bool>;
}
