//! Events through the kube-rs adapter and the façade, judged as
//! kube-apiserver judges them: what the adapter sends is taken and read
//! back the way `kubectl get events --field-selector` reads it; what the
//! server refuses (a note over 1 KB, a changed note, a series of 1) is
//! refused here too, so a peer that accepts more cannot hide it.

use crate::facade_fidelity::get_json;
use crate::support;

use k3s_autoscaler::engine::events::{NOT_TRIGGER_SCALE_UP, Occurrence};
use k3s_autoscaler::ports::*;
use k3s_autoscaler::runtime::events::series::{Series, Write};
use k3s_autoscaler::sim::ScenarioKind;

fn occurrence(note: String) -> Occurrence {
    Occurrence {
        regarding: EventObject::pod("shop", "web-0", "uid-web-0"),
        reason: NOT_TRIGGER_SCALE_UP,
        action: "ScaleUp",
        event_type: EventType::Normal,
        note: k3s_autoscaler::ports::events::fit(&note, k3s_autoscaler::ports::events::NOTE_LIMIT),
    }
}

#[tokio::test]
async fn an_event_the_adapter_writes_is_read_back_as_kubectl_reads_it_and_only_its_series_moves() {
    let (url, _world) = support::facade(ScenarioKind::Steady, 2).await;
    let kube = support::kube_client(&url).await;
    let now = k3s_autoscaler::adapters::SystemClock::new().now();
    let mut series = Series::new("bastion-1");
    // A 2 KB why is cut to the server's 1 KB, not refused.
    let Some(Write::Create(event)) = series.occur(occurrence("x".repeat(2048)), now) else {
        panic!("the first occurrence creates")
    };
    kube.create_event(&event).await.unwrap();
    let Some(Write::Bump { series: s, .. }) = series.occur(occurrence("x".repeat(2048)), now)
    else {
        panic!("the second bumps")
    };
    assert!(kube.bump_event("shop", &event.name, s).await.unwrap());

    let http = reqwest::Client::new();
    let listed = get_json(
        &http,
        &format!(
            "{url}/apis/events.k8s.io/v1/namespaces/shop/events?fieldSelector=regarding.name=web-0,reason={NOT_TRIGGER_SCALE_UP}"
        ),
    )
    .await;
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    let e = &items[0];
    assert_eq!(e["regarding"]["uid"], "uid-web-0");
    assert_eq!(e["reportingController"], "k3s-autoscaler");
    assert_eq!(e["reportingInstance"], "bastion-1");
    assert_eq!(e["series"]["count"], 2);
    assert!(e["note"].as_str().unwrap().len() <= 1024);
    // Every namespace's, as `kubectl get events -A`.
    let all = get_json(&http, &format!("{url}/apis/events.k8s.io/v1/events")).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1), "{all}");

    let patch = |body: serde_json::Value| {
        http.patch(format!(
            "{url}/apis/events.k8s.io/v1/namespaces/shop/events/{}",
            event.name
        ))
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
    };
    let changed_note = patch(serde_json::json!({"note": "another why"}))
        .await
        .unwrap();
    assert_eq!(changed_note.status().as_u16(), 422, "a note is immutable");
    let one = patch(serde_json::json!({"series": {"count": 1, "lastObservedTime": "2026-01-05T00:00:00.000000Z"}}))
        .await
        .unwrap();
    assert_eq!(one.status().as_u16(), 422, "a series counts at least 2");

    let too_long = serde_json::json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web-0.2", "namespace": "shop"},
        "eventTime": "2026-01-05T00:00:00.000000Z",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-0"},
        "reason": "NotTriggerScaleUp", "action": "ScaleUp", "type": "Normal",
        "note": "x".repeat(1025),
        "reportingController": "k3s-autoscaler", "reportingInstance": "bastion-1",
    });
    let refused = http
        .post(format!(
            "{url}/apis/events.k8s.io/v1/namespaces/shop/events"
        ))
        .header("content-type", "application/json")
        .body(too_long.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    // A bump of an event the server no longer has is not an error: the
    // writer creates it anew.
    let gone = EventSeries {
        count: 3,
        last_observed: now,
    };
    assert!(
        !kube
            .bump_event("shop", "web-0.nothere", gone)
            .await
            .unwrap()
    );
}
