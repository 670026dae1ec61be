//! The simulated cluster as Kubernetes API JSON, shaped like the real API
//! so that kube-rs (and kubectl) read it unchanged.

use super::quantity::{self, Format};
use crate::ports::cluster::{SelectorOp, TAINT_VERIFYING, VolumeKind};
use crate::ports::{Node, Pdb, Pod, PodPhase, Timestamp};
use serde_json::{Value, json};

fn time(t: Timestamp) -> String {
    // The API's own format: seconds, UTC.
    t.to_rfc3339()
        .get(..19)
        .map(|s| format!("{s}Z"))
        .unwrap_or_default()
}

pub fn node(n: &Node) -> Value {
    let zone = n.zone().unwrap_or("eu-west-1a");
    // Both forms a real cluster shows, on alternate nodes (by name): the
    // providerID our user data sets (`aws:///zone/id`) and K3s's own
    // (`k3s://name`) when the kubelet flag is missing; a NotReady node as
    // the node controller marks one it lost ("Unknown") and as a kubelet
    // reports itself ("False"). The adapter must read each.
    let odd = n.name.bytes().last().is_some_and(|b| b % 2 == 1);
    let provider_id = n.instance_id.as_ref().map(|id| {
        if odd {
            format!("k3s://{}", n.name)
        } else {
            format!("aws:///{zone}/{id}")
        }
    });
    let (ready, reason) = ready_condition(n);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "uid": format!("node-{}", n.name),
            "resourceVersion": "1",
            "creationTimestamp": time(n.created),
            "labels": n.labels,
            "annotations": n.annotations,
        },
        "spec": {
            "providerID": provider_id,
            "unschedulable": n.cordoned,
            "taints": if n.startup_taint {
                json!([{"key": TAINT_VERIFYING, "value": "true", "effect": "NoSchedule"}])
            } else {
                json!([])
            },
        },
        "status": {
            "allocatable": {
                "cpu": quantity::cpu(n.allocatable.cpu_millis),
                "memory": quantity::memory(n.allocatable.memory_bytes, Format::for_object(&n.name)),
                "pods": "110",
            },
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "conditions": [{
                "type": "Ready",
                "status": ready,
                "reason": reason,
                "lastTransitionTime": time(n.ready_since),
            }],
        },
    })
}

/// The Ready condition's status and reason. A NotReady node shows as the
/// node controller marks one it lost (`Unknown`) or as a kubelet reports
/// itself (`False`), on alternate nodes (by name).
pub fn ready_condition(n: &Node) -> (&'static str, &'static str) {
    let odd = n.name.bytes().last().is_some_and(|b| b % 2 == 1);
    match (n.ready, odd) {
        (true, _) => ("True", "KubeletReady"),
        (false, true) => ("False", "KubeletNotReady"),
        (false, false) => ("Unknown", "NodeStatusUnknown"),
    }
}

pub fn pod(p: &Pod) -> Value {
    let phase = match p.phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
        PodPhase::Unknown => "Unknown",
    };
    let scheduled = match (&p.node_name, p.unschedulable_since) {
        (Some(_), _) => json!({"type": "PodScheduled", "status": "True"}),
        // As the scheduler marks a pod it will not consider yet.
        (None, _) if !p.scheduling_gates.is_empty() => json!({
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
        }),
        (None, Some(since)) => json!({
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/N nodes are available: Insufficient cpu.",
            "lastTransitionTime": time(since),
        }),
        (None, None) => json!({"type": "PodScheduled", "status": "False"}),
    };
    let volumes: Vec<Value> = p
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            VolumeKind::EmptyDir => json!({"name": format!("v{i}"), "emptyDir": {}}),
            VolumeKind::HostPath => {
                json!({"name": format!("v{i}"), "hostPath": {"path": "/var/lib/x"}})
            }
            VolumeKind::Other => json!({"name": format!("v{i}"), "configMap": {"name": "c"}}),
        })
        .collect();
    let mut metadata = json!({
        "name": p.name,
        "namespace": p.namespace,
        "uid": p.uid,
        "resourceVersion": "1",
        "labels": p.labels,
        "annotations": p.annotations,
    });
    if let Some(kind) = &p.owner_kind {
        let api = match kind.as_str() {
            "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
            "Job" => "batch/v1",
            _ => "v1",
        };
        metadata["ownerReferences"] = json!([{
            "apiVersion": api, "kind": kind, "name": p.labels.get("app").cloned().unwrap_or_default(),
            "uid": format!("owner-{kind}"), "controller": true,
        }]);
    }
    if p.terminating {
        metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    let mut spec = json!({
        "nodeName": p.node_name,
        "priorityClassName": p.priority_class,
        "volumes": volumes,
    });
    if !p.scheduling_gates.is_empty() {
        let gates: Vec<Value> = p
            .scheduling_gates
            .iter()
            .map(|g| json!({"name": g}))
            .collect();
        spec["schedulingGates"] = json!(gates);
    }
    spec_requests(&mut spec, p);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase, "conditions": [scheduled]},
    })
}

/// `{"requests": {cpu, memory}}` in the object's canonical forms.
fn requests(name: &str, cpu_millis: u64, memory_bytes: u64) -> Value {
    json!({"requests": {
        "cpu": quantity::cpu(cpu_millis),
        "memory": quantity::memory(memory_bytes, Format::for_object(name)),
    }})
}

/// The pod's requests as the scheduler would add them up, in one of four
/// shapes by name: one container; half in the container and an
/// init container asking for all of it (the scheduler reserves the larger:
/// a client that sums the containers reads half); the container plus a
/// runtime class's `overhead` of a quarter (a client that skips the
/// overhead reads three quarters); or the container plus a sidecar of a
/// quarter (an init container with `restartPolicy: Always`, which runs
/// beside the containers, so its request adds to theirs: a client that
/// takes it for an ordinary init container reads three quarters). Each
/// shape adds up to `p.requests`.
fn spec_requests(spec: &mut Value, p: &Pod) {
    let (cpu, memory) = (p.requests.cpu_millis, p.requests.memory_bytes);
    let container = |cpu, memory| json!([{"name": "app", "image": "k3s-sim/app", "resources": requests(&p.name, cpu, memory)}]);
    // FNV-1a: the simulator's name suffixes have byte sums that are all
    // multiples of three, so a plain sum would pick one shape for all.
    let shape = p.name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    match shape % 4 {
        0 => spec["containers"] = container(cpu, memory),
        1 => {
            spec["containers"] = container(cpu / 2, memory / 2);
            spec["initContainers"] = json!([{
                "name": "init", "image": "k3s-sim/init",
                "resources": requests(&p.name, cpu, memory),
            }]);
        }
        2 => {
            let (cpu_overhead, memory_overhead) = (cpu / 4, memory / 4);
            spec["containers"] = container(cpu - cpu_overhead, memory - memory_overhead);
            spec["overhead"] = requests(&p.name, cpu_overhead, memory_overhead)["requests"].clone();
        }
        _ => {
            let (cpu_sidecar, memory_sidecar) = (cpu / 4, memory / 4);
            spec["containers"] = container(cpu - cpu_sidecar, memory - memory_sidecar);
            spec["initContainers"] = json!([{
                "name": "proxy", "image": "k3s-sim/proxy", "restartPolicy": "Always",
                "resources": requests(&p.name, cpu_sidecar, memory_sidecar),
            }]);
        }
    }
}

pub fn pdb(p: &Pdb, expected: i32, healthy: i32) -> Value {
    let expressions: Vec<Value> = p
        .selector
        .match_expressions
        .iter()
        .map(|r| {
            let op = match r.op {
                SelectorOp::In => "In",
                SelectorOp::NotIn => "NotIn",
                SelectorOp::Exists => "Exists",
                SelectorOp::DoesNotExist => "DoesNotExist",
            };
            json!({"key": r.key, "operator": op, "values": r.values})
        })
        .collect();
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": p.name, "namespace": p.namespace, "resourceVersion": "1"},
        // A null selector is served as the server stores one: `null`.
        "spec": {"selector": if p.selector.is_nothing() {
            Value::Null
        } else {
            json!({"matchLabels": p.selector.match_labels, "matchExpressions": expressions})
        }},
        "status": {
            "disruptionsAllowed": p.disruptions_allowed,
            "currentHealthy": healthy,
            "desiredHealthy": healthy - p.disruptions_allowed,
            "expectedPods": expected,
            "observedGeneration": 1,
        },
    })
}

pub fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

/// A `metav1.Status`, as the API server answers errors (and evictions).
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "reason": reason,
        "message": message,
        "code": code,
    })
}
