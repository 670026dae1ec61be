//! The Kubernetes façade answers as kube-apiserver does, on the
//! points where an easy fake would accept what the real server refuses:
//! resourceVersion conflicts, atomic taint lists and patch types, the
//! selector languages, paged lists served from one snapshot (and `410
//! Expired`), lifecycle taints. Each test goes through the kube-rs adapter
//! where the adapter is involved. Evictions are `facade_evictions.rs`;
//! the cases both `ClusterApi` implementations share are in
//! `conformance_cluster.rs`.

use crate::support;

use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;

/// A node patch that names a resourceVersion is conditional on it, as on
/// the API server: the taint removal cannot drop a taint added since.
#[tokio::test]
async fn a_patch_with_a_stale_resource_version_is_refused() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let name = k3s_autoscaler::sim::ports::lock(&world).nodes()[0]
        .name
        .clone();
    let http = reqwest::Client::new();
    // A cordon conditional on `rv`: the status the server answers.
    let patch = async |rv: &str| {
        let body = serde_json::json!({"metadata": {"resourceVersion": rv}, "spec": {"unschedulable": true}});
        http.patch(format!("{url}/api/v1/nodes/{name}"))
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(patch("0").await, 409);
    assert!(
        !k3s_autoscaler::sim::ports::lock(&world).nodes()[0].cordoned,
        "a refused patch changes nothing"
    );
    // The version a read serves (the watch cache's, one counter for every
    // object, as etcd's revision is) is the current one.
    let read = support::get_json(&format!("{url}/api/v1/nodes/{name}")).await;
    let version = read["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(patch(&version).await, 200);
    // That version is now stale: the patch moved it.
    assert_eq!(patch(&version).await, 409);
}

/// `kubectl annotate node N k3s-autoscaler/scale-down-disabled=true` (a
/// merge patch of `metadata.annotations`) is stored and read back by the
/// adapter as an opt-out; `k-` (a null) takes it away again.
#[tokio::test]
async fn an_opt_out_annotation_is_stored_and_read_back_as_one() {
    let (url, world) = support::facade(ScenarioKind::Steady, 3).await;
    let name = k3s_autoscaler::sim::ports::lock(&world).nodes()[0]
        .name
        .clone();
    let http = reqwest::Client::new();
    let annotate = |value: serde_json::Value| {
        http.patch(format!("{url}/api/v1/nodes/{name}"))
            .header("content-type", "application/merge-patch+json")
            .body(
                serde_json::json!({"metadata": {"annotations": {"k3s-autoscaler/scale-down-disabled": value}}})
                    .to_string(),
            )
            .send()
    };
    assert_eq!(
        annotate(serde_json::json!("true"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let kube = support::kube_client(&url).await;
    let opted = |nodes: Vec<Node>| {
        nodes
            .into_iter()
            .find(|n| n.name == name)
            .and_then(|n| n.scale_down_opt_out())
    };
    assert_eq!(
        opted(kube.nodes().await.unwrap()),
        Some("k3s-autoscaler/scale-down-disabled")
    );
    assert_eq!(
        annotate(serde_json::Value::Null)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(opted(kube.nodes().await.unwrap()), None);
}

/// The façade is faithful: what kube-rs reads through it is what the
/// simulator's own port says.
#[tokio::test]
async fn the_facade_shows_the_simulator_exactly() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let kube = support::kube_client(&url).await;
    // Half the pods ask for memory in decimal units (128M, as a chart
    // might write it), so the decimal canonical forms are served too.
    for (i, pod) in k3s_autoscaler::sim::ports::lock(&world)
        .workload
        .pods
        .values_mut()
        .enumerate()
    {
        if i % 2 == 0 {
            pod.requests.memory_bytes = 128_000_000;
        }
    }
    // Every node NotReady: the façade shows them as "False" and as
    // "Unknown" (by name), with both providerID forms; all must read the
    // same. Ten minutes after they registered, so the Ready condition's
    // transition time is not their creation time.
    let flapped = {
        let mut w = k3s_autoscaler::sim::ports::lock(&world);
        let later = w.now.plus(std::time::Duration::from_secs(600));
        w.advance_to(later);
        let names: Vec<String> = w.fleet.nodes.keys().cloned().collect();
        for name in &names {
            w.flap_node(name, std::time::Duration::from_secs(3600));
        }
        w.now
    };
    let http = reqwest::Client::new();
    let raw = get_json(&http, &format!("{url}/api/v1/nodes")).await;
    let items = raw["items"].as_array().expect("items");
    let statuses: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|n| n["status"]["conditions"][0]["status"].as_str())
        .collect();
    let providers: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|n| n["spec"]["providerID"].as_str())
        .map(|p| p.split("://").next().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["False", "Unknown"].into(),
        "both NotReady forms are served"
    );
    assert_eq!(
        providers,
        ["aws", "k3s"].into(),
        "both providerID forms are served"
    );
    let through_api = kube.nodes().await.unwrap();
    let direct = k3s_autoscaler::sim::ports::lock(&world).nodes();
    assert!(direct.iter().all(|n| !n.ready));
    let flapped = Timestamp(flapped.0 / 1000 * 1000);
    assert!(
        through_api
            .iter()
            .all(|n| n.ready_since == flapped && n.created < flapped),
        "NotReady since the flap, as lastTransitionTime says"
    );
    // Timestamps travel at second precision.
    let trim = |mut ns: Vec<Node>| {
        for n in &mut ns {
            n.created = Timestamp(n.created.0 / 1000 * 1000);
            n.ready_since = Timestamp(n.ready_since.0 / 1000 * 1000);
        }
        ns.sort_by(|a, b| a.name.cmp(&b.name));
        ns
    };
    assert_eq!(trim(through_api), trim(direct));
    // Quantities come in the server's canonical forms, not one easy shape:
    // binary suffixes, bare bytes, millibytes (what `1.2Gi` becomes).
    let raw_pods = get_json(&http, &format!("{url}/api/v1/pods")).await;
    let memory: Vec<&str> = items
        .iter()
        .filter_map(|n| n["status"]["allocatable"]["memory"].as_str())
        .chain(
            raw_pods["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|p| {
                    p["spec"]["containers"][0]["resources"]["requests"]["memory"].as_str()
                }),
        )
        .collect();
    let forms: std::collections::BTreeSet<&str> = memory
        .iter()
        .map(|m| {
            if ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .any(|b| m.ends_with(b))
            {
                "binary"
            } else if m.ends_with('m') {
                "millibytes"
            } else if m.bytes().all(|b| b.is_ascii_digit()) {
                "bare"
            } else if m.contains('e') || m.ends_with(['k', 'M', 'G']) {
                "decimal"
            } else {
                panic!("{m} is in no canonical form")
            }
        })
        .collect();
    assert!(
        ["bare", "binary", "decimal", "millibytes"]
            .iter()
            .all(|f| forms.contains(f)),
        "memory forms served: {forms:?} in {memory:?}"
    );
    // Requests come in the shapes the scheduler adds up, not one container:
    // an init container asking for more, a runtime class's overhead, a
    // sidecar (an init container that keeps running) adding to the rest.
    let served = raw_pods["items"].as_array().expect("items");
    let init_containers = |sidecar: bool| {
        served
            .iter()
            .filter(|p| {
                p["spec"]["initContainers"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| (c["restartPolicy"] == "Always") == sidecar)
                })
            })
            .count()
    };
    let with_overhead = served
        .iter()
        .filter(|p| !p["spec"]["overhead"].is_null())
        .count();
    assert!(
        init_containers(false) > 0 && init_containers(true) > 0 && with_overhead > 0,
        "{} pods: {} with init containers, {} with sidecars, {} with overhead",
        served.len(),
        init_containers(false),
        init_containers(true),
        with_overhead
    );
    let mut api_pods = kube.pods().await.unwrap();
    let mut sim_pods = k3s_autoscaler::sim::ports::lock(&world).pods();
    api_pods.sort_by(|a, b| a.uid.cmp(&b.uid));
    sim_pods.sort_by(|a, b| a.uid.cmp(&b.uid));
    assert_eq!(api_pods.len(), sim_pods.len());
    for (a, s) in api_pods.iter().zip(&sim_pods) {
        assert_eq!(
            (&a.uid, &a.node_name, a.phase, &a.owner_kind, a.requests),
            (&s.uid, &s.node_name, s.phase, &s.owner_kind, s.requests)
        );
    }
}

/// Taints as the API server keeps them: every façade node also
/// carries its owner's taint, `spec.taints` is an atomic list (a patch that
/// names it replaces it whole), a node's resourceVersion moves on every
/// change, and patch types other than merge and strategic-merge are 415.
/// Removing our startup taint through the adapter keeps the owner's.
#[tokio::test]
async fn removing_our_taint_keeps_the_owners_and_patches_are_judged_like_the_api_server() {
    use k3s_autoscaler::sim::facade::node_objects::SEEDED_TAINT_KEY;
    use k3s_autoscaler::sim::ports::lock;
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let name = lock(&world).nodes()[0].name.clone();
    lock(&world)
        .fleet
        .nodes
        .get_mut(&name)
        .expect("node")
        .startup_taint = true;
    let kube = support::kube_client(&url).await;
    let http = reqwest::Client::new();
    let node_url = format!("{url}/api/v1/nodes/{name}");
    let get = || get_json(&http, &node_url);
    let taint_keys = |v: &serde_json::Value| -> Vec<String> {
        v["spec"]["taints"]
            .as_array()
            .expect("a taint list")
            .iter()
            .map(|t| t["key"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let before = get().await;
    assert_eq!(
        taint_keys(&before),
        [SEEDED_TAINT_KEY, "k3s-autoscaler/verifying"]
    );
    kube.remove_startup_taint(&name).await.unwrap();
    let after = get().await;
    assert_eq!(
        taint_keys(&after),
        [SEEDED_TAINT_KEY],
        "the owner's taint stays"
    );
    assert!(!lock(&world).fleet.nodes[&name].startup_taint);
    let rv = |v: &serde_json::Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(rv(&before), rv(&after), "a change moves the version");
    // A patch on the version read before that change is stale.
    let stale = http
        .patch(&node_url)
        .header("content-type", "application/merge-patch+json")
        .body(
            serde_json::json!({"metadata": {"resourceVersion": rv(&before)}, "spec": {"unschedulable": true}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 409);
    assert!(!lock(&world).fleet.nodes[&name].cordoned);
    // Patch types the façade does not apply are refused, not guessed at.
    for media in [
        "application/json-patch+json",
        "application/json",
        "text/plain",
    ] {
        let refused = http
            .patch(&node_url)
            .header("content-type", media)
            .body(r#"{"spec": {"unschedulable": true}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 415, "{media}");
    }
    // Judged by its type before its body: YAML is refused as a type.
    let yaml = http
        .patch(&node_url)
        .header("content-type", "application/apply-patch+yaml")
        .body("spec:\n  unschedulable: true\n")
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.status().as_u16(), 415);
    assert!(!lock(&world).fleet.nodes[&name].cordoned);
    // The list is atomic: a patch naming it replaces it, so an adapter that
    // sent only what it wanted gone would drop the owner's taint.
    let replaced = http
        .patch(&node_url)
        .header("content-type", "application/strategic-merge-patch+json")
        .body(r#"{"spec": {"taints": []}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status().as_u16(), 200);
    assert_eq!(taint_keys(&get().await), Vec::<String>::new());
}

/// The façade reads `labelSelector` as the API server does: set-based and
/// negative terms select what they say, and a selector the server refuses
/// is a 400 (so a typo in its syntax fails as it would against K3s).
#[tokio::test]
async fn node_lists_honour_the_api_servers_selector_language() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let nodes = k3s_autoscaler::sim::ports::lock(&world).nodes();
    let (key, value) = nodes[0]
        .labels
        .iter()
        .find(|(k, _)| k.as_str() == "k3s-autoscaler/role")
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("worker label");
    let http = reqwest::Client::new();
    let count = |selector: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let answer = http
                .get(format!("{url}/api/v1/nodes"))
                .query(&[("labelSelector", selector)])
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            (status, body["items"].as_array().map_or(0, Vec::len))
        }
    };
    let all = nodes.len();
    assert_eq!(count(format!("{key}={value}")).await, (200, all));
    assert_eq!(count(format!("{key}!={value}")).await, (200, 0));
    assert_eq!(count(format!("{key} in ({value},other)")).await, (200, all));
    assert_eq!(count(format!("{key} notin ({value})")).await, (200, 0));
    assert_eq!(count(key.clone()).await, (200, all));
    assert_eq!(count(format!("!{key}")).await, (200, 0));
    assert_eq!(count(format!("{key} in ({value}")).await.0, 400);
}

/// What the node lifecycle controller and the kubelet do to a Node, the
/// façade does too: a NotReady node carries `not-ready` (Ready
/// `False`) or `unreachable` (`Unknown`) taints, NoSchedule and NoExecute,
/// which are the controller's (our taint removal keeps them; they go when
/// the node is Ready again), and a change the simulator makes moves the
/// node's resourceVersion, so a patch on a version read before it is 409.
#[tokio::test]
async fn lifecycle_taints_and_versions_move_with_the_node_itself() {
    use k3s_autoscaler::sim::facade::node_objects::{
        NOT_READY_TAINT_KEY, SEEDED_TAINT_KEY, UNREACHABLE_TAINT_KEY,
    };
    use k3s_autoscaler::sim::ports::lock;
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let names: Vec<String> = lock(&world).fleet.nodes.keys().cloned().collect();
    let http = reqwest::Client::new();
    let get = |name: &str| {
        let request = http.get(format!("{url}/api/v1/nodes/{name}")).send();
        async move {
            let v: serde_json::Value = request.await.unwrap().json().await.unwrap();
            v
        }
    };
    let taints = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["spec"]["taints"]
            .as_array()
            .expect("a taint list")
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or_default().to_string(),
                    t["effect"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let rv = |v: &serde_json::Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut before = Vec::new();
    for name in &names {
        before.push(get(name).await);
    }
    {
        // Two minutes after registering: the NoExecute taint is added when
        // the node went NotReady, not when it was created.
        let mut w = lock(&world);
        let later = w.now.plus(std::time::Duration::from_secs(120));
        w.advance_to(later);
        for name in &names {
            w.flap_node(name, std::time::Duration::from_secs(3600));
            w.fleet.nodes.get_mut(name).expect("node").startup_taint = true;
        }
    }
    let mut seen_keys = std::collections::BTreeSet::new();
    for (name, was) in names.iter().zip(&before) {
        let now = get(name).await;
        assert_ne!(
            rv(&now),
            rv(was),
            "the simulator's change moved {name}'s version"
        );
        let key = match now["status"]["conditions"][0]["status"].as_str() {
            Some("False") => NOT_READY_TAINT_KEY,
            Some("Unknown") => UNREACHABLE_TAINT_KEY,
            other => panic!("{name} should be NotReady: {other:?}"),
        };
        seen_keys.insert(key);
        for effect in ["NoSchedule", "NoExecute"] {
            assert!(
                taints(&now).contains(&(key.to_string(), effect.to_string())),
                "{name}: {:?}",
                taints(&now)
            );
        }
        let added = now["spec"]["taints"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["effect"] == "NoExecute"))
            .map(|t| t["timeAdded"].clone());
        let transition = &now["status"]["conditions"][0]["lastTransitionTime"];
        assert_eq!(added.as_ref(), Some(transition), "{name}");
        assert_ne!(transition, &now["metadata"]["creationTimestamp"], "{name}");
        // A patch on the version read before the simulator's change.
        let stale = http
            .patch(format!("{url}/api/v1/nodes/{name}"))
            .header("content-type", "application/merge-patch+json")
            .body(
                serde_json::json!({"metadata": {"resourceVersion": rv(was)}, "spec": {"unschedulable": true}})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status().as_u16(), 409, "{name}");
    }
    assert_eq!(seen_keys.len(), 2, "both lifecycle taints are served");

    // Our taint removal sends the list back without ours; the lifecycle
    // taints stay while the node is NotReady and go when it is Ready.
    let kube = support::kube_client(&url).await;
    let name = &names[0];
    kube.remove_startup_taint(name).await.unwrap();
    let keys: Vec<String> = taints(&get(name).await)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        !keys.iter().any(|k| k == "k3s-autoscaler/verifying"),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k == SEEDED_TAINT_KEY), "{keys:?}");
    assert_eq!(
        keys.len(),
        3,
        "the owner's and the controller's two: {keys:?}"
    );
    {
        let mut w = lock(&world);
        let node = w.fleet.nodes.get_mut(name).expect("node");
        node.flapping_until = None;
        node.ready = true;
        node.not_ready_since = None;
    }
    let ready = get(name).await;
    assert_eq!(ready["status"]["conditions"][0]["status"], "True");
    assert_eq!(
        taints(&ready),
        [(SEEDED_TAINT_KEY.to_string(), "PreferNoSchedule".to_string())],
        "the controller's taints went with NotReady"
    );
}

/// The version a patch names is judged against the node as it is *now*,
/// not as the façade last showed it: a GET, then a change the simulator
/// makes (the node goes NotReady) that nobody reads, then a PATCH on the
/// version the GET returned is `409`, as on kube-apiserver, whose version
/// moved when the kubelet wrote the node's status.
#[tokio::test]
async fn a_change_nobody_has_read_yet_still_makes_a_version_stale() {
    use k3s_autoscaler::sim::ports::lock;
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let name = lock(&world).nodes()[0].name.clone();
    let http = reqwest::Client::new();
    let node_url = format!("{url}/api/v1/nodes/{name}");
    let version_now = || async {
        let node = get_json(&http, &node_url).await;
        node["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let cordon_at = |rv: String| {
        let body = serde_json::json!({"metadata": {"resourceVersion": rv}, "spec": {"unschedulable": true}});
        http.patch(&node_url)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
    };
    let rv = version_now().await;
    lock(&world).flap_node(&name, std::time::Duration::from_secs(3600));
    let stale = cordon_at(rv.clone()).await.unwrap();
    assert_eq!(stale.status().as_u16(), 409);
    assert!(!lock(&world).fleet.nodes[&name].cordoned);
    // Read again, and the patch on the fresh version lands; its answer
    // carries the version after it, which a second GET agrees with.
    let fresh_rv = version_now().await;
    assert_ne!(fresh_rv, rv);
    let landed = cordon_at(fresh_rv.clone()).await.unwrap();
    assert_eq!(landed.status().as_u16(), 200);
    let after: serde_json::Value = landed.json().await.unwrap();
    let after_rv = after["metadata"]["resourceVersion"].as_str().unwrap();
    assert_eq!(after_rv, version_now().await);
    assert_ne!(after_rv, fresh_rv);
    assert!(lock(&world).fleet.nodes[&name].cordoned);
}

/// One object or list read from the façade as JSON.
pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Pods held by a scheduling gate are served as the API server
/// serves them: `spec.schedulingGates` and PodScheduled False with reason
/// `SchedulingGated`, never `Unschedulable`. The adapter reads the gates
/// and does not count such a pod as waiting for capacity, however large
/// its requests (the Cluster Autoscaler ignores gated pods too).
#[tokio::test]
async fn gated_pods_are_served_gated_and_are_not_unschedulable() {
    use k3s_autoscaler::ports::Resources;
    use k3s_autoscaler::sim::ports::lock;
    let (url, world) = support::facade(ScenarioKind::Steady, 2).await;
    {
        let mut w = lock(&world);
        w.workload
            .add_gated_job("queued", 3, Resources::new(1_800, 1 << 30));
        let later = w.now.plus(std::time::Duration::from_secs(120));
        w.advance_to(later);
    }
    let http = reqwest::Client::new();
    let served = get_json(&http, &format!("{url}/api/v1/namespaces/batch/pods")).await;
    let items = served["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{served}");
    for p in items {
        assert_eq!(
            p["spec"]["schedulingGates"],
            serde_json::json!([{"name": "k3s-sim.example/queue"}]),
            "{p}"
        );
        assert!(p["spec"]["nodeName"].is_null(), "{p}");
        let scheduled = &p["status"]["conditions"][0];
        assert_eq!(
            (
                &scheduled["type"],
                &scheduled["status"],
                &scheduled["reason"]
            ),
            (
                &serde_json::json!("PodScheduled"),
                &serde_json::json!("False"),
                &serde_json::json!("SchedulingGated")
            ),
            "{p}"
        );
    }
    let kube = support::kube_client(&url).await;
    let gated: Vec<Pod> = kube
        .pods()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.namespace == "batch")
        .collect();
    assert_eq!(gated.len(), 3);
    for p in &gated {
        assert_eq!(p.scheduling_gates, ["k3s-sim.example/queue"]);
        assert!(!p.is_unschedulable(), "{p:?}");
    }
}
