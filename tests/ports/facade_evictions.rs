//! The façade's Eviction subresource judges as kube-apiserver does
//! (`eviction.go` and the admission before it), in its order: the body,
//! a terminating namespace, the pod's phase, then the budgets that cover
//! it. Each goes through the kube-rs adapter, so what the adapter makes
//! of each answer (blocked, rejected, evicted) is checked with it.

use crate::facade_fidelity::get_json;
use crate::support;

use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;

/// Evictions are judged as `eviction.go` and the admission before it judge
/// them: the body must be an Eviction of the pod in the URL
/// (400 otherwise), and a namespace being deleted refuses new content with
/// `403` cause `NamespaceTerminating`, which the adapter reads as blocked
/// (the drain waits, as `kubectl drain` does) rather than as a failure.
#[tokio::test]
async fn evictions_are_judged_like_the_api_server() {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let kube = support::kube_client(&url).await;
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
    // Still there and not terminating: a pod deleted outright is not
    // "untouched" either.
    let untouched = |uid: &str| {
        k3s_autoscaler::sim::ports::lock(&world)
            .pods()
            .iter()
            .any(|p| p.uid == uid && !p.terminating)
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
    // Admission comes before the storage layer's name check, after the
    // handler's namespace check: another pod's name is now 403, another
    // namespace still 400.
    assert_eq!(
        post(eviction(&web[1].name, ns))
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        post(eviction(name, "kube-system"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
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

/// Budgets as `eviction.go` reads them: a pod that is Pending
/// (or finished, or terminating) is evicted without a budget check, even
/// when two budgets cover it; a Running pod under two budgets is a 500;
/// a budget with an empty selector (`{}`) is skipped, and so is a null
/// one, which the façade serves as `selector: null` and the adapter reads
/// as covering no pod.
#[tokio::test]
async fn budgets_are_applied_in_the_eviction_subresources_order() {
    use k3s_autoscaler::ports::cluster::LabelSelector;
    use k3s_autoscaler::sim::ports::lock;
    use k3s_autoscaler::sim::workload::{Budget, SimPdb};
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let budget = |ns: &str, name: &str, selector: LabelSelector, budget| SimPdb {
        namespace: ns.into(),
        name: name.into(),
        controller: "web".into(),
        selector,
        budget,
    };
    let app_web = LabelSelector {
        match_labels: [("app".to_string(), "web".to_string())].into(),
        match_expressions: vec![],
    };
    // A second budget over the web pods, and one web pod back to Pending.
    let (running, pending) = {
        let mut w = lock(&world);
        w.workload.pdbs.push(budget(
            "default",
            "web-overlap",
            app_web.clone(),
            Budget::MaxUnavailable(1),
        ));
        let mut web: Vec<String> = w
            .workload
            .pods
            .values()
            .filter(|p| p.controller == "web" && p.node.is_some())
            .map(|p| p.uid.clone())
            .collect();
        web.sort();
        let pending = web.pop().expect("a web pod");
        let p = w.workload.pods.get_mut(&pending).expect("pod");
        p.node = None;
        p.bound_at = None;
        let name = |uid: &String| w.workload.pods[uid].name.clone();
        (name(&web[0]), name(&pending))
    };
    let http = reqwest::Client::new();
    let evict = |name: String| {
        let body = serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": "default"}});
        http.post(format!(
            "{url}/api/v1/namespaces/default/pods/{name}/eviction"
        ))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
    };
    let two = evict(running.clone()).await.unwrap();
    assert_eq!(
        two.status().as_u16(),
        500,
        "a Running pod under two budgets"
    );
    let text = two.text().await.unwrap();
    assert!(text.contains("more than one PodDisruptionBudget"), "{text}");
    let before_budgets = evict(pending.clone()).await.unwrap();
    assert_eq!(
        before_budgets.status().as_u16(),
        201,
        "a Pending pod goes before budgets are counted"
    );

    // The overlap replaced by an empty-selector budget that would refuse
    // every eviction if it counted (and make two budgets: a 500), beside
    // the web budget, loosened so that it allows this one; and a null
    // budget in kube-system.
    {
        let mut w = lock(&world);
        w.workload.pdbs.retain(|b| b.name != "web-overlap");
        for b in &mut w.workload.pdbs {
            if b.name == "web" {
                b.budget = Budget::MaxUnavailable(100);
            }
        }
        w.workload.pdbs.push(budget(
            "default",
            "everything",
            LabelSelector::default(),
            Budget::MinAvailable(1_000),
        ));
        w.workload.pdbs.push(budget(
            "kube-system",
            "null-selector",
            LabelSelector::nothing(),
            Budget::MinAvailable(1_000),
        ));
    }
    let skipped = evict(running.clone()).await.unwrap();
    assert_eq!(
        skipped.status().as_u16(),
        201,
        "an empty selector is skipped, beside a real budget: {}",
        skipped.text().await.unwrap()
    );
    let served = get_json(&http, &format!("{url}/apis/policy/v1/poddisruptionbudgets")).await;
    let null = served["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|b| b["metadata"]["name"] == "null-selector")
        .expect("the null budget is listed");
    assert!(null["spec"]["selector"].is_null(), "{null}");
    let kube = support::kube_client(&url).await;
    let read = kube.pdbs().await.unwrap();
    let null = read
        .iter()
        .find(|b| b.name == "null-selector")
        .expect("read back");
    let pods = kube.pods().await.unwrap();
    let coredns: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.namespace == "kube-system")
        .collect();
    assert!(!coredns.is_empty());
    assert!(
        coredns.iter().all(|p| !null.covers(p)),
        "a null selector covers no pod: {null:?}"
    );
}
