//! The list endpoints of nodes, pods and PodDisruptionBudgets: a LIST
//! page or a WATCH stream (`watch.rs`), rendered off the runtime's
//! threads.

use super::field_selector::Kind;
use super::{Facade, bad_request, json, kube_json, paging, selection, watch};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::collections::HashMap;

/// A LIST or WATCH of `kind` (in `namespace`, if given): a watch's stream,
/// or one page (`limit` / `continue`) of what the query's selectors
/// select, at the watch cache's version, or the server's 400 or 410.
pub(super) fn list_or_watch(
    f: &Facade,
    q: &HashMap<String, String>,
    kind: Kind,
    namespace: Option<String>,
    (list_kind, api_version): (&str, &str),
) -> Response {
    let selection = match selection::Selection::parse(q, kind, namespace) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    if watch::is_watch(q) {
        return watch::respond(f.clone(), kind, selection, q);
    }
    let answer = f.pager.page(q, f.clock.now(), || {
        let (mut items, version) = f.served(kind);
        items.retain(|i| selection.matches(i));
        (items, version)
    });
    match answer {
        paging::PageAnswer::Page {
            items,
            continue_token,
            version,
        } => {
            let mut list = kube_json::list(list_kind, api_version, items);
            list["metadata"]["resourceVersion"] = Value::String(version.to_string());
            if let Some(token) = continue_token {
                list["metadata"]["continue"] = Value::String(token);
            }
            json(StatusCode::OK, list)
        }
        paging::PageAnswer::BadRequest(e) => bad_request(e),
        paging::PageAnswer::Expired => json(
            StatusCode::GONE,
            kube_json::status(410, "Expired", paging::EXPIRED_MESSAGE),
        ),
    }
}

/// A list rendered off the runtime's threads: at 150 000 pods a render
/// takes seconds under the world's lock, and on a runtime thread it kept
/// the server from reading other requests (hyper drops a connection whose
/// request head it has not read within 30 s: the client's `SendRequest`).
async fn off_runtime(work: impl FnOnce() -> Response + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(response) => response,
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            kube_json::status(500, "InternalError", &e.to_string()),
        ),
    }
}

pub(super) async fn list_nodes(
    State(f): State<Facade>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    off_runtime(move || list_or_watch(&f, &q, Kind::Node, None, ("NodeList", "v1"))).await
}

pub(super) async fn list_pods(
    State(f): State<Facade>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    off_runtime(move || pods_response(&f, &q, None)).await
}

pub(super) async fn list_pods_in(
    State(f): State<Facade>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    off_runtime(move || pods_response(&f, &q, Some(ns))).await
}

fn pods_response(f: &Facade, q: &HashMap<String, String>, ns: Option<String>) -> Response {
    list_or_watch(f, q, Kind::Pod, ns, ("PodList", "v1"))
}

pub(super) async fn list_pdbs(
    State(f): State<Facade>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let kind = ("PodDisruptionBudgetList", "policy/v1");
    off_runtime(move || list_or_watch(&f, &q, Kind::PodDisruptionBudget, None, kind)).await
}
