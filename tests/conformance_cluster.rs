//! The `ClusterApi` conformance suite, written once against the trait and
//! run against the simulator and against the kube-rs adapter talking to
//! the simulator's Kubernetes façade over plain HTTP on loopback.

mod support;

use k3s_autoscaler::adapters::kube::KubeCluster;
use k3s_autoscaler::config::KubernetesConfig;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ports::SimPorts;
use k3s_autoscaler::sim::{ScenarioKind, SimClock, World};
use std::sync::Arc;

type Cluster = Arc<dyn ClusterApi>;

mod cases {
    use super::*;

    pub async fn workers_carry_readiness_allocatable_and_instance_ids(c: Cluster) {
        let nodes = c.nodes().await.unwrap();
        assert_eq!(nodes.len(), 4, "{nodes:?}");
        for n in &nodes {
            assert!(n.ready, "{n:?}");
            assert!(!n.cordoned);
            assert!(
                n.allocatable.cpu_millis >= 1_000 && n.allocatable.memory_bytes >= 1 << 30,
                "{n:?}"
            );
            assert_eq!(n.instance_id.as_deref(), Some(n.name.as_str()));
            assert!(n.zone().is_some() && n.instance_type().is_some(), "{n:?}");
        }
    }

    pub async fn pods_carry_owner_requests_and_placement(c: Cluster) {
        let nodes = c.nodes().await.unwrap();
        let pods = c.pods().await.unwrap();
        for n in &nodes {
            let on = c.pods_on(&n.name).await.unwrap();
            assert!(
                on.iter()
                    .all(|p| p.node_name.as_deref() == Some(n.name.as_str()))
            );
            assert!(
                on.iter()
                    .any(|p| p.owner_kind.as_deref() == Some("DaemonSet")),
                "every node runs the DaemonSet: {on:?}"
            );
            let from_all: usize = pods
                .iter()
                .filter(|p| p.node_name.as_deref() == Some(n.name.as_str()))
                .count();
            assert_eq!(from_all, on.len(), "pods_on agrees with pods");
        }
        let web = pods
            .iter()
            .find(|p| p.name.starts_with("web-"))
            .expect("web pods");
        assert_eq!(web.owner_kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(web.requests, Resources::new(300, 512 << 20));
        assert_eq!(web.labels.get("app").map(String::as_str), Some("web"));
        assert!(
            pods.iter()
                .any(|p| p.owner_kind.as_deref() == Some("StatefulSet")),
            "the db pod"
        );
        assert!(pods.iter().all(|p| !p.uid.is_empty()));
    }

    pub async fn budgets_are_listed_with_disruptions_allowed(c: Cluster) {
        let pdbs = c.pdbs().await.unwrap();
        let web = pdbs.iter().find(|p| p.name == "web").expect("the web PDB");
        assert_eq!(web.namespace, "default");
        assert_eq!(
            web.selector.match_labels.get("app").map(String::as_str),
            Some("web")
        );
        assert!(web.disruptions_allowed >= 0);
        assert!(
            pdbs.iter()
                .any(|p| p.namespace == "kube-system" && p.name == "coredns")
        );
    }

    pub async fn cordon_and_uncordon(c: Cluster) {
        let name = c.nodes().await.unwrap()[0].name.clone();
        c.set_cordoned(&name, true).await.unwrap();
        assert!(
            c.nodes()
                .await
                .unwrap()
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .cordoned
        );
        c.set_cordoned(&name, false).await.unwrap();
        assert!(
            !c.nodes()
                .await
                .unwrap()
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .cordoned
        );
        assert!(matches!(
            c.set_cordoned("no-such-node", true).await,
            Err(PortError::NotFound(_))
        ));
    }

    pub async fn eviction_honours_the_budget(c: Cluster) {
        let pods = c.pods().await.unwrap();
        let mut web: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.name.starts_with("web-") && p.phase == PodPhase::Running && !p.terminating
            })
            .collect();
        web.sort_by(|a, b| a.name.cmp(&b.name));
        assert!(web.len() >= 2);
        assert_eq!(
            c.evict(&web[0].reference()).await.unwrap(),
            EvictionOutcome::Evicted
        );
        // maxUnavailable 1: while the first is being replaced, the next is refused.
        match c.evict(&web[1].reference()).await.unwrap() {
            EvictionOutcome::Blocked(why) => assert!(why.contains("disruption budget"), "{why}"),
            other => panic!("expected a 429 refusal, got {other:?}"),
        }
        let after = c.pods().await.unwrap();
        assert!(
            after.iter().any(|p| p.uid == web[0].uid && p.terminating),
            "the evicted pod is terminating"
        );
        let gone = PodRef {
            namespace: "default".into(),
            name: "no-such-pod".into(),
            uid: "x".into(),
        };
        assert_eq!(c.evict(&gone).await.unwrap(), EvictionOutcome::AlreadyGone);
    }

    pub async fn deleting_a_node_object_is_idempotent(c: Cluster) {
        c.delete_node("no-such-node").await.unwrap();
        let before = c.nodes().await.unwrap();
        let name = before[0].name.clone();
        let instance = before[0].instance_id.clone().expect("an instance id");
        c.delete_node(&name).await.unwrap();
        let after = c.nodes().await.unwrap();
        assert!(
            after.iter().all(|n| n.name != name),
            "{name} is still listed"
        );
        assert_eq!(after.len(), before.len() - 1);
        assert_eq!(c.node_of_instance(&instance).await.unwrap(), None);
        // Deleting it again is fine too, and changes nothing more. (The
        // clock stands still: a live instance's kubelet would re-register
        // its node later, on the façade as on a real cluster.)
        c.delete_node(&name).await.unwrap();
        assert_eq!(c.nodes().await.unwrap().len(), before.len() - 1);
    }

    /// The look-up that confirms "never joined" ignores the selector and
    /// finds a node by its instance; the release new workers pin is the
    /// server's.
    pub async fn a_node_is_found_by_instance_and_the_server_names_its_release(c: Cluster) {
        let nodes = c.nodes().await.unwrap();
        let node = &nodes[0];
        let id = node.instance_id.clone().expect("an instance id");
        assert_eq!(
            c.node_of_instance(&id).await.unwrap().as_deref(),
            Some(node.name.as_str())
        );
        assert_eq!(
            c.node_of_instance("i-0000000000nothere").await.unwrap(),
            None
        );
        assert_eq!(c.server_version().await.unwrap(), "v1.33.1+k3s1");
    }

    pub async fn unschedulable_pods_say_since_when(c: Cluster) {
        let pods = c.pods().await.unwrap();
        let pending: Vec<&Pod> = pods.iter().filter(|p| p.is_unschedulable()).collect();
        assert!(
            !pending.is_empty(),
            "the busy scenario leaves pods pending on four workers"
        );
        for p in pending {
            assert!(p.node_name.is_none());
            // A time of this run's world (it started at the wall clock's
            // now, on a clock that has moved ten seconds since).
            let now = SystemClock::new().now();
            assert!(
                p.unschedulable_since
                    .is_some_and(|t| t.0 > 0 && now.since(t) < std::time::Duration::from_secs(60)),
                "{p:?}"
            );
        }
    }
}

/// One world for both sides (issue 20: symmetric fixtures): four Ready
/// workers on a manual clock, so nothing moves between a case's calls on
/// either side; `busy` pushes demand past what four workers hold.
fn world(busy: bool) -> (Arc<std::sync::Mutex<World>>, Arc<SimClock>) {
    let start = SystemClock::new().now();
    let scenario = if busy {
        ScenarioKind::Idle
    } else {
        ScenarioKind::Steady
    };
    let world = support::facade_world(scenario, 4, start);
    if busy {
        let mut w = k3s_autoscaler::sim::ports::lock(&world);
        for c in w
            .workload
            .controllers
            .iter_mut()
            .filter(|c| c.name == "web")
        {
            c.replicas = k3s_autoscaler::sim::workload::Replicas::Fixed(40);
        }
    }
    let clock = Arc::new(SimClock::manual(start));
    // Let the pods start: ten simulated seconds, at once.
    clock.advance(std::time::Duration::from_secs(10));
    k3s_autoscaler::sim::ports::lock(&world).advance_to(clock.now());
    (world, clock)
}

async fn sim(busy: bool) -> Cluster {
    let (world, clock) = world(busy);
    Arc::new(SimPorts::new(world, clock, false))
}

async fn kube(busy: bool) -> Cluster {
    let (world, clock) = world(busy);
    let url = support::serve_facade(world, clock).await;
    let config = KubernetesConfig {
        kubeconfig: Some(support::kubeconfig(&url).display().to_string()),
        ..KubernetesConfig::default()
    };
    Arc::new(KubeCluster::connect(&config).await.unwrap())
}

macro_rules! conformance {
    ($($case:ident $(: $busy:expr)?),* $(,)?) => {
        mod on_simulator {
            use super::*;
            $( #[tokio::test] async fn $case() { cases::$case(sim(false $(|| $busy)?).await).await } )*
        }
        mod on_kube_rs_and_the_facade {
            use super::*;
            $( #[tokio::test] async fn $case() { cases::$case(kube(false $(|| $busy)?).await).await } )*
        }
    };
}

conformance!(
    workers_carry_readiness_allocatable_and_instance_ids,
    pods_carry_owner_requests_and_placement,
    budgets_are_listed_with_disruptions_allowed,
    cordon_and_uncordon,
    eviction_honours_the_budget,
    deleting_a_node_object_is_idempotent,
    a_node_is_found_by_instance_and_the_server_names_its_release,
    unschedulable_pods_say_since_when: true,
);

/// A node patch that names a resourceVersion is conditional on it, as on
/// the API server: the taint removal cannot drop a taint added since.
#[tokio::test]
async fn a_patch_with_a_stale_resource_version_is_refused() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let name = k3s_autoscaler::sim::ports::lock(&world).nodes()[0]
        .name
        .clone();
    let http = reqwest::Client::new();
    let patch = |rv: &str| {
        serde_json::json!({"metadata": {"resourceVersion": rv}, "spec": {"unschedulable": true}})
            .to_string()
    };
    let stale = http
        .patch(format!("{url}/api/v1/nodes/{name}"))
        .header("content-type", "application/merge-patch+json")
        .body(patch("0"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 409);
    assert!(
        !k3s_autoscaler::sim::ports::lock(&world).nodes()[0].cordoned,
        "a refused patch changes nothing"
    );
    let current = http
        .patch(format!("{url}/api/v1/nodes/{name}"))
        .header("content-type", "application/merge-patch+json")
        .body(patch("1"))
        .send()
        .await
        .unwrap();
    assert_eq!(current.status().as_u16(), 200);
}

/// The façade is faithful: what kube-rs reads through it is what the
/// simulator's own port says.
#[tokio::test]
async fn the_facade_shows_the_simulator_exactly() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let config = KubernetesConfig {
        kubeconfig: Some(support::kubeconfig(&url).display().to_string()),
        ..KubernetesConfig::default()
    };
    let kube = KubeCluster::connect(&config).await.unwrap();
    // Every node NotReady: the façade shows them as "False" and as
    // "Unknown" (by name), with both providerID forms; all must read the same.
    {
        let mut w = k3s_autoscaler::sim::ports::lock(&world);
        let names: Vec<String> = w.fleet.nodes.keys().cloned().collect();
        for name in &names {
            w.flap_node(name, std::time::Duration::from_secs(3600));
        }
    }
    let http = reqwest::Client::new();
    let raw: serde_json::Value = http
        .get(format!("{url}/api/v1/nodes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    // Timestamps travel at second precision.
    let trim = |mut ns: Vec<Node>| {
        for n in &mut ns {
            n.created = Timestamp(n.created.0 / 1000 * 1000);
        }
        ns.sort_by(|a, b| a.name.cmp(&b.name));
        ns
    };
    assert_eq!(trim(through_api), trim(direct));
    // Quantities come in the server's canonical forms, not one easy shape:
    // binary suffixes, bare bytes, millibytes (what `1.2Gi` becomes).
    let raw_pods: serde_json::Value = http
        .get(format!("{url}/api/v1/pods"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
            if m.ends_with("Mi") || m.ends_with("Gi") {
                "binary"
            } else if m.ends_with('m') {
                "millibytes"
            } else if m.bytes().all(|b| b.is_ascii_digit()) {
                "bare"
            } else {
                "decimal"
            }
        })
        .collect();
    assert!(
        ["bare", "binary", "millibytes"]
            .iter()
            .all(|f| forms.contains(f)),
        "memory forms served: {forms:?} in {memory:?}"
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

/// Taints as the API server keeps them (issue 19): every façade node also
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
    let config = KubernetesConfig {
        kubeconfig: Some(support::kubeconfig(&url).display().to_string()),
        ..KubernetesConfig::default()
    };
    let kube = KubeCluster::connect(&config).await.unwrap();
    let http = reqwest::Client::new();
    let node_url = format!("{url}/api/v1/nodes/{name}");
    let get = || async {
        let v: serde_json::Value = http
            .get(&node_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
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

/// Evictions are judged as `eviction.go` and the admission before it judge
/// them (issue 19): the body must be an Eviction of the pod in the URL
/// (400 otherwise), and a namespace being deleted refuses new content with
/// `403` cause `NamespaceTerminating`, which the adapter reads as blocked
/// (the drain waits, as `kubectl drain` does) rather than as a failure.
#[tokio::test]
async fn evictions_are_judged_like_the_api_server() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let config = KubernetesConfig {
        kubeconfig: Some(support::kubeconfig(&url).display().to_string()),
        ..KubernetesConfig::default()
    };
    let kube = KubeCluster::connect(&config).await.unwrap();
    let pods = kube.pods().await.unwrap();
    let web: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.name.starts_with("web-") && p.phase == PodPhase::Running)
        .collect();
    assert!(web.len() >= 2, "{} web pods", web.len());
    let (ns, name) = (&web[0].namespace, &web[0].name);
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("{url}/api/v1/namespaces/{ns}/pods/{name}/eviction"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let eviction = |pod: &str, namespace: &str| {
        serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": namespace}})
    };
    let other = post(eviction(&web[1].name, ns)).await.unwrap();
    assert_eq!(
        other.status().as_u16(),
        400,
        "another pod's name in the body"
    );
    let text = other.text().await.unwrap();
    assert!(text.contains("name in URL does not match"), "{text}");
    let elsewhere = post(eviction(name, "kube-system")).await.unwrap();
    assert_eq!(
        elsewhere.status().as_u16(),
        400,
        "another namespace in the body"
    );
    let not_eviction = post(serde_json::json!({"kind": "Pod", "metadata": {"name": name}}))
        .await
        .unwrap();
    assert_eq!(not_eviction.status().as_u16(), 400);
    let untouched = |uid: &str| {
        !k3s_autoscaler::sim::ports::lock(&world)
            .pods()
            .iter()
            .any(|p| p.uid == uid && p.terminating)
    };
    assert!(untouched(&web[0].uid), "a refused eviction evicts nothing");

    // The namespace is deleted (and held by its finalizer).
    let deleted = http
        .delete(format!("{url}/api/v1/namespaces/{ns}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    let raw = post(eviction(name, ns)).await.unwrap();
    assert_eq!(raw.status().as_u16(), 403);
    let status: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(
        status["details"]["causes"][0]["reason"], "NamespaceTerminating",
        "{status}"
    );
    match kube.evict(&web[0].reference()).await.unwrap() {
        EvictionOutcome::Blocked(why) => {
            assert!(
                why.contains(&format!("namespace {ns} is being deleted")),
                "{why}"
            )
        }
        other => panic!("a namespace being deleted must block, got {other:?}"),
    }
    assert!(untouched(&web[0].uid));
}

/// LISTs come in pages (issue 19): the façade answers a `limit` with short
/// pages and a `continue` token, as the API server may, so the adapter
/// must follow the token to see the whole cluster; field selectors take
/// `=`, `==`, `!=` and refuse a field the server does not index.
#[tokio::test]
async fn lists_are_paged_and_field_selectors_are_the_servers() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let http = reqwest::Client::new();
    let get = |path: &str, query: Vec<(&'static str, String)>| {
        http.get(format!("{url}{path}")).query(&query).send()
    };
    let first: serde_json::Value = get("/api/v1/pods", vec![("limit", "500".into())])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = k3s_autoscaler::sim::ports::lock(&world).pods().len();
    let page = first["items"].as_array().map_or(0, Vec::len);
    assert!(page < total, "a short page: {page} of {total}");
    assert!(
        first["metadata"]["continue"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let config = KubernetesConfig {
        kubeconfig: Some(support::kubeconfig(&url).display().to_string()),
        ..KubernetesConfig::default()
    };
    let kube = KubeCluster::connect(&config).await.unwrap();
    assert_eq!(kube.pods().await.unwrap().len(), total, "every page read");
    assert_eq!(kube.nodes().await.unwrap().len(), 4, "every page read");

    let node = kube.nodes().await.unwrap()[0].name.clone();
    let on_node = kube.pods_on(&node).await.unwrap();
    assert!(!on_node.is_empty());
    assert!(
        on_node
            .iter()
            .all(|p| p.node_name.as_deref() == Some(node.as_str()))
    );
    let count = |selector: String| {
        let answer = get("/api/v1/pods", vec![("fieldSelector", selector)]);
        async move {
            let answer = answer.await.unwrap();
            let status = answer.status().as_u16();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            (status, body["items"].as_array().map_or(0, Vec::len))
        }
    };
    assert_eq!(
        count(format!("spec.nodeName=={node}")).await,
        (200, on_node.len())
    );
    assert_eq!(
        count(format!("spec.nodeName!={node}")).await,
        (200, total - on_node.len())
    );
    assert_eq!(count("spec.hostname=x".into()).await.0, 400);
}

/// What the node lifecycle controller and the kubelet do to a Node, the
/// façade does too (issue 19): a NotReady node carries `not-ready` (Ready
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
        let mut w = lock(&world);
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
    let config = KubernetesConfig {
        kubeconfig: Some(support::kubeconfig(&url).display().to_string()),
        ..KubernetesConfig::default()
    };
    let kube = KubeCluster::connect(&config).await.unwrap();
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
