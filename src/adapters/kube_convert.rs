//! Kubernetes objects (k8s-openapi) to domain types. Pure and total: a
//! malformed object is an error value, never a panic (it is fuzzed).

use crate::ports::cluster::{
    LabelSelector, POD_ANNOTATIONS_READ, SelectorOp, SelectorRequirement, TAINT_VERIFYING,
    VolumeKind,
};
use crate::ports::{LabelMap, Node, Pdb, Pod, PodFields, PodPhase, Resources, Timestamp};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use std::collections::BTreeMap;

/// A Kubernetes quantity in base units (cores, bytes), by the API's own
/// grammar (`resource.Quantity`): a decimal number, then one of the binary
/// suffixes `Ki`…`Ei`, the decimal ones `n`, `u`, `m`, `k`, `M`, `G`, `T`,
/// `P`, `E`, or an exponent `e3`/`E-2`. Every form the API server accepts
/// parses, including the ones it produces when it canonicalises
/// (`1.5` → `1500m`, and `memory: 500m`, half a byte). `None` for anything
/// else and for negative values (no request or capacity is negative).
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let body = text.strip_prefix('+').unwrap_or(text);
    // The number: digits, at most one point, at least one digit.
    let number_len = body
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(body.len(), |(i, _)| i);
    let (number, suffix) = body.split_at(number_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1_048_576.0,
        "Gi" => 1_073_741_824.0,
        "Ti" => 1_099_511_627_776.0,
        "Pi" => 1_125_899_906_842_624.0,
        "Ei" => 1_152_921_504_606_846_976.0,
        exp => {
            let digits = exp.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let power: i32 = digits.parse().ok()?;
            10f64.powi(power)
        }
    };
    let total = value * scale;
    total.is_finite().then_some(total)
}

/// CPU quantity in millicores: `"1930m"`, `"2"`, `"0.5"`, `"250u"`, `"1e-3"`.
pub fn cpu_millis(text: &str) -> Option<u64> {
    let millis = quantity(text)? * 1000.0;
    // A rounding error of the float must not turn 1930m into 1931m.
    let millis = (millis * 1e6).round() / 1e6;
    (0.0..1e15).contains(&millis).then(|| millis.ceil() as u64)
}

/// Memory quantity in bytes: `"7Gi"`, `"8039252Ki"`, `"512M"`, `"1e9"`,
/// `"500m"` (half a byte, which the API server accepts: one byte here).
pub fn bytes(text: &str) -> Option<u64> {
    let total = quantity(text)?;
    let total = (total * 1e3).round() / 1e3;
    (0.0..1.8e19).contains(&total).then(|| total.ceil() as u64)
}

fn time(t: &Option<meta::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| Timestamp(t.0.as_millisecond()))
}

/// `aws:///eu-west-1a/i-0abc…` → `i-0abc…`; a node named after its
/// instance is accepted too.
pub fn instance_id(provider_id: Option<&str>, node_name: &str) -> Option<String> {
    let from_provider = provider_id
        .and_then(|p| p.strip_prefix("aws://"))
        .and_then(|rest| rest.rsplit('/').next())
        .filter(|id| id.starts_with("i-"));
    from_provider
        .or_else(|| node_name.starts_with("i-").then_some(node_name))
        .map(String::from)
}

pub fn node(n: &core::Node) -> Result<Node, String> {
    let name = n.metadata.name.clone().ok_or("a node without a name")?;
    let status = n.status.as_ref();
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let created = time(&n.metadata.creation_timestamp).unwrap_or_default();
    let allocatable = resources(
        status.and_then(|s| s.allocatable.as_ref()),
        &format!("node {name}: allocatable"),
    )?;
    let spec = n.spec.as_ref();
    Ok(Node {
        instance_id: instance_id(spec.and_then(|s| s.provider_id.as_deref()), &name),
        ready,
        cordoned: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        startup_taint: spec
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| t.key == TAINT_VERIFYING)),
        allocatable,
        labels: n.metadata.labels.clone().unwrap_or_default(),
        annotations: n.metadata.annotations.clone().unwrap_or_default(),
        created,
        ready_since: ready_condition
            .and_then(|c| time(&c.last_transition_time))
            .unwrap_or(created),
        name,
    })
}

pub fn pod(p: &core::Pod) -> Result<Pod, String> {
    let name = p.metadata.name.clone().ok_or("a pod without a name")?;
    let namespace = p
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = p.spec.as_ref();
    let status = p.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Unknown,
    };
    let owner_kind = p
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
        .map(|r| r.kind.clone());
    let volumes = spec
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    if v.empty_dir.is_some() {
                        VolumeKind::EmptyDir
                    } else if v.host_path.is_some() {
                        VolumeKind::HostPath
                    } else {
                        VolumeKind::Other
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let requests = effective_requests(spec, &namespace, &name)?;
    let unschedulable_since = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
        .map(|c| time(&c.last_transition_time).unwrap_or_default());
    Ok(PodFields {
        uid: p.metadata.uid.clone().unwrap_or_default(),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        phase,
        owner_kind,
        labels: p.metadata.labels.clone().unwrap_or_default().into(),
        annotations: read_annotations(p.metadata.annotations.as_ref()),
        priority_class: spec.and_then(|s| s.priority_class_name.clone()),
        volumes,
        requests,
        unschedulable_since,
        terminating: p.metadata.deletion_timestamp.is_some(),
        node_selector: spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default()
            .into(),
        scheduling_gates: spec
            .and_then(|s| s.scheduling_gates.as_ref())
            .map(|gates| gates.iter().map(|g| g.name.clone()).collect())
            .unwrap_or_default(),
        namespace,
        name,
    }
    .into())
}

/// The pod's annotations the engine reads (`POD_ANNOTATIONS_READ`), and
/// no others: a cache of every pod in the cluster would otherwise hold
/// each one's `kubectl.kubernetes.io/last-applied-configuration` (often
/// kilobytes) and whatever else tools write there.
fn read_annotations(all: Option<&BTreeMap<String, String>>) -> LabelMap {
    let Some(all) = all else {
        return LabelMap::new();
    };
    POD_ANNOTATIONS_READ
        .iter()
        .filter_map(|key| Some((key.to_string(), all.get(*key)?.clone())))
        .collect()
}

type QuantityList =
    std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>;

/// The CPU and memory of a resource list (absent: zero); `what` names the
/// list in the error for a value that is not a quantity.
fn resources(list: Option<&QuantityList>, what: &str) -> Result<Resources, String> {
    let get = |key: &str, parse: fn(&str) -> Option<u64>| {
        list.and_then(|l| l.get(key))
            .map(|q| {
                parse(&q.0).ok_or_else(|| format!("{what} {key} \"{}\" is not a quantity", q.0))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(Resources::new(
        get("cpu", cpu_millis)?,
        get("memory", bytes)?,
    ))
}

/// What the scheduler reserves for a pod (`resourcehelper.PodRequests`):
/// the sum of its containers and of its sidecars (init containers with
/// `restartPolicy: Always`), or the largest init container plus the
/// sidecars started before it, whichever is larger, per resource; plus the
/// runtime class's `overhead`. Summing the containers alone under-counts
/// both pending demand and a node's load.
fn effective_requests(
    spec: Option<&core::PodSpec>,
    namespace: &str,
    name: &str,
) -> Result<Resources, String> {
    let Some(spec) = spec else {
        return Ok(Resources::default());
    };
    let list = |what: &str, list: Option<&QuantityList>| {
        resources(list, &format!("pod {namespace}/{name}: {what}"))
    };
    let requests_of = |c: &core::Container| {
        list(
            "request",
            c.resources.as_ref().and_then(|r| r.requests.as_ref()),
        )
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total = total.plus(requests_of(c)?);
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        let own = requests_of(c)?;
        let during = if c.restart_policy.as_deref() == Some("Always") {
            total = total.plus(own);
            sidecars = sidecars.plus(own);
            sidecars
        } else {
            own.plus(sidecars)
        };
        init_peak = init_peak.max_each(during);
    }
    Ok(total
        .max_each(init_peak)
        .plus(list("overhead", spec.overhead.as_ref())?))
}

pub fn selector(s: &meta::LabelSelector) -> Result<LabelSelector, String> {
    let match_expressions = s
        .match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let op = match r.operator.as_str() {
                "In" => SelectorOp::In,
                "NotIn" => SelectorOp::NotIn,
                "Exists" => SelectorOp::Exists,
                "DoesNotExist" => SelectorOp::DoesNotExist,
                other => return Err(format!("unknown selector operator \"{other}\"")),
            };
            Ok(SelectorRequirement {
                key: r.key.clone(),
                op,
                values: r.values.clone().unwrap_or_default(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions,
    })
}

pub fn pdb(p: &PodDisruptionBudget) -> Result<Pdb, String> {
    let name = p
        .metadata
        .name
        .clone()
        .ok_or("a PodDisruptionBudget without a name")?;
    Ok(Pdb {
        namespace: p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        // policy/v1: a null selector selects no pod (and so protects
        // none); an empty one, `{}`, selects every pod in the namespace.
        selector: match p.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            Some(s) => selector(s)?,
            None => LabelSelector::nothing(),
        },
        disruptions_allowed: p.status.as_ref().map_or(0, |s| s.disruptions_allowed),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("1930m"), Some(1930));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("250000u"), Some(250));
        assert_eq!(cpu_millis("-1"), None);
        assert_eq!(cpu_millis("lots"), None);
        assert_eq!(bytes("7Gi"), Some(7 << 30));
        assert_eq!(bytes("8039252Ki"), Some(8_039_252 * 1024));
        assert_eq!(bytes("512M"), Some(512_000_000));
        assert_eq!(bytes("1e9"), Some(1_000_000_000));
        assert_eq!(bytes("12Zi"), None);
        // What the API server accepts and canonicalises: every one parses.
        assert_eq!(bytes("500m"), Some(1));
        assert_eq!(cpu_millis("1500m"), Some(1500));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(cpu_millis("100n"), Some(1));
        assert_eq!(cpu_millis("2k"), Some(2_000_000));
        assert_eq!(cpu_millis("1e-3"), Some(1));
        assert_eq!(cpu_millis("+2"), Some(2000));
        assert_eq!(bytes("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(bytes("2E3"), Some(2000));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("128974848e-3"), Some(128_975));
        for bad in [
            "", ".", "1..2", "Gi", "1e", "1e+", "1 Gi", "1gi", "1Ki2", "e3", "-1Ki",
        ] {
            assert_eq!(bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn provider_ids_map_to_instances() {
        assert_eq!(
            instance_id(Some("aws:///eu-west-1a/i-0abc"), "x").as_deref(),
            Some("i-0abc")
        );
        assert_eq!(instance_id(None, "i-0def").as_deref(), Some("i-0def"));
        assert_eq!(instance_id(Some("gce://p/z/n"), "node-1"), None);
    }

    #[test]
    fn a_node_from_json() {
        let n: core::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "i-01", "labels": {"topology.kubernetes.io/zone": "eu-west-1a"}, "creationTimestamp": "2026-01-05T00:00:00Z"},
            "spec": {"providerID": "aws:///eu-west-1a/i-01", "unschedulable": true},
            "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi"}, "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let d = node(&n).unwrap();
        assert_eq!(d.instance_id.as_deref(), Some("i-01"));
        assert!(d.ready && d.cordoned);
        assert_eq!(d.allocatable, Resources::new(1930, 7 << 30));
        assert_eq!(d.zone(), Some("eu-west-1a"));
        assert_eq!(d.created, Timestamp(1_767_571_200_000));
    }

    #[test]
    fn a_pending_pod_from_json() {
        let p: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r", "controller": true}]},
            "spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "300m", "memory": "512Mi"}}},
                                    {"name": "b", "resources": {"requests": {"cpu": "0.1"}}}],
                     "volumes": [{"name": "t", "emptyDir": {}}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": "2026-01-05T00:00:10Z"}]}
        }))
        .unwrap();
        let d = pod(&p).unwrap();
        assert_eq!(d.key(), "shop/web-1");
        assert_eq!(d.owner_kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(d.requests, Resources::new(400, 512 << 20));
        assert_eq!(d.volumes, vec![VolumeKind::EmptyDir]);
        assert_eq!(d.unschedulable_since, Some(Timestamp(1_767_571_210_000)));
        assert!(d.is_unschedulable());
    }

    /// A cache of every pod keeps only the annotations the engine reads:
    /// not `last-applied-configuration`'s copy of the whole manifest.
    #[test]
    fn a_pod_keeps_only_the_annotations_the_engine_reads() {
        let p: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}",
                    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                    "prometheus.io/scrape": "true"}},
            "spec": {"containers": [{"name": "a"}], "nodeSelector": {"disk": "ssd"}}
        }))
        .unwrap();
        let d = pod(&p).unwrap();
        let kept: Vec<(&String, &String)> = d.annotations.iter().collect();
        assert_eq!(
            kept,
            [(
                &"cluster-autoscaler.kubernetes.io/safe-to-evict".to_string(),
                &"false".to_string()
            )]
        );
        assert_eq!(d.labels.len(), 2);
        assert_eq!(d.labels.get("tier").map(String::as_str), Some("front"));
        assert_eq!(d.node_selector.get("disk").map(String::as_str), Some("ssd"));
    }

    /// A pod held by `schedulingGates` is Pending with PodScheduled False,
    /// reason `SchedulingGated`: it waits for its gate, not for capacity,
    /// so no new worker can help it and it must not count as unschedulable
    /// (the Cluster Autoscaler ignores gated pods too).
    #[test]
    fn a_scheduling_gated_pod_is_not_unschedulable() {
        let p: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "batch-1", "namespace": "shop", "uid": "u2"},
            "spec": {"schedulingGates": [{"name": "example.com/quota"}],
                     "containers": [{"name": "a", "resources": {"requests": {"cpu": "4"}}}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates",
                "lastTransitionTime": "2026-01-05T00:00:10Z"}]}
        }))
        .unwrap();
        let d = pod(&p).unwrap();
        assert_eq!(d.phase, PodPhase::Pending);
        assert_eq!(d.unschedulable_since, None);
        assert_eq!(d.scheduling_gates, vec!["example.com/quota".to_string()]);
        assert!(!d.is_unschedulable());
        // A status that says Unschedulable beside a gate (written by a
        // client, or out of step): the gate decides.
        let mut stale = d.clone();
        stale.unschedulable_since = Some(Timestamp(1_767_571_210_000));
        assert!(!stale.is_unschedulable());
        stale.scheduling_gates.clear();
        assert!(stale.is_unschedulable());
    }
    /// The scheduler's arithmetic: max(containers + sidecars, largest init
    /// container + the sidecars before it) + overhead, per resource.
    #[test]
    fn effective_requests_count_init_containers_sidecars_and_overhead() {
        let with = |spec: serde_json::Value| {
            let p: core::Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": "d", "uid": "u"},
                "spec": spec,
                "status": {"phase": "Pending"}
            }))
            .unwrap();
            pod(&p).unwrap().requests
        };
        let req =
            |cpu: &str, mem: &str| serde_json::json!({"requests": {"cpu": cpu, "memory": mem}});
        // A big init container dominates the CPU, the containers the memory.
        assert_eq!(
            with(serde_json::json!({
                "initContainers": [{"name": "migrate", "resources": req("2", "100Mi")}],
                "containers": [{"name": "a", "resources": req("500m", "1Gi")},
                               {"name": "b", "resources": req("250m", "1Gi")}]
            })),
            Resources::new(2000, 2 << 30)
        );
        // A sidecar runs beside the containers and beside later inits.
        assert_eq!(
            with(serde_json::json!({
                "initContainers": [{"name": "proxy", "restartPolicy": "Always", "resources": req("100m", "64Mi")},
                                   {"name": "setup", "resources": req("1", "64Mi")}],
                "containers": [{"name": "a", "resources": req("500m", "256Mi")}]
            })),
            Resources::new(1100, 320 << 20)
        );
        // The runtime class's overhead comes on top.
        assert_eq!(
            with(serde_json::json!({
                "overhead": {"cpu": "250m", "memory": "120Mi"},
                "containers": [{"name": "a", "resources": req("500m", "256Mi")}]
            })),
            Resources::new(750, 376 << 20)
        );
        let bad: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"overhead": {"cpu": "lots"}, "containers": []}
        }))
        .unwrap();
        assert!(pod(&bad).unwrap_err().contains("overhead cpu"));
    }

    /// policy/v1: a null selector protects no pod, `{}` every pod.
    #[test]
    fn a_pdb_with_a_null_selector_matches_no_pod() {
        let pdb_of = |spec: serde_json::Value| {
            let p: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "b", "namespace": "kube-system"},
                "spec": spec,
                "status": {"disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}
            }))
            .unwrap();
            pdb(&p).unwrap()
        };
        let labels: std::collections::BTreeMap<String, String> =
            [("k8s-app".to_string(), "kube-dns".to_string())].into();
        assert!(!pdb_of(serde_json::json!({})).selector.matches(&labels));
        assert!(
            !pdb_of(serde_json::json!({}))
                .selector
                .matches(&crate::ports::LabelMap::new())
        );
        assert!(
            pdb_of(serde_json::json!({"selector": {}}))
                .selector
                .matches(&labels)
        );
        assert!(
            pdb_of(serde_json::json!({"selector": {"matchLabels": {"k8s-app": "kube-dns"}}}))
                .selector
                .matches(&labels)
        );
    }

    #[test]
    fn bad_quantities_are_errors() {
        let n: core::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "many"}}
        }))
        .unwrap();
        assert!(node(&n).unwrap_err().contains("allocatable cpu"));
    }
}
