//! The kube adapter's watch caches (`adapters/kube_watch`) against the
//! façade's watches: in step they hold what a LIST holds and cost no
//! LIST; a pod turning unschedulable wakes the engine; a `410`, a stream
//! cut mid-event and a stalled stream each make the view Unknown with the
//! reason until it has listed again; an object that does not decode makes
//! its kind Invalid, named, as in a LIST.

use crate::support;
use k3s_autoscaler::adapters::kube::KubeCluster;
use k3s_autoscaler::adapters::kube_watch::store::STALE_AFTER;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;
use std::time::Duration;

async fn post(url: &str) {
    let answer = reqwest::Client::new().post(url).send().await.unwrap();
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
}

async fn reads(url: &str) -> u64 {
    let cost: serde_json::Value = reqwest::get(format!("{url}/debug/api-cost"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    cost["reads"].as_u64().unwrap()
}

/// Polls `observed()` until `done` says so, within `limit`.
async fn until(
    kube: &KubeCluster,
    limit: Duration,
    what: &str,
    done: impl Fn(&ObservedCluster) -> bool,
) -> ObservedCluster {
    let start = std::time::Instant::now();
    loop {
        let seen = kube.observed().await;
        if done(&seen) {
            return seen;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; last {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn in_step(o: &ObservedCluster) -> bool {
    o.nodes.is_ok() && o.pods.is_ok() && o.pdbs.is_ok()
}

/// In step again within `limit`, a pod named `prefix…` among the pods.
async fn in_step_with(kube: &KubeCluster, limit: Duration, what: &str, prefix: &str) {
    let seen = until(kube, limit, what, in_step).await;
    assert!(
        seen.pods
            .unwrap()
            .iter()
            .any(|p| p.name.starts_with(prefix)),
        "{what}: no pod {prefix}…"
    );
}

#[tokio::test]
async fn in_step_the_caches_hold_what_a_list_holds_list_nothing_and_wake_on_a_pending_pod() {
    let (url, _world) = support::facade(ScenarioKind::Steady, 3).await;
    let kube = support::kube_client(&url).await;
    let wake = kube.start_watches().soon;
    let seen = until(&kube, Duration::from_secs(20), "first lists", in_step).await;
    assert!(
        seen.source
            .as_deref()
            .is_some_and(|s| s.starts_with("watch · ")),
        "{:?}",
        seen.source
    );
    let names = |nodes: &[Node]| {
        let mut n: Vec<(String, bool)> = nodes.iter().map(|n| (n.name.clone(), n.ready)).collect();
        n.sort();
        n
    };
    let listed = kube.nodes().await.unwrap();
    assert_eq!(names(seen.nodes.as_ref().unwrap()), names(&listed));
    assert_eq!(listed.len(), 3);
    let mut pods: Vec<String> = kube
        .pods()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.uid.clone())
        .collect();
    let mut cached: Vec<String> = seen
        .pods
        .unwrap()
        .into_iter()
        .map(|p| p.uid.clone())
        .collect();
    pods.sort();
    cached.sort();
    assert_eq!(cached, pods, "the pod cache is the pod list");

    // The first lists' wake, taken; then a quiet spell costs no LIST.
    let _ = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
    let before = reads(&url).await;
    for _ in 0..20 {
        kube.observed().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reads(&url).await, before, "twenty observations, no read");

    // A pod no worker can hold turns unschedulable: the engine is woken.
    post(&format!("{url}/debug/jobs/huge/1/64000")).await;
    tokio::time::timeout(Duration::from_secs(15), wake.notified())
        .await
        .expect("an unschedulable pod wakes the engine");
    until(&kube, Duration::from_secs(5), "the pending pod", |o| {
        o.pods.as_ref().is_ok_and(|p| {
            p.iter()
                .any(|p| p.name.starts_with("huge-") && p.is_unschedulable())
        })
    })
    .await;
}

#[tokio::test]
async fn a_410_a_cut_stream_and_an_undecodable_object_each_make_the_view_unknown_until_listed_again()
 {
    let (url, _world) = support::facade(ScenarioKind::Idle, 2).await;
    let kube = support::kube_client(&url).await;
    kube.start_watches();
    until(&kube, Duration::from_secs(20), "first lists", in_step).await;

    // 410 on the open pod watch: listed again, in step again.
    let before = reads(&url).await;
    post(&format!("{url}/debug/watch-fault/pods/gone/1")).await;
    let start = std::time::Instant::now();
    while reads(&url).await == before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no new list after a 410"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until(
        &kube,
        Duration::from_secs(10),
        "in step after the 410",
        in_step,
    )
    .await;

    // The next pod event does not decode as a Pod: the pods are Invalid,
    // and the message names the object.
    post(&format!("{url}/debug/watch-fault/pods/garble/1")).await;
    post(&format!("{url}/debug/jobs/odd/1/100")).await;
    let seen = until(&kube, Duration::from_secs(10), "an undecodable pod", |o| {
        o.pods.as_ref().is_err()
    })
    .await;
    let err = seen.pods.unwrap_err();
    assert!(matches!(err, PortError::Invalid(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("pods ") && text.contains('/') && text.contains("does not decode"),
        "{text}"
    );
    assert!(seen.nodes.is_ok(), "the other kinds are unaffected");
    // A fresh list reads it again.
    post(&format!("{url}/debug/watch-fault/pods/gone/1")).await;
    in_step_with(
        &kube,
        Duration::from_secs(10),
        "readable after a list",
        "odd-",
    )
    .await;

    // A stream cut in the middle of an event: Unknown, with the reason,
    // for the back-off; then listed again, the new pod in it.
    post(&format!("{url}/debug/watch-fault/pods/cut/1")).await;
    post(&format!("{url}/debug/jobs/cutoff/1/100")).await;
    let seen = until(&kube, Duration::from_secs(10), "the cut noticed", |o| {
        o.pods.is_err()
    })
    .await;
    let text = seen.pods.unwrap_err().to_string();
    assert!(text.contains("middle of an event"), "{text}");
    in_step_with(
        &kube,
        Duration::from_secs(15),
        "in step after the cut",
        "cutoff-",
    )
    .await;
}

#[tokio::test]
async fn a_stalled_watch_is_not_read_as_current() {
    let (url, _world) = support::facade(ScenarioKind::Idle, 2).await;
    let kube = support::kube_client(&url).await;
    kube.start_watches();
    until(&kube, Duration::from_secs(20), "first lists", in_step).await;
    // The node watch goes silent without closing, as a dead connection
    // behind a proxy does.
    post(&format!("{url}/debug/watch-fault/nodes/stall/0")).await;
    let seen = until(&kube, STALE_AFTER + WAIT_MARGIN, "the stall noticed", |o| {
        o.nodes.is_err()
    })
    .await;
    let text = seen.nodes.unwrap_err().to_string();
    assert!(
        text.contains("no word from the server"),
        "the reason says what is wrong: {text}"
    );
    assert_eq!(seen.source.as_deref(), Some("watch · not in step"));
    post(&format!("{url}/debug/watch-fault/nodes/resume/0")).await;
    until(
        &kube,
        Duration::from_secs(30),
        "in step after the stall",
        in_step,
    )
    .await;
}

/// Room beyond a bound for a shared two-core machine: a bound for a
/// failure, not a figure.
const WAIT_MARGIN: Duration = Duration::from_secs(30);

/// RBAC that grants `list` but not `watch`: the server refuses each watch
/// `403`. Not a spell to wait out: the cluster is read by lists, as with
/// `watch = false`, and the source says why — never Unknown for ever.
#[tokio::test]
async fn a_refused_watch_falls_back_to_lists_and_says_so() {
    let (url, _world) = support::facade(ScenarioKind::Idle, 2).await;
    post(&format!("{url}/debug/watch-fault/nodes/forbid/1000")).await;
    let kube = support::kube_client(&url).await;
    kube.start_watches();
    let seen = until(
        &kube,
        Duration::from_secs(20),
        "lists after the refusal",
        |o| in_step(o) && o.source.as_deref().is_some_and(|s| s.starts_with("lists")),
    )
    .await;
    let source = seen.source.unwrap_or_default();
    assert!(
        source.contains("nodes") && source.contains("403"),
        "{source}"
    );
    assert_eq!(seen.nodes.unwrap().len(), 2);
    // Each look is a read now.
    let before = reads(&url).await;
    kube.observed().await;
    assert!(
        reads(&url).await >= before + 3,
        "a look lists nodes, pods and budgets"
    );
}
