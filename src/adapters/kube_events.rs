//! `ClusterEvent` ↔ `events.k8s.io/v1` Event: translation only. The
//! fields the API server requires of a new event through this API group
//! are all set (`eventTime`, `reportingController`, `reportingInstance`,
//! `action`, `reason`, `type`), the deprecated core/v1 ones never (the
//! server refuses them on create), and a bump patches `series` alone: the
//! only field it lets change.

use crate::ports::events::REPORTING_CONTROLLER;
use crate::ports::{ClusterEvent, EventSeries, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

fn micro(t: Timestamp) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::from_millisecond(t.as_millis())
        .ok()
        .map(MicroTime)
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub fn to_event(e: &ClusterEvent) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(e.name.clone()),
            namespace: Some(e.namespace().to_string()),
            ..ObjectMeta::default()
        },
        event_time: micro(e.at),
        regarding: Some(ObjectReference {
            api_version: Some(e.regarding.api_version().to_string()),
            kind: Some(e.regarding.kind.clone()),
            namespace: some(&e.regarding.namespace),
            name: Some(e.regarding.name.clone()),
            uid: some(&e.regarding.uid),
            ..ObjectReference::default()
        }),
        reason: Some(e.reason.clone()),
        action: Some(e.action.clone()),
        note: Some(e.note.clone()),
        type_: Some(e.event_type.as_str().to_string()),
        reporting_controller: Some(REPORTING_CONTROLLER.to_string()),
        reporting_instance: Some(e.instance.clone()),
        series: e.series.and_then(|s| {
            Some(k8s_openapi::api::events::v1::EventSeries {
                count: i32::try_from(s.count).unwrap_or(i32::MAX),
                last_observed_time: micro(s.last_observed)?,
            })
        }),
        ..Event::default()
    }
}

/// The merge patch that sets an event's series.
pub fn series_patch(series: EventSeries) -> serde_json::Value {
    serde_json::json!({
        "series": {
            "count": series.count,
            "lastObservedTime": series.last_observed.to_rfc3339_micros(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{EventObject, EventType};

    #[test]
    fn a_new_event_carries_what_the_api_server_requires_and_nothing_it_refuses() {
        let e = ClusterEvent {
            name: "web-0.18a2b".into(),
            regarding: EventObject::pod("shop", "web-0", "uid-1"),
            reason: "TriggeredScaleUp".into(),
            action: "ScaleUp".into(),
            note: "pod triggered scale-up: +1 worker(s) (op-1)".into(),
            event_type: EventType::Normal,
            at: Timestamp::from_millis(1_767_571_200_123),
            instance: "bastion-1".into(),
            series: None,
        };
        let json = serde_json::to_value(to_event(&e)).expect("serialises");
        assert_eq!(json["metadata"]["namespace"], "shop");
        let time = json["eventTime"].as_str().unwrap_or_default();
        assert!(time.starts_with("2026-01-05T00:00:00.123"), "{time}");
        assert_eq!(json["regarding"]["uid"], "uid-1");
        assert_eq!(json["reportingController"], "k3s-autoscaler");
        assert_eq!(json["reportingInstance"], "bastion-1");
        assert_eq!(json["type"], "Normal");
        for refused in ["deprecatedCount", "deprecatedSource", "series"] {
            assert!(json.get(refused).is_none(), "{refused} set: {json}");
        }
        let node = ClusterEvent {
            regarding: EventObject::node("i-0abc"),
            ..e
        };
        let json = serde_json::to_value(to_event(&node)).expect("serialises");
        assert_eq!(json["metadata"]["namespace"], "default");
        assert!(json["regarding"].get("namespace").is_none(), "{json}");
    }

    #[test]
    fn a_bump_patches_the_series_alone() {
        let patch = series_patch(EventSeries {
            count: 7,
            last_observed: Timestamp::from_millis(1_767_571_200_500),
        });
        assert_eq!(
            patch,
            serde_json::json!({"series": {"count": 7, "lastObservedTime": "2026-01-05T00:00:00.500000Z"}})
        );
    }
}
