//! What the API server keeps on a Node object beyond the simulator's model,
//! so that a patch is judged as kube-apiserver judges it:
//!
//! * a `resourceVersion` per node, bumped by every change made through the
//!   façade; a patch naming an older one is `409 Conflict`;
//! * taints that are not ours: every node carries one its owner put there
//!   (`SEEDED_TAINT`), which a patch of ours must not drop. `spec.taints`
//!   has no merge key, so the list is atomic in a merge *and* in a
//!   strategic-merge patch: a patch that names it replaces it whole;
//! * patches dispatched on `Content-Type`: merge and strategic-merge are
//!   applied, anything else is `415 Unsupported Media Type`;
//! * the node lifecycle controller's taints on a NotReady node
//!   (`node.kubernetes.io/not-ready` for Ready `False`, `…/unreachable`
//!   for `Unknown`, NoSchedule and NoExecute), owned by that controller:
//!   they come and go with readiness, whatever a patch says;
//! * the version also moves when the simulator (a kubelet, the node
//!   controller) changes the node, so a read-then-patch can lose the race
//!   it loses on a real cluster.

use super::kube_json;
use crate::ports::Node;
use crate::ports::cluster::TAINT_VERIFYING;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The taint every node starts with besides ours: an operator's marking
/// (PreferNoSchedule, so the simulated scheduler may ignore it).
pub const SEEDED_TAINT_KEY: &str = "example.com/dedicated";

/// The patch types this façade applies (what the adapter and kubectl send).
pub const PATCH_TYPES: [&str; 2] = [
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

#[derive(Default)]
pub struct NodeObjects {
    objects: Mutex<BTreeMap<String, NodeObject>>,
}

/// The node lifecycle controller's taint keys, by Ready condition status.
pub const NOT_READY_TAINT_KEY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT_KEY: &str = "node.kubernetes.io/unreachable";

struct NodeObject {
    version: u64,
    /// Every taint but ours and the lifecycle controller's, as the API
    /// server stores them.
    foreign_taints: Vec<Value>,
    /// What the simulator last showed of the node (readiness, cordon, our
    /// taint): a change the façade did not make bumps the version.
    seen: Option<(bool, bool, bool)>,
}

impl NodeObject {
    /// What of a node the simulator can change behind the façade's back.
    fn state(node: &Node) -> (bool, bool, bool) {
        (node.ready, node.cordoned, node.startup_taint)
    }

    /// A change the simulator made since the node was last seen (a kubelet,
    /// the node controller) moves the version, as it would on the server.
    fn observe(&mut self, node: &Node) {
        let state = Self::state(node);
        if self.seen.is_some_and(|seen| seen != state) {
            self.version += 1;
        }
        self.seen = Some(state);
    }

    fn seeded() -> Self {
        NodeObject {
            version: 1,
            foreign_taints: vec![
                json!({"key": SEEDED_TAINT_KEY, "value": "shop", "effect": "PreferNoSchedule"}),
            ],
            seen: None,
        }
    }
}

fn is_lifecycle_taint(t: &Value) -> bool {
    matches!(
        t.get("key").and_then(Value::as_str),
        Some(NOT_READY_TAINT_KEY | UNREACHABLE_TAINT_KEY)
    )
}

/// The lifecycle controller's taints for a node in this condition.
fn lifecycle_taints(ready_status: &str, since: &Value) -> Vec<Value> {
    let key = match ready_status {
        "False" => NOT_READY_TAINT_KEY,
        "Unknown" => UNREACHABLE_TAINT_KEY,
        _ => return Vec::new(),
    };
    vec![
        json!({"key": key, "effect": "NoSchedule"}),
        json!({"key": key, "effect": "NoExecute", "timeAdded": since}),
    ]
}

/// What a patch asks of a node, once it has passed the checks.
pub struct NodePatch {
    pub cordon: Option<bool>,
    /// `metadata.annotations` as a merge patch has them: a value sets the
    /// key, `null` removes it (`kubectl annotate node N k=v`, `k-`).
    pub annotations: Vec<(String, Option<String>)>,
    /// Whether the patch's taint list keeps ours (`None`: no taint list).
    pub keeps_startup_taint: Option<bool>,
}

/// `415` unless the patch is of a type this façade applies. Judged before
/// the body is read, as the API server does: a YAML apply patch is refused
/// for its type, not for not being JSON.
pub fn patch_type_applied(content_type: &str) -> Result<(), (u16, &'static str, String)> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if PATCH_TYPES.contains(&media) {
        return Ok(());
    }
    Err((
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            PATCH_TYPES.join(", ")
        ),
    ))
}

impl NodeObjects {
    fn with<R>(&self, name: &str, f: impl FnOnce(&mut NodeObject) -> R) -> R {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        f(objects
            .entry(name.to_string())
            .or_insert_with(NodeObject::seeded))
    }

    /// The node as the API server would show it.
    pub fn render(&self, node: &Node) -> Value {
        let mut value = kube_json::node(node);
        let (version, mut taints) = self.with(&node.name, |o| {
            o.observe(node);
            (o.version, o.foreign_taints.clone())
        });
        let (ready, _) = kube_json::ready_condition(node);
        let since = value["status"]["conditions"][0]["lastTransitionTime"].clone();
        taints.extend(lifecycle_taints(ready, &since));
        if node.startup_taint {
            taints.push(json!({"key": TAINT_VERIFYING, "value": "true", "effect": "NoSchedule"}));
        }
        value["metadata"]["resourceVersion"] = json!(version.to_string());
        value["spec"]["taints"] = json!(taints);
        value
    }

    /// Check a patch of the node, as it is `current`ly, against its content
    /// type and version, and record what it changes on the object; the
    /// caller applies the rest to the world and then `settle`s. The version
    /// is judged against the node as it is now, not as it was last shown:
    /// a change nobody has read yet still makes an older version stale.
    /// `Err((status, reason, message))` as the API server answers.
    pub fn patch(
        &self,
        current: &Node,
        content_type: &str,
        patch: &Value,
    ) -> Result<NodePatch, (u16, &'static str, String)> {
        patch_type_applied(content_type)?;
        let name = &current.name;
        self.with(name, |object| {
            object.observe(current);
            if let Some(rv) = patch
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && rv != object.version.to_string()
            {
                return Err((
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                ));
            }
            let taints = match patch.pointer("/spec/taints") {
                Some(Value::Array(list)) => Some(list.clone()),
                Some(Value::Null) => Some(Vec::new()),
                _ => None,
            };
            let keeps_startup_taint = taints.as_ref().map(|list| {
                list.iter()
                    .any(|t| t.get("key").and_then(Value::as_str) == Some(TAINT_VERIFYING))
            });
            if let Some(list) = taints {
                object.foreign_taints = list
                    .into_iter()
                    .filter(|t| t.get("key").and_then(Value::as_str) != Some(TAINT_VERIFYING))
                    .filter(|t| !is_lifecycle_taint(t))
                    .collect();
            }
            object.version += 1;
            let annotations = match patch.pointer("/metadata/annotations") {
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(String::from)))
                    .collect(),
                _ => Vec::new(),
            };
            Ok(NodePatch {
                cordon: patch.pointer("/spec/unschedulable").and_then(Value::as_bool),
                annotations,
                keeps_startup_taint,
            })
        })
    }

    /// The node as a patch left it (applied to the world under the same
    /// lock): the patch's own change is already counted in the version.
    pub fn settle(&self, node: &Node) {
        self.with(&node.name, |o| o.seen = Some(NodeObject::state(node)));
    }

    /// A node object deleted: a node that registers again is a new object.
    pub fn forget(&self, name: &str) {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        objects.remove(name);
    }
}
