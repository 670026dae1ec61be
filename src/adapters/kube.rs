//! `ClusterApi` on kube-rs + k8s-openapi. Workers by label selector; pods,
//! PDBs; cordon by strategic-merge patch; eviction by posting a
//! `policy/v1` Eviction (kube's own `evict` sends a body the API server
//! rejects). kube's built-in retry is off: it would sit on a PDB's 429 for
//! minutes, while the engine must renew its lease between attempts.

use super::{kube_convert, kube_events};
use crate::config::KubernetesConfig;
use crate::ports::cluster::TAINT_VERIFYING;
use crate::ports::{
    ClusterApi, ClusterEvent, EventSeries, EvictionOutcome, Node, ObservedCluster, Pdb, Pod,
    PodRef, PortError, PortResult,
};
use ::kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::core::Status as ApiStatus;
use ::kube::{Client, Config, Error};
use async_trait::async_trait;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, ObjectMeta, Preconditions, Status,
};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(15);

// The engine starts a cordon or eviction only if it lands inside the lease
// at `EFFECT_CALL_CEILING`; a longer call could land after the lease ended.
const _: () = assert!(
    CONNECT_TIMEOUT.as_secs() + READ_TIMEOUT.as_secs()
        <= crate::engine::lock::EFFECT_CALL_CEILING.as_secs(),
    "Kubernetes calls may outlast the engine's per-effect ceiling"
);

pub struct KubeCluster {
    client: Client,
    /// The same settings without a read timeout: a quiet watch is silent
    /// for long stretches (`kube_watch::IDLE_LIMIT` bounds it instead).
    watch_client: Client,
    selector: String,
    endpoint: String,
    /// Started by a running engine (`start_watches`), not by one-shot
    /// commands, which read lists.
    watches: std::sync::OnceLock<super::kube_watch::Watches>,
}

impl KubeCluster {
    /// kubeconfig and context from the config, or the standard inference
    /// (KUBECONFIG, ~/.kube/config, in-cluster).
    pub async fn connect(k: &KubernetesConfig) -> Result<Self, String> {
        let options = KubeConfigOptions {
            context: k.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match (&k.kubeconfig, &k.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| format!("reading kubeconfig {path}: {e}"))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| format!("kubeconfig {path}: {e}"))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
        };
        config.default_retry = false;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let mut watch_config = config.clone();
        watch_config.read_timeout = None;
        config.read_timeout = Some(READ_TIMEOUT);
        let endpoint = config.cluster_url.to_string();
        let client =
            Client::try_from(config).map_err(|e| format!("building the Kubernetes client: {e}"))?;
        let watch_client = Client::try_from(watch_config)
            .map_err(|e| format!("building the Kubernetes client: {e}"))?;
        Ok(KubeCluster {
            client,
            watch_client,
            selector: k.worker_selector.clone(),
            endpoint,
            watches: std::sync::OnceLock::new(),
        })
    }

    /// Follow nodes, pods and budgets with watches from now on (once; on
    /// the current tokio runtime): each tick reads the caches instead of
    /// listing the cluster. Notified when a change should wake the engine.
    pub fn start_watches(&self) -> super::kube_watch::Wakes {
        self.watches
            .get_or_init(|| {
                super::kube_watch::Watches::start(&self.client, &self.watch_client, &self.selector)
            })
            .wakes()
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn nodes_api(&self) -> Api<core::Node> {
        Api::all(self.client.clone())
    }
}

/// An event write's error: as any write's, but a 401/403 is `Refused`
/// (no RBAC for events: the writer pauses instead of asking every tick).
fn event_error(what: &str, e: Error) -> PortError {
    match e {
        Error::Api(status) if matches!(status.code, 401 | 403) => PortError::Refused(format!(
            "{what}: {} {} ({})",
            status.code, status.message, status.reason
        )),
        other => port_error(what, other, true),
    }
}

pub(super) fn port_error(what: &str, e: Error, mutating: bool) -> PortError {
    match e {
        Error::Api(status) => {
            let text = format!(
                "{what}: {} {} ({})",
                status.code, status.message, status.reason
            );
            match status.code {
                404 => PortError::NotFound(text),
                409 => PortError::PreconditionFailed(text),
                // A list whose continuation expired, past its restarts:
                // the cluster changes faster than it can be read.
                410 => PortError::Unavailable(text),
                429 => PortError::Throttled(text),
                500.. if mutating => PortError::OutcomeUnknown(text),
                500.. => PortError::Unavailable(text),
                _ => PortError::Invalid(text),
            }
        }
        other if mutating => PortError::OutcomeUnknown(format!("{what}: {other}")),
        other => PortError::Unavailable(format!("{what}: {other}")),
    }
}

/// An eviction the API server refused, as the drain must read it. 429 is
/// a PodDisruptionBudget (retry later); 404 and 409 (the UID precondition)
/// mean the pod we meant is gone. A `403` whose cause is
/// `NamespaceTerminating` comes from a namespace being deleted: the
/// namespace controller deletes its pods, so, as `kubectl drain` does, the
/// drain waits for them (blocked, not failed). Any other refusal is final.
fn eviction_refused(status: &ApiStatus, namespace: &str) -> EvictionOutcome {
    let namespace_terminating = status.code == 403
        && status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"));
    match status.code {
        429 => EvictionOutcome::Blocked(status.message.clone()),
        403 if namespace_terminating => EvictionOutcome::Blocked(format!(
            "namespace {namespace} is being deleted; its pods go with it"
        )),
        404 | 409 => EvictionOutcome::AlreadyGone,
        _ => EvictionOutcome::Rejected(format!("{} {}", status.code, status.message)),
    }
}

/// Items per LIST answer, kubectl's `--chunk-size` default: a large
/// cluster's pods come in bounded answers, not one of tens of megabytes.
const LIST_PAGE: u32 = 500;

/// Items one LIST may hold: a server that keeps handing out more is wrong,
/// and the view must not grow without bound on it. Counted in items, not
/// pages, since a server may answer pages far shorter than `LIST_PAGE`.
const MAX_LIST_ITEMS: usize = 1_000_000;

/// A whole paged LIST, every page included. Each page is bounded by the
/// read timeout; this bounds their sum, so one slow list makes the view
/// Unknown instead of holding the tick.
const LIST_DEADLINE: Duration = Duration::from_secs(30);

/// Times a LIST starts over when its continuation has expired (`410`).
const LIST_RESTARTS: usize = 2;

/// Every item of a LIST (see `list_pages`), within `LIST_DEADLINE`.
async fn list_all<K>(api: &Api<K>, params: ListParams, what: &str) -> PortResult<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    list_versioned(api, params, what)
        .await
        .map(|(items, _)| items)
}

/// Every item of a LIST and the list's `resourceVersion` (its last
/// page's: the version a watch continues from), within `LIST_DEADLINE`.
pub(super) async fn list_versioned<K>(
    api: &Api<K>,
    params: ListParams,
    what: &str,
) -> PortResult<(Vec<K>, String)>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    list_versioned_with(api, params, what, |k| k).await
}

/// `list_versioned`, each item mapped as its page arrives: a watch's store
/// keeps what it converts, so only one page of whole API objects is held
/// at a time (a 30 000-pod list as `Pod` objects is hundreds of MB).
pub(super) async fn list_versioned_with<K, T>(
    api: &Api<K>,
    params: ListParams,
    what: &str,
    map: impl FnMut(K) -> T,
) -> PortResult<(Vec<T>, String)>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match tokio::time::timeout(LIST_DEADLINE, list_pages(api, params, what, map)).await {
        Ok(listed) => listed,
        Err(_) => Err(PortError::Unavailable(format!(
            "{what}: not finished after {} s",
            LIST_DEADLINE.as_secs()
        ))),
    }
}

/// A transport error of a connection that was closed under the request
/// (reset, broken pipe, the server's close before an answer), not a
/// timeout, a refused connect or a name that does not resolve: those
/// carry an I/O error of another kind.
fn closed_connection(e: &Error) -> bool {
    if !matches!(e, Error::Service(_) | Error::HyperError(_)) {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            );
        }
        source = err.source();
    }
    // No I/O error under it: hyper's own "connection closed before the
    // message completed" or "request canceled" of a pooled connection.
    true
}

/// Every item of a LIST, page by page (`limit`, then `continue` until the
/// server gives none). The server may answer a page with fewer items than
/// asked and a token for the rest, so a client that stops at the first
/// page sees a part of the cluster as the whole of it. A continuation
/// the server has compacted away is `410 Expired`: the pages read so far
/// belong to a snapshot that can no longer be finished, so the list
/// starts over (as client-go's pager does), a bounded number of times.
async fn list_pages<K, T>(
    api: &Api<K>,
    params: ListParams,
    what: &str,
    mut map: impl FnMut(K) -> T,
) -> PortResult<(Vec<T>, String)>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let first = params.limit(LIST_PAGE);
    let mut restarts = 0;
    'list: loop {
        let mut params = first.clone();
        let mut items = Vec::new();
        let mut tokens = std::collections::HashSet::new();
        while items.len() <= MAX_LIST_ITEMS {
            let mut answer = api.list(&params).await;
            if let Err(e) = &answer
                && closed_connection(e)
            {
                // A pooled connection the server (or a proxy) had closed
                // while it sat idle. A read is safe to send again, once,
                // as client-go does for a GET that meets a reset
                // connection; a timeout or a refused connect is not this
                // and is not sent twice.
                answer = api.list(&params).await;
            }
            let page = match answer {
                Ok(page) => page,
                Err(Error::Api(status))
                    if status.code == 410
                        && params.continue_token.is_some()
                        && restarts < LIST_RESTARTS =>
                {
                    restarts += 1;
                    continue 'list;
                }
                Err(e) => return Err(port_error(what, e, false)),
            };
            items.extend(page.items.into_iter().map(&mut map));
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                None => return Ok((items, page.metadata.resource_version.unwrap_or_default())),
                // A server that hands back a token it gave before would
                // keep this loop going for ever.
                Some(token) if !tokens.insert(token.clone()) => {
                    return Err(PortError::Invalid(format!(
                        "{what}: the server answered a continue token it had given before"
                    )));
                }
                Some(token) => params = params.continue_token(&token),
            }
        }
        return Err(PortError::Unavailable(format!(
            "{what}: more than {MAX_LIST_ITEMS} items"
        )));
    }
}

/// `value` escaped for a `fieldSelector` term (`fields.EscapeValue`): a
/// `,` or `=` in it would otherwise split the term.
fn field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every item of a LIST, converted page by page (`list_versioned_with`);
/// an item that does not convert makes the whole list Invalid.
async fn list_converted<K, D>(
    api: &Api<K>,
    params: ListParams,
    what: &str,
    f: fn(&K) -> Result<D, String>,
) -> PortResult<Vec<D>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (items, _) = list_versioned_with(api, params, what, |k| f(&k)).await?;
    items
        .into_iter()
        .map(|i| i.map_err(PortError::Invalid))
        .collect()
}

#[async_trait]
impl ClusterApi for KubeCluster {
    async fn observed(&self) -> ObservedCluster {
        let refused = match self.watches.get() {
            None => None,
            Some(watches) => match watches.refused() {
                None => return watches.observed(),
                // No `watch` in the RBAC: lists, as with `watch = false`,
                // and the console says why.
                Some(why) => Some(format!("lists · watch refused ({why})")),
            },
        };
        let (nodes, pods, pdbs) = tokio::join!(self.nodes(), self.pods(), self.pdbs());
        ObservedCluster {
            nodes,
            pods,
            pdbs,
            source: refused,
        }
    }

    async fn server_version(&self) -> PortResult<String> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| port_error("reading the API server's version", e, false))?;
        Ok(info.git_version)
    }

    async fn create_event(&self, event: &ClusterEvent) -> PortResult<()> {
        let api = Api::<Event>::namespaced(self.client.clone(), event.namespace());
        api.create(&PostParams::default(), &kube_events::to_event(event))
            .await
            .map_err(|e| event_error("creating an event", e))?;
        Ok(())
    }

    async fn bump_event(
        &self,
        namespace: &str,
        name: &str,
        series: EventSeries,
    ) -> PortResult<bool> {
        let api = Api::<Event>::namespaced(self.client.clone(), namespace);
        let patch = kube_events::series_patch(series);
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(event_error("bumping an event", e)),
        }
    }

    async fn node_of_instance(&self, instance_id: &str) -> PortResult<Option<String>> {
        // No label selector, on purpose; and no conversion of whole nodes
        // (an odd node elsewhere in the cluster must not fail this look-up).
        let items = list_all(
            &self.nodes_api(),
            ListParams::default(),
            "listing every node",
        )
        .await?;
        Ok(items.iter().find_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let provider = n.spec.as_ref().and_then(|s| s.provider_id.as_deref());
            (kube_convert::instance_id(provider, name).as_deref() == Some(instance_id))
                .then(|| name.to_string())
        }))
    }

    async fn nodes(&self) -> PortResult<Vec<Node>> {
        let params = ListParams::default().labels(&self.selector);
        list_converted(
            &self.nodes_api(),
            params,
            "listing nodes",
            kube_convert::node,
        )
        .await
    }

    async fn pods(&self) -> PortResult<Vec<Pod>> {
        let api = Api::<core::Pod>::all(self.client.clone());
        // A pod as the watch cache holds it is the cache's, shared, page
        // by page: at 150 000 pods, the executor's fresh list before each
        // operation would otherwise be a second copy of the cluster, and
        // the allocator keeps what a process once held.
        let watches = self.watches.get();
        let (items, _) = list_versioned_with(&api, ListParams::default(), "listing pods", |k| {
            let converted = kube_convert::pod(&k);
            match watches {
                Some(w) => converted.map(|p| w.shared_pod(p)),
                None => converted,
            }
        })
        .await?;
        items
            .into_iter()
            .map(|i| i.map_err(PortError::Invalid))
            .collect()
    }

    async fn pods_on(&self, node: &str) -> PortResult<Vec<Pod>> {
        let api = Api::<core::Pod>::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={}", field_value(node)));
        list_converted(&api, params, "listing pods on a node", kube_convert::pod).await
    }

    async fn pdbs(&self) -> PortResult<Vec<Pdb>> {
        let api = Api::<PodDisruptionBudget>::all(self.client.clone());
        let what = "listing PodDisruptionBudgets";
        list_converted(&api, ListParams::default(), what, kube_convert::pdb).await
    }

    async fn set_cordoned(&self, node: &str, cordoned: bool) -> PortResult<()> {
        let patch = serde_json::json!({ "spec": { "unschedulable": cordoned } });
        self.nodes_api()
            .patch(node, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(|e| port_error(if cordoned { "cordon" } else { "uncordon" }, e, true))?;
        Ok(())
    }

    async fn remove_startup_taint(&self, node: &str) -> PortResult<()> {
        let current = self
            .nodes_api()
            .get(node)
            .await
            .map_err(|e| port_error("reading the node", e, false))?;
        let taints = current.spec.and_then(|s| s.taints).unwrap_or_default();
        if !taints.iter().any(|t| t.key == TAINT_VERIFYING) {
            return Ok(());
        }
        let remaining: Vec<_> = taints
            .into_iter()
            .filter(|t| t.key != TAINT_VERIFYING)
            .collect();
        // A merge patch replaces the list: everything but our taint stays.
        // The resourceVersion we read makes it conditional: a taint the
        // node controller added since (not-ready, unreachable) is not
        // dropped by our stale copy; the API server answers 409 instead,
        // and the step is retried on a fresh read.
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": current.metadata.resource_version },
            "spec": { "taints": remaining },
        });
        self.nodes_api()
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| port_error("removing the startup taint", e, true))?;
        Ok(())
    }

    async fn evict(&self, pod: &PodRef) -> PortResult<EvictionOutcome> {
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            // Only this incarnation of the pod: a replacement with the same
            // name (StatefulSet) is not what we decided to evict.
            delete_options: Some(DeleteOptions {
                preconditions: Some(Preconditions {
                    uid: Some(pod.uid.clone()),
                    resource_version: None,
                }),
                ..DeleteOptions::default()
            }),
        };
        let api: Api<core::Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        match api
            .create_subresource::<Eviction, Status>(
                "eviction",
                &pod.name,
                &PostParams::default(),
                &eviction,
            )
            .await
        {
            Ok(_) => Ok(EvictionOutcome::Evicted),
            Err(Error::Api(status)) => Ok(eviction_refused(&status, &pod.namespace)),
            Err(e) => Err(port_error("evicting a pod", e, true)),
        }
    }

    async fn delete_node(&self, node: &str) -> PortResult<()> {
        match self
            .nodes_api()
            .delete(node, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(port_error("deleting the node object", e, true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node name cannot hold these, but a field selector value can, and
    /// unescaped they would split the term (the façade's parser reads
    /// them back: `sim::facade::field_selector`).
    #[test]
    fn field_selector_values_are_escaped() {
        assert_eq!(field_value("ip-10-0-1-5"), "ip-10-0-1-5");
        assert_eq!(field_value(r"a,b=c\d"), r"a\,b\=c\\d");
    }

    fn refusal(json: serde_json::Value) -> EvictionOutcome {
        let status: ApiStatus = serde_json::from_value(json).unwrap();
        eviction_refused(&status, "shop")
    }

    /// What kube-apiserver's NamespaceLifecycle admission answers for an
    /// eviction in a namespace being deleted, against any other 403 (RBAC).
    #[test]
    fn a_namespace_being_deleted_blocks_an_eviction_and_rbac_refuses_it() {
        let terminating = refusal(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web-0\" is forbidden: unable to create new content in namespace shop because it is being terminated",
            "reason": "Forbidden",
            "details": {"name": "web-0", "kind": "pods", "causes": [{
                "reason": "NamespaceTerminating",
                "message": "namespace shop is being terminated",
                "field": "metadata.namespace"}]},
            "code": 403}));
        assert!(
            matches!(&terminating, EvictionOutcome::Blocked(why) if why.contains("namespace shop is being deleted")),
            "{terminating:?}"
        );
        let rbac = refusal(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web-0\" is forbidden: User \"x\" cannot create resource \"pods/eviction\"",
            "reason": "Forbidden", "details": {"name": "web-0", "kind": "pods"}, "code": 403}));
        assert!(
            matches!(&rbac, EvictionOutcome::Rejected(why) if why.starts_with("403 ")),
            "{rbac:?}"
        );
        let budget = refusal(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests", "code": 429}));
        assert!(matches!(budget, EvictionOutcome::Blocked(_)));
    }

    /// No RBAC for events is `Refused` (the writer pauses); any other
    /// answer to an event write is what it is for every other write.
    #[test]
    fn an_event_write_without_rbac_is_refused_and_a_5xx_is_an_unknown_outcome() {
        let api = |code: u16| {
            let status: ApiStatus = serde_json::from_value(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "events.events.k8s.io is forbidden", "reason": "Forbidden",
                "code": code}))
            .unwrap();
            event_error("creating an event", Error::Api(Box::new(status)))
        };
        assert!(matches!(api(403), PortError::Refused(_)), "{:?}", api(403));
        assert!(matches!(api(401), PortError::Refused(_)));
        assert!(matches!(api(500), PortError::OutcomeUnknown(_)));
        assert!(matches!(api(422), PortError::Invalid(_)));
    }
}
