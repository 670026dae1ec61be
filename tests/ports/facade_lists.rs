//! LISTs as kube-apiserver serves them: short pages with a
//! `continue` token, every page of a list from one snapshot, `410
//! Expired` for a continuation whose snapshot was compacted (the adapter
//! starts the list over, a bounded number of times), and each kind's
//! indexed `fieldSelector` fields.

use crate::support;

use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::{ScenarioKind, SimClock, World};
use std::sync::{Arc, Mutex};

/// A façade on a manual clock: nothing moves unless a test moves it, so a
/// count read from the world is the count a list must return.
async fn still_facade() -> (String, Arc<Mutex<World>>) {
    let start = SystemClock::new().now();
    let world = support::facade_world(ScenarioKind::Steady, 4, start);
    let clock = Arc::new(SimClock::manual(start));
    clock.advance(std::time::Duration::from_secs(10));
    k3s_autoscaler::sim::ports::lock(&world).advance_to(clock.now());
    let url = support::serve_facade(world.clone(), clock).await;
    (url, world)
}

async fn get_json(url: String) -> (u16, serde_json::Value) {
    let answer = reqwest::get(url).await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    i["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// LISTs come in pages: the façade answers a `limit` with short
/// pages and a `continue` token, as the API server may, so the adapter
/// must follow the token to see the whole cluster; field selectors take
/// `=`, `==`, `!=` and refuse a field the server does not index.
#[tokio::test]
async fn lists_are_paged_and_field_selectors_are_the_servers() {
    let (url, world) = still_facade().await;
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
    let kube = support::kube_client(&url).await;
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

/// The pages of one list are one snapshot: a node deleted after the first
/// page still comes in the rest, and the next list no longer has it.
#[tokio::test]
async fn every_page_of_a_list_is_read_from_one_snapshot() {
    let (url, world) = still_facade().await;
    let (_, first) = get_json(format!("{url}/api/v1/nodes?limit=2")).await;
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("more pages")
        .to_string();
    let all: Vec<String> = k3s_autoscaler::sim::ports::lock(&world)
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let last = all.iter().max().expect("nodes").clone();
    k3s_autoscaler::sim::ports::lock(&world).delete_node(&last);
    let mut seen = names(&first);
    let mut token = Some(token);
    while let Some(t) = token {
        let (status, page) = get_json(format!("{url}/api/v1/nodes?limit=2&continue={t}")).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(names(&page));
        token = page["metadata"]["continue"].as_str().map(String::from);
    }
    assert!(
        seen.contains(&last),
        "the snapshot still has {last}: {seen:?}"
    );
    assert_eq!(seen.len(), all.len());
    let (_, fresh) = get_json(format!("{url}/api/v1/nodes")).await;
    assert!(!names(&fresh).contains(&last));
}

/// A continuation that meets `410 Expired` makes the adapter list again
/// from the start, and it still reads every pod; one that keeps expiring
/// ends in an error after two restarts, never a loop or a part taken for
/// the whole.
#[tokio::test]
async fn an_expired_continuation_starts_the_list_over_a_bounded_number_of_times() {
    let (url, world) = still_facade().await;
    let kube = support::kube_client(&url).await;
    let total = k3s_autoscaler::sim::ports::lock(&world).pods().len();
    let http = reqwest::Client::new();
    let expire = |n: u32| {
        http.post(format!("{url}/debug/expire-continues/{n}"))
            .send()
    };
    let expired = || async { get_json(format!("{url}/debug/expired-continues")).await.1 };
    assert_eq!(expired().await, 0);
    expire(1).await.unwrap();
    assert_eq!(
        kube.pods().await.unwrap().len(),
        total,
        "read whole after a restart"
    );
    assert_eq!(expired().await, 1, "the façade answered one 410");
    expire(100).await.unwrap();
    match kube.pods().await {
        Err(PortError::Unavailable(why)) => assert!(why.contains("410"), "{why}"),
        other => panic!(
            "an ever-expiring list must fail, got {:?}",
            other.map(|p| p.len())
        ),
    }
    assert_eq!(
        expired().await,
        4,
        "the first try and two restarts, then no more"
    );
    expire(0).await.unwrap();
    assert_eq!(kube.pods().await.unwrap().len(), total);
}

/// Nodes and PodDisruptionBudgets take `fieldSelector` too, each with its
/// own indexed fields; a field the kind does not index is a 400.
#[tokio::test]
async fn node_and_budget_lists_take_their_own_field_selectors() {
    let (url, world) = still_facade().await;
    let (nodes, pdbs) = {
        let w = k3s_autoscaler::sim::ports::lock(&world);
        (w.nodes(), w.workload.pdb_view(w.now))
    };
    let one = &nodes[0].name;
    let (status, list) = get_json(format!(
        "{url}/api/v1/nodes?fieldSelector=metadata.name%3D{one}"
    ))
    .await;
    assert_eq!((status, names(&list)), (200, vec![one.clone()]));
    let (status, list) = get_json(format!(
        "{url}/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse"
    ))
    .await;
    assert_eq!((status, names(&list).len()), (200, nodes.len()));
    let (status, list) = get_json(format!(
        "{url}/api/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue"
    ))
    .await;
    assert_eq!((status, names(&list).len()), (200, 0));
    let (status, _) = get_json(format!(
        "{url}/api/v1/nodes?fieldSelector=spec.nodeName%3Dx"
    ))
    .await;
    assert_eq!(status, 400);
    let budget = pdbs.first().expect("a budget");
    let (status, list) = get_json(format!(
        "{url}/apis/policy/v1/poddisruptionbudgets?fieldSelector=metadata.namespace%3D{}",
        budget.namespace
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        names(&list).len(),
        pdbs.iter()
            .filter(|p| p.namespace == budget.namespace)
            .count()
    );
    let (status, _) = get_json(format!(
        "{url}/apis/policy/v1/poddisruptionbudgets?fieldSelector=status.phase%3DRunning"
    ))
    .await;
    assert_eq!(status, 400);
}
