//! Simulated pods and their controllers: Deployments whose replica counts
//! follow demand, a StatefulSet, DaemonSets, a scheduler that places pods by
//! requests, evictions that honour PodDisruptionBudgets, and the CPU the
//! pods burn.

use super::fleet::{Fleet, NODE_ALLOCATABLE, NODE_CAPACITY_MILLIS};
use crate::ports::cluster::{LabelSelector, VolumeKind};
use crate::ports::{EvictionOutcome, Pdb, Pod, PodFields, PodPhase, Resources, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// Pods become Running this long after they are bound to a node.
const START_DELAY: Duration = Duration::from_secs(5);
/// Evicted or deleted pods terminate for this long.
const GRACE: Duration = Duration::from_secs(5);
/// Pods on a node that has been NotReady this long are deleted (the
/// taint-based eviction of a real cluster, shortened).
const NOT_READY_EVICTION: Duration = Duration::from_secs(60);
/// CPU the system uses on every node outside pods.
const SYSTEM_MILLIS: f64 = 40.0;
/// Web pods carry the demand; each is sized for this much of it.
pub const WEB_TARGET_MILLIS: f64 = 210.0;
const WEB_LIMIT_FACTOR: f64 = 1.3;

#[derive(Clone, Debug, PartialEq)]
pub enum Replicas {
    Fixed(u32),
    /// ceil(demand / per_pod), clamped: what an HPA would ask for.
    FollowDemand {
        per_pod: f64,
        min: u32,
        max: u32,
    },
    /// One per node.
    PerNode,
}

#[derive(Clone, Debug)]
pub struct Controller {
    pub namespace: String,
    pub name: String,
    /// Owner kind of its pods: ReplicaSet, StatefulSet, DaemonSet.
    pub pod_owner_kind: &'static str,
    pub labels: BTreeMap<String, String>,
    pub requests: Resources,
    pub replicas: Replicas,
    /// Fixed usage in millicores; `None`: shares the demand.
    pub usage_millis: Option<f64>,
    pub priority_class: Option<String>,
    pub volumes: Vec<VolumeKind>,
    next_ordinal: u64,
    /// The replica count the controller last asked for (its `spec.replicas`).
    pub scale: u32,
    /// `spec.schedulingGates` of its pods (a queue controller holding them
    /// back): the scheduler leaves a gated pod alone.
    pub scheduling_gates: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SimPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub controller: String,
    pub owner_kind: &'static str,
    pub labels: BTreeMap<String, String>,
    pub requests: Resources,
    pub node: Option<String>,
    pub created: Timestamp,
    pub bound_at: Option<Timestamp>,
    pub unschedulable_since: Option<Timestamp>,
    pub deleting_at: Option<Timestamp>,
    pub priority_class: Option<String>,
    pub volumes: Vec<VolumeKind>,
    pub scheduling_gates: Vec<String>,
}

impl SimPod {
    pub fn is_running(&self, now: Timestamp) -> bool {
        self.deleting_at.is_none() && self.bound_at.is_some_and(|b| now.since(b) >= START_DELAY)
    }

    pub fn to_domain(&self, now: Timestamp) -> Pod {
        let phase =
            if self.is_running(now) || (self.deleting_at.is_some() && self.bound_at.is_some()) {
                PodPhase::Running
            } else {
                PodPhase::Pending
            };
        PodFields {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            node_name: self.node.clone(),
            phase,
            owner_kind: Some(self.owner_kind.to_string()),
            labels: self.labels.clone().into(),
            annotations: Default::default(),
            priority_class: self.priority_class.clone(),
            volumes: self.volumes.clone(),
            requests: self.requests,
            unschedulable_since: if self.node.is_none() {
                self.unschedulable_since
            } else {
                None
            },
            terminating: self.deleting_at.is_some(),
            node_selector: Default::default(),
            scheduling_gates: self.scheduling_gates.clone(),
        }
        .into()
    }
}

#[derive(Clone, Debug)]
pub enum Budget {
    MinAvailable(u32),
    MaxUnavailable(u32),
}

#[derive(Clone, Debug)]
pub struct SimPdb {
    pub namespace: String,
    pub name: String,
    pub controller: String,
    pub selector: LabelSelector,
    pub budget: Budget,
}

/// Time a pod spent unschedulable before it was placed.
pub type WaitSample = Duration;

#[derive(Debug, Default)]
pub struct Workload {
    pub controllers: Vec<Controller>,
    pub pods: BTreeMap<String, SimPod>,
    pub pdbs: Vec<SimPdb>,
    next_uid: u64,
    /// Per node: CPU % at the last step, for node CPU metrics.
    pub node_cpu: BTreeMap<String, f64>,
    /// Waits of pods that were unschedulable and then got a node.
    pub waits: Vec<WaitSample>,
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

impl Workload {
    /// The application mix of the demo cluster: a web tier that follows
    /// demand (PDB maxUnavailable 1), CoreDNS in kube-system (PDB
    /// minAvailable 1), one database pod of a StatefulSet (which pins its
    /// node) and a node-exporter DaemonSet.
    pub fn demo(scale: f64) -> Self {
        let controller =
            |namespace: &str, name: &str, kind, cpu, mem_mib, replicas, usage| Controller {
                namespace: namespace.into(),
                name: name.into(),
                pod_owner_kind: kind,
                labels: labels(name),
                requests: Resources::new(cpu, mem_mib * MIB),
                replicas,
                usage_millis: usage,
                priority_class: None,
                volumes: vec![],
                next_ordinal: 0,
                scale: 0,
                scheduling_gates: Vec::new(),
            };
        let max_web = ((80.0 * scale).ceil() as u32).max(10);
        let controllers = vec![
            controller(
                "monitoring",
                "node-exporter",
                "DaemonSet",
                100,
                128,
                Replicas::PerNode,
                Some(50.0),
            ),
            controller(
                "kube-system",
                "coredns",
                "ReplicaSet",
                100,
                128,
                Replicas::Fixed(2),
                Some(30.0),
            ),
            controller(
                "default",
                "db",
                "StatefulSet",
                200,
                1024,
                Replicas::Fixed(1),
                Some(100.0),
            ),
            controller(
                "default",
                "web",
                "ReplicaSet",
                300,
                512,
                Replicas::FollowDemand {
                    per_pod: WEB_TARGET_MILLIS,
                    min: 3,
                    max: max_web,
                },
                None,
            ),
        ];
        let pdb = |namespace: &str, app: &str, budget| SimPdb {
            namespace: namespace.into(),
            name: app.into(),
            controller: app.into(),
            selector: LabelSelector {
                match_labels: labels(app),
                match_expressions: vec![],
            },
            budget,
        };
        Workload {
            controllers,
            pdbs: vec![
                pdb("default", "web", Budget::MaxUnavailable(1)),
                pdb("kube-system", "coredns", Budget::MinAvailable(1)),
            ],
            ..Workload::default()
        }
    }

    /// A Job whose pods a queue controller holds back with a scheduling
    /// gate: Pending for as long as the gate stays, asking for
    /// `requests` each, which no new worker can help.
    pub fn add_gated_job(&mut self, name: &str, pods: u32, requests: Resources) {
        self.add_job_with_gates(name, pods, requests, vec!["k3s-sim.example/queue".into()]);
    }

    /// A Job of `pods` pods asking for `requests` each: one larger than
    /// any worker stays Pending, Unschedulable, for good.
    pub fn add_job(&mut self, name: &str, pods: u32, requests: Resources) {
        self.add_job_with_gates(name, pods, requests, Vec::new());
    }

    fn add_job_with_gates(
        &mut self,
        name: &str,
        pods: u32,
        requests: Resources,
        scheduling_gates: Vec<String>,
    ) {
        self.controllers.push(Controller {
            namespace: "batch".into(),
            name: name.into(),
            pod_owner_kind: "Job",
            labels: labels(name),
            requests,
            replicas: Replicas::Fixed(pods),
            usage_millis: Some(0.0),
            priority_class: None,
            volumes: vec![],
            next_ordinal: 0,
            scale: 0,
            scheduling_gates,
        });
    }

    pub(in crate::sim) fn desired(&self, c: &Controller, demand: f64, nodes: usize) -> u32 {
        match c.replicas {
            Replicas::Fixed(n) => n,
            Replicas::PerNode => nodes as u32,
            Replicas::FollowDemand { per_pod, min, max } => {
                ((demand / per_pod).ceil() as u32).clamp(min, max)
            }
        }
    }

    /// One controller/scheduler/kubelet round at `now`.
    pub fn step(&mut self, fleet: &Fleet, demand: f64, now: Timestamp) {
        self.reap(fleet, now);
        self.reconcile(fleet, demand, now);
        self.schedule(fleet, now);
        self.update_cpu(fleet, demand, now);
    }

    /// Remove pods whose grace period ended; delete pods of vanished or
    /// long-NotReady nodes.
    fn reap(&mut self, fleet: &Fleet, now: Timestamp) {
        self.pods
            .retain(|_, p| p.deleting_at.is_none_or(|d| now < d));
        for pod in self.pods.values_mut() {
            let Some(node) = &pod.node else { continue };
            let gone = match fleet.nodes.get(node) {
                None => true,
                Some(n) => n
                    .not_ready_since
                    .is_some_and(|s| now.since(s) >= NOT_READY_EVICTION),
            };
            if gone && pod.deleting_at.is_none() {
                pod.deleting_at = Some(now);
            }
        }
    }

    fn new_pod(&mut self, c_index: usize, node: Option<String>, now: Timestamp) -> SimPod {
        self.next_uid += 1;
        let c = &mut self.controllers[c_index];
        c.next_ordinal += 1;
        let name = if c.pod_owner_kind == "StatefulSet" {
            format!("{}-{}", c.name, c.next_ordinal - 1)
        } else {
            format!(
                "{}-{:05x}",
                c.name,
                c.next_ordinal.wrapping_mul(0x9E37) & 0xFFFFF
            )
        };
        SimPod {
            uid: format!("uid-{:08}", self.next_uid),
            namespace: c.namespace.clone(),
            name,
            controller: c.name.clone(),
            owner_kind: c.pod_owner_kind,
            labels: c.labels.clone(),
            requests: c.requests,
            bound_at: node.as_ref().map(|_| now),
            node,
            created: now,
            unschedulable_since: None,
            deleting_at: None,
            priority_class: c.priority_class.clone(),
            volumes: c.volumes.clone(),
            scheduling_gates: c.scheduling_gates.clone(),
        }
    }

    fn reconcile(&mut self, fleet: &Fleet, demand: f64, now: Timestamp) {
        for ci in 0..self.controllers.len() {
            let name = self.controllers[ci].name.clone();
            if self.controllers[ci].replicas == Replicas::PerNode {
                let covered: BTreeSet<String> = self
                    .pods
                    .values()
                    .filter(|p| p.controller == name && p.deleting_at.is_none())
                    .filter_map(|p| p.node.clone())
                    .collect();
                let missing: Vec<String> = fleet
                    .nodes
                    .keys()
                    .filter(|n| !covered.contains(*n))
                    .cloned()
                    .collect();
                for node in missing {
                    let pod = self.new_pod(ci, Some(node), now);
                    self.pods.insert(pod.uid.clone(), pod);
                }
                continue;
            }
            let desired = self.desired(&self.controllers[ci], demand, fleet.nodes.len()) as usize;
            self.controllers[ci].scale = desired as u32;
            let mut active: Vec<&SimPod> = self
                .pods
                .values()
                .filter(|p| p.controller == name && p.deleting_at.is_none())
                .collect();
            if active.len() < desired {
                for _ in active.len()..desired {
                    let pod = self.new_pod(ci, None, now);
                    self.pods.insert(pod.uid.clone(), pod);
                }
            } else if active.len() > desired {
                // The ReplicaSet controller's deletion preference: unscheduled,
                // then not yet running, then pods on the nodes that hold the
                // most replicas (so the rest stay spread), then the newest.
                let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
                for p in &active {
                    if let Some(n) = &p.node {
                        *per_node.entry(n.as_str()).or_default() += 1;
                    }
                }
                let colocated = |p: &SimPod| {
                    p.node
                        .as_deref()
                        .map_or(0, |n| per_node.get(n).copied().unwrap_or(0))
                };
                active.sort_by(|a, b| {
                    a.node
                        .is_some()
                        .cmp(&b.node.is_some())
                        .then(a.is_running(now).cmp(&b.is_running(now)))
                        .then(colocated(b).cmp(&colocated(a)))
                        .then(b.created.cmp(&a.created))
                        .then(b.uid.cmp(&a.uid))
                });
                let doomed: Vec<String> = active[..active.len() - desired]
                    .iter()
                    .map(|p| p.uid.clone())
                    .collect();
                for uid in doomed {
                    if let Some(p) = self.pods.get_mut(&uid) {
                        p.deleting_at = Some(now.plus(if p.node.is_some() {
                            GRACE
                        } else {
                            Duration::ZERO
                        }));
                        // A pod that waited and was never placed still waited:
                        // count what it waited (a lower bound) so a fleet that
                        // never catches up does not look fast.
                        if p.node.is_none()
                            && let Some(since) = p.unschedulable_since
                        {
                            self.waits.push(now.since(since));
                        }
                    }
                }
            }
        }
    }

    pub fn requested_by_node(&self) -> BTreeMap<&str, Resources> {
        let mut used: BTreeMap<&str, Resources> = BTreeMap::new();
        for pod in self.pods.values() {
            if let Some(node) = &pod.node {
                let slot = used.entry(node.as_str()).or_default();
                *slot = slot.plus(pod.requests);
            }
        }
        used
    }

    /// Place unscheduled pods, oldest first, on the Ready uncordoned node
    /// with the most free CPU (the default scheduler's spreading).
    fn schedule(&mut self, fleet: &Fleet, now: Timestamp) {
        let mut free: Vec<(String, Resources)> = {
            let used = self.requested_by_node();
            fleet
                .nodes
                .values()
                .filter(|n| n.ready && !n.cordoned && !n.startup_taint)
                .map(|n| {
                    let u = used.get(n.name.as_str()).copied().unwrap_or_default();
                    (n.name.clone(), NODE_ALLOCATABLE.saturating_sub(u))
                })
                .collect()
        };
        let mut waiting: Vec<(Timestamp, String)> = self
            .pods
            .values()
            .filter(|p| p.node.is_none() && p.deleting_at.is_none())
            .filter(|p| p.scheduling_gates.is_empty())
            .map(|p| (p.created, p.uid.clone()))
            .collect();
        waiting.sort();
        for (_, uid) in waiting {
            let Some(pod) = self.pods.get_mut(&uid) else {
                continue;
            };
            let best = free
                .iter_mut()
                .filter(|(_, f)| f.fits(pod.requests))
                .max_by(|a, b| a.1.cpu_millis.cmp(&b.1.cpu_millis).then(b.0.cmp(&a.0)));
            match best {
                Some((node, slot)) => {
                    *slot = slot.saturating_sub(pod.requests);
                    pod.node = Some(node.clone());
                    pod.bound_at = Some(now);
                    if let Some(since) = pod.unschedulable_since.take() {
                        // Unschedulable → running: placed now, running after the start delay.
                        self.waits.push(now.since(since) + START_DELAY);
                    }
                }
                None => {
                    pod.unschedulable_since.get_or_insert(now);
                }
            }
        }
    }

    /// Web pods share the demand (up to their limit); others use a fixed amount.
    fn update_cpu(&mut self, fleet: &Fleet, demand: f64, now: Timestamp) {
        let web_running = self
            .pods
            .values()
            .filter(|p| p.controller == "web" && p.is_running(now))
            .count();
        let web_limit = self
            .controllers
            .iter()
            .find(|c| c.name == "web")
            .map(|c| c.requests.cpu_millis as f64 * WEB_LIMIT_FACTOR)
            .unwrap_or(0.0);
        let per_web = if web_running == 0 {
            0.0
        } else {
            (demand / web_running as f64).min(web_limit)
        };
        let fixed: BTreeMap<&str, f64> = self
            .controllers
            .iter()
            .filter_map(|c| c.usage_millis.map(|u| (c.name.as_str(), u)))
            .collect();
        let mut usage: BTreeMap<String, f64> = fleet
            .nodes
            .values()
            .filter(|n| n.ready)
            .map(|n| (n.name.clone(), SYSTEM_MILLIS))
            .collect();
        for pod in self.pods.values().filter(|p| p.is_running(now)) {
            let Some(node) = &pod.node else { continue };
            if let Some(total) = usage.get_mut(node) {
                *total += fixed
                    .get(pod.controller.as_str())
                    .copied()
                    .unwrap_or(per_web);
            }
        }
        self.node_cpu = usage
            .into_iter()
            .map(|(n, u)| (n, (100.0 * u / NODE_CAPACITY_MILLIS).min(100.0)))
            .collect();
    }

    /// Average CPU over Ready workers, `None` when there are none.
    pub fn worker_cpu(&self) -> Option<f64> {
        if self.node_cpu.is_empty() {
            return None;
        }
        Some(self.node_cpu.values().sum::<f64>() / self.node_cpu.len() as f64)
    }

    pub fn unschedulable_count(&self) -> usize {
        self.pods
            .values()
            .filter(|p| {
                p.node.is_none() && p.deleting_at.is_none() && p.unschedulable_since.is_some()
            })
            .count()
    }

    pub fn pdb_view(&self, now: Timestamp) -> Vec<Pdb> {
        self.pdbs
            .iter()
            .map(|pdb| Pdb {
                namespace: pdb.namespace.clone(),
                name: pdb.name.clone(),
                selector: pdb.selector.clone(),
                disruptions_allowed: self.disruptions_allowed(pdb, now),
            })
            .collect()
    }

    fn disruptions_allowed(&self, pdb: &SimPdb, now: Timestamp) -> i32 {
        let healthy = self
            .pods
            .values()
            .filter(|p| {
                p.namespace == pdb.namespace && pdb.selector.matches(&p.labels) && p.is_running(now)
            })
            .count() as i32;
        // Like the disruption controller: the expected count is the owner's
        // scale, not the pods that happen to exist (an evicted pod's
        // replacement does not exist yet).
        let expected = self
            .controllers
            .iter()
            .find(|c| c.name == pdb.controller)
            .map_or(0, |c| c.scale as i32);
        let desired_healthy = match pdb.budget {
            Budget::MinAvailable(n) => n as i32,
            Budget::MaxUnavailable(n) => expected - n as i32,
        };
        (healthy - desired_healthy).max(0)
    }

    /// The Eviction API: 404 when gone, 429 when a PDB refuses, else the
    /// pod starts terminating (and its controller replaces it).
    pub fn evict(&mut self, uid: &str, now: Timestamp) -> EvictionOutcome {
        let Some(pod) = self.pods.get(uid) else {
            return EvictionOutcome::AlreadyGone;
        };
        if pod.deleting_at.is_some() {
            return EvictionOutcome::Evicted;
        }
        let blocking = self
            .pdbs
            .iter()
            .filter(|pdb| !pdb.selector.is_empty())
            .find(|pdb| pdb.namespace == pod.namespace && pdb.selector.matches(&pod.labels));
        if let Some(pdb) = blocking
            && pod.is_running(now)
            && self.disruptions_allowed(pdb, now) == 0
        {
            return EvictionOutcome::Blocked(format!(
                "Cannot evict pod as it would violate the pod's disruption budget ({}/{})",
                pdb.namespace, pdb.name
            ));
        }
        if let Some(pod) = self.pods.get_mut(uid) {
            pod.deleting_at = Some(now.plus(GRACE));
        }
        EvictionOutcome::Evicted
    }
}
