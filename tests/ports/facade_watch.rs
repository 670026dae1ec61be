//! The façade's watches answer as kube-apiserver's do: a list's
//! `resourceVersion` is where a watch continues without a gap or a
//! repeat, versions rise, a version the server no longer holds is one
//! `ERROR` event carrying `410 Expired`, a selector's watch sees an object
//! leave it as `DELETED`, bookmarks come when asked for, and the stream
//! ends at `timeoutSeconds`. Raw HTTP, so what is checked is the wire.

use crate::support;
use k3s_autoscaler::sim::ScenarioKind;
use serde_json::Value;

/// Every event line of a watch, read until the server ends it.
async fn watch_lines(url: &str, query: &str) -> Vec<Value> {
    let mut response = reqwest::get(format!("{url}?watch=true&{query}"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "whole lines: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn version(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_watch_from_a_list_sees_what_followed_it_once_and_an_old_version_is_gone() {
    let (url, _world) = support::facade(ScenarioKind::Steady, 3).await;
    let http = reqwest::Client::new();
    let list = support::get_json(&format!("{url}/api/v1/pods")).await;
    let listed = version(&list);
    let names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    // Three pods the list did not hold.
    http.post(format!("{url}/debug/jobs/watched/3/100"))
        .send()
        .await
        .unwrap();
    let events = watch_lines(
        &format!("{url}/api/v1/pods"),
        &format!("resourceVersion={listed}&timeoutSeconds=2"),
    )
    .await;
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| &e["object"])
        .collect();
    let new: Vec<&str> = added
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        new.iter().filter(|n| n.starts_with("watched-")).count(),
        3,
        "each new pod once: {new:?}"
    );
    assert!(
        new.iter().all(|n| !names.iter().any(|l| l == n)),
        "nothing the list held comes as ADDED: {new:?}"
    );
    let versions: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| version(&e["object"]))
        .collect();
    assert!(
        versions.iter().all(|v| *v > listed),
        "{versions:?} after {listed}"
    );
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "rising: {versions:?}"
    );

    // Without a version: every current object as ADDED first.
    let all = watch_lines(&format!("{url}/api/v1/pods"), "timeoutSeconds=1").await;
    assert!(all.len() >= names.len() + 3);
    assert!(
        all.iter()
            .take(names.len() + 3)
            .all(|e| e["type"] == "ADDED")
    );

    // A compaction: the old version can no longer be served.
    http.post(format!("{url}/debug/watch-compact"))
        .send()
        .await
        .unwrap();
    let gone = watch_lines(
        &format!("{url}/api/v1/pods"),
        &format!("resourceVersion={listed}&timeoutSeconds=5"),
    )
    .await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["type"], "ERROR");
    assert_eq!(gone[0]["object"]["code"], 410);
    assert_eq!(gone[0]["object"]["reason"], "Expired");
    // Not a version at all: the server's 400.
    let bad = http
        .get(format!("{url}/api/v1/pods?watch=true&resourceVersion=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

/// A field-selected watch of uncordoned nodes: a cordon makes the node
/// leave the selection, which that watch sees as DELETED (the object as
/// it is now: cordoned), and an uncordon as ADDED.
#[tokio::test]
async fn an_object_leaving_a_selection_is_deleted_for_that_watch() {
    let (url, world) = support::facade(ScenarioKind::Steady, 3).await;
    let name = k3s_autoscaler::sim::ports::lock(&world).nodes()[0]
        .name
        .clone();
    let http = reqwest::Client::new();
    let list = support::get_json(&format!("{url}/api/v1/nodes")).await;
    let listed = version(&list);
    let cordon = |on: bool| {
        http.patch(format!("{url}/api/v1/nodes/{name}"))
            .header("content-type", "application/strategic-merge-patch+json")
            .body(serde_json::json!({"spec": {"unschedulable": on}}).to_string())
            .send()
    };
    assert_eq!(cordon(true).await.unwrap().status().as_u16(), 200);
    assert_eq!(cordon(false).await.unwrap().status().as_u16(), 200);
    let events = watch_lines(
        &format!("{url}/api/v1/nodes"),
        &format!(
            "resourceVersion={listed}&timeoutSeconds=2&fieldSelector=spec.unschedulable%3Dfalse"
        ),
    )
    .await;
    let about: Vec<(&str, bool)> = events
        .iter()
        .filter(|e| e["object"]["metadata"]["name"] == name.as_str())
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["spec"]["unschedulable"] == true,
            )
        })
        .collect();
    assert_eq!(
        about,
        vec![("DELETED", true), ("ADDED", false)],
        "{events:?}"
    );
}

/// Bookmarks when asked for, carrying the version now and nothing else;
/// none when not.
#[tokio::test]
async fn bookmarks_come_only_when_asked_for() {
    let (url, _world) = support::facade(ScenarioKind::Idle, 2).await;
    let wait = k3s_autoscaler::sim::facade::watch::BOOKMARK_EVERY.as_secs() + 2;
    let budgets = format!("{url}/apis/policy/v1/poddisruptionbudgets");
    let asked = format!("resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds={wait}");
    let not_asked = format!("resourceVersion=0&timeoutSeconds={wait}");
    let (with, without) = tokio::join!(
        watch_lines(&budgets, &asked),
        watch_lines(&budgets, &not_asked),
    );
    let marks: Vec<&Value> = with.iter().filter(|e| e["type"] == "BOOKMARK").collect();
    assert!(!marks.is_empty(), "{with:?}");
    assert_eq!(marks[0]["object"]["kind"], "PodDisruptionBudget");
    assert!(version(&marks[0]["object"]) > 0);
    assert!(without.iter().all(|e| e["type"] != "BOOKMARK"));
}
