//! `?watch=true` on a list path, answered as kube-apiserver answers it:
//! `200` and a chunked body of one JSON object per line, each
//! `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`.
//!
//! * `resourceVersion` unset or `"0"`: every current object as `ADDED`,
//!   then the changes; a version: the changes after it (from the watch
//!   cache), or, when the cache no longer reaches back to it, one `ERROR`
//!   event carrying a `410 Expired` Status and the end of the stream — the
//!   client must list again.
//! * An object that stops matching a selector is `DELETED` for that watch,
//!   one that starts matching is `ADDED`, as the API server's filtered
//!   watches do.
//! * `allowWatchBookmarks=true`: a `BOOKMARK` with the version now, every
//!   `BOOKMARK_EVERY` (the API server's are about a minute apart and best
//!   effort: no client may rely on them).
//! * `timeoutSeconds`: the stream ends cleanly after it.
//!
//! Faults a test can ask for (`WatchFaults`): watches of a kind go silent
//! without closing (a stalled connection), the next event's object does
//! not decode as its kind, the stream is cut in the middle of an event, an
//! open watch meets `410`, or a watch is refused `403`.

use super::field_selector::Kind;
use super::selection::Selection;
use super::watch_cache::{Change, Since};
use super::{Facade, bad_request, kube_json};
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// How often an open watch looks for changes.
const POLL: Duration = Duration::from_millis(200);

/// Between two bookmarks of one watch.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

/// A watch without `timeoutSeconds` (the API server picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A stalled watch is let go after this, so a test's stall cannot keep a
/// task alive for ever.
const STALL_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The faults `/debug/watch-fault/...` sets, per kind.
#[derive(Default)]
pub struct WatchFaults {
    stalled: [AtomicBool; 3],
    garble: [AtomicU32; 3],
    cut: [AtomicU32; 3],
    gone: [AtomicU32; 3],
    forbid: [AtomicU32; 3],
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Node => 0,
        Kind::Pod => 1,
        Kind::PodDisruptionBudget | Kind::Event => 2,
    }
}

impl WatchFaults {
    /// `fault`: `stall` / `resume`, `garble` (the next `n` events' objects
    /// do not decode), `cut` (the next `n` streams end mid-event) or
    /// `gone` (the next `n` open watches meet `410`, as a watch the server
    /// can no longer serve does) or `forbid` (the next `n` watches are
    /// refused `403`, as for RBAC that grants `list` but not `watch`).
    pub fn set(&self, kind: Kind, fault: &str, n: u32) -> Result<(), String> {
        let i = slot(kind);
        match fault {
            "stall" => self.stalled[i].store(true, Ordering::SeqCst),
            "resume" => self.stalled[i].store(false, Ordering::SeqCst),
            "garble" => self.garble[i].store(n, Ordering::SeqCst),
            "cut" => self.cut[i].store(n, Ordering::SeqCst),
            "gone" => self.gone[i].store(n, Ordering::SeqCst),
            "forbid" => self.forbid[i].store(n, Ordering::SeqCst),
            other => return Err(format!("unknown watch fault {other:?}")),
        }
        Ok(())
    }

    fn stalled(&self, kind: Kind) -> bool {
        self.stalled[slot(kind)].load(Ordering::SeqCst)
    }

    /// Takes one from a fault's count, if any is left.
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

pub fn kind_named(name: &str) -> Option<Kind> {
    match name {
        "nodes" => Some(Kind::Node),
        "pods" => Some(Kind::Pod),
        "poddisruptionbudgets" => Some(Kind::PodDisruptionBudget),
        _ => None,
    }
}

fn type_meta(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Node => ("Node", "v1"),
        Kind::Pod => ("Pod", "v1"),
        Kind::PodDisruptionBudget => ("PodDisruptionBudget", "policy/v1"),
        Kind::Event => ("Event", "events.k8s.io/v1"),
    }
}

/// Whether the query is a watch (`watch=true`, or `1` as the server
/// also takes).
pub fn is_watch(q: &HashMap<String, String>) -> bool {
    matches!(q.get("watch").map(String::as_str), Some("true" | "1"))
}

struct Query {
    from: Option<u64>,
    bookmarks: bool,
    timeout: Duration,
}

fn parse(q: &HashMap<String, String>) -> Result<Query, String> {
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| format!("invalid resource version: {v}"))?,
        ),
    };
    let timeout = match q.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        None => DEFAULT_TIMEOUT,
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| format!("invalid timeoutSeconds {t:?}"))?,
        ),
    };
    Ok(Query {
        from,
        bookmarks: matches!(
            q.get("allowWatchBookmarks").map(String::as_str),
            Some("true" | "1")
        ),
        timeout,
    })
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The event a change is for one watch's selection, if any.
fn event_of(change: &Change, selection: &Selection) -> Option<(&'static str, Arc<Value>)> {
    let was = change.prev.as_ref().filter(|p| selection.matches(p));
    let is = change.cur.as_ref().filter(|c| selection.matches(c));
    match (was, is, &change.cur) {
        (None, Some(cur), _) => Some(("ADDED", cur.clone())),
        (Some(_), Some(cur), _) => Some(("MODIFIED", cur.clone())),
        // Left the selection: the object as it is now.
        (Some(_), None, Some(cur)) => Some(("DELETED", cur.clone())),
        // Deleted: the last state, at the deletion's version.
        (Some(prev), None, None) => Some(("DELETED", prev.clone())),
        (None, None, _) => None,
    }
}

/// The object of a garbled event: its name kept (a client can say which
/// object it could not read), its spec of the wrong shape.
fn garbled(object: &Value) -> Value {
    let mut bad = object.clone();
    bad["spec"] = json!("not an object");
    bad
}

pub fn respond(
    f: Facade,
    kind: Kind,
    selection: Selection,
    q: &HashMap<String, String>,
) -> Response {
    let query = match parse(q) {
        Ok(query) => query,
        Err(e) => return bad_request(e),
    };
    if WatchFaults::take(&f.watch_faults.forbid[slot(kind)]) {
        let (kind_name, _) = type_meta(kind);
        let resource = kind_name.to_lowercase() + "s";
        return super::json(
            StatusCode::FORBIDDEN,
            kube_json::status(
                403,
                "Forbidden",
                &format!(
                    "{resource} is forbidden: User \"system:serviceaccount:kube-system:k3s-autoscaler\" cannot watch resource \"{resource}\" in API group \"\" at the cluster scope"
                ),
            ),
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(produce(f, kind, selection, query, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx))
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Sends one line, counted; `false` once the client has gone.
async fn send(f: &Facade, tx: &tokio::sync::mpsc::Sender<Bytes>, bytes: Bytes) -> bool {
    f.cost.watch_bytes(bytes.len());
    tx.send(bytes).await.is_ok()
}

/// A look at `kind` when one is due (`Facade::look`), off the runtime's
/// threads (a look at 150 000 pods is a render of seconds under the
/// world's lock; `off_runtime` in lists.rs).
async fn noted(f: &Facade, kind: Kind) -> u64 {
    // Asked on the runtime: most polls find no look due, and need no
    // blocking thread.
    if !f.look_due(kind) {
        return f.watch.version();
    }
    let g = f.clone();
    match tokio::task::spawn_blocking(move || g.look(kind)).await {
        Ok(version) => version,
        Err(_) => f.watch.version(),
    }
}

async fn produce(
    f: Facade,
    kind: Kind,
    selection: Selection,
    query: Query,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let started = tokio::time::Instant::now();
    let mut at = noted(&f, kind).await;
    if query.from.is_none() {
        let (objects, now) = f.watch.current(kind);
        for object in objects.iter().filter(|o| selection.matches(o)) {
            if !send(&f, &tx, line("ADDED", object)).await {
                return;
            }
        }
        at = now;
    } else if let Some(from) = query.from {
        at = from;
    }
    let mut last_bookmark = tokio::time::Instant::now();
    loop {
        if f.watch_faults.stalled(kind) {
            if started.elapsed() > STALL_LIMIT || tx.is_closed() {
                return;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        noted(&f, kind).await;
        let answer = if WatchFaults::take(&f.watch_faults.gone[slot(kind)]) {
            Since::Gone { oldest: at + 1 }
        } else {
            f.watch.since(kind, at)
        };
        match answer {
            Since::Gone { oldest } => {
                let status = kube_json::status(
                    410,
                    "Expired",
                    &format!("too old resource version: {at} ({oldest})"),
                );
                send(&f, &tx, line("ERROR", &status)).await;
                return;
            }
            Since::Changes(changes, now) => {
                for change in &changes {
                    let Some((verb, object)) = event_of(change, &selection) else {
                        continue;
                    };
                    let slot = slot(kind);
                    if WatchFaults::take(&f.watch_faults.cut[slot]) {
                        let whole = line(verb, &object);
                        send(&f, &tx, whole.slice(..whole.len() / 2)).await;
                        return;
                    }
                    let bytes = if WatchFaults::take(&f.watch_faults.garble[slot]) {
                        line(verb, &garbled(&object))
                    } else {
                        line(verb, &object)
                    };
                    if !send(&f, &tx, bytes).await {
                        return;
                    }
                    f.cost.watch_event();
                }
                at = now;
            }
        }
        if query.bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
            let (kind_name, api_version) = type_meta(kind);
            let mark = json!({"kind": kind_name, "apiVersion": api_version, "metadata": {"resourceVersion": at.to_string()}});
            if !send(&f, &tx, line("BOOKMARK", &mark)).await {
                return;
            }
            last_bookmark = tokio::time::Instant::now();
        }
        if started.elapsed() >= query.timeout || tx.is_closed() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
