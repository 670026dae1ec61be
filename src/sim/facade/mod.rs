//! The simulator's Kubernetes façade: the simulated cluster served over
//! plain HTTP on loopback — the subset of the Kubernetes API the kube
//! adapter uses, plus `/metrics` for Prometheus. Its instances come from
//! EC2 (moto): see `run_ec2_sync`. Used by `k3s-sim` and by tests.

pub mod api_cost;
pub mod events;
pub mod exposition;
pub mod field_selector;
pub mod kube_json;
mod lists;
pub mod look_pace;
pub mod node_objects;
pub mod paging;
pub mod quantity;
pub mod selection;
pub mod watch;
pub mod watch_cache;

use super::World;
use super::ports::lock;
use crate::ports::{Clock, CloudApi, EvictionOutcome, PodPhase};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use field_selector::Kind;
use lists::{list_nodes, list_or_watch, list_pdbs, list_pods, list_pods_in};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Facade {
    world: Arc<Mutex<World>>,
    clock: Arc<dyn Clock>,
    /// Requests that change something: read-only runs must leave it at 0.
    mutations: Arc<AtomicU64>,
    /// Node versions and the taints that are not ours.
    node_objects: Arc<node_objects::NodeObjects>,
    /// Namespaces deleted through the façade. They stay `Terminating`, as a
    /// namespace held by a finalizer does: the API server refuses new
    /// content in them, evictions included.
    terminating_namespaces: Arc<Mutex<BTreeSet<String>>>,
    /// Snapshots of paged lists, for their continuations.
    pager: Arc<paging::Pager>,
    /// Versions of every object listed or watched, and their changes.
    watch: Arc<watch_cache::WatchCache>,
    /// When open watches may look at a kind again (`look_pace.rs`).
    look_pace: Arc<look_pace::LookPace>,
    watch_faults: Arc<watch::WatchFaults>,
    cost: Arc<api_cost::ApiCost>,
}

impl Facade {
    pub fn new(world: Arc<Mutex<World>>, clock: Arc<dyn Clock>) -> Self {
        Facade {
            world,
            clock,
            mutations: Arc::new(AtomicU64::new(0)),
            node_objects: Arc::new(node_objects::NodeObjects::default()),
            terminating_namespaces: Arc::default(),
            pager: Arc::default(),
            watch: Arc::default(),
            look_pace: Arc::default(),
            watch_faults: Arc::default(),
            cost: Arc::default(),
        }
    }

    /// Pages as long as the client asks, up to `n` (`Pager::set_page_cap`).
    pub fn with_page_cap(self, n: usize) -> Self {
        self.pager.set_page_cap(n);
        self
    }

    /// What the API has cost so far (the counters of `/debug/api-cost`).
    pub fn api_cost(&self) -> api_cost::CostSnapshot {
        self.cost.snapshot()
    }

    /// Every object of `kind` as served now, with its version, taken into
    /// the watch cache under the world's lock (so the version names
    /// exactly this state), and the version of the whole.
    fn served(&self, kind: Kind) -> (Vec<Value>, u64) {
        self.with(|w| self.record(w, kind))
    }

    /// `served`, for a caller already holding the world: after a change
    /// made through the API, so that each write is its own watch event,
    /// as on the real server (a cordon and an uncordon between two looks
    /// are two events, not none).
    fn record(&self, w: &mut World, kind: Kind) -> (Vec<Value>, u64) {
        let items = render_all(self, w, kind);
        self.watch.refresh(kind, items)
    }

    /// The world's changes of `kind` taken into the watch cache, and the
    /// version now (`record` without serving a copy of the kind).
    fn note(&self, w: &mut World, kind: Kind) -> u64 {
        let items = render_all(self, w, kind);
        self.watch.note(kind, items)
    }

    /// Whether an open watch's look at `kind` is due; if so it is this
    /// caller's to take (`look`).
    fn look_due(&self, kind: Kind) -> bool {
        self.look_pace.due(kind, std::time::Instant::now())
    }

    /// A look that `look_due` granted: `note` under the world's lock
    /// (`look_pace.rs` sets the pace), timed from the lock's
    /// grant (a wait behind a list is not the look's own cost).
    fn look(&self, kind: Kind) -> u64 {
        let (version, began) = self.with(|w| {
            let began = std::time::Instant::now();
            (self.note(w, kind), began)
        });
        self.look_pace.looked(kind, began, began.elapsed());
        version
    }

    /// Node `name` as served now (its version the watch cache's).
    fn served_node(&self, w: &mut World, name: &str) -> Option<Value> {
        let (nodes, _) = self.record(w, Kind::Node);
        nodes
            .into_iter()
            .find(|n| n.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }

    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut world = lock(&self.world);
        world.advance_to(self.clock.now());
        f(&mut world)
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/api/v1/nodes", get(list_nodes))
            .route(
                "/api/v1/nodes/{name}",
                get(get_node).patch(patch_node).delete(delete_node),
            )
            .route("/api/v1/pods", get(list_pods))
            .route("/api/v1/namespaces/{ns}", delete(delete_namespace))
            .route("/api/v1/namespaces/{ns}/pods", get(list_pods_in))
            .route("/api/v1/namespaces/{ns}/pods/{name}/eviction", post(evict))
            .route("/apis/policy/v1/poddisruptionbudgets", get(list_pdbs))
            .route("/apis/events.k8s.io/v1/events", get(events::list_all))
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events",
                get(events::list_in).post(events::create),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
                axum::routing::patch(events::patch),
            )
            .route("/metrics", get(metrics))
            .route("/debug/mutations", get(mutations))
            .route("/debug/jobs/{name}/{pods}/{cpu_millis}", post(add_job))
            .route("/debug/expire-continues/{n}", post(expire_continues))
            .route("/debug/expired-continues", get(expired_continues))
            .route("/debug/api-cost", get(api_cost_answer))
            .route("/debug/watch-compact", post(watch_compact))
            .route("/debug/watch-fault/{kind}/{fault}/{n}", post(watch_fault))
            .route("/healthz", get(|| async { "ok" }))
            .route("/version", get(version))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                api_cost::count,
            ))
            .with_state(self)
    }
}

/// `GET /version`, as the API server answers it (the same k8s-openapi
/// type the client decodes): the K3s release new workers are pinned to.
async fn version() -> Response {
    use k8s_openapi::apimachinery::pkg::version::Info;
    let info = Info {
        build_date: "2026-01-05T00:00:00Z".into(),
        compiler: "gc".into(),
        git_commit: "0000000000000000000000000000000000000000".into(),
        git_tree_state: "clean".into(),
        git_version: crate::sim::K3S_VERSION.into(),
        go_version: "go1.24.4".into(),
        major: "1".into(),
        minor: "33".into(),
        platform: "linux/amd64".into(),
        ..Info::default()
    };
    match serde_json::to_value(&info) {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            kube_json::status(500, "InternalError", &e.to_string()),
        ),
    }
}

/// The façade's own tables, through a poisoned lock too: a test peer
/// keeps answering after a handler panicked.
fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn json(code: StatusCode, body: Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Every object of `kind` the world holds, rendered as served.
fn render_all(f: &Facade, w: &mut World, kind: Kind) -> Vec<Value> {
    match kind {
        Kind::Node => w.nodes().iter().map(|n| f.node_objects.render(n)).collect(),
        Kind::Pod => w.pods().iter().map(kube_json::pod).collect(),
        Kind::PodDisruptionBudget => {
            let pods = w.pods();
            w.workload
                .pdb_view(w.now)
                .iter()
                .map(|pdb| {
                    let covered: Vec<_> = pods
                        .iter()
                        .filter(|p| pdb.covers(p) && !p.terminating)
                        .collect();
                    let healthy = covered
                        .iter()
                        .filter(|p| p.phase == PodPhase::Running)
                        .count() as i32;
                    kube_json::pdb(pdb, covered.len() as i32, healthy)
                })
                .collect()
        }
        Kind::Event => w
            .events
            .list(None)
            .into_iter()
            .map(events::to_json)
            .collect(),
    }
}

fn not_found(what: &str) -> Response {
    json(
        StatusCode::NOT_FOUND,
        kube_json::status(404, "NotFound", &format!("{what} not found")),
    )
}

fn bad_request(message: String) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        kube_json::status(400, "BadRequest", &message),
    )
}

async fn get_node(State(f): State<Facade>, Path(name): Path<String>) -> Response {
    // Rendered under the world's lock, as a list is: a patch landing
    // between the read and the render would otherwise be shown stale, under
    // a version bumped for it.
    match f.with(|w| f.served_node(w, &name)) {
        Some(n) => json(StatusCode::OK, n),
        None => not_found(&format!("nodes \"{name}\"")),
    }
}

async fn patch_node(
    State(f): State<Facade>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    // Counted before it is judged: a read-only run must send none at all,
    // refused or not.
    f.mutations.fetch_add(1, Ordering::SeqCst);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err((code, reason, message)) = node_objects::patch_type_applied(content_type) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        return json(status, kube_json::status(code, reason, &message));
    }
    let mut patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("patch is not JSON: {e}")),
    };
    // Judged and applied under one hold of the world, so no change of the
    // simulator's falls between the version check and the write.
    let answer = f.with(|w| {
        let current = w.nodes().into_iter().find(|n| n.name == name)?;
        // Clients see the watch cache's versions; the node's own record
        // judges the patch. The version served now stands for the
        // record's; any other is stale, whatever its digits.
        if let Some(rv) = patch.pointer("/metadata/resourceVersion").cloned() {
            let served = f.served_node(w, &name)?;
            let own = f.node_objects.render(&current)["metadata"]["resourceVersion"].clone();
            let meant = if served["metadata"]["resourceVersion"] == rv {
                own
            } else {
                Value::String("stale".into())
            };
            patch["metadata"]["resourceVersion"] = meant;
        }
        let change = match f.node_objects.patch(&current, content_type, &patch) {
            Ok(change) => change,
            Err(refusal) => return Some(Err(refusal)),
        };
        if let Some(c) = change.cordon {
            w.set_cordoned(&name, c).ok()?;
        }
        if change.keeps_startup_taint == Some(false) {
            w.remove_startup_taint(&name).ok()?;
        }
        if !change.annotations.is_empty() {
            w.annotate_node(&name, &change.annotations).ok()?;
        }
        let node = w.nodes().into_iter().find(|n| n.name == name)?;
        f.node_objects.settle(&node);
        f.served_node(w, &name).map(Ok)
    });
    match answer {
        Some(Ok(node)) => json(StatusCode::OK, node),
        Some(Err((code, reason, message))) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            json(status, kube_json::status(code, reason, &message))
        }
        None => not_found(&format!("nodes \"{name}\"")),
    }
}

async fn delete_node(State(f): State<Facade>, Path(name): Path<String>) -> Response {
    f.mutations.fetch_add(1, Ordering::SeqCst);
    let existed = f.with(|w| {
        let found = w.fleet.nodes.contains_key(&name);
        w.delete_node(&name);
        // Under the same lock: a render racing the delete cannot bring the
        // forgotten object back.
        f.node_objects.forget(&name);
        f.note(w, Kind::Node);
        found
    });
    if existed {
        json(
            StatusCode::OK,
            kube_json::status(200, "", &format!("node {name} deleted")),
        )
    } else {
        not_found(&format!("nodes \"{name}\""))
    }
}

/// `DELETE` of a namespace: it turns `Terminating` and stays so (no
/// namespace controller runs here), which is what an operator meets when a
/// finalizer holds one.
async fn delete_namespace(State(f): State<Facade>, Path(ns): Path<String>) -> Response {
    f.mutations.fetch_add(1, Ordering::SeqCst);
    guard(&f.terminating_namespaces).insert(ns.clone());
    json(
        StatusCode::OK,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Terminating"},
        }),
    )
}

/// policy/v1 Eviction, answered as the API server does
/// (`pkg/registry/core/pod/storage/eviction.go` and the admission before
/// it), in its order: 400 when the body is not an Eviction or names
/// another namespace (the handler), 403 `NamespaceTerminating` in a
/// namespace being deleted (admission), 400 when it names another pod
/// (storage), 201 when the pod
/// starts terminating, 429 when a PodDisruptionBudget refuses, 404 when it
/// is gone, 409 when the UID precondition does not match, and 500 when more
/// than one budget covers the pod (the real server cannot decide then).
async fn evict(
    State(f): State<Facade>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    // Counted before it is judged, as a patch is: a read-only run sends none.
    f.mutations.fetch_add(1, Ordering::SeqCst);
    let eviction: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if eviction.get("kind").and_then(Value::as_str) != Some("Eviction") {
        return bad_request("the body is not a policy/v1 Eviction".into());
    }
    if eviction
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .is_some_and(|n| n != ns)
    {
        return bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        );
    }
    if guard(&f.terminating_namespaces).contains(&ns) {
        let mut refusal = kube_json::status(
            403,
            "Forbidden",
            &format!(
                "pods \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
            ),
        );
        refusal["details"] = serde_json::json!({
            "name": name,
            "kind": "pods",
            "causes": [{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {ns} is being terminated"),
                "field": "metadata.namespace",
            }],
        });
        return json(StatusCode::FORBIDDEN, refusal);
    }
    // The storage layer's own check (`eviction.go`), after admission.
    if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str()) {
        return bad_request("name in URL does not match name in Eviction object".into());
    }
    let want_uid = eviction
        .pointer("/deleteOptions/preconditions/uid")
        .and_then(Value::as_str)
        .map(String::from);
    let (code, reason, message) = f.with(|w| {
        let pods = w.pods();
        let Some(pod) = pods.iter().find(|p| p.namespace == ns && p.name == name) else {
            return (404, "NotFound", format!("pods \"{name}\" not found"));
        };
        if want_uid.as_ref().is_some_and(|u| u != &pod.uid) {
            return (409, "Conflict", format!("Precondition failed: UID in precondition: {}, UID in object meta: {}", want_uid.unwrap_or_default(), pod.uid));
        }
        // `eviction.go`'s order: a pod that is Pending, finished or already
        // terminating is deleted without looking at budgets; then budgets
        // with a null or empty selector are skipped, and two that cover
        // the pod are a 500.
        let ignores_budgets = pod.terminating
            || matches!(pod.phase, PodPhase::Pending | PodPhase::Succeeded | PodPhase::Failed);
        let budgets = w
            .workload
            .pdb_view(w.now)
            .into_iter()
            .filter(|b| b.guards(pod))
            .count();
        if !ignores_budgets && budgets > 1 {
            return (500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into());
        }
        let outcome = w.evict(&pod.uid);
        f.note(w, Kind::Pod);
        match outcome {
            EvictionOutcome::Evicted => (201, "", "".into()),
            EvictionOutcome::AlreadyGone => (404, "NotFound", format!("pods \"{name}\" not found")),
            EvictionOutcome::Blocked(why) => (429, "TooManyRequests", why),
            EvictionOutcome::Rejected(why) => (500, "InternalError", why),
        }
    });
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, kube_json::status(code, reason, &message))
}

async fn metrics(State(f): State<Facade>) -> Response {
    let text = f.with(|w| exposition::render(w));
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// A Job of `pods` pods asking `cpu_millis` and 1 GiB each, added to the
/// workload (a test's "a pod too big for any worker").
async fn add_job(
    State(f): State<Facade>,
    Path((name, pods, cpu_millis)): Path<(String, u32, u64)>,
) -> String {
    let requests = crate::ports::Resources::new(cpu_millis, 1 << 30);
    f.with(|w| w.workload.add_job(&name, pods, requests));
    format!("{name}: {pods} pod(s) of {cpu_millis}m")
}

async fn api_cost_answer(State(f): State<Facade>) -> Response {
    match serde_json::to_value(f.cost.snapshot()) {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => bad_request(e.to_string()),
    }
}

/// Every watch from a version before now must list again (`410`), as
/// after a compaction; open watches meet it at their next look.
async fn watch_compact(State(f): State<Facade>) -> String {
    f.watch.compact();
    f.watch.version().to_string()
}

/// A fault for the watches of a kind (`watch::WatchFaults`).
async fn watch_fault(
    State(f): State<Facade>,
    Path((kind, fault, n)): Path<(String, String, u32)>,
) -> Response {
    let Some(k) = watch::kind_named(&kind) else {
        return bad_request(format!("no watches of {kind:?} here"));
    };
    match f.watch_faults.set(k, &fault, n) {
        Ok(()) => (StatusCode::OK, format!("{kind}: {fault} {n}")).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn mutations(State(f): State<Facade>) -> String {
    f.mutations.load(Ordering::SeqCst).to_string()
}

/// The next `n` LIST continuations meet `410 Expired`, as after an etcd
/// compaction between two pages: a test shows what the client does then.
async fn expire_continues(State(f): State<Facade>, Path(n): Path<u32>) -> String {
    f.pager.expire_next(n);
    n.to_string()
}

async fn expired_continues(State(f): State<Facade>) -> String {
    f.pager.expired_answers().to_string()
}

/// Keep the simulated fleet in step with EC2: poll the managed workers and
/// mirror them (new ones join after the boot delay; terminated ones' nodes
/// go NotReady). Runs until the task is dropped.
pub async fn run_ec2_sync(
    world: Arc<Mutex<World>>,
    clock: Arc<dyn Clock>,
    ec2: Arc<dyn CloudApi>,
    every: Duration,
) {
    loop {
        match ec2.managed_instances().await {
            Ok(live) => {
                let mut w = lock(&world);
                w.advance_to(clock.now());
                w.sync_external(&live);
            }
            Err(e) => tracing::warn!(target: "sim", "polling EC2: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}
