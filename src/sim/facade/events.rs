//! `events.k8s.io/v1` Events as kube-apiserver 1.33 takes them
//! (`pkg/apis/core/validation/events.go`): a create through this API
//! group must carry `eventTime`, `reportingController` (a qualified
//! name), `reportingInstance`, `action` and `reason` (each at most 128
//! characters), a `note` of at most 1 KB, `type` Normal or Warning, no
//! deprecated core/v1 field, a `series` (if any) counting at least 2, and
//! sit in its object's namespace (`default` or `kube-system` for a
//! cluster-scoped object); after that only `series` may change, any other
//! field is immutable (422). A peer that accepted what the real server
//! refuses would prove nothing.

use super::{Facade, bad_request, json, kube_json, list_or_watch, not_found};
use crate::ports::events::{FIELD_LIMIT, NOTE_LIMIT};
use crate::ports::{ClusterEvent, EventObject, EventSeries, EventType, PortError, Timestamp};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

const API_VERSION: &str = "events.k8s.io/v1";

fn time(t: Timestamp) -> String {
    t.to_rfc3339_micros()
}

/// A `MicroTime` as kube-apiserver decodes it: Go's `RFC3339Micro`
/// layout, so exactly six fractional digits (`…:00Z` or `….123Z` is a
/// 400 there, whatever RFC 3339 allows).
fn parse_time(v: &Value) -> Option<Timestamp> {
    let s = v.as_str()?;
    let b = s.as_bytes();
    let zone = b.get(26..)?;
    let micro = b.get(19) == Some(&b'.')
        && b.get(20..26)?.iter().all(u8::is_ascii_digit)
        && (zone == b"Z" || (zone.len() == 6 && matches!(zone[0], b'+' | b'-') && zone[3] == b':'));
    if !micro {
        return None;
    }
    let t: k8s_openapi::jiff::Timestamp = s.parse().ok()?;
    Some(Timestamp::from_millis(t.as_millisecond()))
}

pub fn to_json(e: &ClusterEvent) -> Value {
    let mut regarding = json!({
        "apiVersion": e.regarding.api_version(),
        "kind": e.regarding.kind,
        "name": e.regarding.name,
    });
    if !e.regarding.namespace.is_empty() {
        regarding["namespace"] = json!(e.regarding.namespace);
    }
    if !e.regarding.uid.is_empty() {
        regarding["uid"] = json!(e.regarding.uid);
    }
    let mut v = json!({
        "apiVersion": API_VERSION,
        "kind": "Event",
        "metadata": {
            "name": e.name,
            "namespace": e.namespace(),
            "creationTimestamp": e.at.to_rfc3339().get(..19).map(|s| format!("{s}Z")),
        },
        "eventTime": time(e.at),
        "regarding": regarding,
        "reason": e.reason,
        "action": e.action,
        "note": e.note,
        "type": e.event_type.as_str(),
        "reportingController": crate::ports::events::REPORTING_CONTROLLER,
        "reportingInstance": e.instance,
    });
    if let Some(s) = e.series {
        v["series"] = json!({"count": s.count, "lastObservedTime": time(s.last_observed)});
    }
    v
}

fn invalid(name: &str, causes: &[String]) -> Response {
    let mut status = kube_json::status(
        422,
        "Invalid",
        &format!(
            "Event.events.k8s.io \"{name}\" is invalid: {}",
            causes.join(", ")
        ),
    );
    status["details"] = json!({"name": name, "group": "events.k8s.io", "kind": "Event"});
    json(StatusCode::UNPROCESSABLE_ENTITY, status)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `IsDNS1123Subdomain`.
fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 characters, alphanumeric at both ends.
fn qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(dns_subdomain)
        && !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Every refusal the API server would give this create, in `namespace`.
fn create_refusals(body: &Value, namespace: &str) -> Vec<String> {
    let mut out = Vec::new();
    let name = str_at(body, "/metadata/name");
    if !dns_subdomain(name) {
        out.push(format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain"
        ));
    }
    let meta_ns = str_at(body, "/metadata/namespace");
    if !meta_ns.is_empty() && meta_ns != namespace {
        out.push(
            "metadata.namespace: Invalid value: does not match the namespace of the request".into(),
        );
    }
    let regarding_ns = str_at(body, "/regarding/namespace");
    let fits_ns = if regarding_ns.is_empty() {
        namespace == "default" || namespace == "kube-system"
    } else {
        regarding_ns == namespace
    };
    if !fits_ns {
        out.push(format!("involvedObject.namespace: Invalid value: \"{regarding_ns}\": does not match event.namespace"));
    }
    if body.get("eventTime").and_then(parse_time).is_none() {
        out.push("eventTime: Required value".into());
    }
    let controller = str_at(body, "/reportingController");
    if controller.is_empty() {
        out.push("reportingController: Required value".into());
    } else if !qualified_name(controller) {
        out.push(format!(
            "reportingController: Invalid value: \"{controller}\": not a qualified name"
        ));
    }
    for (field, limit) in [
        ("reportingInstance", FIELD_LIMIT),
        ("action", FIELD_LIMIT),
        ("reason", FIELD_LIMIT),
    ] {
        let value = str_at(body, &format!("/{field}"));
        if value.is_empty() {
            out.push(format!("{field}: Required value"));
        } else if value.len() > limit {
            out.push(format!(
                "{field}: Invalid value: \"\": can have at most {limit} characters"
            ));
        }
    }
    if str_at(body, "/note").len() > NOTE_LIMIT {
        out.push(format!(
            "note: Invalid value: \"\": can have at most {NOTE_LIMIT} characters"
        ));
    }
    let kind = str_at(body, "/type");
    if kind != "Normal" && kind != "Warning" {
        out.push(format!(
            "type: Invalid value: \"\": has invalid value: {kind}"
        ));
    }
    for deprecated in [
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
        "deprecatedSource",
    ] {
        if body.get(deprecated).is_some_and(|v| !v.is_null()) {
            out.push(format!(
                "{deprecated}: Invalid value: \"\": needs to be unset"
            ));
        }
    }
    if let Some(series) = body.get("series").filter(|s| !s.is_null()) {
        out.extend(series_refusals(series));
    }
    out
}

fn series_refusals(series: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        out.push("series.count: Invalid value: \"\": should be at least 2".into());
    }
    if series
        .get("lastObservedTime")
        .and_then(parse_time)
        .is_none()
    {
        out.push("series.lastObservedTime: Required value".into());
    }
    out
}

fn series_of(series: &Value) -> Option<EventSeries> {
    Some(EventSeries {
        count: u32::try_from(series.get("count")?.as_i64()?).ok()?,
        last_observed: parse_time(series.get("lastObservedTime")?)?,
    })
}

fn to_domain(body: &Value, namespace: &str) -> Option<ClusterEvent> {
    let regarding = body.get("regarding")?;
    Some(ClusterEvent {
        name: str_at(body, "/metadata/name").to_string(),
        regarding: EventObject {
            kind: str_at(regarding, "/kind").to_string(),
            namespace: str_at(regarding, "/namespace").to_string(),
            name: str_at(regarding, "/name").to_string(),
            uid: str_at(regarding, "/uid").to_string(),
        },
        reason: str_at(body, "/reason").to_string(),
        action: str_at(body, "/action").to_string(),
        note: str_at(body, "/note").to_string(),
        event_type: if str_at(body, "/type") == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        at: parse_time(body.get("eventTime")?)?,
        instance: str_at(body, "/reportingInstance").to_string(),
        series: body
            .get("series")
            .filter(|s| !s.is_null())
            .and_then(series_of),
    })
    .filter(|e| e.namespace() == namespace)
}

pub async fn create(
    State(f): State<Facade>,
    Path(namespace): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("the body is not an Event: {e}")),
    };
    let name = str_at(&body, "/metadata/name").to_string();
    let refusals = create_refusals(&body, &namespace);
    if !refusals.is_empty() {
        return invalid(&name, &refusals);
    }
    let Some(event) = to_domain(&body, &namespace) else {
        return invalid(&name, &["regarding: Required value".into()]);
    };
    f.mutations.fetch_add(1, Ordering::Relaxed);
    let served = to_json(&event);
    match f.with(|w| {
        let now = w.now;
        w.events.create(event, now)
    }) {
        Ok(()) => json(StatusCode::CREATED, served),
        Err(PortError::PreconditionFailed(why)) => json(
            StatusCode::CONFLICT,
            kube_json::status(409, "AlreadyExists", &why),
        ),
        Err(e) => bad_request(e.to_string()),
    }
}

/// A merge patch that sets `series` and nothing else: any other field it
/// carries must equal what is stored, as the server's update validation
/// holds every other field immutable.
pub async fn patch(
    State(f): State<Facade>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("patch is not JSON: {e}")),
    };
    let Some(current) = f.with(|w| w.events.get(&namespace, &name).map(to_json)) else {
        return not_found(&format!("events.events.k8s.io \"{name}\""));
    };
    let Some(fields) = patch.as_object() else {
        return bad_request("a merge patch is a JSON object".into());
    };
    let mut refusals = Vec::new();
    for (field, value) in fields {
        if matches!(field.as_str(), "series" | "apiVersion" | "kind") {
            continue;
        }
        if field == "metadata" {
            // Labels and annotations may change; name and namespace not.
            for key in ["name", "namespace"] {
                if let Some(v) = value.get(key)
                    && current["metadata"].get(key) != Some(v)
                {
                    refusals.push(format!("metadata.{key}: Invalid value: field is immutable"));
                }
            }
            continue;
        }
        if current.get(field) != Some(value) {
            refusals.push(format!("{field}: Invalid value: field is immutable"));
        }
    }
    let series = patch.get("series").filter(|s| !s.is_null());
    if let Some(s) = series {
        refusals.extend(series_refusals(s));
    }
    if !refusals.is_empty() {
        return invalid(&name, &refusals);
    }
    let Some(series) = series.and_then(series_of) else {
        return json(StatusCode::OK, current);
    };
    f.mutations.fetch_add(1, Ordering::Relaxed);
    let bumped = f.with(|w| {
        let now = w.now;
        w.events
            .bump(&namespace, &name, series, now)
            .map(|found| found.then(|| w.events.get(&namespace, &name).map(to_json)))
    });
    match bumped {
        Ok(Some(Some(v))) => json(StatusCode::OK, v),
        Ok(_) => not_found(&format!("events.events.k8s.io \"{name}\"")),
        Err(e) => invalid(&name, &[e.to_string()]),
    }
}

pub async fn list_all(
    State(f): State<Facade>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list(&f, &q, None)
}

pub async fn list_in(
    State(f): State<Facade>,
    Path(namespace): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list(&f, &q, Some(namespace))
}

fn list(f: &Facade, q: &HashMap<String, String>, namespace: Option<String>) -> Response {
    let kind = super::field_selector::Kind::Event;
    list_or_watch(f, q, kind, namespace, ("EventList", API_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "apiVersion": API_VERSION, "kind": "Event",
            "metadata": {"name": "web-0.18a2b", "namespace": "shop"},
            "eventTime": "2026-01-05T00:00:00.123000Z",
            "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "u"},
            "reason": "TriggeredScaleUp", "action": "ScaleUp", "note": "n", "type": "Normal",
            "reportingController": "k3s-autoscaler", "reportingInstance": "bastion-1",
        })
    }

    #[test]
    fn what_the_kube_adapter_sends_is_taken_and_what_the_server_refuses_is_refused() {
        assert_eq!(create_refusals(&valid(), "shop"), Vec::<String>::new());
        let refused = |edit: &dyn Fn(&mut Value), ns: &str| {
            let mut v = valid();
            edit(&mut v);
            create_refusals(&v, ns)
        };
        assert!(!refused(&|v| v["eventTime"] = Value::Null, "shop").is_empty());
        // MicroTime: six fractional digits, as Go's RFC3339Micro decodes it.
        for t in ["2026-01-05T00:00:00Z", "2026-01-05T00:00:00.123Z"] {
            assert!(
                !refused(&|v| v["eventTime"] = json!(t), "shop").is_empty(),
                "{t}"
            );
        }
        assert!(
            refused(
                &|v| v["eventTime"] = json!("2026-01-05T01:00:00.123000+01:00"),
                "shop"
            )
            .is_empty()
        );
        assert!(!refused(&|v| v["action"] = json!(""), "shop").is_empty());
        assert!(!refused(&|v| v["reason"] = json!("R".repeat(129)), "shop").is_empty());
        assert!(!refused(&|v| v["note"] = json!("n".repeat(1025)), "shop").is_empty());
        assert!(!refused(&|v| v["type"] = json!("Info"), "shop").is_empty());
        assert!(
            !refused(
                &|v| v["reportingController"] = json!("k3s autoscaler"),
                "shop"
            )
            .is_empty()
        );
        assert!(!refused(&|v| v["deprecatedCount"] = json!(1), "shop").is_empty());
        assert!(
            !refused(
                &|v| v["series"] =
                    json!({"count": 1, "lastObservedTime": "2026-01-05T00:00:00.000000Z"}),
                "shop"
            )
            .is_empty()
        );
        assert!(
            !refused(&|_| {}, "default").is_empty(),
            "a pod's event outside its namespace"
        );
        // A node's: cluster-scoped, in default or kube-system only.
        let node = |v: &mut Value| {
            v["metadata"]["namespace"] = Value::Null;
            v["regarding"] = json!({"apiVersion": "v1", "kind": "Node", "name": "w1", "uid": "w1"});
        };
        assert!(refused(&node, "default").is_empty());
        assert!(!refused(&node, "shop").is_empty());
        assert!(!refused(&|v| v["metadata"]["name"] = json!("Web_0"), "shop").is_empty());
    }

    #[test]
    fn a_stored_event_reads_back_as_it_was_written() {
        let event = to_domain(&valid(), "shop").expect("an event");
        assert_eq!(event.regarding, EventObject::pod("shop", "web-0", "u"));
        let back = to_json(&event);
        assert_eq!(create_refusals(&back, "shop"), Vec::<String>::new());
        assert_eq!(to_domain(&back, "shop"), Some(event));
    }
}
